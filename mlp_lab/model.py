"""The MLP: config names -> torch modules, one registry per choice.

Every choice in ``ModelConfig`` (activation, weight init, bias init, norm) maps through
exactly one dict below to torch. The dicts' keys are the config's Literal names, and
tests/test_model.py checks they stay equal, so the schema and the model cannot drift.

The model is a flat ``nn.Sequential``: ``print(model)`` shows the whole network the way
the lecture draws it, and diagnostics can walk it without knowing how it was built.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import nn

from mlp_lab.choices import ACTIVATIONS as ACTIVATION_INFO
from mlp_lab.errors import lookup
from mlp_lab.schema import ModelConfig

__all__ = [
    "ACTIVATIONS",
    "INIT_NONLINEARITY",
    "WEIGHT_INITS",
    "BIAS_INITS",
    "NORMS",
    "Maxout",
    "HiddenBlock",
    "build_model",
    "count_params",
    "hidden_blocks",
]


class Maxout(nn.Module):
    """Goodfellow et al.'s maxout: each unit is the max of its ``pieces`` linear pieces.

    The Linear before it produces ``h * pieces`` features; unit ``j`` owns the contiguous
    group ``[j*pieces, (j+1)*pieces)``, so ``[B, h*k] -> [B, h, k] -> amax -> [B, h]``.
    """

    def __init__(self, pieces: int) -> None:
        super().__init__()
        if pieces < 2:
            raise ValueError(f"Maxout needs at least 2 pieces, got {pieces}")
        self.pieces = pieces

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % self.pieces:
            raise ValueError(f"Maxout({self.pieces}): input width {x.shape[-1]} is not a multiple of the pieces")
        return x.unflatten(-1, (-1, self.pieces)).amax(dim=-1)

    def extra_repr(self) -> str:
        return f"pieces={self.pieces}"


# --- activations ----------------------------------------------------------------------
# A factory gets the config and the layer's width (its number of hidden units): PReLU
# learns one slope per unit, so it must know how many units the layer has.

ActivationFactory = Callable[[ModelConfig, int], nn.Module]

ACTIVATIONS: dict[str, ActivationFactory] = {
    "sigmoid": lambda cfg, width: nn.Sigmoid(),
    "tanh": lambda cfg, width: nn.Tanh(),
    "relu": lambda cfg, width: nn.ReLU(),
    "leaky_relu": lambda cfg, width: nn.LeakyReLU(cfg.negative_slope),
    "prelu": lambda cfg, width: nn.PReLU(num_parameters=width, init=cfg.prelu_init),
    "elu": lambda cfg, width: nn.ELU(alpha=cfg.elu_alpha),
    "maxout": lambda cfg, width: Maxout(cfg.maxout_pieces),
    "gelu": lambda cfg, width: nn.GELU(),
    "silu": lambda cfg, width: nn.SiLU(),
}

# The ``nonlinearity`` torch.nn.init uses for the gain of a layer followed by each
# activation (xavier/orthogonal gain, He's fan-in scaling): choices.py says why each.
INIT_NONLINEARITY: dict[str, str] = {name: info.gain for name, info in ACTIVATION_INFO.items()}

# The output Linear feeds the softmax inside cross-entropy: no nonlinearity, gain 1.
OUTPUT_NONLINEARITY = "linear"


def _slope(cfg: ModelConfig) -> float:
    """The negative slope ``a`` torch's gain formula needs for 'leaky_relu'."""
    return cfg.prelu_init if cfg.activation == "prelu" else cfg.negative_slope


def _gain(cfg: ModelConfig, nonlinearity: str) -> float:
    if cfg.init_gain is not None:
        return cfg.init_gain
    param = _slope(cfg) if nonlinearity == "leaky_relu" else None
    # (torch types the name as a Literal; ours come from choices.ACTIVATION_INFO, each tested)
    return nn.init.calculate_gain(nonlinearity, param)  # type: ignore[arg-type]


def _kaiming(init_fn: Callable[..., torch.Tensor]) -> Callable[[torch.Tensor, ModelConfig, str], None]:
    # He init scales by fan_in, so the forward pass keeps its variance through the
    # layers; ``a`` only matters for leaky_relu (the slope the variance formula uses).
    def init(w: torch.Tensor, cfg: ModelConfig, nonlinearity: str) -> None:
        init_fn(w, a=_slope(cfg) if nonlinearity == "leaky_relu" else 0.0, mode="fan_in", nonlinearity=nonlinearity)

    return init


# --- weight and bias inits ------------------------------------------------------------
# A weight init gets the Linear's weight, the config and the nonlinearity that follows
# the layer (INIT_NONLINEARITY for hidden layers, OUTPUT_NONLINEARITY for the output).
# Inits run under no_grad inside torch.nn.init, so they never enter the autograd graph.

WeightInitFn = Callable[[torch.Tensor, ModelConfig, str], object]  # (torch.nn.init returns the tensor)

WEIGHT_INITS: dict[str, WeightInitFn] = {
    "default": lambda w, cfg, nl: None,  # keep nn.Linear's own (kaiming_uniform with a=sqrt(5))
    "zeros": lambda w, cfg, nl: nn.init.zeros_(w),
    "constant": lambda w, cfg, nl: nn.init.constant_(w, cfg.init_value),
    "normal": lambda w, cfg, nl: nn.init.normal_(w, mean=0.0, std=cfg.init_std),
    "uniform": lambda w, cfg, nl: nn.init.uniform_(w, -cfg.init_range, cfg.init_range),
    "xavier_uniform": lambda w, cfg, nl: nn.init.xavier_uniform_(w, gain=_gain(cfg, nl)),
    "xavier_normal": lambda w, cfg, nl: nn.init.xavier_normal_(w, gain=_gain(cfg, nl)),
    "kaiming_uniform": _kaiming(nn.init.kaiming_uniform_),
    "kaiming_normal": _kaiming(nn.init.kaiming_normal_),
    "orthogonal": lambda w, cfg, nl: nn.init.orthogonal_(w, gain=_gain(cfg, nl)),
}

BiasInitFn = Callable[[torch.Tensor, ModelConfig], object]

BIAS_INITS: dict[str, BiasInitFn] = {
    "default": lambda b, cfg: None,  # keep nn.Linear's own (uniform +-1/sqrt(fan_in))
    "zeros": lambda b, cfg: nn.init.zeros_(b),
    "constant": lambda b, cfg: nn.init.constant_(b, cfg.bias_value),
    "normal": lambda b, cfg: nn.init.normal_(b, mean=0.0, std=cfg.init_std),
    "uniform": lambda b, cfg: nn.init.uniform_(b, -cfg.init_range, cfg.init_range),
}

# --- normalisation --------------------------------------------------------------------
# A norm factory takes the number of features it normalises. None means no layer at all
# (not nn.Identity), so the printed model shows only what runs.

NORMS: dict[str, Callable[[int], nn.Module] | None] = {
    "none": None,
    "batchnorm": nn.BatchNorm1d,
    "layernorm": nn.LayerNorm,
}
_NORM_TYPES = (nn.BatchNorm1d, nn.LayerNorm)


# --- the model ------------------------------------------------------------------------


def build_model(cfg: ModelConfig, input_dim: int, num_classes: int) -> nn.Sequential:
    """Linear -> [norm] -> activation -> [norm] -> [dropout] per hidden layer, then a Linear to logits.

    The logits go to cross-entropy (which applies the softmax). ``cfg.hidden == []``
    gives softmax regression: a single Linear. Built on CPU; the caller moves it.
    """
    if input_dim < 1 or num_classes < 1:
        raise ValueError(f"build_model: input_dim and num_classes must be >= 1, got {input_dim} and {num_classes}")
    make_act = lookup(ACTIVATIONS, "model.activation", cfg.activation)
    nonlinearity = INIT_NONLINEARITY[cfg.activation]
    init_weight = lookup(WEIGHT_INITS, "model.init", cfg.init)
    init_bias = lookup(BIAS_INITS, "model.bias_init", cfg.bias_init)
    make_norm = lookup(NORMS, "model.norm", cfg.norm)
    pieces = cfg.maxout_pieces if cfg.activation == "maxout" else 1

    layers: list[nn.Module] = []

    def linear(n_in: int, n_out: int, nl: str) -> nn.Linear:
        layer = nn.Linear(n_in, n_out)
        init_weight(layer.weight, cfg, nl)
        init_bias(layer.bias, cfg)
        return layer

    width_in = input_dim
    for h in cfg.hidden:
        # Maxout's Linear computes k pieces per unit; the activation reduces them to h.
        layers.append(linear(width_in, h * pieces, nonlinearity))
        if make_norm is not None and cfg.norm_position == "before_activation":
            layers.append(make_norm(h * pieces))
        layers.append(make_act(cfg, h))
        if make_norm is not None and cfg.norm_position == "after_activation":
            layers.append(make_norm(h))
        if cfg.dropout > 0:
            layers.append(nn.Dropout(cfg.dropout))
        width_in = h
    layers.append(linear(width_in, num_classes, OUTPUT_NONLINEARITY))
    return nn.Sequential(*layers)


def count_params(model: nn.Module) -> int:
    """Number of learned scalars (parameters, not buffers such as batch norm's running stats)."""
    return sum(p.numel() for p in model.parameters())


class HiddenBlock(NamedTuple):
    """One hidden layer's modules. Hook ``activation``: its input is the pre-activation
    (after the norm when the norm comes first), its output the post-activation."""

    linear: nn.Linear
    norm: nn.Module | None
    activation: nn.Module


def hidden_blocks(model: nn.Sequential) -> list[HiddenBlock]:
    """Split a ``build_model`` network into its hidden layers (the output Linear excluded).

    A block starts at each Linear; within it, the one module that is neither a norm nor
    dropout is the activation.
    """
    blocks: list[HiddenBlock] = []
    linears = [i for i, m in enumerate(model) if isinstance(m, nn.Linear)]
    for start, end in zip(linears, linears[1:]):
        rest = list(model[start + 1 : end])
        norms = [m for m in rest if isinstance(m, _NORM_TYPES)]
        acts = [m for m in rest if not isinstance(m, (*_NORM_TYPES, nn.Dropout))]
        if len(acts) != 1 or len(norms) > 1:
            raise ValueError(
                f"hidden_blocks: layers {start}..{end - 1} are not Linear, [norm], activation, [norm], [dropout]"
            )
        linear = model[start]
        assert isinstance(linear, nn.Linear)  # (linears holds the Linears' indices)
        blocks.append(HiddenBlock(linear, norms[0] if norms else None, acts[0]))
    return blocks
