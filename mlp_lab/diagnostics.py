"""Seeing inside training: per-layer activation, gradient and update statistics.

Two entry points, one set of statistics:

* :class:`TrainingDiagnostics` - what ``train.diagnostics: true`` (``--diagnose``)
  records while a run trains, into the run folder's ``diagnostics.jsonl``.
* :func:`inspect_network` - the lecture's experiment (``mlp-lab inspect``): one batch
  through a freshly initialised network, forward and backward, no training.

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

Cost: hooks are registered once and return immediately unless armed; a recorded step
computes a few fused reductions per layer on the device and reads them all back with a
single ``.tolist()``. benchmarks/diagnostics_overhead.py measures it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from mlp_lab import runs
from mlp_lab.choices import ACTIVATIONS as ACTIVATION_INFO
from mlp_lab.choices import activations_in
from mlp_lab.schema import ExperimentConfig
from mlp_lab.data import DataSplits
from mlp_lab.errors import ConfigError
from mlp_lab.model import build_model, hidden_blocks

__all__ = [
    "SATURATION_MARGIN", "DEAD_WARN_FRACTION", "SATURATION_WARN_FRACTION", "VANISHING_GRAD_RATIO",
    "EXPLODING_GRAD_RATIO", "VANISHING_ACTIVATION_STD", "EXPLODING_ACTIVATION_STD", "UPDATE_RATIO_WARN", "PROBE_SIZE",
    "TrainingDiagnostics", "LayerStats", "Inspection", "inspect_network", "recorded_steps",
]

# --- thresholds (named here, quoted in every warning's text) -------------------------

SATURATION_MARGIN = 0.02  # sigmoid: y < 0.02 or y > 0.98; tanh: |y| > 0.98
SATURATION_WARN_FRACTION = 0.5  # warn when at least this fraction of a layer's outputs is saturated
DEAD_WARN_FRACTION = 0.5  # warn when at least this fraction of a layer's ReLU units is dead
VANISHING_GRAD_RATIO = 1e-3  # first hidden layer's gradient norm / output layer's below this: vanishing
EXPLODING_GRAD_RATIO = 1e3  # ... above this: exploding
VANISHING_ACTIVATION_STD = 1e-3  # post-activation std below this: the signal has died out
EXPLODING_ACTIVATION_STD = 1e2  # post-activation std above this: the signal is blowing up
UPDATE_RATIO_WARN = 0.1  # median ||dW||/||W|| of a layer above this: steps too large for the weights
PROBE_SIZE = 1000  # training samples in the fixed probe batch (dead units are judged on it)

# Activations whose outputs are bounded (saturation is measured), with their bounds, and
# the ReLU-like ones, whose units can die: both read off choices.ACTIVATIONS.
SATURATING: dict[str, tuple[float, float]] = {
    name: info.bounds for name, info in ACTIVATION_INFO.items() if info.family == "saturating" and info.bounds
}
RELU_FAMILY = activations_in("relu_like")

# data.dataset -> the shape of one input, for inspect's Gaussian inputs (no data needed).
INPUT_SHAPES: dict[str, tuple[int, int, int]] = {
    "mnist": (1, 28, 28), "fashion_mnist": (1, 28, 28), "synthetic": (1, 28, 28), "cifar10": (3, 32, 32),
}

_ACT_STATS = ("pre_mean", "pre_std", "post_mean", "post_std")
_N_ACT = len(_ACT_STATS) + 1  # + saturated or zero_frac (NaN when neither applies)


def _extra_stat(activation: str) -> str | None:
    if activation in SATURATING:
        return "saturated"
    if activation in RELU_FAMILY:
        return "zero_frac"
    return None


def _activation_stats(pre: torch.Tensor, post: torch.Tensor, activation: str,
                      margin: float = SATURATION_MARGIN) -> torch.Tensor:
    """[pre_mean, pre_std, post_mean, post_std, extra] as one float32 tensor on the device.

    ``extra`` is the saturated fraction (sigmoid, tanh), the fraction of outputs <= 0
    (ReLU family), or NaN. No host sync: the caller reads many of these at once.
    """
    pre = pre.detach().float()
    post = post.detach().float()
    pre_std, pre_mean = torch.std_mean(pre) if pre.numel() > 1 else (pre.new_zeros(()), pre.mean())
    post_std, post_mean = torch.std_mean(post) if post.numel() > 1 else (post.new_zeros(()), post.mean())
    if activation in SATURATING:
        lo, hi = SATURATING[activation]
        extra = ((post < lo + margin) | (post > hi - margin)).float().mean()
    elif activation in RELU_FAMILY:
        extra = (post <= 0).float().mean()
    else:
        extra = post.new_full((), math.nan)
    return torch.stack((pre_mean, pre_std, post_mean, post_std, extra))


def _dead_fraction(post: torch.Tensor) -> torch.Tensor:
    """Fraction of units (columns) that are not positive for any sample (row)."""
    alive = (post.detach() > 0).any(dim=0)
    return 1.0 - alive.float().mean()


def recorded_steps(steps: int, per_epoch: int) -> frozenset[int]:
    """The 0-based steps of an epoch at which diagnostics are recorded: ``per_epoch``
    evenly spaced ones starting at step 0 (all steps when the epoch is shorter)."""
    if per_epoch >= steps:
        return frozenset(range(steps))
    return frozenset((i * steps) // per_epoch for i in range(per_epoch))


def _fmt_ratio(x: float) -> str:
    return "0" if x == 0 else f"{x:.0e}"


def _nan_to_none(x: float) -> float | None:
    """NaN/inf -> None (JSON null); else the value to 5 significant digits (files stay small)."""
    if not math.isfinite(x):
        return None
    return float(f"{x:.5g}")


def _layer_linears(model: nn.Sequential) -> list[nn.Linear]:
    return [m for m in model if isinstance(m, nn.Linear)]


# --- warnings, shared by training and inspect ----------------------------------------


class Finding(NamedTuple):
    """One threshold crossed: ``kind`` (dead, saturated, vanished, exploded, vanishing,
    exploding, no_grad, update), the 1-based layer, the warning's text, and for dead and
    saturated the fraction and activation (to merge several layers into one line)."""

    kind: str
    layer: int
    text: str
    value: float | None = None
    activation: str = ""


def activation_warnings(layers: Sequence[dict[str, Any]], probe_size: int) -> list[Finding]:
    """Findings for dead, saturated and vanished or exploding activations.

    ``layers`` are hidden-layer dicts with ``layer``, ``activation``, ``post_std`` and
    ``dead`` or ``saturated``. Vanished activations are reported for the first layer
    below the threshold only (every later layer inherits it), and so are exploding ones.
    """
    out: list[Finding] = []
    vanished_reported = exploded_reported = False
    for d in layers:
        i, act = d["layer"], d["activation"]
        dead, sat, std = d.get("dead"), d.get("saturated"), d.get("post_std")
        flagged = False
        if isinstance(dead, float) and dead >= DEAD_WARN_FRACTION:
            flagged = True
            out.append(Finding("dead", i, f"{100 * dead:.0f}% of layer {i}'s {act} units are dead: "
                                          f"{_dead_reason(probe_size)}", dead, act))
        if isinstance(sat, float) and sat >= SATURATION_WARN_FRACTION:
            flagged = True
            out.append(Finding("saturated", i, f"layer {i}'s {act} units are {100 * sat:.0f}% saturated: "
                                               f"{_saturation_reason()}", sat, act))
        if not vanished_reported and not flagged and isinstance(std, float) and std < VANISHING_ACTIVATION_STD:
            vanished_reported = True
            out.append(Finding("vanished", i, f"layer {i}'s {act} activations have std {std:.1e}: the signal has "
                                              f"all but vanished by this layer (threshold {VANISHING_ACTIVATION_STD:.0e}); "
                                              f"use a scaled init such as xavier_normal or kaiming_normal"))
        if not exploded_reported and isinstance(std, float) and std > EXPLODING_ACTIVATION_STD:
            exploded_reported = True
            out.append(Finding("exploded", i, f"layer {i}'s {act} activations have std {std:.1e}: the signal is "
                                              f"blowing up (threshold {EXPLODING_ACTIVATION_STD:.0e}); use a scaled "
                                              f"init such as xavier_normal or kaiming_normal, or batch norm"))
    return out


def _dead_reason(probe_size: int) -> str:
    return (f"never positive on {probe_size} probe samples, so they get no gradient "
            f"(threshold {100 * DEAD_WARN_FRACTION:.0f}%)")


def _saturation_reason() -> str:
    return (f"outputs within {SATURATION_MARGIN:g} of their bounds, where the gradient is ~0 "
            f"(threshold {100 * SATURATION_WARN_FRACTION:.0f}%)")


def _layer_list(layers: list[int]) -> str:
    """[1, 2, 3, 5] -> '1-3 and 5'."""
    parts: list[str] = []
    start = prev = layers[0]
    for n in [*layers[1:], None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if n is not None:
            start = prev = n
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _percent_list(values: list[float]) -> str:
    pcts = [f"{100 * v:.0f}%" for v in values]
    if len(set(pcts)) == 1:
        return pcts[0]
    return ", ".join(pcts[:-1]) + " and " + pcts[-1]


def merge_findings(findings: Sequence[Finding], probe_size: int) -> list[str]:
    """Warning lines: dead or saturated units in several layers become one line
    (at the position of the first), everything else stays one line per finding."""
    out: list[str] = []
    done: set[str] = set()
    for f in findings:
        if f.kind not in ("dead", "saturated"):
            out.append(f.text)
            continue
        if f.kind in done:
            continue
        group = [g for g in findings if g.kind == f.kind]
        done.add(f.kind)
        if len(group) == 1:
            out.append(f.text)
            continue
        layers, values = _layer_list([g.layer for g in group]), _percent_list([g.value or 0.0 for g in group])
        if f.kind == "dead":
            out.append(f"{values} of the {f.activation} units of layers {layers} are dead: {_dead_reason(probe_size)}")
        else:
            out.append(f"the {f.activation} units of layers {layers} are {values} saturated: {_saturation_reason()}")
    return out


def gradient_warnings(grad_norms: Sequence[float]) -> list[Finding]:
    """Findings comparing the first layer's weight-gradient norm with the
    output layer's (the last entry). Needs at least one hidden layer."""
    if len(grad_norms) < 2 or not all(isinstance(g, float) and math.isfinite(g) for g in grad_norms):
        return []
    first, last, out_layer = grad_norms[0], grad_norms[-1], len(grad_norms)
    if last == 0 and first == 0:
        return [Finding("no_grad", 1, "no layer's weights get any gradient (all weight-gradient norms are 0): "
                               "the network cannot learn; check model.init (zeros?)")]
    if first == 0:
        return [Finding("no_grad", 1, f"layer 1's weights get no gradient at all (norm 0) while the output layer's get "
                               f"{last:.1e}: the gradient is blocked on its way down (dead or saturated units, or all-zero "
                               f"weights from model.init: zeros)")]
    if last == 0:
        return []
    ratio = first / last
    if ratio < VANISHING_GRAD_RATIO:
        return [Finding("vanishing", 1, f"layer 1 gets {_fmt_ratio(ratio)} of the gradient norm of layer {out_layer} "
                                 f"(the output layer): vanishing gradients (threshold {VANISHING_GRAD_RATIO:.0e})")]
    if ratio > EXPLODING_GRAD_RATIO:
        return [Finding("exploding", 1, f"layer 1's gradient norm is {_fmt_ratio(ratio)} times that of layer {out_layer} "
                                 f"(the output layer): exploding gradients (threshold {EXPLODING_GRAD_RATIO:.0e})")]
    return []


def update_warnings(ratios: Sequence[float | None]) -> list[Finding]:
    out = []
    for i, r in enumerate(ratios, start=1):
        if isinstance(r, float) and math.isfinite(r) and r > UPDATE_RATIO_WARN:
            out.append(Finding("update", i, f"one optimizer step changes layer {i}'s weights by {r:.2g} of their norm "
                                     f"(threshold {UPDATE_RATIO_WARN:g}; ~1e-3 is typical): the learning rate "
                                     f"is too high for this layer"))
    return out


def _median(values: list[float]) -> float:
    finite = sorted(v for v in values if isinstance(v, float) and not math.isnan(v))
    if not finite:
        return math.nan
    n = len(finite)
    return finite[n // 2] if n % 2 else 0.5 * (finite[n // 2 - 1] + finite[n // 2])


# --- during training -------------------------------------------------------------------


class TrainingDiagnostics:
    """Records per-layer statistics at a few steps of each epoch; see the module docstring.

    The protocol, as ``train._train_epoch`` calls it on a recorded step::

        if diag.wants(step, steps): diag.begin()
        forward, loss.backward()
        diag.after_backward()            # not for LBFGS (closure): end() copes
        optimizer.step()
        diag.end()

    and ``end_epoch(epoch)`` after each epoch, ``close()`` at the end.
    """

    def __init__(self, model: nn.Sequential, cfg: ExperimentConfig, data: DataSplits, path: Path,
                 device: torch.device) -> None:
        self.model = model
        self.path = Path(path)
        self.device = device
        self.activation = cfg.model.activation
        self.per_epoch = cfg.train.diagnostics_per_epoch
        self.blocks = hidden_blocks(model)
        self.linears = _layer_linears(model)
        self.widths = [b.linear.out_features // (cfg.model.maxout_pieces if self.activation == "maxout" else 1)
                       for b in self.blocks]
        # The probe: a fixed batch, normalised once, so epochs are judged on the same samples.
        n_probe = min(PROBE_SIZE, int(data.train_x.shape[0]))
        self.probe_x = data.normalize(data.train_x[:n_probe]).to(device)
        self.probe_size = n_probe

        self._mode: str | None = None  # None (hooks idle), "step" or "probe"
        self._stats: dict[int, torch.Tensor] = {}
        self._dead: dict[int, torch.Tensor] = {}
        self._step: int | None = None
        self._steps = 0
        self._grads: list[torch.Tensor] | None = None
        self._before: list[torch.Tensor] | None = None
        self._schedule: dict[int, frozenset[int]] = {}
        self._epoch_records: list[dict[str, Any]] = []
        self._warned: set[tuple[str, int]] = set()
        self._pending_warnings: list[str] = []
        self._started = False
        # A resumed run's folder already has diagnostics.jsonl; the epoch it resumes at is
        # known only once the loop runs (see _current_epoch).
        self._resuming = self.path.exists()
        self._epoch: int | None = None if self._resuming else 1
        self._handles = [
            b.activation.register_forward_hook(self._make_hook(i)) for i, b in enumerate(self.blocks)
        ]

    # -- hooks

    def _make_hook(self, index: int):
        def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            mode = self._mode
            if mode is None or index in self._stats:  # idle, or a repeat forward (LBFGS)
                return
            with torch.no_grad():
                self._stats[index] = _activation_stats(inputs[0], output, self.activation)
                if mode == "probe" and self.activation in RELU_FAMILY:
                    self._dead[index] = _dead_fraction(output)

        return hook

    # -- the protocol

    def wants(self, step: int, steps: int) -> bool:
        schedule = self._schedule.get(steps)
        if schedule is None:
            schedule = self._schedule[steps] = recorded_steps(steps, self.per_epoch)
        if step in schedule:
            self._step, self._steps = step, steps
            return True
        return False

    def begin(self) -> None:
        """Arm the hooks for the next forward; remember the weights the step starts from."""
        if not self._started:
            self._started = True
            if self._current_epoch() == 1 and not self._resuming:
                self._probe_initial()
        self._stats.clear()
        self._grads = None
        with torch.no_grad():
            self._before = [m.weight.detach().clone() for m in self.linears]
        self._mode = "step"

    def after_backward(self) -> None:
        """Read each layer's weight-gradient norm (before the optimizer can touch .grad)."""
        self._mode = None  # the forward is done
        self._grads = self._grad_norms()

    def _grad_norms(self) -> list[torch.Tensor]:
        zero = torch.zeros((), device=self.device)
        grads = [m.weight.grad for m in self.linears]
        present = [g for g in grads if g is not None]
        norms = iter(torch._foreach_norm(present)) if present else iter(())
        return [next(norms).float() if g is not None else zero.new_full((), math.nan) for g in grads]

    def end(self) -> None:
        """Update ratios, then one JSON line for this step; disarm."""
        self._mode = None
        if self._step is None:
            return
        epoch = self._current_epoch()
        grads = self._grads if self._grads is not None else self._grad_norms()  # LBFGS: last closure's
        n_lin = len(self.linears)
        with torch.no_grad():
            weights = [m.weight.detach() for m in self.linears]
            if self._before is not None:
                before_norms = torch.stack(torch._foreach_norm(self._before)).float()
                delta_norms = torch.stack(torch._foreach_norm(torch._foreach_sub(weights, self._before))).float()
            else:
                before_norms = torch.stack(torch._foreach_norm(weights)).float()
                delta_norms = before_norms.new_full((n_lin,), math.nan)
            nan_act = torch.full((_N_ACT,), math.nan, device=self.device)
            act = [self._stats.get(i, nan_act).to(self.device) for i in range(len(self.blocks))]
            flat = torch.cat([*act, torch.stack(grads).to(self.device), before_norms, delta_norms])
        values = flat.tolist()  # the one host sync of the record
        self._stats.clear()
        self._before = None
        self._grads = None

        act_vals = values[: _N_ACT * len(self.blocks)]
        g = values[_N_ACT * len(self.blocks):][:n_lin]
        w = values[_N_ACT * len(self.blocks) + n_lin:][:n_lin]
        d = values[_N_ACT * len(self.blocks) + 2 * n_lin:]
        ratio = [None if not (math.isfinite(dd) and ww > 0) else _nan_to_none(dd / ww) for dd, ww in zip(d, w)]
        layers = []
        extra = _extra_stat(self.activation)
        for i in range(len(self.blocks)):
            chunk = act_vals[i * _N_ACT : (i + 1) * _N_ACT]
            layer: dict[str, Any] = {"layer": i + 1, "activation": self.activation, "width": self.widths[i]}
            layer.update({k: _nan_to_none(v) for k, v in zip(_ACT_STATS, chunk)})
            if extra is not None:
                layer[extra] = _nan_to_none(chunk[-1])
            layers.append(layer)
        layers.append({"layer": n_lin, "output": True})
        for i, layer in enumerate(layers):
            layer.update(grad_norm=_nan_to_none(g[i]), weight_norm=_nan_to_none(w[i]), update_ratio=ratio[i])
        record = {"kind": "step", "epoch": epoch, "step": self._step, "steps": self._steps,
                  "saturation_margin": SATURATION_MARGIN, "layers": layers}
        self._step = None
        self._epoch_records.append(record)
        runs.append_jsonl(self.path, record)

    def end_epoch(self, epoch: int) -> list[str]:
        """Probe the fixed batch (eval mode, no grad), write its line, return new warnings."""
        self._current_epoch(hint=epoch)
        layers = self._probe_layers()
        found = activation_warnings(layers, self.probe_size)
        steps = self._epoch_records
        if steps:
            n_lin = len(self.linears)
            per_layer = [[r["layers"][j]["grad_norm"] for r in steps] for j in range(n_lin)]
            found += gradient_warnings([_median([v for v in col if v is not None]) for col in per_layer])
            ratios = [[r["layers"][j]["update_ratio"] for r in steps] for j in range(n_lin)]
            found += update_warnings([_median([v for v in col if v is not None]) for col in ratios])
        new = self._pending_warnings + self._new_warnings(found)
        self._pending_warnings = []
        runs.append_jsonl(self.path, {"kind": "probe", "epoch": epoch, "probe_size": self.probe_size,
                                      "saturation_margin": SATURATION_MARGIN, "layers": layers, "warnings": new})
        self._epoch_records = []
        self._epoch = epoch + 1
        return new

    def _new_warnings(self, found: list[Finding]) -> list[str]:
        # Each (kind, layer) is reported once per run: its numbers change every epoch,
        # so train.py's exact-text deduplication would repeat it.
        fresh = [f for f in found if (f.kind, f.layer) not in self._warned]
        self._warned.update((f.kind, f.layer) for f in fresh)
        return merge_findings(fresh, self.probe_size)

    def _probe_initial(self) -> None:
        """Epoch 0: the probe at initialisation, before the first step of a fresh run.
        Its warnings (units dead from the start, say) come out with epoch 1's."""
        layers = self._probe_layers()
        new = self._new_warnings(activation_warnings(layers, self.probe_size))
        self._pending_warnings = list(new)
        runs.append_jsonl(self.path, {"kind": "probe", "epoch": 0, "probe_size": self.probe_size,
                                      "saturation_margin": SATURATION_MARGIN, "layers": layers, "warnings": new})

    def _probe_layers(self) -> list[dict[str, Any]]:
        was_training = self.model.training
        self._stats.clear()
        self._dead.clear()
        self._mode = "probe"
        try:
            self.model.eval()
            with torch.no_grad():
                self.model(self.probe_x)
        finally:
            self._mode = None
            self.model.train(was_training)
        n = len(self.blocks)
        nan_act = torch.full((_N_ACT,), math.nan, device=self.device)
        act = [self._stats.get(i, nan_act) for i in range(n)]
        dead = [self._dead[i] for i in range(n) if i in self._dead]
        values = torch.cat([*act, torch.stack(dead) if dead else nan_act[:0]]).tolist() if n else []
        self._stats.clear()
        layers = []
        for i in range(n):
            chunk = values[i * _N_ACT : (i + 1) * _N_ACT]
            layer: dict[str, Any] = {"layer": i + 1, "activation": self.activation, "width": self.widths[i]}
            layer.update({k: _nan_to_none(v) for k, v in zip(_ACT_STATS, chunk)})
            if self.activation in SATURATING:
                layer["saturated"] = _nan_to_none(chunk[-1])
            if dead:
                layer["dead"] = _nan_to_none(values[n * _N_ACT + i])
            layers.append(layer)
        return layers

    def close(self) -> list[str]:
        """Remove the hooks; return warnings not yet handed out (the initial probe's,
        when the run ended before its first epoch did: diverged at once, say)."""
        for h in self._handles:
            h.remove()
        self._handles = []
        self._mode = None
        self._before = None
        pending, self._pending_warnings = self._pending_warnings, []
        return pending

    # -- resume

    def _current_epoch(self, hint: int | None = None) -> int:
        """The epoch being trained. A fresh run starts at 1; a resumed one at the epoch
        after the last one in metrics.jsonl (train.py has truncated it to the
        checkpoint by the time the loop runs), and diagnostics lines of the epochs being
        redone are dropped, as train.py drops their metrics lines."""
        if self._epoch is None:
            epoch = hint
            if epoch is None:
                metrics = self.path.parent / runs.METRICS
                done = runs.read_jsonl(metrics)[0] if metrics.exists() else []
                epoch = 1 + max((r["epoch"] for r in done if isinstance(r.get("epoch"), int)), default=0)
            if self.path.exists():
                kept = [r for r in runs.read_jsonl(self.path)[0]
                        if isinstance(r.get("epoch"), int) and r["epoch"] < epoch]
                runs.atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))
            self._epoch = epoch
        return self._epoch


# --- inspect: one batch through the network at initialisation --------------------------


@dataclass
class LayerStats:
    """One layer of :func:`inspect_network`'s answer. The output layer has only
    ``grad_norm`` and ``weight_std`` (its activation statistics are None)."""

    layer: int  # 1-based; the output layer is len(hidden) + 1
    activation: str  # the config's activation, or "output" for the logits layer
    width: int
    pre_mean: float | None
    pre_std: float | None
    post_mean: float | None
    post_std: float | None
    saturated: float | None  # sigmoid/tanh: fraction of outputs within SATURATION_MARGIN of a bound
    dead: float | None  # ReLU family: fraction of units never positive on the batch
    grad_norm: float
    weight_std: float
    values: torch.Tensor | None = field(default=None, repr=False)  # post-activations (CPU), for histograms

    @property
    def is_output(self) -> bool:
        return self.activation == "output"


@dataclass
class Inspection:
    """What ``mlp-lab inspect`` shows: per-layer statistics of one forward/backward pass."""

    layers: list[LayerStats]  # the hidden layers
    output: LayerStats
    loss: float
    inputs: str  # where the batch came from
    batch: int
    warnings: list[str]

    @property
    def all_layers(self) -> list[LayerStats]:
        return [*self.layers, self.output]


def inspect_network(cfg: ExperimentConfig, data_dir: Path | None = None, batch: int = 1000,
                    synthetic: bool = False) -> Inspection:
    """Build ``cfg``'s network as training would (same seed, same init), push one batch
    through it in train mode, back-propagate the cross-entropy loss, and measure each layer.

    ``synthetic``: standard-normal inputs of the data set's shape with random labels, no
    data needed; else the first ``batch`` training samples, preprocessed as in training
    (DataError when the data set is missing).
    """
    if batch < 1:
        raise ConfigError(f"--batch must be at least 1, got {batch}")
    if not cfg.model.hidden:
        raise ConfigError("model.hidden is [] (softmax regression): there is no hidden layer to inspect")
    from mlp_lab.data import NUM_CLASSES, load_data, resolve_data_dir

    if synthetic:
        shape = INPUT_SHAPES.get(cfg.data.dataset)
        if shape is None:
            raise ConfigError(f"data.dataset {cfg.data.dataset!r}: no known input shape for --synthetic-input")
        g = torch.Generator().manual_seed(cfg.train.seed)
        x = torch.randn(batch, shape[0] * shape[1] * shape[2], generator=g)
        y = torch.randint(0, NUM_CLASSES, (batch,), generator=g)
        inputs = f"{batch} standard-normal inputs of {cfg.data.dataset}'s shape {'x'.join(map(str, shape))}"
    else:
        data = load_data(cfg.data, resolve_data_dir(data_dir, cfg.data), "cpu", seed=cfg.train.seed)
        n = min(batch, int(data.train_y.shape[0]))
        x, y = data.normalize(data.train_x[:n]), data.train_y[:n]
        inputs = f"the first {n} training samples of {data.source}"
        if n < batch:
            inputs += f" (all there are; {batch} asked)"
        batch = n

    torch.manual_seed(cfg.train.seed)  # the same initial weights `train` starts from
    model = build_model(cfg.model, x.shape[1], NUM_CLASSES)
    model.train()  # batch norm normalises with the batch's statistics, as in the first training step
    blocks = hidden_blocks(model)
    captured: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def hook_for(i: int):
        def hook(module: nn.Module, inputs_: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            captured[i] = (inputs_[0].detach(), output.detach())

        return hook

    handles = [b.activation.register_forward_hook(hook_for(i)) for i, b in enumerate(blocks)]
    try:
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        loss.backward()
    finally:
        for h in handles:
            h.remove()

    act = cfg.model.activation
    linears = _layer_linears(model)
    layers: list[LayerStats] = []
    for i, block in enumerate(blocks):
        pre, post = captured[i]
        pm, ps, qm, qs, extra = _activation_stats(pre, post, act).tolist()
        layers.append(LayerStats(
            layer=i + 1, activation=act, width=int(post.shape[1]),
            pre_mean=pm, pre_std=ps, post_mean=qm, post_std=qs,
            saturated=extra if act in SATURATING else None,
            dead=float(_dead_fraction(post)) if act in RELU_FAMILY else None,
            grad_norm=float(block.linear.weight.grad.norm()),
            weight_std=float(block.linear.weight.detach().std()),
            values=post.flatten(),
        ))
    out_lin = linears[-1]
    output = LayerStats(
        layer=len(blocks) + 1, activation="output", width=out_lin.out_features,
        pre_mean=None, pre_std=None, post_mean=None, post_std=None, saturated=None, dead=None,
        grad_norm=float(out_lin.weight.grad.norm()), weight_std=float(out_lin.weight.detach().std()),
    )
    layer_dicts = [{"layer": s.layer, "activation": s.activation, "post_std": s.post_std,
                    "dead": s.dead, "saturated": s.saturated} for s in layers]
    found = activation_warnings(layer_dicts, batch) + gradient_warnings([s.grad_norm for s in [*layers, output]])
    warnings = [text.replace("probe samples", "samples") for text in merge_findings(found, batch)]
    return Inspection(layers=layers, output=output, loss=float(loss.detach()), inputs=inputs, batch=batch, warnings=warnings)


def inspection_table(result: Inspection, title: str = "") -> Any:
    """A Rich table: one row per hidden layer, then the output layer's gradient."""
    from rich.table import Table

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:.1f}"

    def num(v: float | None) -> str:
        return "-" if v is None or not math.isfinite(v) else f"{v:.3g}"

    table = Table(title=title or None, caption=f"{result.inputs}; loss {result.loss:.4f}", caption_justify="left")
    for name in ("layer", "units", "activation", "pre std", "mean", "std", "saturated %", "dead %", "weight grad norm"):
        table.add_column(name, justify="left" if name == "activation" else "right")
    for s in result.layers:
        table.add_row(str(s.layer), str(s.width), s.activation, num(s.pre_std), num(s.post_mean), num(s.post_std),
                      pct(s.saturated), pct(s.dead), f"{s.grad_norm:.2e}")
    o = result.output
    table.add_row(str(o.layer), str(o.width), "output (logits)", "-", "-", "-", "-", "-", f"{o.grad_norm:.2e}")
    return table
