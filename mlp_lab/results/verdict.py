"""The verdict: one sentence that says who won, by how much, and whether it is more than
seed noise; and which runs, on other data, cannot be held against the winner at all."""

from __future__ import annotations

from mlp_lab.results.comparison import Comparison, data_differences
from mlp_lab.results.rows import Row
from mlp_lab.results.values import (
    METRICS,
    MISSING,
    fmt_metric,
    fmt_seconds,
    fmt_value,
    metric_cell,
    num,
    short_labels,
    unit,
)


def verdict(comp: Comparison) -> str:
    """One sentence: who won on what, and by how much over the runner-up; and which runs,
    on other data, cannot be held against the winner on accuracy or loss at all."""
    if comp.best is None:
        return ""
    key = comp.best_key
    labels = dict(zip((r.run for r in comp.rows), short_labels([r.run for r in comp.rows])))
    if comp.grouped:
        text = _group_verdict(comp, labels)
        return text + ("; " + _not_comparable(comp, labels) if comp.incomparable else "")
    v = comp.best.get(key)
    text = f"best by {key}: {labels[comp.best.run]} ({fmt_metric(key, v)})"
    if comp.runner_up is not None:
        w = comp.runner_up.get(key)
        kind, higher = METRICS[key]
        diff = abs(v - w)
        if kind == "acc":
            by = f"{100 * diff:.2f} pp"
        elif kind == "seconds":
            by = fmt_seconds(diff)
        else:
            by = f"{diff:.2g}"
        other = f"{labels[comp.runner_up.run]} ({fmt_metric(key, w)})"
        if fmt_metric(key, v) == fmt_metric(key, w):
            text += f", tied with {other}"
        else:
            word = "ahead of" if higher else ("faster than" if kind == "seconds" else "lower than")
            text += f", {by} {word} {other}"
    if comp.incomparable:
        text += "; " + _not_comparable(comp, labels)
    return text


def _group_verdict(comp: Comparison, labels: dict[str, str]) -> str:
    """'relu+he 97.90 ± 0.10% (n=5) is ahead of relu+xavier 97.60 ± 0.20% (n=5) by 0.30 pp
    [0.10, 0.50], p = 0.01 (Welch's t-test)', or why the difference cannot be told from noise."""
    key, best = comp.best_key, comp.best
    if best is None:  # (verdict() says nothing then)
        return ""
    other = comp.baseline if comp.baseline is not None and comp.baseline is not best else comp.runner_up

    def said(row: Row) -> str:
        st = getattr(row, "stats", None)
        value = metric_cell(row, key, st) if st is not None and st.n > 1 else fmt_metric(key, row.get(key))
        n = getattr(row, "n", 1)
        if st is None or st.n == n:
            return f"{labels[row.run]} {value} (n={n})"
        without = row.without(key)  # type: ignore[attr-defined]
        notes = [f"{c} {status}" for status, c in without.items()]
        repeats = n - sum(without.values()) - st.n
        if repeats:
            notes.append(f"{repeats} repeated a seed")
        return f"{labels[row.run]} {value} (n={st.n} of {n}; {', '.join(notes)})"

    if other is None:
        return f"best by {key}: {said(best)}"
    # Differences are stored as row - baseline: turn them into best - other.
    vs = comp.versus_of(other) if comp.baseline is best else comp.versus_of(best)
    d = vs.difference if vs is not None else None
    sign = -1.0 if comp.baseline is best else 1.0
    kind, higher = METRICS[key]
    word = "ahead of" if higher else ("faster than" if kind == "seconds" else "lower than")
    gap = abs(best.get(key) - other.get(key))
    if d is None and vs is not None and vs.reason in ("other data", "other network", "no result"):
        why = {"other data": "ran on other data", "other network": "is another network (model.hidden)"}.get(
            vs.reason, "has no result"
        )
        return f"best by {key}: {said(best)}; the baseline {said(other)} {why}, so the two are not tested"
    if d is None:
        why = (
            "fewer than 3 runs in a group, so this cannot be told from seed noise: run more seeds"
            if vs is None or vs.reason == "too few runs"
            else "fewer than 3 of a group's runs reached a result, so this cannot be told from seed noise"
        )
        return f"best by {key}: {said(best)}, {num(key, gap)}{unit(key)} {word} {said(other)}; {why}"
    if not higher:
        sign = -sign  # lower is better: the interval of (other - best), positive when best is lower
    lo, hi = sorted((sign * d.ci[0], sign * d.ci[1]))
    test = "paired t-test on per-seed differences" if d.test == "paired" else "Welch's t-test"
    p = f"p = {d.p:.2g}"
    if vs is not None and vs.p_holm is not None and vs.comparisons > 1:
        p += f", {vs.p_holm:.2g} after Holm's correction for {vs.comparisons} comparisons"
    text = (
        f"{said(best)} is {word} {said(other)} by {num(key, abs(d.diff))}{unit(key)} "
        f"[{num(key, lo)}, {num(key, hi)}], {p} ({test})"
    )
    if vs is not None and vs.within_noise:
        text += ": within seed noise" if d.within_noise else ": not beyond noise once the comparisons are counted"
        text += "; more seeds would tell"
    return text


def _not_comparable(comp: Comparison, labels: dict[str, str]) -> str:
    """'fashion-b (89.10%) is not comparable on accuracy: it ran with data.dataset fashion_mnist, not mnist'."""
    best, key = comp.best, comp.best_key
    if best is None or not comp.incomparable:  # (verdict() says nothing then)
        return ""
    what = "accuracy" if METRICS[key][0] == "acc" else "loss"
    first = comp.incomparable[0]
    fields = data_differences(best, first)
    how = ", ".join(f"{k} {fmt_value(first.get(k, MISSING))}, not {fmt_value(best.get(k, MISSING))}" for k in fields)
    text = f"{labels[first.run]} ({fmt_metric(key, first.get(key))}) is not comparable on {what}: it ran with {how}"
    if len(comp.incomparable) > 1:
        text += f" (and {len(comp.incomparable) - 1} more run{'s' if len(comp.incomparable) > 2 else ''} on other data)"
    return text
