"""Compare run folders: which activation / init / optimizer won, and by how much.

Library first: ``build_comparison`` reads run folders into a ``Comparison`` (rows, the
config fields that differ between them, the best run, warnings), and ``to_table``,
``to_json``, ``to_csv`` and ``to_markdown`` render it. ``describe_run`` and
``show_renderables`` do the same for one run (``mlp-lab show``). The CLI only parses
options, calls these and prints.

Start-up matters (``mlp-lab compare runs/`` on 1,000 folders takes about a second), so
nothing here imports torch, pydantic (the config module) or matplotlib at module level:
defaults are looked up lazily and only when needed, plots live in ``plots.py``.
"""

from __future__ import annotations

import csv
import difflib
import io
import json
import math
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from mlp_lab import runs
from mlp_lab.errors import MlpLabError, RunError
from mlp_lab.keys import applicable_fields, flatten


class CompareError(MlpLabError):
    """A compare/show request that cannot be answered: no runs, bad key, bad format."""


FORMATS = ("table", "json", "csv", "markdown")
_SUFFIX_FORMATS = {".json": "json", ".csv": "csv", ".md": "markdown", ".markdown": "markdown", ".txt": "table"}

# Config fields that differ between runs without saying anything about the result:
# where the data happens to live, whether it may be downloaded, free text, and the name
# (already in the run column). Shown with --all-params.
QUIET_FIELDS = ("name", "description", "data.data_dir", "data.download")

# The metric columns, in display order: key -> (kind, higher is better).
# kind picks the formatting: acc as a percentage, loss with 4 significant digits.
METRICS: dict[str, tuple[str, bool]] = {
    "test_acc": ("acc", True),
    "best_test_acc": ("acc", True),
    "best_epoch": ("int", False),
    "val_acc": ("acc", True),
    "best_val_acc": ("acc", True),
    "test_loss": ("loss", False),
    "val_loss": ("loss", False),
    "train_loss": ("loss", False),
    "train_acc": ("acc", True),
    "epochs_done": ("int", True),
    "epochs_planned": ("int", True),
    "duration_s": ("seconds", False),
}
# Shown only when some run has them (a validation split was set).
_OPTIONAL_METRICS = ("val_acc", "best_val_acc", "val_loss")
IDENTITY = ("run", "path", "status")
_SORT_ALIASES = {
    "acc": "test_acc", "accuracy": "test_acc", "best": "best_test_acc", "best_acc": "best_test_acc", "loss": "test_loss",
    "epochs": "epochs_done", "time": "duration_s", "duration": "duration_s", "seconds": "duration_s",
    "name": "run",
}
_MISSING = object()
MAX_WARNINGS = 20


# --- reading one run into a row -------------------------------------------------------


@dataclass
class Row:
    """One run as compare sees it: flattened config, headline metrics, history."""

    run: str
    path: Path
    status: str
    params: dict[str, Any] | None
    metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def get(self, key: str, default: Any = None) -> Any:
        if key == "run":
            return self.run
        if key == "path":
            return str(self.path)
        if key == "status":
            return self.status
        if key in METRICS:
            return self.metrics.get(key, default)
        if self.params is not None and key in self.params:
            return self.params[key]
        return default


def _num(x: Any) -> float | None:
    """A finite or non-finite float from a JSON number; None for anything else."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x)


def _int(x: Any) -> int | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        return None
    return int(x)


def _epoch_of(rec: dict[str, Any] | None) -> int:
    e = _int((rec or {}).get("epoch"))
    return e if e is not None else -1


def headline_metrics(summary: dict[str, Any] | None, history: list[dict[str, Any]]) -> dict[str, Any]:
    """Final and best metrics, epochs and wall time of a run.

    The newer of metrics.jsonl's last line and summary.json's ``final`` wins: a summary
    can lag a running run, and a truncated metrics file can lag a finished one.
    """
    summary = summary or {}
    history = [r for r in history if isinstance(r.get("epoch"), int) and not isinstance(r.get("epoch"), bool)]
    final = summary.get("final") if isinstance(summary.get("final"), dict) else None
    if history and (final is None or _epoch_of(history[-1]) > _epoch_of(final)):
        final = history[-1]
    final = final or {}

    m: dict[str, Any] = {}
    for key in ("test_acc", "val_acc", "test_loss", "val_loss", "train_loss", "train_acc"):
        m[key] = _num(final.get(key))

    best_acc, best_epoch = _best_of(history, "test_acc")
    best_val, _ = _best_of(history, "val_acc")
    sbest = summary.get("best") if isinstance(summary.get("best"), dict) else {}
    if best_acc is None or (_int(sbest.get("epoch")) or -1) > len(history):
        best_acc, best_epoch = _num(sbest.get("test_acc")), _int(sbest.get("epoch"))
        best_val = _num(sbest.get("val_acc"))
    m["best_test_acc"], m["best_epoch"], m["best_val_acc"] = best_acc, best_epoch, best_val

    done = _int(summary.get("epochs_done"))
    if done is None or len(history) > done:
        done = max(len(history), _epoch_of(final)) if (history or final) else done
    m["epochs_done"] = done
    m["epochs_planned"] = _int(summary.get("epochs_planned"))
    duration = _num(summary.get("duration_s"))
    if duration is None and history:
        secs = [_num(r.get("seconds")) for r in history]
        duration = sum(s for s in secs if s is not None and math.isfinite(s)) or None
    m["duration_s"] = duration
    return m


def _best_of(history: list[dict[str, Any]], key: str) -> tuple[float | None, int | None]:
    best: tuple[float | None, int | None] = (None, None)
    for rec in history:
        v = _num(rec.get(key))
        if v is not None and math.isfinite(v) and (best[0] is None or v > best[0]):
            best = (v, _int(rec.get("epoch")))
    return best


def read_row(path: Path) -> Row | None:
    """A run folder as a Row (with its problems listed), or None when nothing is readable."""
    rec = runs.load_run(path)
    if rec.config is None and rec.summary is None and not rec.metrics:
        return None
    return Row(
        run=rec.name,
        path=rec.path,
        status=rec.status,
        params=applicable_fields(rec.config) if rec.config is not None else None,
        metrics=headline_metrics(rec.summary, rec.metrics),
        history=rec.metrics,
        problems=list(rec.problems),
    )


# --- values: canonical form, parsing, formatting --------------------------------------


def _canon(v: Any) -> Any:
    """A hashable key under which equal config values are equal: 1 == 1.0, [a] == (a,)."""
    if v is _MISSING:
        return ("missing",)
    if v is None:
        return ("null",)
    if isinstance(v, bool):
        return ("bool", v)
    if isinstance(v, (int, float)):
        f = float(v)
        return ("nan",) if math.isnan(f) else ("num", f)
    if isinstance(v, str):
        f = _float_str(v)
        return ("num", f) if f is not None else ("str", v)
    if isinstance(v, (list, tuple)):
        return ("list", tuple(_canon(x) for x in v))
    if isinstance(v, dict):
        return ("dict", tuple(sorted((str(k), _canon(x)) for k, x in v.items())))
    return ("str", str(v))


_FLOAT_RE = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def _float_str(s: str) -> float | None:
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
        f = _float_str(v)
        return f if f is not None else v
    return v


def fmt_value(v: Any, max_len: int | None = 24) -> str:
    """A config value for a table cell: YAML-like spelling, long values shortened."""
    if v is _MISSING:
        return "-"
    if v is None:
        s = "null"
    elif isinstance(v, bool):
        s = "true" if v else "false"
    elif isinstance(v, float):
        s = f"{v:.6g}"
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


# --- the comparison -------------------------------------------------------------------


@dataclass
class Filter:
    key: str
    op: str
    value: Any
    text: str

    def matches(self, row: Row) -> bool:
        have = row.get(self.key, _MISSING)
        if self.op in ("=", "=="):
            return _canon(have) == _canon(self.value)
        if self.op == "!=":
            return _canon(have) != _canon(self.value)
        a = _num(have) if not isinstance(have, str) else _float_str(have)
        if a is None or math.isnan(a):
            return False
        b = float(self.value)
        return {">": a > b, "<": a < b, ">=": a >= b, "<=": a <= b}[self.op]


_FILTER_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*(!=|>=|<=|==|=|>|<)(.*)$")


def parse_filter(text: str) -> Filter:
    """'optimizer.lr=1e-3', 'model.activation!=relu', 'test_acc>=0.9'."""
    m = _FILTER_RE.match(text)
    if not m:
        raise CompareError(f"--filter {text!r}: expected key=value (or !=, >, <, >=, <=), e.g. --filter model.activation=relu")
    key, op, raw = m.group(1), m.group(2), m.group(3)
    key = _SORT_ALIASES.get(key, key)
    value = parse_value(raw)
    if op in (">", "<", ">=", "<=") and _num(value) is None:
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
    runner_up: Row | None
    warnings: list[str]
    total_runs: int
    all_param_keys: list[str] = field(default_factory=list)

    @property
    def columns(self) -> list[str]:
        """The columns of the JSON and CSV outputs, in order."""
        return [*IDENTITY, *self.param_columns, *self.metric_columns]

    def records(self) -> list[dict[str, Any]]:
        """One dict per row, raw values (fractions, seconds), missing as None."""
        return [{c: _raw(row.get(c)) for c in self.columns} for row in self.rows]

    def verdict(self) -> str:
        """One sentence: who won on what, and by how much over the runner-up."""
        if self.best is None:
            return ""
        key = self.best_key
        labels = dict(zip((r.run for r in self.rows), short_labels([r.run for r in self.rows])))
        v = self.best.get(key)
        text = f"best by {key}: {labels[self.best.run]} ({fmt_metric(key, v)})"
        if self.runner_up is not None:
            w = self.runner_up.get(key)
            kind, higher = METRICS[key]
            diff = abs(v - w)
            if kind == "acc":
                by = f"{100 * diff:.2f} pp"
            elif kind == "seconds":
                by = fmt_seconds(diff)
            else:
                by = f"{diff:.2g}"
            other = f"{labels[self.runner_up.run]} ({fmt_metric(key, w)})"
            if fmt_metric(key, v) == fmt_metric(key, w):
                text += f", tied with {other}"
            else:
                word = "ahead of" if higher else ("faster than" if kind == "seconds" else "lower than")
                text += f", {by} {word} {other}"
        return text


def _raw(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, tuple):
        return list(v)
    return v


def build_comparison(
    paths: Iterable[str | Path],
    sort: str = "test_acc",
    top: int | None = None,
    filters: Sequence[str | Filter] = (),
    all_params: bool = False,
    reverse: bool = False,
) -> Comparison:
    """Read run folders (or folders of run folders) and compare them.

    Unreadable folders become warning lines, not errors; raises CompareError when no run
    is left, or for an unknown sort/filter key or a bad --top.
    """
    if top is not None and top < 1:
        raise CompareError(f"--top {top}: must be 1 or more")
    parsed = [f if isinstance(f, Filter) else parse_filter(f) for f in filters]

    folders, warnings = runs.discover_runs([Path(p) for p in paths])
    rows: list[Row] = []
    for folder in folders:
        row = read_row(folder)
        if row is None:
            warnings.append(f"{folder}: nothing readable (config.yaml, summary.json and metrics.jsonl missing or corrupt), skipped")
            continue
        if row.problems:
            warnings.append(f"{folder}: {', '.join(row.problems)}; shown with what could be read")
        rows.append(row)
    if not rows:
        why = "; ".join(warnings[:3]) + (f"; and {len(warnings) - 3} more" if len(warnings) > 3 else "")
        raise CompareError(f"no runs to compare ({why or 'no paths given'}); pass run folders or a folder holding them, e.g. mlp-lab compare runs/")
    total = len(rows)

    # Every config key any run has, grouped by section in the order they appear.
    all_keys = _ordered_keys(rows)
    known = [*IDENTITY, *METRICS, *all_keys]
    sort_key = _resolve_key(sort, known, rows, "--sort")
    for f in parsed:
        _resolve_key(f.key, known, rows, "--filter")

    if parsed:
        rows = [r for r in rows if all(f.matches(r) for f in parsed)]
        if not rows:
            raise CompareError(f"no run matches {' and '.join(repr(f.text) for f in parsed)} (of {total} run{'s' if total != 1 else ''} read)")

    descending = METRICS.get(sort_key, ("", False))[1]
    if reverse:
        descending = not descending
    rows = _sorted(rows, sort_key, descending)
    if top is not None:
        rows = rows[:top]

    if all_params:
        params = list(all_keys)
    else:
        params = differing_fields(rows, all_keys)
    metric_cols = [m for m in METRICS if m not in _OPTIONAL_METRICS or any(r.metrics.get(m) is not None for r in rows)]

    # The best run: by the sort key when it is a result (accuracy, loss, time), else test_acc.
    best_key = sort_key if METRICS.get(sort_key, ("",))[0] in ("acc", "loss", "seconds") else "test_acc"
    ranked = _sorted(rows, best_key, METRICS[best_key][1])
    ranked = [r for r in ranked if _num(r.get(best_key)) is not None and math.isfinite(r.get(best_key))]
    best = ranked[0] if ranked else None
    runner_up = ranked[1] if len(ranked) > 1 else None
    return Comparison(
        rows=rows, param_columns=params, metric_columns=metric_cols, sort=sort_key, descending=descending,
        best_key=best_key, best=best, runner_up=runner_up, warnings=warnings, total_runs=total,
        all_param_keys=all_keys,
    )


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
    key = _SORT_ALIASES.get(key, key)
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


def _sort_key(v: Any, descending: bool) -> tuple:
    """Missing and NaN last in either direction; numbers before text; mixed types safe."""
    if v is None or v is _MISSING or (isinstance(v, float) and math.isnan(v)):
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
    present = sorted((r for r in rows if r.get(key, _MISSING) not in (None, _MISSING)), key=lambda r: _sort_key(r.get(key), False))
    if descending:
        present.reverse()
    return present + [r for r in rows if r.get(key, _MISSING) in (None, _MISSING)]


def differing_fields(rows: list[Row], keys: Sequence[str]) -> list[str]:
    """The config fields whose values differ between the rows (rows with no readable
    config don't count). A field only some runs have (sgd's momentum when comparing sgd
    with adam) counts when its values differ or differ from that optimizer's default."""
    with_config = [r for r in rows if r.params is not None]
    if len(with_config) < 2:
        return []
    out = []
    for k in keys:
        if k in QUIET_FIELDS:
            continue
        present = [r for r in with_config if k in r.params]
        values = {_canon(r.params[k]) for r in present}
        if len(values) > 1:
            out.append(k)
        elif len(present) < len(with_config) and any(not _is_default(r.params, k) for r in present):
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
    return _canon(defaults[key]) == _canon(params[key])


def warning_lines(warnings: Sequence[str], limit: int = MAX_WARNINGS) -> list[str]:
    """One line per problem folder, at most ``limit`` (then a count of the rest)."""
    if len(warnings) <= limit:
        return list(warnings)
    rest = len(warnings) - (limit - 1)
    return [*warnings[: limit - 1], f"... and {rest} more folders with problems (--format json lists them all)"]


# --- rendering ------------------------------------------------------------------------


# Table layouts, tried in order until one fits the terminal: widest value and run label,
# compact headers (split after the dot where a header is wider than its values), metric
# columns left out. The last resort is one block per run (``_stacked``).
_LAYOUTS: list[tuple[int, int, bool, tuple[str, ...]]] = [
    (24, 32, False, ()),
    (16, 24, True, ()),
    (14, 24, True, ("duration_s",)),
    (14, 24, True, ("duration_s", "train_loss")),
    (12, 20, True, ("duration_s", "train_loss", "val_loss", "epochs_done")),
    (10, 16, True, ("duration_s", "train_loss", "val_loss", "epochs_done", "test_loss", "best_test_acc")),
]
_HEADERS = {"epochs_done": "epochs", "duration_s": "time"}
_TABLE_HIDDEN = ("best_epoch", "epochs_planned", "train_acc", "best_val_acc")


def _metric_cell(row: Row, m: str) -> str:
    v = row.metrics.get(m)
    if m == "best_test_acc":
        s = fmt_metric(m, v)
        e = row.metrics.get("best_epoch")
        return f"{s} @{e}" if v is not None and e is not None else s
    if m == "epochs_done":
        planned = row.metrics.get("epochs_planned")
        done = "-" if v is None else str(v)
        return f"{done}/{planned}" if planned is not None else done
    return fmt_metric(m, v)


def _cells(comp: Comparison, max_value: int, drop: Sequence[str] = (), max_label: int = 32) -> tuple[list[str], list[list[str]], list[bool]]:
    """Headers, display rows and right-justification of the table/markdown views."""
    labels = [shorten(x, max_label) for x in short_labels([r.run for r in comp.rows])]
    headers = ["#", "run", "status", *comp.param_columns]
    right = [True, False, False, *([False] * len(comp.param_columns))]
    shown_metrics = [m for m in comp.metric_columns if m not in _TABLE_HIDDEN and m not in drop]
    for m in shown_metrics:
        headers.append(_HEADERS.get(m, m))
        right.append(True)
    body = []
    for i, (row, label) in enumerate(zip(comp.rows, labels), 1):
        cells = [str(i), label, row.status]
        for k in comp.param_columns:
            cells.append(fmt_value(row.get(k, _MISSING) if row.params is not None else _MISSING, max_value))
        cells.extend(_metric_cell(row, m) for m in shown_metrics)
        body.append(cells)
    return headers, body, right


def _compact_header(h: str, limit: int) -> str:
    """'model.activation' -> 'model.' over 'activation' (still reads as the key), when
    the header is wider than ``limit`` (the column's widest value)."""
    if len(h) <= limit + 2:  # saves too little to be worth a second line
        return h
    if "." not in h:
        head, sep, tail = h.partition("_")  # best_test_acc -> best_ / test_acc
        return f"{head}{sep}\n{tail}" if sep else h
    head, _, tail = h.partition(".")
    # A long field name wraps after its underscores: synthetic_ / train_size.
    words = re.findall(r"[^_]+_?|_", tail)
    target = max(limit, len(head) + 1, *(len(w) for w in words))
    lines = [head + "."]
    line = ""
    for w in words:
        if line and len(line) + len(w) > target:
            lines.append(line)
            line = ""
        line += w
    lines.append(line)
    return "\n".join(lines)


def _width(headers: list[str], body: list[list[str]]) -> int:
    """The table's width in characters: columns plus two spaces between them."""
    widths = _column_widths(headers, body)
    return sum(widths) + 2 * (len(widths) - 1)


_STATUS_STYLE = {"completed": "green", "running": "cyan", "interrupted": "yellow", "diverged": "red", "failed": "red", "unknown": "dim"}


def table_layout(comp: Comparison, width: int) -> tuple[list[str], list[list[str]], list[bool], list[str]] | None:
    """The first layout that fits ``width``: headers, cells, right-justified, metrics
    left out. None when even the narrowest table is too wide (then: one block per run)."""
    for max_value, max_label, compact, drop in _LAYOUTS:
        headers, body, right = _cells(comp, max_value, drop, max_label)
        if compact:
            headers = [_compact_header(h, max([len(r[i]) for r in body] + [4])) for i, h in enumerate(headers)]
        if _width(headers, body) <= width:
            dropped = [_HEADERS.get(m, m) for m in drop if m in comp.metric_columns]
            return headers, body, right, dropped
    return None


def _caption(comp: Comparison, dropped: Sequence[str] = ()) -> str:
    notes = [comp.verdict()] if comp.verdict() else []
    if comp.total_runs > len(comp.rows):
        notes.append(f"{len(comp.rows)} of {comp.total_runs} runs shown")
    hidden = len(comp.all_param_keys) - len(comp.param_columns)
    if hidden > 0:
        notes.append(f"{hidden} config fields equal in all runs or irrelevant (--all-params shows them)")
    if dropped:
        notes.append(f"left out to fit the terminal: {', '.join(dropped)} (--format csv has every column)")
    return "\n".join(notes)


def _column_widths(headers: list[str], body: list[list[str]]) -> list[int]:
    return [max([max(len(x) for x in h.split("\n"))] + [len(r[i]) for r in body]) for i, h in enumerate(headers)]


def table_lines(comp: Comparison, width: int = 120) -> list[tuple[str, str | None, tuple[int, int] | None]] | None:
    """The table as plain lines: (text, line style, (start, end) of the status cell).

    Laid out here rather than by Rich's Table, which measures every cell and takes a
    second for 1,000 rows; the cells are plain strings whose widths are known. None when
    no layout fits ``width`` (then ``table_renderable`` stacks one block per run).
    """
    layout = table_layout(comp, width)
    if layout is None:
        return None
    headers, body, right, dropped = layout
    widths = _column_widths(headers, body)

    def join(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right)).rstrip()

    out: list[tuple[str, str | None, tuple[int, int] | None]] = []
    split = [h.split("\n") for h in headers]
    depth = max(len(h) for h in split)
    for i in range(depth):  # multi-line headers sit on the rule
        out.append((join([h[i - (depth - len(h))] if i >= depth - len(h) else "" for h in split]), "bold", None))
    out.append(("─" * sum(widths[i] + (2 if i else 0) for i in range(len(widths))), None, None))
    status_start = widths[0] + 2 + widths[1] + 2
    best_run = comp.best.run if comp.best is not None else None
    for row, cells in zip(comp.rows, body):
        style = "bold green" if row.run == best_run else None
        out.append((join(cells), style, (status_start, status_start + len(cells[2]))))
    caption = _caption(comp, dropped)
    for line in caption.split("\n") if caption else []:
        for part in textwrap.wrap(line, width=max(width, 20), break_on_hyphens=False) or [""]:
            out.append((part, None, None))
    return out


def table_renderable(comp: Comparison, width: int = 120) -> Any:
    """What the terminal shows: the table (best run bold green, status coloured), or one
    block per run when the table cannot fit ``width``."""
    from rich.console import Group
    from rich.text import Text

    lines = table_lines(comp, width)
    if lines is None:
        return _stacked(comp, width)
    status_of = {i: r.status for i, r in enumerate(comp.rows)}
    texts = []
    row_index = 0
    for text, style, status in lines:
        t = Text(text, style=style or "", no_wrap=True, overflow="ignore", end="\n")
        if status is not None:
            colour = _STATUS_STYLE.get(status_of[row_index], "")
            if colour and not style:
                t.stylize(colour, *status)
            row_index += 1
        texts.append(t)
    return Group(*texts)


def _stacked(comp: Comparison, width: int) -> Any:
    """Too many columns for the terminal: one short block per run, wrapped lines indented."""
    from rich.console import Group
    from rich.padding import Padding
    from rich.text import Text

    labels = short_labels([r.run for r in comp.rows])
    best_run = comp.best.run if comp.best is not None else None
    metrics = [m for m in comp.metric_columns if m not in _TABLE_HIDDEN]
    first, rest = metrics[:2], metrics[2:]
    parts: list[Any] = []
    for i, (row, label) in enumerate(zip(comp.rows, labels), 1):
        head = Text(f"{i}. ")
        head.append(label, style="bold green" if row.run == best_run else "bold")
        head.append("  ")
        head.append(row.status, style=_STATUS_STYLE.get(row.status, ""))
        for m in first:
            head.append(f"  {'best' if m == 'best_test_acc' else _HEADERS.get(m, m)} {_metric_cell(row, m)}")
        parts.append(Padding(head, (0, 0, 0, 0)))
        if comp.param_columns and row.params is not None:
            vals = [f"{k}={fmt_value(row.params[k], 24)}" for k in comp.param_columns if k in row.params]
            parts.append(Padding(Text("  ".join(vals)), (0, 0, 0, 3)))
        parts.append(Padding(Text("  ".join(f"{_HEADERS.get(m, m)} {_metric_cell(row, m)}" for m in rest)), (0, 0, 0, 3)))
    caption = _caption(comp)
    if caption:
        parts.append(Text(caption))
    return Group(*parts)


def to_table(comp: Comparison, width: int | None = None) -> str:
    """The table as plain text (what ``--format table --output FILE`` writes); no width:
    every column, however wide."""
    width = width or 10**6
    lines = table_lines(comp, width)
    if lines is not None:
        return "\n".join(text for text, _, _ in lines) + "\n"
    from rich.console import Console

    buf = io.StringIO()
    console = Console(file=buf, width=width, force_terminal=False, color_system=None, highlight=False, emoji=False)
    console.print(_stacked(comp, width))
    return buf.getvalue()


def to_json(comp: Comparison) -> str:
    doc = {
        "sort": comp.sort,
        "descending": comp.descending,
        "best_key": comp.best_key,
        "best": comp.best.run if comp.best is not None else None,
        "verdict": comp.verdict(),
        "total_runs": comp.total_runs,
        "columns": comp.columns,
        "rows": comp.records(),
        "warnings": comp.warnings,
    }
    return json.dumps(doc, indent=2, allow_nan=False, default=str) + "\n"


def to_csv(comp: Comparison) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(comp.columns)
    for rec in comp.records():
        w.writerow([_csv_cell(rec[c]) for c in comp.columns])
    return buf.getvalue()


def _csv_cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, dict)):
        return json.dumps(v)
    return str(v)  # floats: repr, full precision


def to_markdown(comp: Comparison) -> str:
    headers, body, right = _cells(comp, 32)
    best_run = comp.best.run if comp.best is not None else None

    def esc(s: str) -> str:
        return s.replace("\\", "\\\\").replace("|", "\\|")

    lines = ["| " + " | ".join(esc(h) for h in headers) + " |",
             "|" + "|".join("---:" if r else ":---" for r in right) + "|"]
    for row, cells in zip(comp.rows, body):
        cells = [esc(c) for c in cells]
        if row.run == best_run:
            cells[1] = f"**{cells[1]}**"
        lines.append("| " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    if comp.verdict():
        text += "\n" + comp.verdict().replace("|", "\\|") + "\n"
    return text


def resolve_format(fmt: str | None, output: Path | None) -> str:
    """The output format: as given, else from --output's suffix, else table."""
    if fmt is None:
        if output is not None:
            return _SUFFIX_FORMATS.get(Path(output).suffix.lower(), "table")
        return "table"
    f = fmt.strip().lower()
    f = {"md": "markdown", "txt": "table", "text": "table"}.get(f, f)
    if f not in FORMATS:
        hint = difflib.get_close_matches(f, FORMATS, n=1, cutoff=0.5)
        did = f" (did you mean '{hint[0]}'?)" if hint else ""
        raise CompareError(f"--format {fmt!r}: unknown format{did}; allowed: {', '.join(FORMATS)}")
    return f


def render(comp: Comparison, fmt: str, width: int | None = None) -> str:
    if fmt == "json":
        return to_json(comp)
    if fmt == "csv":
        return to_csv(comp)
    if fmt == "markdown":
        return to_markdown(comp)
    return to_table(comp, width=width)


def write_output(path: Path, text: str) -> None:
    """Write atomically: a reader (or a crash) never sees half a file."""
    path = Path(path)
    if path.is_dir():
        raise CompareError(f"--output {path}: is a folder; give a file name")
    if not path.parent.is_dir():
        raise CompareError(f"--output {path}: folder {path.parent} does not exist")
    try:
        runs.atomic_write_text(path, text)
    except OSError as e:
        raise CompareError(f"--output {path}: cannot write ({e.strerror or e})") from None


def plot_labels(comp: Comparison) -> list[str]:
    """Legend entries: the differing fields' values, else the run names."""
    names = short_labels([r.run for r in comp.rows])
    if not comp.param_columns:
        return names
    labels = []
    for row, name in zip(comp.rows, names):
        if row.params is None:
            labels.append(name)
            continue
        parts = []
        for k in comp.param_columns[:4]:
            if k not in row.params:
                continue  # sgd's momentum on an adam run: nothing to say
            v = fmt_value(row.params[k], 16)
            parts.append(v if k.endswith(".name") else f"{k.split('.')[-1]}={v}")
        labels.append(", ".join(parts))
    if len(set(labels)) < len(labels):  # e.g. seeds hidden past the fourth field
        labels = [f"{lab} ({n})" for lab, n in zip(labels, names)]
    return labels


# --- one run (mlp-lab show) -----------------------------------------------------------


@dataclass
class RunDetails:
    record: runs.RunRecord
    metrics: dict[str, Any]
    params: dict[str, Any] | None
    config_rows: list[tuple[str, Any, Any]]  # key, value, default (_MISSING if none/unknown)
    files: list[tuple[str, int]]


def describe_run(path: str | Path, all_params: bool = False) -> RunDetails:
    """Read one run folder for ``show``. Raises RunError when it is not a run."""
    path = Path(path)
    if not path.exists():
        raise RunError(f"{path}: no such run folder")
    if not runs.is_run_dir(path):
        if path.is_dir():
            children, _ = runs.discover_runs([path])
            if children:
                raise RunError(f"{path} is not a run but holds {len(children)} run folder(s); "
                               f"show one of them (e.g. mlp-lab show {children[0]}) or compare them: mlp-lab compare {path}")
        raise RunError(f"{path} is not a run folder (no {runs.SUMMARY}, {runs.CONFIG} or {runs.METRICS})")
    rec = runs.load_run(path)
    params = flatten(rec.config) if rec.config is not None else None
    config_rows: list[tuple[str, Any, Any]] = []
    if params is not None:
        defaults = dict(defaults_for(params) or {})
        base = defaults_for({}) or {}  # sgd's fields against sgd's defaults, but its name against adam
        for section in ("optimizer.name", "scheduler.name"):
            if section in base:
                defaults[section] = base[section]
        for k, v in params.items():
            d = defaults.get(k, _MISSING)
            if all_params or k == "name" or d is _MISSING or _canon(d) != _canon(v):
                if not all_params and k in ("data.data_dir",) and v is None:
                    continue
                config_rows.append((k, v, d))
    files = []
    try:
        for p in sorted(path.iterdir()):
            if p.is_file() and not p.name.startswith("."):
                files.append((p.name, p.stat().st_size))
    except OSError:
        pass
    return RunDetails(record=rec, metrics=headline_metrics(rec.summary, rec.metrics), params=params,
                      config_rows=config_rows, files=files)


def fmt_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def show_renderables(d: RunDetails, all_params: bool = False) -> list[Any]:
    """What ``mlp-lab show`` prints, as Rich renderables (summary, config, epochs, files)."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    rec, m = d.record, d.metrics
    s = rec.summary or {}
    out: list[Any] = []
    title = Text()
    title.append(rec.name, style="bold")
    title.append("  ")
    title.append(rec.status, style=_STATUS_STYLE.get(rec.status, ""))
    out.append(title)

    info = Table.grid(padding=(0, 2))
    info.add_column(style="bold")
    info.add_column()
    planned = m.get("epochs_planned")
    info.add_row("epochs", f"{m.get('epochs_done') if m.get('epochs_done') is not None else '-'}"
                 + (f" of {planned}" if planned is not None else ""))
    if m.get("test_acc") is not None:
        info.add_row("final", f"test acc {fmt_metric('test_acc', m['test_acc'])}, test loss {fmt_metric('test_loss', m['test_loss'])}, "
                     f"train loss {fmt_metric('train_loss', m['train_loss'])}, train acc {fmt_metric('train_acc', m['train_acc'])}")
    if m.get("best_test_acc") is not None:
        line = f"test acc {fmt_metric('test_acc', m['best_test_acc'])} at epoch {m.get('best_epoch')}"
        if m.get("best_val_acc") is not None:
            line += f"; val acc {fmt_metric('val_acc', m['best_val_acc'])}"
        info.add_row("best", line)
    if m.get("duration_s") is not None:
        info.add_row("duration", fmt_seconds(m["duration_s"]))
    for key, label in (("device", "device"), ("started_at", "started"), ("finished_at", "finished")):
        if s.get(key):
            info.add_row(label, str(s[key]))
    if isinstance(s.get("param_count"), int):
        info.add_row("parameters", f"{s['param_count']:,}")
    versions = ", ".join(f"{label} {s[k]}" for k, label in (("torch_version", "torch"), ("mlp_lab_version", "mlp-lab")) if s.get(k))
    if versions:
        info.add_row("versions", versions)
    if s.get("message"):
        info.add_row("message", Text(str(s["message"])))
    if s.get("error"):
        info.add_row("error", Text(str(s["error"]), style="red"))
    for w in s.get("warnings") or []:
        info.add_row("warning", Text(str(w), style="yellow"))
    for p in rec.problems:
        info.add_row("problem", Text(p, style="yellow"))
    out.append(info)

    out.append(Text(""))
    if d.params is None:
        out.append(Text("config: unreadable", style="yellow"))
    else:
        heading = "config" if all_params else "config (what differs from the defaults; --all shows every field)"
        out.append(Text(heading, style="bold"))
        cfg = Table(box=None, show_header=False, pad_edge=False, padding=(0, 2))
        cfg.add_column()
        cfg.add_column()
        cfg.add_column(style="dim")
        for k, v, default in d.config_rows:
            same = default is _MISSING or _canon(default) == _canon(v) or k == "name"
            note = "" if same else f"default: {fmt_value(default, 40)}"
            cfg.add_row(k, fmt_value(v, 60), note)
        out.append(cfg)

    out.append(Text(""))
    if rec.metrics:
        keys = ["epoch", "train_loss", "train_acc", "test_loss", "test_acc"]
        if any("val_acc" in r for r in rec.metrics):
            keys += ["val_loss", "val_acc"]
        keys += ["lr", "seconds"]
        ep = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold", title="epochs", title_justify="left")
        for k in keys:
            ep.add_column(k, justify="right")
        best_epoch = m.get("best_epoch")
        for r in rec.metrics:
            cells = []
            for k in keys:
                v = r.get(k)
                if k == "epoch":
                    cells.append(str(v))
                elif k == "lr":
                    cells.append("-" if _num(v) is None else f"{v:.4g}")
                elif k == "seconds":
                    cells.append("-" if _num(v) is None else fmt_seconds(v))
                else:
                    cells.append(fmt_metric(k, _num(v)))
            ep.add_row(*cells, style="bold green" if r.get("epoch") == best_epoch else None)
        out.append(ep)
    else:
        out.append(Text("epochs: none finished yet", style="dim"))

    out.append(Text(""))
    out.append(Text(f"files in {rec.path}", style="bold"))
    ft = Table(box=None, show_header=False, pad_edge=False, padding=(0, 2))
    ft.add_column()
    ft.add_column(justify="right")
    for name, size in d.files:
        ft.add_row(name, fmt_bytes(size))
    out.append(ft)
    return out


def show_text(d: RunDetails, all_params: bool = False, width: int = 100) -> str:
    from rich.console import Console

    buf = io.StringIO()
    console = Console(file=buf, width=width, force_terminal=False, color_system=None, highlight=False, emoji=False)
    for r in show_renderables(d, all_params):
        console.print(r)
    return buf.getvalue()
