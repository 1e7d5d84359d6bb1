"""The comparison itself: read rows, group them by seed, keep --top, find the best run and
its rival and test the groups against a baseline. Which rows and columns (filters, keys,
sorting): ``selection.py``; no rendering here (``render.py``), and no torch or matplotlib."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from mlp_lab import runs
from mlp_lab.results.groups import SEED, Group, Versus, adjust_for_comparisons, has_result, make_groups, versus
from mlp_lab.results.rows import IDENTITY, Row, read_row
from mlp_lab.results.selection import (
    QUIET_FIELDS,
    CompareError,
    Filter,
    differing_fields,
    find_baseline,
    keep_matching,
    ordered_keys,
    parse_filter,
    resolve_key,
    sorted_rows,
)
from mlp_lab.results.values import METRICS, MISSING, OPTIONAL_METRICS, TEST_METRICS, canon, number

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
    filters: Sequence[str | Filter] | str = (),
    all_params: bool = False,
    reverse: bool = False,
    group: bool = True,
    group_by: Sequence[str] | str = (),
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
    # One filter or field as a string is one, not a sequence of one-letter ones.
    filters = [filters] if isinstance(filters, str) else filters
    group_by = [group_by] if isinstance(group_by, str) else group_by
    parsed = [f if isinstance(f, Filter) else parse_filter(f) for f in filters]
    rows, warnings = read_rows(paths)
    total = len(rows)
    keys = _choose_keys(rows, sort, parsed, group_by)

    rows = keep_matching(rows, [f for f in parsed if f.key not in METRICS], total)  # runs, by what they are
    units: list[Row] = list(make_groups(rows, keys.best, keys.group_by, QUIET_FIELDS)) if group else rows
    units = keep_matching(units, [f for f in parsed if f.key in METRICS], total)  # rows, by what they reached
    descending = METRICS.get(keys.sort, ("", False))[1] != reverse  # --reverse flips the metric's own order
    units = sorted_rows(units, keys.sort, descending)[:top]

    params = list(keys.config) if all_params else differing_fields(units, keys.config)
    metric_cols = [m for m in METRICS if m not in OPTIONAL_METRICS or any(r.metrics.get(m) is not None for r in units)]
    best, runner_up, incomparable = _best_and_rivals(units, keys.best)
    comp = Comparison(
        rows=units,
        param_columns=params,
        metric_columns=metric_cols,
        sort=keys.sort,
        descending=descending,
        best_key=keys.best,
        best=best,
        runner_up=runner_up,
        warnings=warnings,
        total_runs=total,
        all_param_keys=keys.config,
        incomparable=incomparable,
        selection=selection_note(keys.best, keys.validated),
    )
    if group and (baseline is not None or any(getattr(g, "n", 1) > 1 for g in units)):
        _against_baseline(comp, find_baseline(units, baseline, keys.config) if baseline is not None else best)
    return comp


class _Keys(NamedTuple):
    config: list[str]  # every config key any run has, grouped by section in the order they appear
    sort: str
    best: str  # the metric the best row is chosen by
    group_by: list[str]
    validated: bool  # does any run have a validation split?


def _choose_keys(rows: list[Row], sort: str | None, filters: list[Filter], group_by: Sequence[str]) -> _Keys:
    """The keys the options name, resolved against the runs (CompareError for an unknown one)."""
    config = ordered_keys(rows)
    known = [*IDENTITY, *METRICS, *config]
    validated = any(number(r.metrics.get("val_acc")) is not None for r in rows)
    sort_key = resolve_key(sort or ("val_acc" if validated else "test_acc"), known, rows, "--sort")
    for f in filters:
        resolve_key(f.key, known, rows, "--filter")
    groups = [resolve_key(k, config, rows, "--group-by") for k in group_by]
    # The best row: by the sort key when it is a result (accuracy, loss, time), else on
    # validation when there is one.
    result_key = METRICS.get(sort_key, ("",))[0] in ("acc", "loss", "seconds")
    best_key = sort_key if result_key else ("val_acc" if validated else "test_acc")
    return _Keys(config, sort_key, best_key, groups, validated)


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


def runs_of(row: Row) -> list[Row]:
    """The runs behind a row: a seed group's, or the run itself."""
    return list(row.runs) if isinstance(row, Group) else [row]


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
        ranked = [
            r for r in sorted_rows(same, key, METRICS[key][1]) if has_result(r) and number(r.get(key)) is not None
        ]
        comp.runner_up = ranked[0] if ranked else comp.runner_up


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
    ranked = sorted_rows(rows, key, METRICS[key][1])
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


def warning_lines(warnings: Sequence[str], limit: int = MAX_WARNINGS) -> list[str]:
    """One line per problem folder, at most ``limit`` (then a count of the rest)."""
    if len(warnings) <= limit:
        return list(warnings)
    rest = len(warnings) - (limit - 1)
    return [*warnings[: limit - 1], f"... and {rest} more folders with problems (--format json lists them all)"]
