"""The search's figure (``sweep --search``, ``compare --plot`` of a search folder, the report):
each searched parameter against the metric, one panel each, the lecture's coarse-search
scatter. matplotlib is imported inside the functions, as in ``plots.py``."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlp_lab.plots import check_plot_path, new_figure, save_figure


def plot_search(rows: Sequence[dict[str, Any]], spec: Any, path: Path, title: str = "") -> Path:
    fmt = check_plot_path(path)
    save_figure(search_figure(rows, spec, title), path, fmt)
    return Path(path)


def search_figure(rows: Sequence[dict[str, Any]], spec: Any, title: str = "") -> Any:
    """A search's trials: its metric against each searched parameter, one panel each (log
    axis for log ranges, a choice's options side by side), pruned trials faded at the value
    they reached, the best marked."""
    keys = list(spec.space)
    cols = min(3, len(keys))
    nrows = math.ceil(len(keys) / cols)
    fig, axes = new_figure(nrows, cols, width=4.2 * cols, height=3.4 * nrows + 0.6)
    done = [r for r in rows if r["status"] == "completed" and r["metric"] is not None]
    best = (max if spec.direction == "maximize" else min)(done, key=lambda r: r["metric"]) if done else None
    for i, key in enumerate(keys):
        _panel(axes[i // cols][i % cols], key, spec, rows, best)
    for j in range(len(keys), nrows * cols):
        axes[j // cols][j % cols].set_visible(False)
    fig.legend(handles=_legend(), loc="outside lower center", ncol=3, fontsize="small", frameon=False)
    # A long title (a sweep folder's name) wraps to the figure's width instead of running off it.
    text = title or f"{len(rows)} trials: {spec.metric} against each searched value"
    fig.suptitle(textwrap.fill(text, width=44 * cols), fontsize="medium")
    return fig


def _panel(ax: Any, key: str, spec: Any, rows: Sequence[dict[str, Any]], best: dict[str, Any] | None) -> None:
    """One searched parameter: every trial that reached a value, the best as a star."""
    scale = 100.0 if spec.metric.endswith("acc") else 1.0
    ((kind, args),) = spec.space[key].items()
    ticks = [str(v) for v in args] if kind == "choice" else None
    for r in rows:
        if r["metric"] is None:
            continue
        x = ticks.index(str(r["values"][key])) if ticks else r["values"][key]
        pruned = r["status"] != "completed"
        ax.scatter(
            [x],
            [scale * r["metric"]],
            s=28,
            alpha=0.35 if pruned else 0.9,
            zorder=2,
            facecolors="none" if pruned else "tab:blue",
            edgecolors="tab:gray" if pruned else "tab:blue",
        )
    if best is not None:
        x = ticks.index(str(best["values"][key])) if ticks else best["values"][key]
        ax.scatter([x], [scale * best["metric"]], marker="*", s=220, color="tab:red", zorder=3, label="best")
    if ticks:
        ax.set_xticks(range(len(ticks)), ticks)
        ax.set_xlim(-0.5, len(ticks) - 0.5)
    elif kind.startswith("log"):
        from matplotlib.ticker import NullFormatter

        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # 2x10^-3, 3x10^-3, ... overlap on a narrow panel
    ax.set(xlabel=key, ylabel=f"{spec.metric}{' (%)' if scale > 1 else ''}")
    ax.grid(True, alpha=0.3)


def _legend() -> list[Any]:
    from matplotlib.lines import Line2D

    pruned = "pruned (its last epoch)"
    return [
        Line2D([], [], marker="o", linestyle="", color="tab:blue", label="completed"),
        Line2D([], [], marker="o", linestyle="", markerfacecolor="none", color="tab:gray", alpha=0.5, label=pruned),
        Line2D([], [], marker="*", linestyle="", color="tab:red", markersize=12, label="best"),
    ]
