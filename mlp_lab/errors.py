"""Errors a user can fix. The CLI prints them as one line and exits with code 2."""

from __future__ import annotations

import difflib
import reprlib
from collections.abc import Iterable, Mapping
from typing import TypeVar


class MlpLabError(Exception):
    """A mistake in the user's input: bad config, missing data, unknown run folder."""

    exit_code = 2


class ConfigError(MlpLabError):
    """The experiment config (file, key or value) is not valid."""


class DataError(MlpLabError):
    """The data set is missing, incomplete or corrupt."""


class RunError(MlpLabError):
    """A run folder is missing, unreadable or can't be written."""


class DiskFull(RunError):
    """A write found no space left on the device (or the quota used up)."""


DISK_FULL = "no space left on device"  # how every DiskFull message begins, also in a run's log


_T = TypeVar("_T")

QUOTE_LIMIT = 100  # characters of a user's value an error message quotes


def shorten(value: object, limit: int = QUOTE_LIMIT) -> str:
    """``repr(value)`` cut to about ``limit`` characters: a message quotes what was wrong,
    never a whole 400 KB value (the file or --set it came from is named beside it)."""
    text = _REPR.repr(value)  # reprlib stops early in a huge or deep value: no full repr is built
    return text if len(text) <= limit else f"{text[: limit - 4]} ..."


def _short_repr() -> reprlib.Repr:
    r = reprlib.Repr()
    r.maxlevel, r.maxstring, r.maxother = 4, QUOTE_LIMIT, QUOTE_LIMIT
    r.maxlist = r.maxtuple = r.maxdict = r.maxset = 8
    return r


_REPR = _short_repr()


def lookup(registry: Mapping[str, _T], key: str, value: str, error: type[MlpLabError] = ConfigError) -> _T:
    """``registry[value]``, the one way every name in a config reaches its implementation.

    The schema already refuses unknown names; this still guards a config built without
    validation (``model_construct``), with the error a user would get from the schema:
    the key, the value and every known name.
    """
    try:
        return registry[value]
    except (KeyError, TypeError):
        hint = did_you_mean(value, registry) if isinstance(value, str) else ""
        raise error(f"{key}: {shorten(value)} is not allowed{hint}; allowed: {', '.join(registry)}") from None


def close_names(word: object, names: Iterable[object], n: int = 1, cutoff: float = 0.6) -> list[str]:
    """The ``n`` names nearest ``word`` (a mistyped key, choice or file name), case aside:
    'ReLU' finds relu and 'Adam' adam."""
    by_lower: dict[str, str] = {}
    for name in names:
        by_lower.setdefault(str(name).lower(), str(name))
    return [by_lower[m] for m in difflib.get_close_matches(str(word).lower(), list(by_lower), n=n, cutoff=cutoff)]


def did_you_mean(word: object, names: Iterable[object], cutoff: float = 0.6) -> str:
    """' (did you mean 'relu'?)' for the nearest of ``names``, or '' when none is near."""
    near = close_names(word, names, 1, cutoff)
    return f" (did you mean '{near[0]}'?)" if near else ""
