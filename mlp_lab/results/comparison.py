"""The comparison itself: read rows, filter, sort, keep --top, find the fields that differ
and the best run. No rendering here (``render.py``), and no torch or matplotlib."""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlp_lab import runs
from mlp_lab.errors import MlpLabError
from mlp_lab.keys import flatten
from mlp_lab.results.groups import SEED, Group, Versus, adjust_for_comparisons, has_result, make_groups, versus
from mlp_lab.results.rows import IDENTITY, Row, read_row
from mlp_lab.results.values import (
    METRICS,
    MISSING,
    OPTIONAL_METRICS,
    TEST_METRICS,
    canon,
    float_str,
    fmt_value,
    number,
    parse_value,
)


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
MAX_WARNINGS = 20
# Fields that define the data a run was trained and tested on. Runs that differ in one of
# them (MNIST against Fashion-MNIST, 10,000 training images against 60,000) are not
# comparable on accuracy or loss, whatever else they share.
DATA_FIELDS = ("data.dataset", "data.limit_train", "data.synthetic_train_size", "data.synthetic_test_size")


def data_differences(a: Row, b: Row) -> list[str]:
    """The DATA_FIELDS in which two runs differ (none when either's config is unreadable)."""
    if a.params is None or b.params is None:
        return []
    return [k for k in DATA_FIELDS if canon(a.params.get(k, MISSING)) != canon(b.params.get(k, MISSING))]


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


@dataclass
class Comparison:
    """Rows (sorted, filtered, cut to --top), the columns to show, the best run."""

    rows: list[Row]
    param_columns: list[str]
    metric_columns: list[str]
    sort: str
    descending: bool
    best_key: str
    best: Row | None
    runner_up: Row | None  # the best run's nearest rival among the runs comparable with it
    warnings: list[str]
    total_runs: int
    all_param_keys: list[str] = field(default_factory=list)
    # Ranked runs trained or tested on other data than the best (data_differences says
    # how): their accuracy and loss say nothing against the best's.
    incomparable: list[Row] = field(default_factory=list)
    # Seed groups: rows are Groups with statistics of best_key, each against the baseline.
    grouped: bool = False
    baseline: Row | None = None
    versus: dict[int, Versus] = field(default_factory=dict)  # id(row) -> against the baseline
    selection: str = ""  # said once when the best is chosen on the test set (selection_note)

    @property
    def columns(self) -> list[str]:
        """The columns of the JSON and CSV outputs, in order."""
        if self.grouped:
            return [*IDENTITY, "n", *self.param_columns, *self.metric_columns, *self.stat_columns]
        return [*IDENTITY, *self.param_columns, *self.metric_columns]

    @property
    def stat_columns(self) -> list[str]:
        """A seed group's statistics of the compared metric, and its difference to the baseline."""
        k = self.best_key
        return [
            f"{k}_std",
            f"{k}_ci_low",
            f"{k}_ci_high",
            "diff",
            "diff_ci_low",
            "diff_ci_high",
            "p_value",
            "p_holm",
            "comparisons",
            "test",
            "within_noise",
            "versus",
        ]

    def versus_of(self, row: Row) -> Versus | None:
        return self.versus.get(id(row))

    def records(self) -> list[dict[str, Any]]:
        """One dict per row, raw values (fractions, seconds), missing as None."""
        out = []
        for row in self.rows:
            rec = {c: _raw(row.get(c)) for c in self.columns if c not in ("n", *self.stat_columns)}
            if self.grouped and isinstance(row, Group):
                rec.update(self._group_record(row))
            out.append({c: rec.get(c) for c in self.columns} | ({"runs": rec["runs"]} if "runs" in rec else {}))
        return out

    def _group_record(self, group: Group) -> dict[str, Any]:
        k, st, vs = self.best_key, group.stats, self.versus_of(group)
        rec: dict[str, Any] = {
            "n": group.n,
            f"{k}_std": st.std if st and st.n > 1 else None,
            f"{k}_ci_low": st.ci[0] if st and st.ci else None,
            f"{k}_ci_high": st.ci[1] if st and st.ci else None,
        }
        d = vs.difference if vs else None
        rec.update(
            diff=d.diff if d else None,
            diff_ci_low=d.ci[0] if d else None,
            diff_ci_high=d.ci[1] if d else None,
            p_value=d.p if d else None,
            p_holm=vs.p_holm if d and vs else None,
            comparisons=vs.comparisons if d and vs else None,
            test=d.test if d else None,
            within_noise=vs.within_noise if d and vs else None,
            versus=(vs.reason or "baseline difference") if vs else None,
        )
        rec["runs"] = [
            {
                "run": r.run,
                "path": str(r.path),
                "status": r.status,
                "train.seed": (r.params or {}).get(SEED),
                **{m: _raw(r.metrics.get(m)) for m in self.metric_columns},
            }
            for r in group.runs
        ]
        return rec


def _raw(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, tuple):
        return list(v)
    return v


def build_comparison(
    paths: Iterable[str | Path],
    sort: str | None = None,
    top: int | None = None,
    filters: Sequence[str | Filter] = (),
    all_params: bool = False,
    reverse: bool = False,
    group: bool = True,
    group_by: Sequence[str] = (),
    baseline: str | None = None,
) -> Comparison:
    """Read run folders (or folders of run folders) and compare them.

    Runs that differ only in their seed form one row, a seed group (``group=False``: one
    row per run; ``group_by``: the fields that decide). Sorting, ``top`` and filters on
    metrics act on the rows; filters on config fields pick runs. ``baseline``
    ("key=value[,key=value]") names the group every other is tested against; by default
    the best. Unreadable folders become warning lines, not errors; raises CompareError
    when no run is left, or for an unknown key, a bad --top or --baseline.
    """
    if top is not None and top < 1:
        raise CompareError(f"--top {top}: must be 1 or more")
    if not group and (baseline is not None or group_by):
        option = "--baseline" if baseline is not None else "--group-by"
        raise CompareError(f"{option} works on groups of runs; it cannot go with --no-group")
    parsed = [f if isinstance(f, Filter) else parse_filter(f) for f in filters]

    rows, warnings = read_rows(paths)
    total = len(rows)

    # Every config key any run has, grouped by section in the order they appear.
    all_keys = _ordered_keys(rows)
    known = [*IDENTITY, *METRICS, *all_keys]
    validated = any(number(r.metrics.get("val_acc")) is not None for r in rows)
    sort_key = _resolve_key(sort or ("val_acc" if validated else "test_acc"), known, rows, "--sort")
    for f in parsed:
        _resolve_key(f.key, known, rows, "--filter")
    group_by = [_resolve_key(k, all_keys, rows, "--group-by") for k in group_by]
    # The best row: by the sort key when it is a result (accuracy, loss, time), else on
    # validation when there is one.
    result_key = METRICS.get(sort_key, ("",))[0] in ("acc", "loss", "seconds")
    best_key = sort_key if result_key else ("val_acc" if validated else "test_acc")

    rows = _keep(rows, [f for f in parsed if f.key not in METRICS], total)  # runs, by what they are
    units: list[Row] = list(make_groups(rows, best_key, group_by, QUIET_FIELDS)) if group else rows
    units = _keep(units, [f for f in parsed if f.key in METRICS], total)  # rows, by what they reached
    descending = METRICS.get(sort_key, ("", False))[1]
    if reverse:
        descending = not descending
    units = _sorted(units, sort_key, descending)
    if top is not None:
        units = units[:top]

    params = list(all_keys) if all_params else differing_fields(units, all_keys)
    metric_cols = [m for m in METRICS if m not in OPTIONAL_METRICS or any(r.metrics.get(m) is not None for r in units)]
    best, runner_up, incomparable = _best_and_rivals(units, best_key)
    comp = Comparison(
        rows=units,
        param_columns=params,
        metric_columns=metric_cols,
        sort=sort_key,
        descending=descending,
        best_key=best_key,
        best=best,
        runner_up=runner_up,
        warnings=warnings,
        total_runs=total,
        all_param_keys=all_keys,
        incomparable=incomparable,
        selection=selection_note(best_key, validated),
    )
    if group and (baseline is not None or any(getattr(g, "n", 1) > 1 for g in units)):
        _against_baseline(comp, _find_baseline(units, baseline, all_keys) if baseline is not None else best)
    return comp


def selection_note(key: str, validated: bool) -> str:
    """One line when the best is chosen on a test metric: with a validation split there was a
    legal choice; without one, how to get it. Empty when the choice is on validation."""
    if key not in TEST_METRICS:
        return ""
    if validated:
        return (
            f"chosen on test: sorting by {key} selects on the test set, which flatters the winner; "
            "these runs have a validation split: --sort val_acc chooses on it"
        )
    return (
        f"chosen on test: these runs have no validation split, so the best is picked by {key}; "
        "add --set data.val_split=0.1 to choose on validation and keep test for the final number"
    )


def split_keys(text: str | None) -> list[str]:
    """'model.init, model.activation' -> ['model.init', 'model.activation']."""
    return [k.strip() for k in (text or "").split(",") if k.strip()]


def runs_of(row: Row) -> list[Row]:
    """The runs behind a row: a seed group's, or the run itself."""
    return list(row.runs) if isinstance(row, Group) else [row]


def _keep(rows: list[Row], filters: list[Filter], total: int) -> list[Row]:
    if not filters:
        return rows
    kept = [r for r in rows if all(f.matches(r) for f in filters)]
    if not kept:
        raise CompareError(
            f"no run matches {' and '.join(repr(f.text) for f in filters)} (of {total} run{'s' if total != 1 else ''} read)"
        )
    return kept


def _against_baseline(comp: Comparison, baseline: Row | None) -> None:
    """Seed-group statistics: each group against the baseline, on the compared metric."""
    comp.grouped, comp.baseline = True, baseline
    if baseline is None:
        return
    tested = {
        id(row): versus(row, baseline, comp.best_key, bool(data_differences(baseline, row)))  # type: ignore[arg-type]
        for row in comp.rows
    }
    comp.versus = adjust_for_comparisons(tested)
    rival = comp.versus.get(id(comp.runner_up)) if baseline is comp.best else None
    if rival is not None and rival.reason == "other network":
        # The verdict sets the best against its nearest rival on the same network.
        key = comp.best_key
        same = [r for r in comp.rows if comp.versus[id(r)].reason not in ("other network", "other data", "baseline")]
        ranked = [r for r in _sorted(same, key, METRICS[key][1]) if has_result(r) and number(r.get(key)) is not None]
        comp.runner_up = ranked[0] if ranked else comp.runner_up


_BASELINE_SPLIT = re.compile(r",(?=\s*[A-Za-z_][A-Za-z0-9_.]*\s*=)")  # commas that start another key=


def _find_baseline(groups: list[Row], text: str, keys: list[str]) -> Row:
    """The one group that ``--baseline key=value[,key=value]`` names."""
    parts = [p for p in _BASELINE_SPLIT.split(text) if p.strip()]
    conditions = [parse_filter(p) for p in parts]
    if not conditions or any(c.op not in ("=", "==") for c in conditions):
        raise CompareError(
            f"--baseline {text!r}: expected key=value[,key=value], e.g. --baseline model.init=kaiming_normal"
        )
    for c in conditions:
        c.key = _resolve_key(c.key, keys, groups, "--baseline")
    found = [g for g in groups if all(c.matches(g) for c in conditions)]
    if len(found) == 1:
        return found[0]
    fields = differing_fields(groups, keys)
    if not found:
        raise CompareError(
            f"--baseline {text!r}: no group of runs has that; the groups differ in {', '.join(fields) or 'nothing'}"
        )
    raise CompareError(
        f"--baseline {text!r}: {len(found)} groups have that; name more of the fields they differ in "
        f"({', '.join(fields)}), comma-separated"
    )


def read_rows(paths: Iterable[str | Path]) -> tuple[list[Row], list[str]]:
    """The runs under ``paths`` as rows, and a warning line per folder with problems.
    CompareError when not one run could be read."""
    folders, warnings = runs.discover_runs([Path(p) for p in paths])
    rows: list[Row] = []
    for folder in folders:
        row = read_row(folder)
        if row is None:
            warnings.append(
                f"{folder}: nothing readable (config.yaml, summary.json and metrics.jsonl missing or corrupt), skipped"
            )
            continue
        if row.problems:
            warnings.append(f"{folder}: {', '.join(row.problems)}; shown with what could be read")
        rows.append(row)
    if not rows:
        why = "; ".join(warnings[:3]) + (f"; and {len(warnings) - 3} more" if len(warnings) > 3 else "")
        raise CompareError(
            f"no runs to compare ({why or 'no paths given'}); pass run folders or a folder holding them, e.g. mlp-lab compare runs/"
        )
    return rows, warnings


def _best_and_rivals(rows: list[Row], key: str) -> tuple[Row | None, Row | None, list[Row]]:
    """The best row by ``key``, its nearest rival on the same data, and the ranked rows on
    other data (not comparable on accuracy or loss; any run's time compares)."""
    ranked = _sorted(rows, key, METRICS[key][1])
    # Only rows that reached a result can be best: a running or failed run's numbers are partial.
    ranked = [r for r in ranked if has_result(r) and number(r.get(key)) is not None and math.isfinite(r.get(key))]
    if not ranked:
        return None, None, []
    best, rivals = ranked[0], ranked[1:]
    incomparable: list[Row] = []
    if METRICS[key][0] in ("acc", "loss"):
        incomparable = [r for r in rivals if data_differences(best, r)]
        rivals = [r for r in rivals if not data_differences(best, r)]
    return best, (rivals[0] if rivals else None), incomparable


def _ordered_keys(rows: list[Row]) -> list[str]:
    seen: dict[str, int] = {}
    sections: dict[str, int] = {}
    for r in rows:
        for k in r.params or {}:
            if k not in seen:
                seen[k] = len(seen)
                sections.setdefault(k.split(".", 1)[0], len(sections))
    return sorted(seen, key=lambda k: (sections[k.split(".", 1)[0]], seen[k]))


def _resolve_key(key: str, known: list[str], rows: list[Row], option: str) -> str:
    key = SORT_ALIASES.get(key, key)
    if key in known:
        return key
    metric_keys = [*IDENTITY, *METRICS]
    hint = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    did = f" (did you mean '{hint[0]}'?)" if hint else ""
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


def _sorted(rows: list[Row], key: str, descending: bool) -> list[Row]:
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


def warning_lines(warnings: Sequence[str], limit: int = MAX_WARNINGS) -> list[str]:
    """One line per problem folder, at most ``limit`` (then a count of the rest)."""
    if len(warnings) <= limit:
        return list(warnings)
    rest = len(warnings) - (limit - 1)
    return [*warnings[: limit - 1], f"... and {rest} more folders with problems (--format json lists them all)"]
