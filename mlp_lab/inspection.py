"""``mlp-lab inspect``: one batch through the network at initialisation, no training.

The lecture's experiment: build the network exactly as ``train`` would (same seed, same
init), push a batch through it, back-propagate once, and look at every layer: how the
activations are spread, how many units are saturated or dead, how large each layer's
gradient is. The statistics and warnings are ``diagnostics.py``'s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mlp_lab.diagnostic_warnings import activation_warnings, gradient_warnings, merge_findings
from mlp_lab.diagnostics import DEAD_MIN_SAMPLES, RELU_FAMILY, LayerStats, activation_stats, dead_fraction
from mlp_lab.errors import ConfigError
from mlp_lab.memory import INPUT_SHAPES  # data.dataset -> one input's shape, for --synthetic-input
from mlp_lab.model import build_model, hidden_blocks
from mlp_lab.schema import ExperimentConfig


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


def inspect_network(
    cfg: ExperimentConfig, data_dir: Path | None = None, batch: int = 1000, synthetic: bool = False
) -> Inspection:
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
    x, y, inputs = _inputs(cfg, data_dir, batch, synthetic)
    return inspect_batch(cfg, x, y, inputs)


def _grad_norm(linear: nn.Linear) -> float:
    """The norm of a layer's weight gradient after the backward pass (0 where none flowed)."""
    grad = linear.weight.grad
    return float(grad.norm()) if grad is not None else 0.0


def inspect_batch(cfg: ExperimentConfig, x: torch.Tensor, y: torch.Tensor, inputs: str) -> Inspection:
    """``inspect_network`` on a given batch (preprocessed inputs ``x``, labels ``y``)."""
    from mlp_lab.data import NUM_CLASSES

    batch = len(y)
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
    layers: list[LayerStats] = []
    for i, block in enumerate(blocks):
        pre, post = captured[i]
        layer = LayerStats.hidden(
            i + 1,
            act,
            int(post.shape[1]),
            activation_stats(pre, post, act).tolist(),
            grad_norm=_grad_norm(block.linear),
            weight_std=float(block.linear.weight.detach().std()),
            values=post.flatten(),
        )
        layer.zero_frac = None  # inspect judges ReLU units by `dead` on the whole batch
        if act in RELU_FAMILY:
            layer.dead = float(dead_fraction(post))
        layers.append(layer)
    out_lin = [m for m in model if isinstance(m, nn.Linear)][-1]
    output = LayerStats(
        layer=len(blocks) + 1,
        output=True,
        activation="output",
        width=out_lin.out_features,
        grad_norm=_grad_norm(out_lin),
        weight_std=float(out_lin.weight.detach().std()),
    )
    found = activation_warnings(layers, batch) + gradient_warnings([s.grad_norm or 0.0 for s in [*layers, output]])
    warnings = [text.replace("probe samples", "samples") for text in merge_findings(found, batch)]
    if blocks and act in RELU_FAMILY and batch < DEAD_MIN_SAMPLES:  # the layers whose dead units are measured
        warnings.append(
            f"dead units are not judged on {batch} sample{'s' if batch != 1 else ''}: a healthy unit is positive on "
            f"about half of all samples, so on so few it can look dead by chance; use --batch {DEAD_MIN_SAMPLES} or more"
        )
    return Inspection(
        layers=layers, output=output, loss=float(loss.detach()), inputs=inputs, batch=batch, warnings=warnings
    )


def _inputs(
    cfg: ExperimentConfig, data_dir: Path | None, batch: int, synthetic: bool
) -> tuple[torch.Tensor, torch.Tensor, str]:
    """The batch to push through: (inputs, labels, where they came from)."""
    from mlp_lab.data import NUM_CLASSES, load_data, resolve_data_dir

    if synthetic:
        shape = INPUT_SHAPES.get(cfg.data.dataset)
        if shape is None:
            raise ConfigError(f"data.dataset {cfg.data.dataset!r}: no known input shape for --synthetic-input")
        g = torch.Generator().manual_seed(cfg.train.seed)
        x = torch.randn(batch, shape[0] * shape[1] * shape[2], generator=g)
        y = torch.randint(0, NUM_CLASSES, (batch,), generator=g)
        what = "1 standard-normal input" if batch == 1 else f"{batch} standard-normal inputs"
        return x, y, f"{what} of {cfg.data.dataset}'s shape {'x'.join(map(str, shape))}"
    data = load_data(cfg.data, resolve_data_dir(data_dir, cfg.data), "cpu", seed=cfg.train.seed)
    n = min(batch, int(data.train_y.shape[0]))
    inputs = (
        f"the first training sample of {data.source}" if n == 1 else f"the first {n} training samples of {data.source}"
    )
    if n < batch:
        inputs += f" (all there are; {batch} asked)"
    return data.normalize(data.train_x[:n]), data.train_y[:n], inputs


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
        table.add_row(
            str(s.layer),
            str(s.width),
            s.activation,
            num(s.pre_std),
            num(s.post_mean),
            num(s.post_std),
            pct(s.saturated),
            pct(s.dead),
            f"{s.grad_norm:.2e}",
        )
    o = result.output
    table.add_row(str(o.layer), str(o.width), "output (logits)", "-", "-", "-", "-", "-", f"{o.grad_norm:.2e}")
    return table
