"""The figures a person looks at: nothing cut off, nothing on top of anything else.

Each test draws the figure and measures what matplotlib laid out (in pixels, with its
own renderer): every text inside the figure, the legend clear of the axes and of the
title, and legend entries that are the labels in full.
"""

from __future__ import annotations

import pytest

from mlp_lab.diagnostic_plots import diagnostics_figure
from mlp_lab.plots import comparison_figure

LONG = "hidden=[256, 256, 256, 256, 256, 256, 256, 256], activation=leaky_relu, init=kaiming_normal, lr=0.0003"
SHORT = [
    "relu",
    "tanh",
    "sigmoid",
    "gelu",
    "elu",
    "silu",
    "prelu",
    "maxout",
    "leaky_relu",
    "relu, lr=0.1",
    "tanh, lr=0.1",
    "sigmoid, lr=0.1",
]


def _history(n: int, i: int) -> list[dict]:
    return [{"epoch": e, "test_acc": 0.5 + 0.03 * e + 0.01 * i, "train_loss": 1.0 / (e + i)} for e in range(1, n + 1)]


def _boxes(fig):
    fig.canvas.draw()
    return fig.canvas.get_renderer()


def _inside(inner, outer, slack: float = 1.0) -> bool:
    return (
        inner.x0 >= outer.x0 - slack
        and inner.y0 >= outer.y0 - slack
        and inner.x1 <= outer.x1 + slack
        and inner.y1 <= outer.y1 + slack
    )


def _overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


@pytest.mark.parametrize(
    "labels",
    [
        [LONG],
        [LONG, LONG.replace("256", "128"), LONG.replace("leaky_relu", "tanh")],
        SHORT,
        [f"{LONG}, seed={i}" for i in range(12)],
    ],
    ids=["1 long", "3 long", "12 short", "12 long"],
)
def test_comparison_figure_keeps_every_label_whole_and_nothing_overlaps(labels):
    fig = comparison_figure([[_history(5, i)] for i in range(len(labels))], labels, best=0)
    renderer = _boxes(fig)
    page = fig.bbox
    (legend,) = fig.legends
    box = legend.get_window_extent(renderer)
    assert _inside(box, page)
    texts = [t.get_text() for t in legend.get_texts()]
    assert [t.replace("\n", " ") for t in texts] == labels  # whole, only wrapped at spaces
    title = fig._suptitle.get_window_extent(renderer)
    assert _inside(title, page) and not _overlap(title, box)
    for ax in fig.axes:
        ax_box = ax.get_tightbbox(renderer)
        assert _inside(ax_box, page), ax.get_title()
        assert not _overlap(ax_box, box), ax.get_title()
        assert not _overlap(ax_box, title), ax.get_title()
    for t in legend.get_texts():
        assert _inside(t.get_window_extent(renderer), page)


def _diag_records(layers: int) -> list[dict]:
    recs = []
    for epoch in (1, 2):
        for step in (0, 5):
            recs.append(
                {
                    "kind": "step",
                    "epoch": epoch,
                    "step": step,
                    "steps": 10,
                    "layers": [
                        {"layer": i, "grad_norm": 0.1 * i, "update_ratio": 1e-3 * i} for i in range(1, layers + 1)
                    ]
                    + [{"layer": layers + 1, "output": True, "grad_norm": 1.0, "update_ratio": 2e-3}],
                }
            )
        recs.append(
            {"kind": "probe", "epoch": epoch, "layers": [{"layer": i, "dead": 0.1 * i} for i in range(1, layers + 1)]}
        )
    return recs


@pytest.mark.parametrize("n", [1, 3, 6])
def test_diagnostics_figure_shows_each_run_label_whole_inside_the_figure(n):
    labels = [f"{LONG}, seed={i}" for i in range(n)]
    fig = diagnostics_figure([(label, _diag_records(8)) for label in labels])
    renderer = _boxes(fig)
    titles = [sub._suptitle for sub in fig.subfigs]
    assert [t.get_text().replace("\n", " ") for t in titles] == labels
    for t in titles:
        box = t.get_window_extent(renderer)
        assert _inside(box, fig.bbox), t.get_text()
        for ax in fig.axes:
            assert not _overlap(box, ax.get_tightbbox(renderer)), (t.get_text(), ax.get_title())
    for ax in fig.axes:
        assert _inside(ax.get_tightbbox(renderer), fig.bbox), ax.get_title()


def test_a_run_of_one_epoch_beside_longer_ones_shows_in_both_panels():
    # A search's pruned trial keeps one epoch: one point, which only a marker makes visible.
    fig = comparison_figure([[_history(30, 0)], [_history(1, 1)]], ["ran to the end", "pruned"])
    acc_ax, loss_ax = fig.axes[:2]
    for ax in (acc_ax, loss_ax):
        (lone,) = [line for line in ax.get_lines() if len(line.get_xdata()) == 1]
        assert lone.get_marker() not in (None, "None", "", " ")
    long_loss = [line for line in loss_ax.get_lines() if len(line.get_xdata()) == 30]
    assert long_loss and long_loss[0].get_marker() in (None, "None", "", " ")  # a long curve stays a line
