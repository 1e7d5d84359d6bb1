"""Values in a comparison: the metric table, a canonical form under which equal config
values compare equal, parsing --filter values, and formatting cells."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any

from mlp_lab import runs

# The metric columns, in display order: key -> (kind, higher is better).
# kind picks the formatting: acc as a percentage, loss with 4 significant digits.
# Validation first: with a validation split, runs and epochs are chosen on it, and the test
# set is read once, at the chosen epoch (selected_test_acc). best_test_acc, the maximum of
# test accuracy over epochs, is chosen on test: optimistic, kept for the JSON and CSV.
METRICS: dict[str, tuple[str, bool]] = {
    "val_acc": ("acc", True),
    "best_val_acc": ("acc", True),
    "selected_epoch": ("int", False),
    "selected_test_acc": ("acc", True),
    "val_loss": ("loss", False),
    "test_acc": ("acc", True),
    "test_loss": ("loss", False),
    "train_loss": ("loss", False),
    "train_acc": ("acc", True),
    "epochs_done": ("int", True),
    "epochs_planned": ("int", True),
    "duration_s": ("seconds", False),
    "best_test_acc": ("acc", True),
    "best_epoch": ("int", False),
}
# Shown only when some run has them (a validation split was set).
OPTIONAL_METRICS = ("val_acc", "best_val_acc", "val_loss", "selected_epoch", "selected_test_acc")
# Metrics read on the test set: choosing by one of them selects on test.
TEST_METRICS = ("test_acc", "test_loss", "best_test_acc")
MISSING = object()  # a field a run does not have (not the same as a null value)


class Varies(tuple[Any, ...]):
    """The values a field takes inside one seed group (shown as ``{0, 1, 2}``)."""


def number(x: Any) -> float | None:
    """A finite or non-finite float from a JSON number; None for anything else."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x)


def integer(x: Any) -> int | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        return None
    return int(x)


def canon(v: Any) -> Any:
    """A hashable key under which equal config values are equal: 1 == 1.0, [a] == (a,)."""
    if v is MISSING:
        return ("missing",)
    if v is None:
        return ("null",)
    if isinstance(v, bool):
        return ("bool", v)
    if isinstance(v, (int, float)):
        f = float(v)
        return ("nan",) if math.isnan(f) else ("num", f)
    if isinstance(v, str):
        parsed = float_str(v)
        return ("num", parsed) if parsed is not None else ("str", v)
    if isinstance(v, Varies):
        return ("varies", tuple(canon(x) for x in v))
    if isinstance(v, (list, tuple)):
        return ("list", tuple(canon(x) for x in v))
    if isinstance(v, dict):
        return ("dict", tuple(sorted((str(k), canon(x)) for k, x in v.items())))
    return ("str", str(v))


_FLOAT_RE = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def float_str(s: str) -> float | None:
    """'1e-3' -> 0.001: YAML 1.1 reads '1e-3' as a string, a user means the number."""
    s = s.strip()
    if _FLOAT_RE.match(s):
        return float(s)
    return None


def parse_value(text: str) -> Any:
    """A --filter value, parsed as YAML like --set values are."""
    if not text.strip():
        return None
    try:
        v = runs.load_yaml(text)
    except Exception:  # noqa: BLE001 - yaml.YAMLError, but yaml is not imported here
        return text.strip()
    if isinstance(v, str):
        f = float_str(v)
        return f if f is not None else v
    return v


def fmt_value(v: Any, max_len: int | None = 24) -> str:
    """A config value for a table cell: YAML-like spelling, long values shortened."""
    if v is MISSING:
        return "-"
    if v is None:
        s = "-"  # unset, as a missing field shows
    elif isinstance(v, bool):
        s = "true" if v else "false"
    elif isinstance(v, float):
        s = f"{v:.6g}"
    elif isinstance(v, Varies):
        s = "{" + ", ".join(fmt_value(x, None) for x in v) + "}"
    elif isinstance(v, (list, tuple)):
        s = "[" + ", ".join(fmt_value(x, None) for x in v) + "]"
    elif isinstance(v, dict):
        s = json.dumps(v, separators=(",", ":"))
    else:
        s = str(v)
    s = s.replace("\n", " ")
    return shorten(s, max_len) if max_len else s


def shorten(s: str, max_len: int) -> str:
    """Keep both ends of a long value: 'kaiming_uniform…_normal' reads better than a cut."""
    if len(s) <= max_len:
        return s
    head = (max_len - 1 + 1) // 2
    tail = max_len - 1 - head
    return s[:head] + "…" + (s[-tail:] if tail else "")


def fmt_metric(key: str, v: Any) -> str:
    if v is None:
        return "-"
    kind = METRICS.get(key, ("other", True))[0]
    if isinstance(v, float) and not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if kind == "acc":
        return f"{100 * v:.2f}%"
    if kind == "loss":
        return f"{v:.4g}"
    if kind == "int":
        return str(int(v))
    if kind == "seconds":
        return fmt_seconds(v)
    return fmt_value(v)


def fmt_seconds(s: float) -> str:
    if s < 60:
        return f"{s:.1f}s"
    s = int(round(s))
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


_RUN_NAME_RE = re.compile(r"^(?P<name>.+)-\d{8}-\d{6}-(?P<id>[0-9a-f]{6})$")


def short_labels(names: Sequence[str]) -> list[str]:
    """Run folder names without their timestamp ('relu-a1b2c3'), when still unique."""
    short = []
    for n in names:
        m = _RUN_NAME_RE.match(n)
        short.append(f"{m['name']}-{m['id']}" if m else n)
    if len(set(short)) < len(set(names)):
        return list(names)
    return short


# --- cells of the table and of the verdict ------------------------------------------


def metric_cell(row: Any, m: str, spread: Any = None) -> str:
    """A metric's cell; ``spread`` (a seed group's stats.Summary of it): mean ± std."""
    v = row.metrics.get(m)
    if spread is not None and spread.n > 1:
        return f"{num(m, spread.mean)} ± {num(m, spread.std)}{'%' if METRICS[m][0] == 'acc' else ''}"
    if m in ("best_test_acc", "selected_test_acc"):
        s = fmt_metric(m, v)
        e = row.metrics.get("best_epoch" if m == "best_test_acc" else "selected_epoch")
        return f"{s} @{fmt_epoch(e)}" if v is not None and e is not None else s
    if m == "epochs_done":
        planned = row.metrics.get("epochs_planned")
        done = "-" if v is None else str(v)
        return f"{done}/{planned}" if planned is not None else done
    return fmt_metric(m, v)


def fmt_epoch(e: float) -> str:
    """An epoch number; a seed group's mean of them to one decimal (1.7, not 1.66667)."""
    return f"{e:g}" if float(e).is_integer() else f"{e:.1f}"


def ci_cell(key: str, st: Any) -> str:
    if st is None or st.ci is None:
        return "-"
    return f"[{num(key, st.ci[0])}, {num(key, st.ci[1])}]"


def num(key: str, v: float, signed: bool = False) -> str:
    """A metric's value (or a difference) without its unit: 97.90 for 0.979, 0.2301 for a loss."""
    kind = METRICS[key][0]
    sign = "+" if signed else ""
    if kind == "acc":
        return f"{100 * v:{sign}.2f}"
    if kind == "seconds":
        return f"{v:{sign}.1f}"
    return f"{v:{sign}.4g}"


def unit(key: str) -> str:
    return {"acc": " pp", "seconds": " s"}.get(METRICS[key][0], "")


def versus_cell(key: str, vs: Any) -> str:
    """A seed group against the baseline (a groups.Versus): the difference, its interval
    and p-value (Holm-adjusted as p_holm when several groups were tested), 'noise' when the
    interval holds 0 or the adjusted p is 0.05 or more; or why there is none."""
    if vs is None:
        return "-"
    if vs.difference is None:
        reason = str(vs.reason)
        return {"too few runs": "n<3: more seeds", "too few results": "<3 results"}.get(reason, reason)
    d, k = vs.difference, key
    text = f"{num(k, d.diff, True)}{unit(k)} [{num(k, d.ci[0], True)}, {num(k, d.ci[1], True)}] p={d.p:.2g}"
    if vs.p_holm is not None and vs.comparisons > 1:
        text += f" p_holm={vs.p_holm:.2g}"
    return text + (" noise" if vs.within_noise else "")
