"""What is known about each activation, in one table that imports neither torch nor pydantic.

``model.py`` maps an activation's name to its torch constructor; every other fact about
it lives in ``ACTIVATIONS`` below and is read from here: the gain ``torch.nn.init`` uses
for the layer before it (``model.py``), how diagnostics judge its outputs
(``diagnostics.py``), and which config fields only it reads (``keys.py``, so that
``compare`` leaves leaky_relu's slope blank in a ReLU run). Adding an activation is a row
here, a constructor in ``model.py`` and its name in ``schema.Activation``;
tests/test_model.py checks that the three agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Family = Literal["saturating", "relu_like", "maxout"]


@dataclass(frozen=True)
class ActivationInfo:
    """Facts about one activation.

    ``gain``: the ``nonlinearity`` name ``torch.nn.init`` computes the gain (Xavier,
    orthogonal) and He's fan-in scaling for. Torch knows gains for only a few functions;
    ELU, GELU, SiLU and maxout are ReLU-like (unbounded above, roughly half the input's
    variance survives), so they take ReLU's sqrt(2), as He et al. do.

    ``family``: how diagnostics read its outputs. ``saturating`` (bounded): the fraction
    of outputs near ``bounds``, where the derivative is ~0. ``relu_like``: a unit never
    positive on the probe batch is dead (leaky_relu, prelu, elu, gelu and silu still pass
    a small gradient there, but the unit carries no signal forward). ``maxout``: neither.

    ``fields``: the ``model.*`` config fields that only this activation reads.
    """

    gain: str
    family: Family
    bounds: tuple[float, float] | None = None
    fields: tuple[str, ...] = ()


ACTIVATIONS: dict[str, ActivationInfo] = {
    "sigmoid": ActivationInfo("sigmoid", "saturating", bounds=(0.0, 1.0)),
    "tanh": ActivationInfo("tanh", "saturating", bounds=(-1.0, 1.0)),
    "relu": ActivationInfo("relu", "relu_like"),
    "leaky_relu": ActivationInfo("leaky_relu", "relu_like", fields=("model.negative_slope",)),
    "prelu": ActivationInfo("leaky_relu", "relu_like", fields=("model.prelu_init",)),
    "elu": ActivationInfo("relu", "relu_like", fields=("model.elu_alpha",)),
    "maxout": ActivationInfo("relu", "maxout", fields=("model.maxout_pieces",)),
    "gelu": ActivationInfo("relu", "relu_like"),
    "silu": ActivationInfo("relu", "relu_like"),
}


def activations_in(family: Family) -> frozenset[str]:
    """The names of the activations of one family."""
    return frozenset(name for name, info in ACTIVATIONS.items() if info.family == family)
