"""Figures of what diagnostics measured: ``inspect --plot`` and the diagnostics figure of
``show --plot`` / ``compare --plot``.

matplotlib is imported inside the functions (Agg backend, no pyplot, no global state),
so importing this module costs nothing and never needs a display. No torch import
either: ``compare`` must start fast.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlp_lab import atomic_files, runs
from mlp_lab.plots import PlotError, check_plot_path, new_figure, save_figure

MAX_RUNS = 6  # diagnostics rows in one figure; more would be unreadable
FIGURE_WIDTH = 13.0  # inches
ROW_HEIGHT = 3.3  # inches per run
TITLE_CHARS_PER_INCH = 11  # a row title at "medium" size, bold
HIST_PER_ROW = 10  # inspect --plot: histograms per row before wrapping
HIST_BINS = 60


def diagnostics_plot_path(path: Path) -> Path:
    """Where ``show/compare --plot curves.png`` draws diagnostics: ``curves.diagnostics.png``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.diagnostics{path.suffix}")


def read_diagnostics(run_dir: Path) -> list[dict[str, Any]]:
    """The records of a run's diagnostics.jsonl ([] when it has none); unreadable lines skipped."""
    path = Path(run_dir) / runs.DIAGNOSTICS
    if not path.is_file():
        return []
    try:
        return atomic_files.read_jsonl(path)[0]
    except OSError:
        return []


# --- inspect --plot: activation histograms, one per layer --------------------------------


def plot_activation_histograms(inspection: Any, path: Path, title: str = "") -> Path:
    """A row of small histograms, one per hidden layer, of the post-activations of
    :func:`mlp_lab.diagnostics.inspect_network` (the lecture's figure)."""
    fmt = check_plot_path(path)
    layers = [s for s in inspection.layers if s.values is not None]
    if not layers:
        raise PlotError("nothing to plot: the network has no hidden layer")
    ncols = min(len(layers), HIST_PER_ROW)
    nrows = math.ceil(len(layers) / ncols)
    fig, axes = new_figure(nrows, ncols, width=max(4.0, 1.7 * ncols), height=2.1 * nrows + 0.5)
    act = layers[0].activation
    bounded = {"tanh": (-1.0, 1.0), "sigmoid": (0.0, 1.0)}.get(act)
    for k, ax in enumerate(axes.flat):
        if k >= len(layers):
            ax.set_visible(False)
            continue
        s = layers[k]
        v = s.values.float().numpy()
        rng = bounded
        if rng is None:
            lo, hi = float(v.min()), float(v.max())
            rng = (lo, hi) if hi > lo else (lo - 1.0, hi + 1.0)
        ax.hist(v, bins=HIST_BINS, range=rng, color="C0")
        ax.set_title(f"layer {s.layer}\nmean {s.post_mean:.2g}, std {s.post_std:.2g}", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.set_yticks([])
    fig.suptitle(title or f"{act} activations per layer ({inspection.inputs})", fontsize=9)
    save_figure(fig, path, fmt)
    return Path(path)


# --- training diagnostics over time --------------------------------------------------


def _step_x(r: dict[str, Any]) -> float | None:
    e, s, n = r.get("epoch"), r.get("step"), r.get("steps")
    if not isinstance(e, int) or not isinstance(s, int) or not isinstance(n, int) or n <= 0:
        return None
    return e - 1 + s / n  # epoch 1's first step is at 0: the x axis counts finished epochs


def _series(records: Sequence[dict[str, Any]], kind: str, key: str) -> dict[int, tuple[list[float], list[float]]]:
    """layer -> (xs, ys) of ``key`` over the records of ``kind`` ("step" or "probe")."""
    out: dict[int, tuple[list[float], list[float]]] = {}
    for r in records:
        if r.get("kind") != kind or not isinstance(r.get("layers"), list):
            continue
        x = _step_x(r) if kind == "step" else r.get("epoch")
        if not isinstance(x, (int, float)):
            continue
        for d in r["layers"]:
            if not isinstance(d, dict):
                continue
            v, layer = d.get(key), d.get("layer")
            if isinstance(layer, int) and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                xs, ys = out.setdefault(layer, ([], []))
                xs.append(float(x))
                ys.append(float(v))
    return out


def _output_layer(records: Sequence[dict[str, Any]]) -> int | None:
    for r in records:
        for d in r.get("layers") or []:
            if isinstance(d, dict) and d.get("output"):
                return d.get("layer")
    return None


def _draw_layers(
    ax: Any,
    series: dict[int, tuple[list[float], list[float]]],
    n_layers: int,
    output_layer: int | None,
    log: bool,
    marker: str | None = None,
) -> bool:
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    drawn = False
    for layer in sorted(series):
        xs, ys = series[layer]
        if log:
            kept = [(x, y) for x, y in zip(xs, ys) if y > 0]  # a log axis has no place for y <= 0
            xs, ys = [x for x, _ in kept], [y for _, y in kept]
        if not xs:
            continue
        label = "output" if layer == output_layer else f"layer {layer}"
        colour = "black" if layer == output_layer else cmap(0.9 * (layer - 1) / max(1, n_layers - 1))
        ax.plot(
            xs,
            ys,
            color=colour,
            marker=marker or ("o" if len(xs) <= 3 else None),
            markersize=3,
            linewidth=1.2,
            label=label,
        )
        drawn = True
    if log and drawn:
        ax.set_yscale("log")
    if not drawn:
        # e.g. model.init: zeros: every gradient is exactly 0, and the update ratio of a
        # zero weight matrix is undefined (recorded as null)
        ax.text(
            0.5,
            0.5,
            "all values are 0" if any(series.values()) and log else "no values (0 or undefined)",
            transform=ax.transAxes,
            ha="center",
            va="center",
            color="grey",
        )
    return drawn


def plot_diagnostics(
    run_records: Sequence[tuple[str, Sequence[dict[str, Any]]]], path: Path, title: str | None = None
) -> Path:
    """One row per run (``(label, diagnostics records)``), three panels each:

    * weight-gradient norm per layer over training (log scale; the output layer in black),
    * dead fraction per layer (ReLU family) or saturated fraction (sigmoid, tanh) on the
      probe batch after each epoch (epoch 0 = initialisation),
    * update/weight ratio per layer per step (log scale).

    Runs without diagnostics are skipped; PlotError when none has any.
    """
    fmt = check_plot_path(path)
    save_figure(diagnostics_figure(run_records, title), path, fmt)
    return Path(path)


def diagnostics_figure(run_records: Sequence[tuple[str, Sequence[dict[str, Any]]]], title: str | None = None) -> Any:
    """The figure ``plot_diagnostics`` writes (PlotError when no run has diagnostics)."""
    usable = [(label, recs) for label, recs in run_records if any(r.get("kind") == "step" for r in recs)]
    if not usable:
        raise PlotError("nothing to plot: no run has diagnostics.jsonl (train with --diagnose)")
    shown = usable[:MAX_RUNS]
    fig, _ = new_figure(0, 0, width=FIGURE_WIDTH, height=ROW_HEIGHT * len(shown) + 0.5)
    # One sub-figure per run: its label is the row's own title, left-aligned over the
    # whole row (wrapped when long), so it is never cut at the figure's edge.
    rows = fig.subfigures(len(shown), 1, squeeze=False)[:, 0]
    for sub, (label, recs) in zip(rows, shown):
        sub.suptitle(
            textwrap.fill(label, width=int(FIGURE_WIDTH * TITLE_CHARS_PER_INCH)),
            x=0.01,
            ha="left",
            fontsize="medium",
            fontweight="bold",
        )
        g_ax, a_ax, u_ax = row = sub.subplots(1, 3)
        out_layer = _output_layer(recs)
        grads = _series(recs, "step", "grad_norm")
        n_layers = max(grads, default=1)
        _draw_layers(g_ax, grads, n_layers, out_layer, log=True)
        g_ax.set(title="weight-gradient norm", xlabel="epoch", ylabel="||grad W||")

        dead = _series(recs, "probe", "dead")
        if dead:
            _draw_layers(a_ax, dead, n_layers, out_layer, log=False, marker="o")
            a_ax.set(title="dead units (probe batch)", ylabel="fraction dead")
        else:
            sat = _series(recs, "probe", "saturated")
            if sat:
                _draw_layers(a_ax, sat, n_layers, out_layer, log=False, marker="o")
                a_ax.set(title="saturated outputs (probe batch)", ylabel="fraction saturated")
            else:
                _draw_layers(a_ax, _series(recs, "probe", "post_std"), n_layers, out_layer, log=True, marker="o")
                a_ax.set(title="activation std (probe batch)", ylabel="std")
        if dead or not a_ax.get_yscale() == "log":
            a_ax.set_ylim(-0.03, 1.03)
        a_ax.set(xlabel="epoch")

        _draw_layers(u_ax, _series(recs, "step", "update_ratio"), n_layers, out_layer, log=True)
        u_ax.axhline(1e-3, color="grey", linestyle=":", linewidth=1)
        u_ax.set(title="update / weight ratio", xlabel="epoch", ylabel="||dW|| / ||W||")
        for ax in row:
            ax.grid(True, alpha=0.3)
        handles, labels = g_ax.get_legend_handles_labels()
        if handles:
            u_ax.legend(
                handles,
                labels,
                fontsize="x-small",
                loc="center left",
                bbox_to_anchor=(1.01, 0.5),
                frameon=False,
                ncol=1 if len(handles) <= 12 else 2,
            )
    more = len(usable) - len(shown)
    suffix = f" (the first {len(shown)} of {len(usable)} with diagnostics)" if more > 0 else ""
    fig.suptitle((title or "training diagnostics") + suffix)
    return fig


def plot_run_diagnostics(groups: Sequence[Sequence[Path]], labels: Sequence[str], plot_path: Path) -> Path | None:
    """For ``show --plot FILE`` / ``compare --plot FILE``: when any of the runs has
    diagnostics, draw them to ``FILE.diagnostics.<ext>`` and return that path; else None.
    Each of ``groups`` is one row's run folders: a seed group is drawn as the mean of its
    runs' statistics (the runs share a config, so they record the same steps)."""
    records = group_records(groups, labels)
    if not records:
        return None
    return plot_diagnostics(records, diagnostics_plot_path(plot_path))


def group_records(groups: Sequence[Sequence[Path]], labels: Sequence[str]) -> list[tuple[str, list[dict[str, Any]]]]:
    """(label, diagnostics records) for each row whose runs recorded diagnostics: one run's
    records as they are, several runs' as their mean (``mean_records``)."""
    out = []
    for dirs, label in zip(groups, labels):
        per_run = [recs for recs in (read_diagnostics(d) for d in dirs) if any(r.get("kind") == "step" for r in recs)]
        if len(per_run) == 1:
            out.append((label, per_run[0]))
        elif per_run:
            out.append((f"{label} (mean of {len(per_run)} runs)", mean_records(per_run)))
    return out


def mean_records(runs: Sequence[Sequence[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Diagnostics records of several runs -> one run's worth: each number the mean over
    the runs that recorded it at the same (kind, epoch, step) for the same layer."""
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for recs in runs:
        for r in recs:
            if not isinstance(r.get("layers"), list):
                continue
            slot = merged.setdefault((r.get("kind"), r.get("epoch"), r.get("step")), {**r, "layers": {}})
            for d in r["layers"]:
                if not isinstance(d, dict) or not isinstance(d.get("layer"), int):
                    continue
                layer = slot["layers"].setdefault(d["layer"], {})
                for k, v in d.items():
                    if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "layer":
                        # A list of the runs' numbers, replacing what a run without one left
                        # (a diverged seed's null update ratio).
                        numbers = layer.get(k)
                        if not isinstance(numbers, list):
                            numbers = layer[k] = []
                        numbers.append(float(v))
                    else:
                        layer.setdefault(k, v)
    out = []
    for slot in merged.values():
        layers = [
            {k: (sum(v) / len(v) if isinstance(v, list) else v) for k, v in fields.items()} | {"layer": i}
            for i, fields in sorted(slot["layers"].items())
        ]
        out.append({**slot, "layers": layers})
    return out
