"""``mlp-lab report``: one self-contained HTML page of a comparison, to mail or put online.

Everything is inside the file: styles inline, figures as base64 PNGs, no script, no
network, no font or CDN. It holds the comparison as ``compare`` gives it (seed groups with
mean ± std, intervals and verdicts), the learning curves with seed bands, the diagnostics
figure of runs that have them, what each row's config changes from the defaults, and the
warnings and endings its runs recorded, and for a sweep folder its resolved sweep file. It
prints on A4 (wide tables shrink to fit).
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mlp_lab import atomic_files, runs
from mlp_lab.errors import MlpLabError
from mlp_lab.results import (
    Comparison,
    build_comparison,
    cells,
    describe_run,
    plot_labels,
    runs_of,
    short_labels,
    verdict,
    warning_lines,
)
from mlp_lab.results.values import MISSING, fmt_value

STYLE = """
body { font: 15px/1.45 -apple-system, "Segoe UI", "DejaVu Sans", Arial, sans-serif; color: #1d2329;
       max-width: 1400px; margin: 2em auto; padding: 0 1.2em; }
h1 { font-size: 1.6em; margin-bottom: .2em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
.meta { color: #667; } .verdict { font-size: 1.05em; background: #f2f6fa; border-left: 4px solid #3b73b9; padding: .6em .9em; }
.selection { background: #fff6e5; border-left: 4px solid #d08a00; padding: .6em .9em; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: .78em; font-variant-numeric: tabular-nums; width: 100%; }
th, td { padding: .25em .35em; border-bottom: 1px solid #e4e7ea; white-space: nowrap; vertical-align: top; }
th { text-align: left; background: #f6f7f8; white-space: normal; vertical-align: bottom; } td.r, th.r { text-align: right; }
td.wrap { white-space: normal; min-width: 9em; }
td.text { white-space: normal; }
tr.best td { font-weight: 600; background: #eef7ee; }
.s-completed { color: #247a2d; } .s-diverged, .s-failed { color: #b3261e; } .s-interrupted, .s-running { color: #8a6d00; }
figure { margin: 1em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
.warn { color: #8a4b00; } code { font-size: .92em; }
pre { background: #f6f7f8; padding: .8em; overflow-x: auto; font-size: .85em; }
@media print { body { max-width: none; margin: 0; font-size: 11px; } .scroll { overflow: visible; }
               table { font-size: 8px; } h2 { break-after: avoid; } figure, tr { break-inside: avoid; } }
"""


def write_report(
    paths: Iterable[str | Path], output: str | Path, title: str | None = None, **compare_options: Any
) -> Path:
    """Compare ``paths`` (as ``compare`` does, with its options) and write the page to ``output``."""
    output = Path(output)
    if output.suffix.lower() not in (".html", ".htm"):
        raise MlpLabError(f"--output {output}: a report is an HTML file; give a name ending in .html")
    if not output.parent.is_dir():
        raise MlpLabError(f"--output {output}: folder {output.parent} does not exist")
    folders = [Path(p) for p in paths]
    comp = build_comparison(folders, **compare_options)
    page = render_report(comp, title or "mlp-lab report", sweep_files(folders), search_figures(folders))
    try:
        atomic_files.atomic_write_text(output, page)
    except OSError as e:
        raise MlpLabError(f"--output {output}: cannot write ({e.strerror or e})") from None
    return output


def sweep_files(paths: Sequence[Path]) -> dict[str, str]:
    """The resolved sweep file of each path that is a sweep folder: folder name -> its text."""
    from mlp_lab.sweeps.folder import MANIFEST, SWEEP_FILE

    return {
        folder.name: (folder / SWEEP_FILE).read_text(encoding="utf-8", errors="replace")
        for folder in runs.with_subfolders(list(paths))  # a sweep folder, or one holding sweep folders
        if (folder / MANIFEST).is_file() and (folder / SWEEP_FILE).is_file()
    }


def search_figures(paths: Sequence[Path]) -> list[str]:
    """Each search folder's scatter of its trials, as a figure of the page."""
    folders = runs.search_folders(list(paths))
    if not folders:
        return []
    from mlp_lab.search_plots import search_figure
    from mlp_lab.sweeps.folder import load_manifest
    from mlp_lab.sweeps.search_runner import spec_of, trial_rows

    out = []
    for folder in folders:
        manifest = load_manifest(folder)
        spec = spec_of(manifest)
        fig = search_figure(trial_rows(manifest), spec, title=f"{folder.name}")
        out.append(
            _figure(
                fig,
                f"The search {folder.name}: {spec.metric} against each searched value (pruned trials "
                f"faded at the value they reached, the best starred)",
            )
        )
    return out


def render_report(
    comp: Comparison, title: str, sweeps: dict[str, str] | None = None, searches: list[str] | None = None
) -> str:
    n_runs = sum(len(runs_of(r)) for r in comp.rows)
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    what = f"{n_runs} run{'s' if n_runs != 1 else ''}"
    if comp.grouped:
        what += f" in {len(comp.rows)} group{'s' if len(comp.rows) != 1 else ''} of runs that differ only in their seed"
    parts = [f"<h1>{_e(title)}</h1>", f'<p class="meta">{_e(what)}; made by mlp-lab on {when}</p>']
    if verdict(comp):
        parts.append(f'<p class="verdict">{_e(verdict(comp))}</p>')
    if comp.selection:  # compare prints it under its table: the page must not drop the caveat
        parts.append(f'<p class="selection">{_e(comp.selection)}</p>')
    parts += ["<h2>Comparison</h2>", _table(comp), *_figures(comp), *(searches or []), *_details(comp)]
    for name, text in (sweeps or {}).items():
        parts.append(f"<h2>Sweep file of {_e(name)}</h2><pre>{_e(text)}</pre>")
    if comp.warnings:
        items = "".join(f"<li>{_e(w)}</li>" for w in warning_lines(comp.warnings))
        parts.append(f'<h2>Folders that could not be read in full</h2><ul class="warn">{items}</ul>')
    body = "\n".join(parts)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{STYLE}</style></head>\n<body>\n{body}\n</body></html>\n"
    )


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _table(comp: Comparison) -> str:
    headers, body, right = cells(comp)
    # Long dotted headers may break after a dot or an underscore: the table fits a laptop screen.
    head = "".join(
        f'<th class="{"r" if r else ""}">{_e(h).replace(".", ".<wbr>").replace("_", "_<wbr>")}</th>'
        for h, r in zip(headers, right)
    )
    rows = []
    for row, values in zip(comp.rows, body):
        tds = []
        for i, (v, r) in enumerate(zip(values, right)):
            # Names and config values wrap (anywhere in a long list), numbers never: the
            # table fits a 1280 px window whatever the number of differing fields.
            cls = "r" if r else {"status": f"s-{row.status}", "vs baseline": "wrap"}.get(headers[i], "text")
            text = _e(v) if cls != "text" else _e(v).replace(", ", ",<wbr> ").replace("_", "_<wbr>")
            tds.append(f'<td class="{cls}">{text}</td>')
        rows.append(f'<tr class="{"best" if row is comp.best else ""}">{"".join(tds)}</tr>')
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'


def _figures(comp: Comparison) -> list[str]:
    """The learning curves (seed groups as mean and band) and, where runs have them, diagnostics."""
    from mlp_lab.diagnostic_plots import diagnostics_figure, group_records
    from mlp_lab.plots import PlotError, comparison_figure, held_out_key

    labels = plot_labels(comp)
    groups = [runs_of(r) for r in comp.rows]
    out = []
    try:
        best = comp.rows.index(comp.best) if comp.best is not None else None
        fig = comparison_figure([[r.history for r in g] for g in groups], labels, best=best)
        bars = all(len(r.history) <= 1 for g in groups for r in g)
        held_out = "validation" if held_out_key([[r.history for r in g] for g in groups]) == "val_acc" else "test"
        out.append(
            _figure(
                fig,
                f"Runs of one epoch: their final {held_out} accuracy and training loss"
                if bars
                else f"Learning curves: {held_out} accuracy and training loss per epoch",
            )
        )
    except PlotError as e:
        out.append(f'<p class="meta">No learning curves: {_e(e)}</p>')
    records = group_records([[r.path for r in g] for g in groups], labels)
    if records:
        out.append(
            _figure(
                diagnostics_figure(records),
                "Inside the network: gradient norms, dead or saturated units, update/weight ratios per layer",
            )
        )
    return ["<h2>Figures</h2>", *out]


def _figure(fig: Any, caption: str) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return (
        f'<figure><img alt="{_e(caption)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{_e(caption)}</figcaption></figure>"
    )


def _details(comp: Comparison) -> list[str]:
    """Per row: the runs behind it, what its config changes from the defaults, and what they recorded."""
    out = ["<h2>Each row in detail</h2>"]
    names = short_labels([r.run for r in comp.rows])
    for i, (row, name) in enumerate(zip(comp.rows, names), 1):
        members = runs_of(row)
        out.append(f"<h3>{i}. {_e(name)}</h3>")
        out.append(f"<p>{_e(_runs_line(members))}</p>")
        changes = _changes(members[0].path)
        if changes:
            items = ", ".join(f"<code>{_e(k)}: {_e(fmt_value(v, None))}</code>" for k, v in changes)
            out.append(f"<p>Changes from the defaults: {items}</p>")
        notes = _notes(members)
        if notes:
            out.append('<ul class="warn">' + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>")
    return out


def _runs_line(members: Sequence[Any]) -> str:
    members = sorted(members, key=lambda m: str((m.params or {}).get("train.seed", "")).zfill(12))  # by seed
    seeds = [(m.params or {}).get("train.seed", MISSING) for m in members]
    names = short_labels([m.run for m in members])
    parts = [
        f"{n} ({m.status}" + (f", seed {s}" if s is not MISSING else "") + ")" for n, m, s in zip(names, members, seeds)
    ]
    return ("Run: " if len(parts) == 1 else f"{len(parts)} runs: ") + "; ".join(parts)


def _changes(path: Path) -> list[tuple[str, Any]]:
    try:
        details = describe_run(path)
    except MlpLabError:
        return []
    return [
        (k, v) for k, v, default in details.config_rows if k not in ("name", "train.seed") and default is not MISSING
    ]


def _notes(members: Sequence[Any]) -> list[str]:
    """The warnings and endings the runs recorded, each once."""
    seen: dict[str, None] = {}
    for m in members:
        summary = runs.load_run(m.path).summary or {}
        for text in [*(summary.get("warnings") or []), summary.get("message") if m.status != "completed" else None]:
            if text:
                seen.setdefault(str(text))
    return list(seen)
