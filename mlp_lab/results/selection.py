"""Which rows and columns a comparison shows: filters, the keys options name, sorting,
the config fields that differ, the group ``--baseline`` names. No torch or matplotlib;
pydantic only when a default must be looked up (``defaults_for``)."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mlp_lab.errors import MlpLabError, did_you_mean
from mlp_lab.keys import flatten
from mlp_lab.results.rows import IDENTITY, Row
from mlp_lab.results.values import METRICS, MISSING, canon, float_str, fmt_value, number, parse_value


class CompareError(MlpLabError):
    """A compare/show request that cannot be answered: no runs, bad key, bad format."""


# Config fields that differ between runs without saying anything about the result:
# where the data happens to live, whether it may be downloaded, free text, and the name
# (already in the run column). Shown with --all-params.
QUIET_FIELDS = ("name", "description", "data.data_dir", "data.download")
SORT_ALIASES = {
    "acc": "test_acc",
    "accuracy": "test_acc",
    "best": "best_test_acc",
    "best_acc": "best_test_acc",
    "loss": "test_loss",
    "epochs": "epochs_done",
    "time": "duration_s",
    "duration": "duration_s",
    "seconds": "duration_s",
    "name": "run",
}


@dataclass
class Filter:
    key: str
    op: str
    value: Any
    text: str

    def matches(self, row: Row) -> bool:
        have = row.get(self.key, MISSING)
        if self.op in ("=", "=="):
            return bool(canon(have) == canon(self.value))
        if self.op == "!=":
            return bool(canon(have) != canon(self.value))
        a = number(have) if not isinstance(have, str) else float_str(have)
        if a is None or math.isnan(a):
            return False
        b = float(self.value)
        return {">": a > b, "<": a < b, ">=": a >= b, "<=": a <= b}[self.op]


_FILTER_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*(!=|>=|<=|==|=|>|<)(.*)$")


def parse_filter(text: str) -> Filter:
    """'optimizer.lr=1e-3', 'model.activation!=relu', 'test_acc>=0.9'."""
    m = _FILTER_RE.match(text)
    if not m:
        raise CompareError(
            f"--filter {text!r}: expected key=value (or !=, >, <, >=, <=), e.g. --filter model.activation=relu"
        )
    key, op, raw = m.group(1), m.group(2), m.group(3)
    key = SORT_ALIASES.get(key, key)
    value = parse_value(raw)
    if op in (">", "<", ">=", "<=") and number(value) is None:
        raise CompareError(f"--filter {text!r}: {op} needs a number, got {raw.strip()!r}")
    return Filter(key, op, value, text)


def split_keys(text: str | None) -> list[str]:
    """'model.init, model.activation' -> ['model.init', 'model.activation']."""
    return [k.strip() for k in (text or "").split(",") if k.strip()]


def keep_matching(rows: list[Row], filters: list[Filter], total: int) -> list[Row]:
    if not filters:
        return rows
    kept = [r for r in rows if all(f.matches(r) for f in filters)]
    if not kept:
        raise CompareError(
            f"no run matches {' and '.join(repr(f.text) for f in filters)} "
            f"(of {total} run{'s' if total != 1 else ''} read){_values_there(rows, filters)}"
        )
    return kept


def _values_there(rows: list[Row], filters: list[Filter]) -> str:
    """For the first key=value that no run has: the values the runs do have for that key."""
    for f in filters:
        if f.op in ("=", "==") and not any(f.matches(r) for r in rows):
            values = sorted({fmt_value(r.get(f.key, MISSING)) for r in rows})
            shown = ", ".join(values[:8]) + (f", ... ({len(values)} values)" if len(values) > 8 else "")
            # A word mistyped (ReLU, tanhh), not another value (gelu is no typo of relu), nor a number.
            hint = did_you_mean(f.value, values, cutoff=0.8) if isinstance(f.value, str) else ""
            return f"; {f.key} is {shown} in these runs{hint}"
    return ""


_BASELINE_SPLIT = re.compile(r",(?=\s*[A-Za-z_][A-Za-z0-9_.]*\s*=)")  # commas that start another key=


def find_baseline(groups: list[Row], text: str, keys: list[str]) -> Row:
    """The one group that ``--baseline key=value[,key=value]`` names."""
    parts = [p for p in _BASELINE_SPLIT.split(text) if p.strip()]
    conditions = [parse_filter(p) for p in parts]
    if not conditions or any(c.op not in ("=", "==") for c in conditions):
        raise CompareError(
            f"--baseline {text!r}: expected key=value[,key=value], e.g. --baseline model.init=kaiming_normal"
        )
    for c in conditions:
        c.key = resolve_key(c.key, keys, groups, "--baseline")
    found = [g for g in groups if all(c.matches(g) for c in conditions)]
    if len(found) == 1:
        return found[0]
    fields = differing_fields(groups, keys)
    if not found:
        there = _values_there(groups, conditions)  # a value no group has: the ones they have
        raise CompareError(
            f"--baseline {text!r}: no group of runs has that"
            + (there or f"; the groups differ in {', '.join(fields) or 'nothing'}")
        )
    raise CompareError(
        f"--baseline {text!r}: {len(found)} groups have that; name more of the fields they differ in "
        f"({', '.join(fields)}), comma-separated"
    )


def ordered_keys(rows: list[Row]) -> list[str]:
    seen: dict[str, int] = {}
    sections: dict[str, int] = {}
    for r in rows:
        for k in r.params or {}:
            if k not in seen:
                seen[k] = len(seen)
                sections.setdefault(k.split(".", 1)[0], len(sections))
    return sorted(seen, key=lambda k: (sections[k.split(".", 1)[0]], seen[k]))


def resolve_key(key: str, known: list[str], rows: list[Row], option: str) -> str:
    key = SORT_ALIASES.get(key, key)
    if key in known:
        return key
    metric_keys = [*IDENTITY, *METRICS]
    did = did_you_mean(key, known)
    params = [k for k in known if k not in metric_keys]
    shown = differing_fields(rows, params) or params[:8]
    more = f", ... ({len(params)} config fields in all)" if len(shown) < len(params) else ""
    raise CompareError(
        f"{option} {key!r}: unknown key{did}; allowed: {', '.join(metric_keys)}"
        + (f", or a config field: {', '.join(shown)}{more}" if params else "")
    )


def _sort_key(v: Any, descending: bool) -> tuple[Any, ...]:
    """Missing and NaN last in either direction; numbers before text; mixed types safe."""
    if v is None or v is MISSING or (isinstance(v, float) and math.isnan(v)):
        return (1, 0, 0)
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return (0, 0, -v if descending else v)
    if isinstance(v, bool):
        return (0, 0, -int(v) if descending else int(v))
    return (0, 1, fmt_value(v, None))


def sorted_rows(rows: list[Row], key: str, descending: bool) -> list[Row]:
    numeric = all(isinstance(r.get(key), (int, float, type(None))) for r in rows)
    if numeric:
        return sorted(rows, key=lambda r: _sort_key(r.get(key), descending))
    # Text: sort ascending, then reverse the present values if asked (missing stay last).
    present = sorted(
        (r for r in rows if r.get(key, MISSING) not in (None, MISSING)), key=lambda r: _sort_key(r.get(key), False)
    )
    if descending:
        present.reverse()
    return present + [r for r in rows if r.get(key, MISSING) in (None, MISSING)]


def differing_fields(rows: list[Row], keys: Sequence[str]) -> list[str]:
    """The config fields whose values differ between the rows (rows with no readable
    config don't count). A field only some runs have (sgd's momentum when comparing sgd
    with adam) counts when its values differ or differ from that optimizer's default."""
    configs = [r.params for r in rows if r.params is not None]
    if len(configs) < 2:
        return []
    out = []
    for k in keys:
        if k in QUIET_FIELDS:
            continue
        present = [p for p in configs if k in p]
        values = {canon(p[k]) for p in present}
        if len(values) > 1:
            out.append(k)
        elif len(present) < len(configs) and any(not _is_default(p, k) for p in present):
            out.append(k)
    return out


_DEFAULTS_CACHE: dict[tuple[str, ...], dict[str, Any] | None] = {}


def defaults_for(params: dict[str, Any]) -> dict[str, Any] | None:
    """Flattened default config for this run's optimizer and scheduler (None if unknown).

    Imports the config module (pydantic) on first use only: compare needs it just for
    fields that some runs lack, and ``show`` for its 'differs from default' view.
    """
    from mlp_lab.config import config_to_dict
    from mlp_lab.schema import DEFAULT_NAMES, VARIANTS, ExperimentConfig

    key = tuple(str(params.get(f"{section}.name", DEFAULT_NAMES[section])) for section in VARIANTS)
    if key not in _DEFAULTS_CACHE:
        try:
            d = config_to_dict(ExperimentConfig())
            for section, name in zip(VARIANTS, key):
                d[section] = VARIANTS[section][name]().model_dump(mode="json")
            _DEFAULTS_CACHE[key] = flatten(d)
        except Exception:  # noqa: BLE001 - an unknown optimizer name: no defaults to compare with
            _DEFAULTS_CACHE[key] = None
    return _DEFAULTS_CACHE[key]


def _is_default(params: dict[str, Any], key: str) -> bool:
    defaults = defaults_for(params)
    if defaults is None or key not in defaults:
        return False
    return bool(canon(defaults[key]) == canon(params[key]))
