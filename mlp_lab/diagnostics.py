"""Seeing inside training: per-layer activation, gradient and update statistics.

This module is the shared vocabulary: the statistics, the thresholds and the one per-layer
record type (``LayerStats``); ``diagnostic_warnings`` turns them into warnings. Two entry
points use both:

* ``training_diagnostics.TrainingDiagnostics`` - what ``train.diagnostics: true``
  (``--diagnose``) records while a run trains, into the run folder's ``diagnostics.jsonl``.
* ``inspection.inspect_network`` - the lecture's experiment (``mlp-lab inspect``): one
  batch through a freshly initialised network, forward and backward, no training.

What a hidden layer's statistics mean (the hook sits on the activation module, so its
input is the pre-activation and its output the post-activation):

* ``pre_mean``/``pre_std``, ``post_mean``/``post_std``: over all samples and units. A
  std falling layer by layer towards 0 is the signal dying (too small an init); one
  growing is it exploding.
* ``saturated`` (sigmoid, tanh): fraction of outputs within ``SATURATION_MARGIN`` of the
  activation's bounds, where its derivative is ~0 and the gradient stops.
* ``dead`` (ReLU family): fraction of units that are never positive on the fixed probe
  batch (first ``PROBE_SIZE`` training samples, eval mode). A dead ReLU gets no
  gradient, so it stays dead. Per training step, ``zero_frac`` is the cheaper fraction
  of outputs <= 0 in that mini-batch.
* ``grad_norm``: L2 norm of the layer's weight gradient (the output layer too).
  ``update_ratio``: ||W_after - W_before|| / ||W_before|| of one optimizer step; around
  1e-3 is the usual rule of thumb, much larger means the learning rate is too high.

``diagnostics.jsonl`` holds two kinds of line (``kind``):

* ``"step"``: ``epoch``, ``step`` (0-based), ``steps`` (per epoch), ``saturation_margin``
  and ``layers``: one dict per hidden layer (``layer`` from 1, ``activation``,
  ``width``, the activation statistics, ``grad_norm``, ``weight_norm``,
  ``update_ratio``), then the output layer (``"output": true``; gradient and update only).
  ``cfg.train.diagnostics_per_epoch`` of them per epoch, at evenly spaced steps.
* ``"probe"``: once per epoch after its training steps, and once as epoch 0 before the
  first step of a fresh run (the network at initialisation): the activation statistics
  on the probe batch, with ``dead`` or ``saturated`` per layer, and the ``warnings`` raised.

So a fresh run of E epochs writes 1 + E * (diagnostics_per_epoch + 1) lines (fewer steps
when an epoch has fewer). A resumed run drops the lines of the epochs it redoes.
Each warning (kind, layer) is raised once per run, the first time its threshold is crossed.

Cost: the forward hooks are attached only for the recorded steps and the probes; a
recorded step computes a few reductions per layer on the device and reads them all back
with a single ``.tolist()``; an epoch's lines are written together, after its probe.
benchmarks/diagnostics_overhead.py measures it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import torch

from mlp_lab.choices import ACTIVATIONS as ACTIVATION_INFO
from mlp_lab.choices import activations_in

# --- thresholds (named here, quoted in every warning's text) -------------------------

SATURATION_MARGIN = 0.02  # sigmoid: y < 0.02 or y > 0.98; tanh: |y| > 0.98
SATURATION_WARN_FRACTION = 0.5  # warn when at least this fraction of a layer's outputs is saturated
DEAD_WARN_FRACTION = 0.5  # warn when at least this fraction of a layer's ReLU units is dead
# ... judged on this many samples or more: a healthy ReLU unit is positive for about half of
# them, so on n samples it looks dead by chance 2^-n of the time (on 1, half the units do).
DEAD_MIN_SAMPLES = 20
VANISHING_GRAD_RATIO = 1e-3  # first hidden layer's gradient norm / output layer's below this: vanishing
EXPLODING_GRAD_RATIO = 1e3  # ... above this: exploding
VANISHING_ACTIVATION_STD = 1e-3  # post-activation std below this: the signal has died out
EXPLODING_ACTIVATION_STD = 1e2  # post-activation std above this: the signal is blowing up
UPDATE_RATIO_WARN = 0.1  # median ||dW||/||W|| of a layer above this: steps too large for the weights
# mlp-lab check: the lecture's rule of thumb for ||dW||/||W|| after a few steps is about
# 1e-3; much lower, the lr is too low, much higher, too high. "Much": 1.5 decades either way
# (Adam's first steps move every weight by about lr, so 784-256-256-10 at 1e-3 shows ~1e-2).
UPDATE_RATIO_HEALTHY = 1e-3
UPDATE_RATIO_BAND = (3e-5, 3e-2)
PROBE_SIZE = 1000  # training samples in the fixed probe batch (dead units are judged on it)

# Activations whose outputs are bounded (saturation is measured), with their bounds, and
# the ReLU-like ones, whose units can die: both read off choices.ACTIVATIONS.
SATURATING: dict[str, tuple[float, float]] = {
    name: info.bounds for name, info in ACTIVATION_INFO.items() if info.family == "saturating" and info.bounds
}
RELU_FAMILY = activations_in("relu_like")


def _extra_stat(activation: str) -> str | None:
    if activation in SATURATING:
        return "saturated"
    if activation in RELU_FAMILY:
        return "zero_frac"
    return None


def activation_stats(
    pre: torch.Tensor,
    post: torch.Tensor,
    activation: str,
    margin: float = SATURATION_MARGIN,
    zero_frac: bool = True,
) -> torch.Tensor:
    """[pre_mean, pre_std, post_mean, post_std, extra] as one float32 tensor on the device.

    ``extra`` is the saturated fraction (sigmoid, tanh), the fraction of outputs <= 0
    (ReLU family; NaN with ``zero_frac=False``, for a probe, which judges ReLU units by
    ``dead_fraction`` instead), or NaN. No host sync: the caller reads many of these at once.
    """
    pre = pre.detach().float()
    post = post.detach().float()
    pre_std, pre_mean = _std_mean(pre)
    post_std, post_mean = _std_mean(post)
    n = max(post.numel(), 1)
    if activation in RELU_FAMILY and not zero_frac:
        extra = post.new_full((), math.nan)
    elif activation in SATURATING:
        lo, hi = SATURATING[activation]
        # Two counts, not a float mask: the comparisons' masks are bytes, and a probe's
        # 1000 x 256 float temporaries are what made its statistics cost as much as its forward.
        extra = (torch.count_nonzero(post < lo + margin) + torch.count_nonzero(post > hi - margin)) / n
    elif activation in RELU_FAMILY:
        extra = torch.count_nonzero(post <= 0) / n
    else:
        extra = post.new_full((), math.nan)
    return torch.stack((pre_mean, pre_std, post_mean, post_std, extra.float()))


def _std_mean(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(std, mean) of all of ``x``'s values, the sample std (n - 1), 0 for one value.

    Two passes (the mean, then the squared deviations as one dot product) rather than
    ``torch.std_mean`` or ``(x - mean).square().sum()``: on a CPU, for a probe's activations
    (1000 x 256), those take 1.4 ms and 0.9 ms against 0.05 ms (std_mean's kernel is slow, and
    each float temporary of that size is an allocation that faults its pages in); the std is
    the same to float32 rounding."""
    mean = x.mean()
    if x.numel() < 2:
        return x.new_zeros(()), mean
    centred = (x - mean).flatten()
    return (torch.dot(centred, centred) / (x.numel() - 1)).sqrt(), mean


def activation_stats_of_layers(
    activations: Sequence[tuple[torch.Tensor, torch.Tensor]], activation: str, margin: float = SATURATION_MARGIN
) -> torch.Tensor:
    """``activation_stats`` of several layers' (pre, post) at once: an (L, 5) tensor.

    A recorded step's activations are small (a batch by a width): each statistic costs its
    op's overhead, not its arithmetic, so layers of one shape are stacked and reduced
    together (about 10 ops for all of them instead of 15 per layer). Layers of different
    shapes are measured one by one. The numbers are the same to float32 rounding."""
    pres = [pre.detach() for pre, _ in activations]
    posts = [post.detach() for _, post in activations]
    if len({p.shape for p in pres}) != 1 or len({p.shape for p in posts}) != 1:
        return torch.stack([activation_stats(pre, post, activation, margin) for pre, post in zip(pres, posts)])
    pre, post = torch.stack(pres).flatten(1).float(), torch.stack(posts).flatten(1).float()
    pre_std, pre_mean = _row_std_mean(pre)
    post_std, post_mean = _row_std_mean(post)
    n = max(post.shape[1], 1)
    if activation in SATURATING:
        lo, hi = SATURATING[activation]
        extra = (torch.count_nonzero(post < lo + margin, dim=1) + torch.count_nonzero(post > hi - margin, dim=1)) / n
    elif activation in RELU_FAMILY:
        extra = torch.count_nonzero(post <= 0, dim=1) / n
    else:
        extra = post.new_full((post.shape[0],), math.nan)
    return torch.stack((pre_mean, pre_std, post_mean, post_std, extra.float()), dim=1)


def _row_std_mean(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``_std_mean`` of each row of a 2-D tensor."""
    mean = rows.mean(dim=1)
    if rows.shape[1] < 2:
        return torch.zeros_like(mean), mean
    centred = rows - mean[:, None]
    return torch.linalg.vector_norm(centred, dim=1) / math.sqrt(rows.shape[1] - 1), mean


def dead_fraction(post: torch.Tensor) -> torch.Tensor:
    """Fraction of units (columns) that are not positive for any sample (row): a unit is
    alive when its largest output is positive (a max, not a boolean mask: 15x cheaper)."""
    alive = post.detach().amax(dim=0) > 0
    return 1.0 - alive.float().mean()


def recorded_steps(steps: int, per_epoch: int) -> frozenset[int]:
    """The 0-based steps of an epoch at which diagnostics are recorded: ``per_epoch``
    evenly spaced ones starting at step 0 (all steps when the epoch is shorter)."""
    if per_epoch >= steps:
        return frozenset(range(steps))
    return frozenset((i * steps) // per_epoch for i in range(per_epoch))


def _nan_to_none(x: float) -> float | None:
    """NaN/inf -> None (JSON null); else the value to 5 significant digits (files stay small)."""
    if not math.isfinite(x):
        return None
    return float(f"{x:.5g}")


@dataclass
class LayerStats:
    """One layer's statistics: the one type behind diagnostics.jsonl's step and probe
    lines and ``inspect``'s table.

    None means "not measured here" and is left out of the JSON line; NaN means measured
    but undefined and is written as null. A step line's hidden layers have the activation
    statistics, ``saturated`` or ``zero_frac``, and the gradient/update figures; its output
    layer (``output: true``) only the latter; a probe's layers the activation statistics
    with ``saturated`` or ``dead``. ``weight_std`` and ``values`` are inspect's.
    """

    layer: int  # 1-based; the output layer is the last
    output: bool | None = None
    activation: str | None = None
    width: int | None = None
    pre_mean: float | None = None
    pre_std: float | None = None
    post_mean: float | None = None
    post_std: float | None = None
    saturated: float | None = None  # sigmoid/tanh: fraction of outputs within SATURATION_MARGIN of a bound
    zero_frac: float | None = None  # ReLU family, per step: fraction of outputs <= 0
    dead: float | None = None  # ReLU family, on a probe: fraction of units never positive
    grad_norm: float | None = None
    weight_norm: float | None = None
    update_ratio: float | None = None
    weight_std: float | None = None
    values: torch.Tensor | None = field(default=None, repr=False)  # inspect: post-activations (CPU), for histograms

    @property
    def is_output(self) -> bool:
        return bool(self.output)

    def to_json(self) -> dict[str, Any]:
        """The measured fields, NaN as null, 5 significant digits (files stay small)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None or f.name == "values":
                continue
            out[f.name] = _nan_to_none(value) if isinstance(value, float) else value
        return out

    @classmethod
    def hidden(cls, layer: int, activation: str, width: int, stats: Sequence[float], **more: Any) -> LayerStats:
        """A hidden layer from ``activation_stats``' five numbers (the fifth goes to
        ``saturated`` or ``zero_frac``, whichever the activation has) and ``more``."""
        pre_mean, pre_std, post_mean, post_std, extra = stats
        kind = _extra_stat(activation)
        if kind is not None:
            more.setdefault(kind, extra)
        return cls(
            layer=layer,
            activation=activation,
            width=width,
            pre_mean=pre_mean,
            pre_std=pre_std,
            post_mean=post_mean,
            post_std=post_std,
            **more,
        )


def median(values: Sequence[float | None]) -> float:
    finite = sorted(v for v in values if isinstance(v, float) and not math.isnan(v))
    if not finite:
        return math.nan
    n = len(finite)
    return finite[n // 2] if n % 2 else 0.5 * (finite[n // 2 - 1] + finite[n // 2])
