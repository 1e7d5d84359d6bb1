"""``mlp-lab show``: one run folder in detail: summary, the config fields that differ from
the defaults, the per-epoch table and the files."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlp_lab import runs
from mlp_lab.errors import RunError
from mlp_lab.keys import flatten
from mlp_lab.results.render import STATUS_STYLE
from mlp_lab.results.rows import headline_metrics
from mlp_lab.results.selection import defaults_for
from mlp_lab.results.values import MISSING, canon, fmt_metric, fmt_seconds, fmt_value, number


@dataclass
class RunDetails:
    record: runs.RunRecord
    metrics: dict[str, Any]
    params: dict[str, Any] | None
    config_rows: list[tuple[str, Any, Any]]  # key, value, default (MISSING if none/unknown)
    files: list[tuple[str, int]]


def describe_run(path: str | Path, all_params: bool = False) -> RunDetails:
    """Read one run folder for ``show``. Raises RunError when it is not a run."""
    path = Path(path)
    if not path.exists():
        raise RunError(f"{path}: no such run folder{runs.near_folder(path)}")
    if not runs.is_run_dir(path):
        if path.is_dir():
            children, _ = runs.discover_runs([path])
            if children:
                raise RunError(
                    f"{path} is not a run but holds {len(children)} run folder(s); "
                    f"show one of them (e.g. mlp-lab show {children[0]}) or compare them: mlp-lab compare {path}"
                )
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
            d = defaults.get(k, MISSING)
            if all_params or k == "name" or d is MISSING or canon(d) != canon(v):
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
    return RunDetails(
        record=rec,
        metrics=headline_metrics(rec.summary, rec.metrics),
        params=params,
        config_rows=config_rows,
        files=files,
    )


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def show_renderables(d: RunDetails, all_params: bool = False) -> list[Any]:
    """What ``mlp-lab show`` prints, as Rich renderables (summary, config, epochs, files)."""
    from rich.text import Text

    rec = d.record
    title = Text()
    title.append(rec.name, style="bold")
    title.append("  ")
    title.append(rec.status, style=STATUS_STYLE.get(rec.status, ""))
    return [
        title,
        _summary_grid(d),
        Text(""),
        *_config_part(d, all_params),
        Text(""),
        _epochs_part(d),
        Text(""),
        Text(f"files in {rec.path}", style="bold"),
        _files_table(d),
    ]


def _summary_grid(d: RunDetails) -> Any:
    """Epochs, final and best metrics, time, environment, message, warnings, problems."""
    from rich.table import Table
    from rich.text import Text

    rec, m = d.record, d.metrics
    s = rec.summary or {}
    info = Table.grid(padding=(0, 2))
    info.add_column(style="bold")
    info.add_column()
    planned = m.get("epochs_planned")
    info.add_row(
        "epochs",
        f"{m.get('epochs_done') if m.get('epochs_done') is not None else '-'}"
        + (f" of {planned}" if planned is not None else ""),
    )
    if m.get("test_acc") is not None:
        info.add_row(
            "final",
            f"test acc {fmt_metric('test_acc', m['test_acc'])}, test loss {fmt_metric('test_loss', m['test_loss'])}, "
            f"train loss {fmt_metric('train_loss', m['train_loss'])}, train acc {fmt_metric('train_acc', m['train_acc'])}",
        )
    if m.get("selected_epoch") is not None:
        by = s.get("selected_by") or "val_acc"
        chosen = s.get(f"selected_{by}")
        value = fmt_metric(by, chosen) if chosen is not None else "-"
        info.add_row(
            "chosen",
            f"epoch {m['selected_epoch']} on validation ({by} {value}); test acc there "
            f"{fmt_metric('test_acc', m.get('selected_test_acc'))}",
        )
    elif m.get("best_test_acc") is not None:
        info.add_row(
            "test max",
            f"{fmt_metric('test_acc', m['best_test_acc'])} at epoch {m.get('best_epoch')} "
            "(chosen on test: optimistic; add data.val_split to choose on validation)",
        )
    if m.get("duration_s") is not None:
        info.add_row("duration", fmt_seconds(m["duration_s"]))
    for key, label in (("device", "device"), ("started_at", "started"), ("finished_at", "finished")):
        if s.get(key):
            info.add_row(label, str(s[key]))
    if isinstance(s.get("param_count"), int):
        info.add_row("parameters", f"{s['param_count']:,}")
    versions = ", ".join(
        f"{label} {s[k]}" for k, label in (("torch_version", "torch"), ("mlp_lab_version", "mlp-lab")) if s.get(k)
    )
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
    return info


def _config_part(d: RunDetails, all_params: bool) -> list[Any]:
    """The config fields that differ from the defaults (all with --all), defaults beside them."""
    from rich.table import Table
    from rich.text import Text

    if d.params is None:
        return [Text("config: unreadable", style="yellow")]
    heading = "config" if all_params else "config (what differs from the defaults; --all shows every field)"
    cfg = Table(box=None, show_header=False, pad_edge=False, padding=(0, 2))
    cfg.add_column()
    cfg.add_column()
    cfg.add_column(style="dim")
    for k, v, default in d.config_rows:
        same = default is MISSING or canon(default) == canon(v) or k == "name"
        note = "" if same else f"default: {fmt_value(default, 40)}"
        cfg.add_row(k, fmt_value(v, 60), note)
    return [Text(heading, style="bold"), cfg]


def _epochs_part(d: RunDetails) -> Any:
    """One row per finished epoch; the epoch chosen on validation highlighted (without a
    validation split, none is: the best test epoch is no choice to make)."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    rec = d.record
    if not rec.metrics:
        return Text("epochs: none finished yet", style="dim")
    keys = ["epoch", "train_loss", "train_acc"]
    if any("val_acc" in r for r in rec.metrics):
        keys += ["val_loss", "val_acc"]
    keys += ["test_loss", "test_acc", "lr", "seconds"]
    ep = Table(
        box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold", title="epochs", title_justify="left"
    )
    for k in keys:
        ep.add_column(k, justify="right")
    best_epoch = d.metrics.get("selected_epoch")
    for r in rec.metrics:
        cells = []
        for k in keys:
            v = r.get(k)
            if k == "epoch":
                cells.append(str(v))
            elif k == "lr":
                cells.append("-" if number(v) is None else f"{v:.4g}")
            elif k == "seconds":
                seconds = number(v)
                cells.append("-" if seconds is None else fmt_seconds(seconds))
            else:
                cells.append(fmt_metric(k, number(v)))
        ep.add_row(*cells, style="bold green" if r.get("epoch") == best_epoch else None)
    return ep


def _files_table(d: RunDetails) -> Any:
    from rich.table import Table

    ft = Table(box=None, show_header=False, pad_edge=False, padding=(0, 2))
    ft.add_column()
    ft.add_column(justify="right")
    for name, size in d.files:
        ft.add_row(name, fmt_bytes(size))
    return ft


def show_text(d: RunDetails, all_params: bool = False, width: int = 100) -> str:
    from rich.console import Console

    buf = io.StringIO()
    console = Console(file=buf, width=width, force_terminal=False, color_system=None, highlight=False, emoji=False)
    for r in show_renderables(d, all_params):
        console.print(r)
    return buf.getvalue()
