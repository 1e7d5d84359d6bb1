"""Plain facts about config keys, importable without pydantic (``compare`` starts fast).

Dotted keys (``optimizer.lr``) are how configs are compared, filtered and overridden.
"""

from __future__ import annotations

from typing import Any

from mlp_lab.choices import ACTIVATIONS


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'optimizer': {'lr': 0.1}} -> {'optimizer.lr': 0.1}; lists stay values."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _activation_fields() -> dict[str, list[tuple[str, frozenset[str]]]]:
    """Each field only some activations read (choices.ACTIVATIONS) -> when it applies."""
    owners: dict[str, set[str]] = {}
    for name, info in ACTIVATIONS.items():
        for f in info.fields:
            owners.setdefault(f, set()).add(name)
    return {f: [("model.activation", frozenset(names))] for f, names in owners.items()}


# Fields that only mean something for some choices: `model.negative_slope` is unused
# unless the activation is leaky_relu. Each key lists (field, values) pairs; the key
# applies when any pair matches. Fields not listed always apply.
APPLIES_WHEN: dict[str, list[tuple[str, frozenset[str]]]] = {
    "data.synthetic_train_size": [("data.dataset", frozenset({"synthetic"}))],
    "data.synthetic_test_size": [("data.dataset", frozenset({"synthetic"}))],
    **_activation_fields(),
    "model.init_std": [("model.init", frozenset({"normal"})), ("model.bias_init", frozenset({"normal"}))],
    "model.init_range": [("model.init", frozenset({"uniform"})), ("model.bias_init", frozenset({"uniform"}))],
    "model.init_value": [("model.init", frozenset({"constant"}))],
    "model.init_gain": [("model.init", frozenset({"xavier_uniform", "xavier_normal", "orthogonal"}))],
    "model.bias_value": [("model.bias_init", frozenset({"constant"}))],
    "model.norm_position": [("model.norm", frozenset({"batchnorm", "layernorm"}))],
    "train.diagnostics_per_epoch": [("train.diagnostics", frozenset({"True", "true"}))],
}


def applies(flat: dict[str, Any], key: str) -> bool:
    """Does ``key`` affect the run whose flattened config is ``flat``?"""
    conditions = APPLIES_WHEN.get(key)
    if not conditions:
        return True
    return any(str(flat.get(field)) in values for field, values in conditions)


def applicable_fields(config: dict[str, Any]) -> dict[str, Any]:
    """The flattened config without the fields that do nothing in this run, so that
    comparing a ReLU run with a leaky-ReLU run shows the slope only where it acts."""
    flat = flatten(config)
    return {k: v for k, v in flat.items() if applies(flat, k)}
