"""Diagnostics while a run trains (``--diagnose``): hooks that watch, a step that doesn't know.

``TrainingDiagnostics`` registers forward hooks on each hidden activation and step hooks
on the optimizer (``register_step_pre_hook`` / ``register_step_post_hook``), and counts
the optimizer's steps itself. On the few steps of an epoch it records
(``recorded_steps``), the forward hooks keep the activation statistics of the step's
first forward, the pre-step hook the weights and their gradients, and the post-step hook
the update and keeps the step's line. L-BFGS computes its gradients inside ``step``
(the closure), so for it they are read after the step: the last closure's. ``end_epoch``
probes a fixed batch, writes the epoch's lines and returns the warnings; the training
loop calls nothing else.

Cost (a lecture run, 8 layers, 200 steps): the forward hooks are attached only for the
steps recorded and the probes (a module with hooks takes torch's slow call path, about
20 us a layer on every step), and the epoch's lines are written with its probe line in one
append (one fsync an epoch, not one a line). ``benchmarks/diagnostics_overhead.py``.

What the numbers mean and the file's format: ``diagnostics.py``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mlp_lab import atomic_files
from mlp_lab.data import DataSplits
from mlp_lab.diagnostic_warnings import Finding, activation_warnings, gradient_warnings, merge_findings, update_warnings
from mlp_lab.diagnostics import (
    PROBE_SIZE,
    RELU_FAMILY,
    SATURATION_MARGIN,
    LayerStats,
    activation_stats,
    activation_stats_of_layers,
    dead_fraction,
    median,
    recorded_steps,
)
from mlp_lab.model import hidden_blocks
from mlp_lab.optim import needs_closure
from mlp_lab.schema import ExperimentConfig


class TrainingDiagnostics:
    """Records per-layer statistics at a few steps of each epoch into ``path``.

    Built after the model and optimizer (and, when resuming, after the checkpoint is
    restored): a fresh run (``start_epoch`` 1) is probed at once, as epoch 0. Then
    ``end_epoch(epoch)`` after each epoch and ``close()`` at the end.
    """

    def __init__(
        self,
        model: nn.Sequential,
        optimizer: torch.optim.Optimizer,
        cfg: ExperimentConfig,
        data: DataSplits,
        path: Path,
        device: torch.device,
        start_epoch: int = 1,
    ) -> None:
        self.model = model
        self.path = Path(path)
        self.device = device
        self.activation = cfg.model.activation
        self.blocks = hidden_blocks(model)
        self.linears = [m for m in model if isinstance(m, nn.Linear)]
        pieces = cfg.model.maxout_pieces if self.activation == "maxout" else 1
        self.widths = [b.linear.out_features // pieces for b in self.blocks]
        # The probe: a fixed batch, normalised once, so epochs are judged on the same samples.
        n_probe = min(PROBE_SIZE, int(data.train_x.shape[0]))
        self.probe_x = data.normalize(data.train_x[:n_probe]).to(device)
        self.probe_size = n_probe
        # The training loop's steps per epoch, and the ones recorded.
        self.steps = math.ceil(int(data.train_x.shape[0]) / cfg.train.batch_size)
        self.schedule = recorded_steps(self.steps, cfg.train.diagnostics_per_epoch)
        self._grads_after_step = needs_closure(optimizer)

        self._epoch = start_epoch
        self._step = 0  # optimizer steps taken this epoch
        self._armed = 0 in self.schedule  # is the current step recorded?
        self._probing = False
        self._stats: dict[int, torch.Tensor] = {}  # hidden layer -> activation_stats (probes)
        self._dead: dict[int, torch.Tensor] = {}
        self._seen: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # hidden layer -> (pre, post) of a recorded step
        # The weights a recorded step starts from: one buffer, refilled at each recorded step
        # (a fresh copy each time would allocate the whole network's size, and fault it in).
        self._start: list[torch.Tensor] | None = None
        self._started = False
        self._grads: list[torch.Tensor] | None = None
        self._epoch_steps: list[list[LayerStats]] = []
        self._warned: set[tuple[str, int]] = set()
        self._pending: list[str] = []
        self._lines: list[dict[str, Any]] = []  # this epoch's step lines, written with its probe's
        self._forward_handles: list[Any] = []
        self._handles = [
            optimizer.register_step_pre_hook(self._before_step),
            optimizer.register_step_post_hook(self._after_step),
        ]
        if start_epoch == 1:
            self._probe_initial()
        self._watch_forwards(self._armed)

    # -- hooks

    def _watch_forwards(self, on: bool) -> None:
        """Attach the forward hooks (on) or take them off: only recorded steps and probes pay."""
        if on and not self._forward_handles:
            self._forward_handles = [
                b.activation.register_forward_hook(self._forward_hook(i)) for i, b in enumerate(self.blocks)
            ]
        elif not on:
            for h in self._forward_handles:
                h.remove()
            self._forward_handles = []

    def _forward_hook(self, index: int):
        def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            if self._probing:
                with torch.no_grad():
                    self._stats[index] = activation_stats(inputs[0], output, self.activation, zero_frac=False)
                    if self.activation in RELU_FAMILY:
                        self._dead[index] = dead_fraction(output)
            elif self._armed and module.training and index not in self._seen:  # first forward of the step
                self._seen[index] = (inputs[0].detach(), output.detach())  # measured with the others in _record_step

        return hook

    def _before_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        if not self._armed:
            return
        with torch.no_grad():
            if self._start is None:
                self._start = [m.weight.detach().clone() for m in self.linears]
            else:
                for kept, m in zip(self._start, self.linears):
                    kept.copy_(m.weight)
        self._started = True
        self._grads = None if self._grads_after_step else self._grad_norms()

    def _after_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        if self._armed:
            self._record_step()
        self._step += 1
        self._armed = self._step in self.schedule
        self._watch_forwards(self._armed)

    def _grad_norms(self) -> list[torch.Tensor]:
        grads = [m.weight.grad for m in self.linears]
        present = [g for g in grads if g is not None]
        norms = iter(torch._foreach_norm(present)) if present else iter(())
        nan = torch.full((), math.nan, device=self.device)
        return [next(norms).float() if g is not None else nan for g in grads]

    # -- one recorded step: one row of numbers per layer, one host sync

    def _record_step(self) -> None:
        grads = self._grads if self._grads is not None else self._grad_norms()
        with torch.no_grad():
            weights = [m.weight.detach() for m in self.linears]
            before = self._start if self._started and self._start is not None else weights
            weight_norms = torch.stack(torch._foreach_norm(before)).float()
            if before is weights:
                delta_norms = torch.full_like(weight_norms, math.nan)
            else:
                torch._foreach_sub_(before, weights)  # the buffer now holds -(the update)
                delta_norms = torch.stack(torch._foreach_norm(before)).float()
            nan_row = torch.full((5,), math.nan, device=self.device)
            seen = sorted(self._seen)
            measured = (
                dict(zip(seen, activation_stats_of_layers([self._seen[i] for i in seen], self.activation)))
                if seen
                else {}
            )
            act = [measured.get(i, nan_row).to(self.device) for i in range(len(self.linears))]
            # One row per Linear: the 5 activation statistics (NaN for the output layer),
            # gradient norm, weight norm, update norm.
            rows = torch.cat(
                [
                    torch.stack(act),
                    torch.stack(grads).to(self.device)[:, None],
                    weight_norms[:, None],
                    delta_norms[:, None],
                ],
                dim=1,
            )
        table = rows.tolist()  # the one host sync of the record
        self._seen.clear()
        self._started, self._grads = False, None

        layers = []
        for i, (*stats, grad, weight, delta) in enumerate(table):
            ratio = delta / weight if math.isfinite(delta) and weight > 0 else math.nan
            more = {"grad_norm": grad, "weight_norm": weight, "update_ratio": ratio}
            if i < len(self.blocks):
                layers.append(LayerStats.hidden(i + 1, self.activation, self.widths[i], stats, **more))
            else:
                layers.append(LayerStats(layer=i + 1, output=True, **more))
        self._epoch_steps.append(layers)
        self._lines.append(
            {
                "kind": "step",
                "epoch": self._epoch,
                "step": self._step,
                "steps": self.steps,
                "saturation_margin": SATURATION_MARGIN,
                "layers": [layer.to_json() for layer in layers],
            }
        )

    # -- epochs

    def end_epoch(self, epoch: int) -> list[str]:
        """Probe the fixed batch (eval mode, no grad), write the epoch's step lines and the
        probe's, return new warnings."""
        layers = self._probe()
        found = activation_warnings(layers, self.probe_size)
        if self._epoch_steps:
            per_layer = list(zip(*self._epoch_steps))  # layer -> its records this epoch
            found += gradient_warnings([median([r.grad_norm for r in col]) for col in per_layer])
            found += update_warnings([median([r.update_ratio for r in col]) for col in per_layer])
        new = self._pending + self._new_warnings(found)
        self._pending = []
        self._write_probe(epoch, layers, new)
        self._epoch_steps = []
        self._epoch, self._step, self._armed = epoch + 1, 0, 0 in self.schedule
        self._watch_forwards(self._armed)
        return new

    def close(self) -> list[str]:
        """Remove the hooks; return warnings not yet handed out (the initial probe's,
        when the run ended before its first epoch did: diverged at once, say)."""
        for h in self._handles:
            h.remove()
        self._handles = []
        self._armed = False
        self._watch_forwards(False)
        self._seen.clear()
        self._start, self._started = None, False
        # The step lines of an epoch that did not end (a run that diverged or was stopped):
        # what led up to it. A resume drops them with the rest of the epochs it redoes.
        lines, self._lines = self._lines, []
        atomic_files.append_jsonl(self.path, *lines)
        pending, self._pending = self._pending, []
        return pending

    def _new_warnings(self, found: list[Finding]) -> list[str]:
        # Each (kind, layer) is reported once per run: its numbers change every epoch,
        # so an exact-text deduplication would repeat it.
        fresh = [f for f in found if (f.kind, f.layer) not in self._warned]
        self._warned.update((f.kind, f.layer) for f in fresh)
        return merge_findings(fresh, self.probe_size)

    def _probe_initial(self) -> None:
        """Epoch 0: the network at initialisation. Its warnings (units dead from the
        start, say) come out with epoch 1's."""
        layers = self._probe()
        self._pending = self._new_warnings(activation_warnings(layers, self.probe_size))
        self._write_probe(0, layers, self._pending)

    def _write_probe(self, epoch: int, layers: list[LayerStats], warnings: list[str]) -> None:
        lines, self._lines = self._lines, []
        atomic_files.append_jsonl(
            self.path,
            *lines,
            {
                "kind": "probe",
                "epoch": epoch,
                "probe_size": self.probe_size,
                "saturation_margin": SATURATION_MARGIN,
                "layers": [layer.to_json() for layer in layers],
                "warnings": warnings,
            },
        )

    def _probe(self) -> list[LayerStats]:
        was_training = self.model.training
        self._stats.clear()
        self._dead.clear()
        self._probing = True
        self._watch_forwards(True)
        try:
            self.model.eval()
            with torch.no_grad():
                self.model(self.probe_x)
        finally:
            self._probing = False
            self._watch_forwards(self._armed)
            self.model.train(was_training)
        n = len(self.blocks)
        if n == 0:
            return []
        nan = torch.full((), math.nan, device=self.device)
        # One row per hidden layer: the 5 activation statistics, then the dead fraction.
        nan_row = torch.full((5,), math.nan, device=self.device)
        rows = torch.stack(
            [torch.cat([self._stats.get(i, nan_row), self._dead.get(i, nan)[None]]) for i in range(n)]
        ).tolist()
        self._stats.clear()
        layers = []
        for i, (*stats, dead) in enumerate(rows):
            layer = LayerStats.hidden(i + 1, self.activation, self.widths[i], stats)
            layer.zero_frac = None  # a probe judges ReLU units by `dead`, not by one batch's zeros
            if self.activation in RELU_FAMILY:
                layer.dead = dead
            layers.append(layer)
        return layers
