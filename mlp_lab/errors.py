"""Errors a user can fix. The CLI prints them as one line and exits with code 2."""


class MlpLabError(Exception):
    """A mistake in the user's input: bad config, missing data, unknown run folder."""

    exit_code = 2


class ConfigError(MlpLabError):
    """The experiment config (file, key or value) is not valid."""


class DataError(MlpLabError):
    """The data set is missing, incomplete or corrupt."""


class RunError(MlpLabError):
    """A run folder is missing, unreadable or can't be written."""
