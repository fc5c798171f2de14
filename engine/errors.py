"""Errors the engine turns into a clean one-line message and exit code 2 (bad input)."""


class BadInputError(Exception):
    """Base for errors caused by the user's input: exit code 2, no traceback."""


class ConfigError(BadInputError):
    """A config key that is unknown, of the wrong type or out of range."""


class DataError(BadInputError):
    """The dataset is missing, corrupt or cannot be fetched."""


class RunMetaError(BadInputError, ValueError):
    """A run folder's run.json that is missing or damaged (a ValueError for its old readers)."""
