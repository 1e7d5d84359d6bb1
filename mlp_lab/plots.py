"""Learning-curve figures for ``compare --plot`` and ``show --plot``.

matplotlib is imported inside the functions, with the Agg backend and no pyplot (no
global figure state, no GUI): commands that draw nothing never pay for it.
"""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlp_lab import atomic_files
from mlp_lab.errors import MlpLabError

PLOT_FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}
MAX_LEGEND = 15
FIGURE_WIDTH = 11.0  # inches
# Legend text at fontsize "small" (8.3 pt), measured on DejaVu Sans: about 15 characters
# to the inch, and a line (with its spacing) takes about 0.2 inch.
LEGEND_CHARS_PER_INCH = 15
LEGEND_LINE_HEIGHT = 0.2


def run_colours(n: int) -> list[Any]:
    """One colour per run: matplotlib's ten, or its twenty when there are more runs."""
    from matplotlib import colormaps

    if n <= 10:
        return [colormaps["tab10"](i) for i in range(n)]
    # tab20 holds ten hues, each dark then light: all the dark ones first, then the light.
    order = [*range(0, 20, 2), *range(1, 20, 2)]
    return [colormaps["tab20"](order[i % 20]) for i in range(n)]


def legend_layout(labels: Sequence[str], width: float) -> tuple[list[str], int]:
    """Legend entries wrapped to fit a figure ``width`` inches wide, and how many columns
    they take: as many as fit side by side, so short labels share lines and long ones
    get whole lines (and wrap at commas when even a line is too short)."""
    line = int(width * LEGEND_CHARS_PER_INCH) - 6  # less the handle and padding
    entries = [textwrap.fill(label, width=line, break_long_words=False) for label in labels]
    longest = max((len(part) for e in entries for part in e.split("\n")), default=1)
    ncol = max(1, min(len(entries), (line + 6) // (longest + 8)))
    return entries, ncol


class PlotError(MlpLabError):
    """The figure cannot be drawn or written."""


def check_plot_path(path: Path) -> str:
    """The figure format for ``path``; PlotError for a name matplotlib can't write or a missing folder."""
    path = Path(path)
    fmt = PLOT_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise PlotError(f"--plot {path}: the file name must end in {', '.join(PLOT_FORMATS)}")
    if path.is_dir():
        raise PlotError(f"--plot {path}: is a folder; give a file name such as figure.png")
    if not path.parent.is_dir():
        raise PlotError(f"--plot {path}: folder {path.parent} does not exist")
    return fmt


def new_figure(nrows: int, ncols: int, width: float, height: float) -> tuple[Any, Any]:
    """A headless figure with a grid of axes (``axes[row][col]``); no axes (None) for a
    0 x 0 grid, when the caller lays the figure out itself (sub-figures).

    Figure + FigureCanvasAgg instead of pyplot: no global state, no GUI backend, and
    matplotlib is imported only when a plot is asked for.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, squeeze=False) if nrows and ncols else None


def save_figure(fig: Any, path: Path, fmt: str) -> None:
    """Write the figure atomically: a failed write never leaves half a PNG behind."""
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=120)
    try:
        atomic_files.atomic_write_bytes(Path(path), buf.getvalue())
    except OSError as e:
        raise PlotError(f"--plot {path}: cannot write ({e.strerror or e})") from None


def _series(history: Sequence[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    xs, ys = [], []
    for r in history:
        e, v = r.get("epoch"), r.get(key)
        if isinstance(e, int) and isinstance(v, (int, float)) and not isinstance(v, bool):
            xs.append(e)
            ys.append(float(v) if math.isfinite(v) else math.nan)
    return xs, ys


def _maybe_log(ax: Any, values: list[float]) -> None:
    finite = [v for v in values if math.isfinite(v) and v > 0]
    if finite and max(finite) / min(finite) > 30:
        ax.set_yscale("log")


History = Sequence[dict[str, Any]]


def plot_comparison(
    groups: Sequence[Sequence[History]],
    labels: Sequence[str],
    path: Path,
    best: int | None = None,
    title: str | None = None,
) -> Path:
    """Test accuracy and training loss against epoch, one line per row of the comparison.

    Each of ``groups`` is the histories of one row's runs: a single run is drawn as it
    is, a seed group as the mean over its runs with a band of ±1 standard deviation.
    ``best`` is the index of the row to draw thicker. Legends beyond MAX_LEGEND rows
    would hide the curves, so they are left out then (the title says how many).
    """
    fmt = check_plot_path(path)
    fig = comparison_figure(groups, labels, best, title)
    save_figure(fig, path, fmt)
    return Path(path)


def comparison_figure(
    groups: Sequence[Sequence[History]], labels: Sequence[str], best: int | None = None, title: str | None = None
) -> Any:
    """The figure ``plot_comparison`` writes (PlotError when there is nothing to draw)."""
    if not any(_series(h, "test_acc")[0] or _series(h, "train_loss")[0] for g in groups for h in g):
        raise PlotError("nothing to plot: no run has a finished epoch in its metrics.jsonl")
    if all(len(_series(h, "test_acc")[0]) <= 1 and len(_series(h, "train_loss")[0]) <= 1 for g in groups for h in g):
        return _final_bars(groups, labels, best, title)  # one epoch each: curves would be lone dots
    show_legend = len(groups) <= MAX_LEGEND
    entries, ncol = legend_layout(labels, FIGURE_WIDTH) if show_legend else ([], 1)
    rows = math.ceil(len(entries) / ncol)
    lines = rows * max((e.count("\n") + 1 for e in entries), default=0)
    fig, axes = new_figure(1, 2, width=FIGURE_WIDTH, height=4.2 + LEGEND_LINE_HEIGHT * lines)
    acc_ax, loss_ax = axes[0]
    acc_key = held_out_key(groups)
    losses: list[float] = []
    colours = run_colours(len(groups))
    for i, (members, label) in enumerate(zip(groups, entries or labels)):
        style = {"linewidth": 2.6 if i == best else 1.3, "zorder": 3 if i == best else 2, "color": colours[i]}
        drawn = _draw_mean(acc_ax, members, acc_key, 100.0, label=label, markers=True, **style)
        losses += _draw_mean(loss_ax, members, "train_loss", 1.0, label=None if drawn else label, **style)
    held_out = "validation" if acc_key == "val_acc" else "test"
    acc_ax.set(xlabel="epoch", ylabel=f"{held_out} accuracy (%)", title=f"{held_out} accuracy")
    loss_ax.set(xlabel="epoch", ylabel="training loss", title="training loss")
    _maybe_log(loss_ax, losses)
    for ax in (acc_ax, loss_ax):
        ax.grid(True, alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    if show_legend:
        # Below the axes, across the whole figure: a long label (every field that
        # differs, values in full) gets the width it needs and never squeezes the plots.
        handles = acc_ax.get_legend_handles_labels()
        loss_handles = loss_ax.get_legend_handles_labels()
        fig.legend(
            handles[0] + loss_handles[0],
            handles[1] + loss_handles[1],
            loc="outside lower center",
            ncol=ncol,
            fontsize="small",
            frameon=False,
        )
    if title is None:
        n_runs = sum(len(g) for g in groups)
        title = f"{n_runs} run{'s' if n_runs != 1 else ''}"
        if n_runs > len(groups):
            title += f" in {len(groups)} seed group{'s' if len(groups) != 1 else ''}: mean and ±1 std band"
        if len(groups) > MAX_LEGEND:
            title += f" (no legend above {MAX_LEGEND}; the thick line is the best; --top N picks fewer)"
    fig.suptitle(title)
    return fig


def held_out_key(groups: Sequence[Sequence[History]]) -> str:
    """The accuracy the curves show: validation when the runs have it (what a choice is made
    on), else test."""
    return "val_acc" if any(_series(h, "val_acc")[0] for g in groups for h in g) else "test_acc"


def _final_bars(groups: Sequence[Sequence[History]], labels: Sequence[str], best: int | None, title: str | None) -> Any:
    """Runs of a single epoch: their validation (else test) accuracy and training loss as
    bars (a seed group's mean, with ±1 std), numbered as the comparison's rows, the legend below."""
    acc_key = held_out_key(groups)
    entries, ncol = legend_layout([f"{i}. {label}" for i, label in enumerate(labels, 1)], FIGURE_WIDTH)
    rows = math.ceil(len(entries) / ncol) * max((e.count("\n") + 1 for e in entries), default=0)
    fig, axes = new_figure(1, 2, width=FIGURE_WIDTH, height=4.2 + LEGEND_LINE_HEIGHT * rows)
    colours = run_colours(len(groups))
    for ax, key, scale, name in (
        (axes[0][0], acc_key, 100.0, f"{'validation' if acc_key == 'val_acc' else 'test'} accuracy (%)"),
        (axes[0][1], "train_loss", 1.0, "training loss"),
    ):
        for i, members in enumerate(groups):
            _, ys, stds = mean_series(members, key)
            if ys:
                ax.bar(
                    i + 1,
                    scale * ys[-1],
                    yerr=scale * stds[-1] if len(members) > 1 else None,
                    capsize=4,
                    color=colours[i],
                    edgecolor="black" if i == best else colours[i],
                    linewidth=2 if i == best else 0,
                    label=entries[i] if key == acc_key else None,
                )
                ax.annotate(
                    f"{scale * ys[-1]:.{1 if scale > 1 else 3}f}",
                    (i + 1, scale * ys[-1]),
                    ha="center",
                    va="bottom",
                    fontsize="small",
                    xytext=(0, 2),
                    textcoords="offset points",
                )
        ax.set(xlabel="row of the comparison", ylabel=name, title=f"{name} after 1 epoch")
        ax.set_xticks(range(1, len(groups) + 1))
        ax.grid(True, axis="y", alpha=0.3)
    handles, texts = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, texts, loc="outside lower center", ncol=ncol, fontsize="small", frameon=False)
    fig.suptitle(
        title
        or "1 epoch per run: final values"
        + (" (seed groups: mean and ±1 std)" if any(len(g) > 1 for g in groups) else "")
    )
    return fig


def mean_series(histories: Sequence[History], key: str) -> tuple[list[int], list[float], list[float]]:
    """Per epoch, the mean of ``key`` over the runs that reached it and its sample std (0
    where one run did). NaN values (a diverged run) count as missing."""
    by_epoch: dict[int, list[float]] = {}
    for h in histories:
        for x, y in zip(*_series(h, key)):
            if math.isfinite(y):
                by_epoch.setdefault(x, []).append(y)
    xs = sorted(by_epoch)
    means, stds = [], []
    for x in xs:
        v = by_epoch[x]
        m = math.fsum(v) / len(v)
        means.append(m)
        stds.append(math.sqrt(math.fsum((y - m) ** 2 for y in v) / (len(v) - 1)) if len(v) > 1 else 0.0)
    return xs, means, stds


def _draw_mean(
    ax: Any, members: Sequence[History], key: str, scale: float, label: str | None, markers: bool = False, **style: Any
) -> list[float]:
    """One row's line (and band, for several runs); returns the values drawn."""
    if len(members) == 1:
        xs, ys = _series(members[0], key)
        stds = [0.0] * len(ys)
    else:
        xs, ys, stds = mean_series(members, key)
    if not xs:
        return []
    # A series of one point (a run pruned or stopped after its first epoch) is no line: only
    # a marker shows it, in every panel.
    marker = "o" if (markers and len(xs) < 20) or len(xs) == 1 else None
    ax.plot(xs, [scale * y for y in ys], marker=marker, markersize=3, label=label, **style)
    if len(members) > 1:
        ax.fill_between(
            xs,
            [scale * (y - s) for y, s in zip(ys, stds)],
            [scale * (y + s) for y, s in zip(ys, stds)],
            color=style["color"],
            alpha=0.18,
            linewidth=0,
            zorder=1,
        )
    return ys


def plot_run(history: Sequence[dict[str, Any]], path: Path, title: str = "") -> Path:
    """One run: loss and accuracy against epoch, train and test (and val when present)."""
    fmt = check_plot_path(path)
    if not history:
        raise PlotError("nothing to plot: this run has no finished epoch in its metrics.jsonl")
    fig, axes = new_figure(1, 2, width=10.0, height=4.2)
    loss_ax, acc_ax = axes[0]
    losses: list[float] = []
    for split, style in (("train", "-"), ("test", "-"), ("val", "--")):
        xs, ys = _series(history, f"{split}_loss")
        if xs:
            loss_ax.plot(xs, ys, style, marker="o" if len(xs) < 30 else None, markersize=3, label=split)
            losses.extend(ys)
        xs, ys = _series(history, f"{split}_acc")
        if xs:
            acc_ax.plot(
                xs, [100 * y for y in ys], style, marker="o" if len(xs) < 30 else None, markersize=3, label=split
            )
    loss_ax.set(xlabel="epoch", ylabel="loss", title="loss")
    acc_ax.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    _maybe_log(loss_ax, losses)
    for ax in (loss_ax, acc_ax):
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
        ax.xaxis.get_major_locator().set_params(integer=True)
    if title:
        fig.suptitle(title)
    save_figure(fig, path, fmt)
    return Path(path)


def plot_lr_range(result: Any, path: Path) -> Path:
    """``mlp-lab check``'s range test: the smoothed loss against the learning rate (log
    axis), the range where it falls shaded, the suggestion and the config's lr marked."""
    fmt = check_plot_path(path)
    lrs, losses = result.curve.get("lr") or [], result.curve.get("loss") or []
    if not lrs:
        raise PlotError(f"nothing to plot: {result.config}'s optimizer has no learning-rate range test")
    fig, axes = new_figure(1, 1, width=8.0, height=4.6)
    ax = axes[0][0]
    ax.plot(lrs, losses, color="tab:blue", linewidth=1.8, label="loss (smoothed)")
    ax.set_xscale("log")
    if result.lr_range is not None:
        ax.axvspan(*result.lr_range, color="tab:green", alpha=0.12, label="the loss falls")
    if result.suggested_lr is not None:
        ax.axvline(
            result.suggested_lr,
            color="tab:green",
            linewidth=2,
            label=f"suggested lr {result.suggested_lr:.2g} (lowest loss / 10)",
        )
    if result.config_lr is not None:
        ax.axvline(
            result.config_lr,
            color="tab:red",
            linestyle="--",
            linewidth=1.8,
            label=f"the config's lr {result.config_lr:g}",
        )
        ax.set_xlim(min(lrs[0], result.config_lr) / 2, max(lrs[-1], result.config_lr) * 2)
    low, high = min(losses), max(losses)
    ax.set_ylim(low - 0.05 * (high - low), min(high, losses[0] * 1.6) + 0.05 * (high - low))
    ax.set(
        xlabel="learning rate (log scale)", ylabel="training loss", title=f"{result.config}: learning-rate range test"
    )
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize="small", loc="upper left")
    save_figure(fig, path, fmt)
    return Path(path)
