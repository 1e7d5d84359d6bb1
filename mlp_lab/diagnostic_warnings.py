"""The diagnostics' warnings: which thresholds a layer's statistics cross, said in one line
each, with the cause and what to change. Shared by training (``--diagnose``) and
``mlp-lab inspect``; the thresholds and the statistics are ``diagnostics.py``'s."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

from mlp_lab.diagnostics import (
    DEAD_MIN_SAMPLES,
    DEAD_WARN_FRACTION,
    EXPLODING_ACTIVATION_STD,
    EXPLODING_GRAD_RATIO,
    SATURATION_MARGIN,
    SATURATION_WARN_FRACTION,
    UPDATE_RATIO_WARN,
    VANISHING_ACTIVATION_STD,
    VANISHING_GRAD_RATIO,
    LayerStats,
)


class Finding(NamedTuple):
    """One threshold crossed: ``kind`` (dead, saturated, vanished, exploded, vanishing,
    exploding, no_grad, update), the 1-based layer, the warning's text, and for dead and
    saturated the fraction and activation (to merge several layers into one line)."""

    kind: str
    layer: int
    text: str
    value: float | None = None
    activation: str = ""


def activation_warnings(layers: Sequence[LayerStats], probe_size: int) -> list[Finding]:
    """Findings for dead, saturated and vanished or exploding activations of hidden layers
    (dead units only on ``DEAD_MIN_SAMPLES`` samples or more).

    Vanished activations are reported for the first layer below the threshold only
    (every later layer inherits it), and so are exploding ones.
    """
    out: list[Finding] = []
    vanished_reported = exploded_reported = False
    for d in layers:
        i, act = d.layer, d.activation or ""
        dead, sat, std = d.dead, d.saturated, d.post_std
        flagged = False
        if isinstance(dead, float) and dead >= DEAD_WARN_FRACTION and probe_size >= DEAD_MIN_SAMPLES:
            flagged = True
            text = f"{100 * dead:.0f}% of layer {i}'s {act} units are dead: {_dead_reason(probe_size)}"
            out.append(Finding("dead", i, text, dead, act))
        if isinstance(sat, float) and sat >= SATURATION_WARN_FRACTION:
            flagged = True
            text = f"layer {i}'s {act} units are {100 * sat:.0f}% saturated: {_saturation_reason()}"
            out.append(Finding("saturated", i, text, sat, act))
        if not vanished_reported and not flagged and isinstance(std, float) and std < VANISHING_ACTIVATION_STD:
            vanished_reported = True
            out.append(
                Finding(
                    "vanished",
                    i,
                    f"layer {i}'s {act} activations have std {std:.1e}: the signal has "
                    f"all but vanished by this layer (threshold {VANISHING_ACTIVATION_STD:.0e}); "
                    f"use a scaled init such as xavier_normal or kaiming_normal",
                )
            )
        if not exploded_reported and isinstance(std, float) and std > EXPLODING_ACTIVATION_STD:
            exploded_reported = True
            out.append(
                Finding(
                    "exploded",
                    i,
                    f"layer {i}'s {act} activations have std {std:.1e}: the signal is "
                    f"blowing up (threshold {EXPLODING_ACTIVATION_STD:.0e}); use a scaled "
                    f"init such as xavier_normal or kaiming_normal, or batch norm",
                )
            )
    return out


def _dead_reason(probe_size: int) -> str:
    return (
        f"never positive on {probe_size} probe samples, so they get no gradient "
        f"(threshold {100 * DEAD_WARN_FRACTION:.0f}%)"
    )


def _saturation_reason() -> str:
    return (
        f"outputs within {SATURATION_MARGIN:g} of their bounds, where the gradient is ~0 "
        f"(threshold {100 * SATURATION_WARN_FRACTION:.0f}%)"
    )


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
        return [
            Finding(
                "no_grad",
                1,
                "no layer's weights get any gradient (all weight-gradient norms are 0): "
                "the network cannot learn; check model.init (zeros?)",
            )
        ]
    if first == 0:
        return [
            Finding(
                "no_grad",
                1,
                f"layer 1's weights get no gradient at all (norm 0) while the output layer's get "
                f"{last:.1e}: the gradient is blocked on its way down (dead or saturated units, or all-zero "
                f"weights from model.init: zeros)",
            )
        ]
    if last == 0:
        return []
    ratio = first / last
    if ratio < VANISHING_GRAD_RATIO:
        return [
            Finding(
                "vanishing",
                1,
                f"layer 1 gets {_fmt_ratio(ratio)} of the gradient norm of layer {out_layer} "
                f"(the output layer): vanishing gradients (threshold {VANISHING_GRAD_RATIO:.0e})",
            )
        ]
    if ratio > EXPLODING_GRAD_RATIO:
        return [
            Finding(
                "exploding",
                1,
                f"layer 1's gradient norm is {_fmt_ratio(ratio)} times that of layer {out_layer} "
                f"(the output layer): exploding gradients (threshold {EXPLODING_GRAD_RATIO:.0e})",
            )
        ]
    return []


def update_warnings(ratios: Sequence[float | None]) -> list[Finding]:
    out = []
    for i, r in enumerate(ratios, start=1):
        if isinstance(r, float) and math.isfinite(r) and r > UPDATE_RATIO_WARN:
            out.append(
                Finding(
                    "update",
                    i,
                    f"one optimizer step changes layer {i}'s weights by {r:.2g} of their norm "
                    f"(threshold {UPDATE_RATIO_WARN:g}; ~1e-3 is typical): the learning rate "
                    f"is too high for this layer",
                )
            )
    return out


def _fmt_ratio(x: float) -> str:
    return "0" if x == 0 else f"{x:.0e}"
