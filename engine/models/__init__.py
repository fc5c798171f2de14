"""The architectures (torch). Which names exist, and their options, is `engine.catalog.models`."""
