"""Rendering a comparison: the terminal table (layouts that fit its width), plain text,
JSON, CSV and markdown, the verdict sentence, and the labels the plots use."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlp_lab import atomic_files
from mlp_lab.errors import did_you_mean
from mlp_lab.results.comparison import Comparison
from mlp_lab.results.rows import Row
from mlp_lab.results.selection import CompareError
from mlp_lab.results.values import MISSING, ci_cell, fmt_value, metric_cell, short_labels, shorten, versus_cell
from mlp_lab.results.verdict import verdict

FORMATS = ("table", "json", "csv", "markdown")
PIPE_WIDTH = 200  # a table into a pipe or a file: every column, not squeezed into 80
_SUFFIX_FORMATS = {".json": "json", ".csv": "csv", ".md": "markdown", ".markdown": "markdown", ".txt": "table"}

# Table layouts, tried in order until one fits the terminal: widest value and run label,
# compact headers (split after the dot where a header is wider than its values), metric
# columns left out. The last resort is one block per run (``_stacked``).
_LAYOUTS: list[tuple[int, int, bool, tuple[str, ...]]] = [
    (24, 32, False, ()),
    (16, 24, True, ()),
    (14, 24, True, ("duration_s",)),
    (14, 24, True, ("duration_s", "train_loss")),
    (12, 20, True, ("duration_s", "train_loss", "val_loss", "epochs_done")),
    (10, 16, True, ("duration_s", "train_loss", "val_loss", "epochs_done", "test_loss", "best_val_acc")),
]
_HEADERS = {"epochs_done": "epochs", "duration_s": "time"}
# (best_test_acc is chosen on test: shown only when sorted by; JSON and CSV have it)
_TABLE_HIDDEN = ("best_epoch", "epochs_planned", "train_acc", "best_val_acc", "best_test_acc", "selected_epoch")


def cells(comp: Comparison, max_value: int = 60) -> tuple[list[str], list[list[str]], list[bool]]:
    """The table's headers, cells (as the terminal shows them) and which are right-aligned:
    for other renderers of the same table (the HTML report)."""
    return _cells(comp, max_value, max_label=80)


def _cells(
    comp: Comparison, max_value: int, drop: Sequence[str] = (), max_label: int = 32
) -> tuple[list[str], list[list[str]], list[bool]]:
    """Headers, display rows and right-justification of the table/markdown views."""
    labels = [shorten(x, max_label) for x in short_labels([r.run for r in comp.rows])]
    grouped = ["n"] if comp.grouped else []
    headers = ["#", "run", "status", *grouped, *comp.param_columns]
    right = [True, False, False, *([True] * len(grouped)), *([False] * len(comp.param_columns))]
    shown_metrics = [m for m in comp.metric_columns if (m not in _TABLE_HIDDEN or m == comp.sort) and m not in drop]
    for m in shown_metrics:
        headers.append(_HEADERS.get(m, m))
        right.append(True)
    if comp.grouped:
        headers += ["95% CI", "vs baseline"]
        right += [True, False]
    body = []
    for i, (row, label) in enumerate(zip(comp.rows, labels), 1):
        cells = [str(i), label, row.status]
        if comp.grouped:
            cells.append(_n_cell(row))
        for k in comp.param_columns:
            cells.append(fmt_value(row.get(k, MISSING) if row.params is not None else MISSING, max_value))
        spread = getattr(row, "stats", None) if comp.grouped else None
        cells.extend(metric_cell(row, m, spread if m == comp.best_key else None) for m in shown_metrics)
        if comp.grouped:
            cells += [ci_cell(comp.best_key, spread), versus_cell(comp.best_key, comp.versus_of(row))]
        body.append(cells)
    return headers, body, right


def _n_cell(row: Row) -> str:
    """A group's runs; '2/5' when only 2 of them reached a value of the compared metric."""
    n, st = getattr(row, "n", 1), getattr(row, "stats", None)
    used = st.n if st is not None else 0
    return str(n) if used == n else f"{used}/{n}"


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


STATUS_STYLE = {
    "completed": "green",
    "running": "cyan",
    "interrupted": "yellow",
    "diverged": "red",
    "failed": "red",
    "unknown": "dim",
}


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
    notes = [verdict(comp)] if verdict(comp) else []
    if comp.selection:
        notes.append(comp.selection)
    shown = sum(getattr(r, "n", 1) for r in comp.rows)
    if comp.grouped:
        of = f" (of {comp.total_runs} read)" if comp.total_runs > shown else ""
        groups = (
            "1 group of runs that differ" if len(comp.rows) == 1 else f"{len(comp.rows)} groups of runs that differ"
        )
        notes.append(f"{shown} runs{of} in {groups} only in their seed (--no-group shows each run)")
    elif comp.total_runs > len(comp.rows):
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
    for row, cells in zip(comp.rows, body):
        style = "bold green" if row is comp.best else None  # the row itself: groups may share a label
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
            colour = STATUS_STYLE.get(status_of[row_index], "")
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
    metrics = [m for m in comp.metric_columns if m not in _TABLE_HIDDEN or m == comp.sort]
    first, rest = metrics[:2], metrics[2:]
    parts: list[Any] = []
    for i, (row, label) in enumerate(zip(comp.rows, labels), 1):
        head = Text(f"{i}. ")
        head.append(label, style="bold green" if row is comp.best else "bold")
        head.append("  ")
        head.append(row.status, style=STATUS_STYLE.get(row.status, ""))
        spread = getattr(row, "stats", None) if comp.grouped else None
        if comp.grouped:
            head.append(f"  n={getattr(row, 'n', 1)}")
        for m in first:
            cell = metric_cell(row, m, spread if m == comp.best_key else None)
            head.append(f"  {_HEADERS.get(m, m)} {cell}")
        parts.append(Padding(head, (0, 0, 0, 0)))
        if comp.grouped:
            vs = versus_cell(comp.best_key, comp.versus_of(row))
            line = f"95% CI {ci_cell(comp.best_key, spread)}  " + (
                "the baseline" if vs == "baseline" else f"vs baseline {vs}"
            )
            parts.append(Padding(Text(line), (0, 0, 0, 3)))
        if comp.param_columns and row.params is not None:
            vals = [f"{k}={fmt_value(row.params[k], 24)}" for k in comp.param_columns if k in row.params]
            parts.append(Padding(Text("  ".join(vals)), (0, 0, 0, 3)))
        parts.append(
            Padding(Text("  ".join(f"{_HEADERS.get(m, m)} {metric_cell(row, m)}" for m in rest)), (0, 0, 0, 3))
        )
    caption = _caption(comp)
    if caption:
        parts.append(Text(caption))
    return Group(*parts)


def table_width() -> int:
    """Columns for a table on stdout: the terminal's (or $COLUMNS); PIPE_WIDTH into a pipe or a file."""
    if sys.stdout.isatty() or "COLUMNS" in os.environ:
        return shutil.get_terminal_size((PIPE_WIDTH, 24)).columns
    return PIPE_WIDTH


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
        "grouped": comp.grouped,
        "baseline": comp.baseline.run if comp.baseline is not None else None,
        "verdict": verdict(comp),
        "selection": comp.selection or None,
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

    lines = [
        "| " + " | ".join(esc(h) for h in headers) + " |",
        "|" + "|".join("---:" if r else ":---" for r in right) + "|",
    ]
    for row, cells in zip(comp.rows, body):
        cells = [esc(c) for c in cells]
        if row.run == best_run:
            cells[1] = f"**{cells[1]}**"
        lines.append("| " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    if verdict(comp):
        text += "\n" + verdict(comp).replace("|", "\\|") + "\n"
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
        did = did_you_mean(f, FORMATS, cutoff=0.5)
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
        atomic_files.atomic_write_text(path, text)
    except OSError as e:
        raise CompareError(f"--output {path}: cannot write ({e.strerror or e})") from None


def plot_labels(comp: Comparison) -> list[str]:
    """Legend entries: every differing field as ``field=value`` (names alone for the
    ``*.name`` fields), values in full; the run names when nothing differs."""
    names = short_labels([r.run for r in comp.rows])
    if not comp.param_columns:
        return names
    labels = []
    for row, name in zip(comp.rows, names):
        if row.params is None:
            labels.append(name)
            continue
        parts = []
        for k in comp.param_columns:
            if k not in row.params:
                continue  # sgd's momentum on an adam run: nothing to say
            v = fmt_value(row.params[k], None)
            parts.append(v if k.endswith(".name") else f"{k.split('.')[-1]}={v}")
        labels.append(", ".join(parts) or name)
    if len(set(labels)) < len(labels):  # two runs of one config (a repeat with the same seed)
        labels = [f"{lab} ({n})" for lab, n in zip(labels, names)]
    return labels
