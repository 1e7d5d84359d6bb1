"""Errors a user can fix. The CLI prints them as one line and exits with code 2."""

from __future__ import annotations

from typing import Mapping, TypeVar


class MlpLabError(Exception):
    """A mistake in the user's input: bad config, missing data, unknown run folder."""

    exit_code = 2


class ConfigError(MlpLabError):
    """The experiment config (file, key or value) is not valid."""


class DataError(MlpLabError):
    """The data set is missing, incomplete or corrupt."""


class RunError(MlpLabError):
    """A run folder is missing, unreadable or can't be written."""


_T = TypeVar("_T")


def lookup(registry: Mapping[str, _T], key: str, value: str, error: type[MlpLabError] = ConfigError) -> _T:
    """``registry[value]``, the one way every name in a config reaches its implementation.

    The schema already refuses unknown names; this still guards a config built without
    validation (``model_construct``), with the error a user would get from the schema:
    the key, the value and every known name.
    """
    try:
        return registry[value]
    except (KeyError, TypeError):
        raise error(f"{key}: {value!r} is not allowed; allowed: {', '.join(registry)}") from None
