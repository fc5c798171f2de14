"""The dashboard's screens: setup, monitor, results, runs."""
