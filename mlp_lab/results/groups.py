"""Seed groups: runs that repeat one experiment, shown as one row with their statistics.

Two runs belong to one group when their configs are equal apart from ``train.seed``, the
run's name and the fields that say nothing about the result (``QUIET_FIELDS``); with
``--group-by`` only the named fields decide. A ``Group`` is a ``Row`` whose metrics are
the means of its runs', so sorting, ``--top``, the table and the formats work on groups
unchanged; it adds the runs themselves and the statistics of the compared metric.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mlp_lab.results import stats as st
from mlp_lab.results.rows import Row
from mlp_lab.results.values import METRICS, MISSING, Varies, canon, number

SEED = "train.seed"
# Runs that reached a result: only theirs count in a group's statistics, the baseline and the
# verdict (a diverged run counts as what it reached). A failed, interrupted or running run's
# numbers are partial; it is counted beside the others ("n=1 of 4: 3 failed").
RESULT_STATUSES = ("completed", "diverged")


def has_result(row: Row) -> bool:
    runs = getattr(row, "runs", None) or [row]
    return any(r.status in RESULT_STATUSES for r in runs)


def result_value(row: Row, key: str) -> float | None:
    """A run's finite value of ``key``, if the run reached a result."""
    if row.status not in RESULT_STATUSES:
        return None
    v = number(row.get(key))
    return v if v is not None and math.isfinite(v) else None


# A group's status when its runs ended differently: the worst one names it.
_STATUS_ORDER = ("failed", "diverged", "interrupted", "running", "unknown", "completed")


@dataclass
class Group(Row):
    runs: list[Row] = field(default_factory=list)
    varying: list[str] = field(default_factory=list)  # fields whose values differ inside the group
    stats: st.Summary | None = None  # of the compared metric over the runs that have it

    @property
    def n(self) -> int:
        return len(self.runs)

    def without(self, key: str) -> dict[str, int]:
        """How many runs, by status, have no value of ``key`` (diverged before an epoch ended, say)."""
        out: dict[str, int] = {}
        for r in self.runs:
            if result_value(r, key) is None:
                out[r.status] = out.get(r.status, 0) + 1
        return out

    def by_seed(self, key: str) -> dict[Any, float]:
        """The finite values of a metric, one per seed: runs that repeat a seed (the same
        experiment under two names, say) are one observation, their mean. A run whose seed
        is unknown (unreadable config) counts on its own, under a key no seed has."""
        values: dict[Any, list[float]] = {}
        for i, r in enumerate(self.runs):
            v = result_value(r, key)
            if v is None:
                continue
            seed = (r.params or {}).get(SEED, MISSING)
            values.setdefault(canon(seed) if seed is not MISSING else ("run", i), []).append(v)
        return {k: st.mean(v) for k, v in values.items()}

    def values(self, key: str) -> list[float]:
        return list(self.by_seed(key).values())


def make_groups(rows: Sequence[Row], key: str, group_by: Sequence[str] | None, quiet: Sequence[str]) -> list[Group]:
    """Rows -> groups, in the order each group's first run appears; ``key`` is the metric
    whose statistics each group carries."""
    buckets: dict[Any, list[Row]] = {}
    for row in rows:
        buckets.setdefault(_group_key(row, group_by, quiet), []).append(row)
    return [_group(members, key) for members in buckets.values()]


def _group_key(row: Row, group_by: Sequence[str] | None, quiet: Sequence[str]) -> Any:
    if row.params is None:
        return ("unreadable", row.run)  # an unreadable config is a group of its own
    if group_by:
        return tuple(canon(row.params.get(k, MISSING)) for k in group_by)
    return tuple(sorted((k, canon(v)) for k, v in row.params.items() if k != SEED and k not in quiet))


def _group(members: list[Row], key: str) -> Group:
    first = members[0]
    if len(members) == 1:  # a group of one run looks as the run does
        return Group(
            run=first.run,
            path=first.path,
            status=first.status,
            params=first.params,
            metrics=first.metrics,
            history=first.history,
            problems=first.problems,
            runs=[first],
            stats=_summary([result_value(first, key)]),
        )
    params, varying = _shared_params(members)
    statuses = {r.status for r in members}
    status = next(s for s in _STATUS_ORDER if s in statuses) if len(statuses) > 1 else first.status
    finished = [r for r in members if r.status in RESULT_STATUSES]
    group = Group(
        run=_label(members),
        path=first.path,
        status=status,
        params=params,
        metrics=_mean_metrics(finished, members),
        history=[],
        runs=list(members),
        varying=varying,
    )
    group.stats = _summary(group.values(key))
    return group


def _summary(values: Sequence[float | None]) -> st.Summary | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return st.summarize(finite) if finite else None


def _shared_params(members: list[Row]) -> tuple[dict[str, Any] | None, list[str]]:
    """The fields all members share; a field that varies holds ``Varies(values)``."""
    configs = [r.params for r in members if r.params is not None]
    if len(configs) < len(members):
        return None, []
    keys: dict[str, None] = {}
    for config in configs:
        keys.update(dict.fromkeys(config))
    params: dict[str, Any] = {}
    varying = []
    for k in keys:
        vals = [config.get(k, MISSING) for config in configs]
        distinct = {canon(v): v for v in vals}
        if len(distinct) == 1:
            if vals[0] is not MISSING:
                params[k] = vals[0]
        else:
            varying.append(k)
            params[k] = Varies(sorted((v for v in distinct.values() if v is not MISSING), key=_order))
    return params, varying


def _order(v: Any) -> tuple[Any, ...]:
    return (0, v) if isinstance(v, (int, float)) and not isinstance(v, bool) else (1, str(v))


def _mean_metrics(finished: list[Row], members: list[Row]) -> dict[str, Any]:
    """The means of the runs that reached a result; epochs over every run."""
    out: dict[str, Any] = {}
    for m in METRICS:
        vals = [number(r.metrics.get(m)) for r in finished]
        finite = [v for v in vals if v is not None and math.isfinite(v)]
        out[m] = st.mean(finite) if finite else None
    # Epochs as whole numbers: the fewest any run finished of the most any planned.
    done = [number(r.metrics.get("epochs_done")) for r in members]
    planned = [number(r.metrics.get("epochs_planned")) for r in members]
    out["epochs_done"] = int(min(d for d in done if d is not None)) if any(d is not None for d in done) else None
    out["epochs_planned"] = (
        int(max(p for p in planned if p is not None)) if any(p is not None for p in planned) else None
    )
    if out["best_epoch"] is not None:
        out["best_epoch"] = round(out["best_epoch"], 1)
    return out


def _label(members: list[Row]) -> str:
    names = sorted({(r.params or {}).get("name") or r.run for r in members})
    return " / ".join(names) if len(names) <= 3 else f"{names[0]} / {names[1]} / +{len(names) - 2}"


# --- against the baseline ---------------------------------------------------------------


@dataclass(frozen=True)
class Versus:
    """A group against the baseline group on the compared metric: the difference, or why
    there is none (``reason``: "baseline", "other data", "other network", "no result",
    "too few runs", "too few results": enough runs, but fewer than 3 that reached a value).
    ``p_holm``: the difference's p-value adjusted (Holm) for every group tested against the
    same baseline; ``comparisons``: how many that was."""

    difference: st.Difference | None
    reason: str = ""
    p_holm: float | None = None
    comparisons: int = 1

    @property
    def within_noise(self) -> bool:
        """The interval holds 0, or the difference does not survive the correction for the
        number of comparisons made (Holm's p >= 0.05)."""
        d = self.difference
        return d is not None and (d.within_noise or (self.p_holm if self.p_holm is not None else d.p) >= 0.05)


# The field that makes a network: groups on different hidden layers are different networks,
# and a difference between them is not the effect of any one choice (an init on 8 layers
# against an optimizer on 2). They are tested only when the layers are all they differ in.
NETWORK = "model.hidden"


def other_network(group: Row, baseline: Row) -> bool:
    a, b = group.params or {}, baseline.params or {}
    if canon(a.get(NETWORK, MISSING)) == canon(b.get(NETWORK, MISSING)):
        return False
    differing = {k for k in set(a) | set(b) if canon(a.get(k, MISSING)) != canon(b.get(k, MISSING))}
    return bool(differing - {NETWORK, SEED, "name", "description"})


def adjust_for_comparisons(tested: dict[int, Versus]) -> dict[int, Versus]:
    """Every difference's p-value adjusted by Holm over all the differences tested."""
    keys = [k for k, vs in tested.items() if vs.difference is not None]
    adjusted = st.holm([tested[k].difference.p for k in keys])  # type: ignore[union-attr]
    out = dict(tested)
    for k, p in zip(keys, adjusted):
        out[k] = Versus(tested[k].difference, tested[k].reason, p, len(keys))
    return out


def versus(group: Group, baseline: Group, key: str, other_data: bool) -> Versus:
    """``group`` - ``baseline`` on ``key``: the paired t-test when both ran the same seeds
    (every run with a value), else Welch's; nothing when they ran on other data, or either
    has fewer than st.MIN_N_FOR_INTERVAL values."""
    if group is baseline:
        return Versus(None, "baseline")
    if other_data:
        return Versus(None, "other data")
    if other_network(group, baseline):
        return Versus(None, "other network")
    a, b = group.values(key), baseline.values(key)
    if not a or not b:
        return Versus(None, "no result")
    if min(len(a), len(b)) < st.MIN_N_FOR_INTERVAL:
        few = group if len(a) < st.MIN_N_FOR_INTERVAL else baseline
        # Too few seeds, or enough seeds of which too many diverged or failed.
        return Versus(None, "too few runs" if few.n < st.MIN_N_FOR_INTERVAL else "too few results")
    sa, sb = group.by_seed(key), baseline.by_seed(key)
    if set(sa) == set(sb) and not any(k[0] == "run" for k in sa):  # the same seeds, every one with a value
        return Versus(st.paired([sa[k] for k in sa], [sb[k] for k in sa]))
    return Versus(st.welch(a, b))
