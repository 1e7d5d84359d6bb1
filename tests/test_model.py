"""model.py: the registries match the schema, every combination trains, inits mean what they say."""

from __future__ import annotations

import math
from typing import get_args

import pytest
import torch
from torch import nn

from mlp_lab import schema
from mlp_lab.choices import ACTIVATIONS as ACTIVATION_INFO
from mlp_lab.config import config_to_dict
from mlp_lab.errors import ConfigError
from mlp_lab.keys import APPLIES_WHEN, flatten
from mlp_lab.model import (
    ACTIVATIONS,
    BIAS_INITS,
    INIT_NONLINEARITY,
    NORMS,
    WEIGHT_INITS,
    Maxout,
    build_model,
    count_params,
    hidden_blocks,
)
from mlp_lab.schema import ModelConfig

ACTS = get_args(schema.Activation)
INITS = get_args(schema.Init)
NORM_NAMES = get_args(schema.Norm)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def linears(model: nn.Module) -> list[nn.Linear]:
    return [m for m in model if isinstance(m, nn.Linear)]


# --- the registries are the schema's names, no more, no less --------------------------


@pytest.mark.parametrize(
    "registry, literal",
    [
        (ACTIVATIONS, schema.Activation),
        (INIT_NONLINEARITY, schema.Activation),
        (WEIGHT_INITS, schema.Init),
        (BIAS_INITS, schema.BiasInit),
        (NORMS, schema.Norm),
    ],
    ids=["activations", "init_nonlinearity", "weight_inits", "bias_inits", "norms"],
)
def test_registry_keys_are_the_config_names(registry, literal):
    assert set(registry) == set(get_args(literal))


def test_every_activation_has_its_facts_and_they_name_real_fields():
    assert list(ACTIVATION_INFO) == list(get_args(schema.Activation))
    for name, info in ACTIVATION_INFO.items():
        assert info.family in ("saturating", "relu_like", "maxout"), name
        assert (info.bounds is not None) == (info.family == "saturating"), name
        nn.init.calculate_gain(info.gain, 0.01)  # a nonlinearity torch knows
        for f in info.fields:
            section, field = f.split(".")
            assert section == "model" and field in ModelConfig.model_fields, f


def test_fields_that_apply_only_to_some_choices_are_schema_fields_and_values():
    flat = flatten(config_to_dict(schema.ExperimentConfig()))
    for key, conditions in APPLIES_WHEN.items():
        assert key in flat, key
        for field, _values in conditions:
            assert field in flat, field
    owners = {
        v
        for k, c in APPLIES_WHEN.items()
        if k.startswith("model.")
        for f, vs in c
        if f == "model.activation"
        for v in vs
    }
    assert owners == {n for n, info in ACTIVATION_INFO.items() if info.fields}


@pytest.mark.parametrize(
    "field, value", [("activation", "swish"), ("init", "he"), ("bias_init", "ones"), ("norm", "groupnorm")]
)
def test_unknown_name_is_a_config_error_listing_the_known_ones(field, value):
    cfg = ModelConfig.model_construct(**{**ModelConfig().model_dump(), field: value})  # skips validation
    with pytest.raises(ConfigError, match=rf"model\.{field}: '{value}' is not allowed; allowed: ") as e:
        build_model(cfg, 4, 3)
    assert "\n" not in str(e.value)


# --- every combination builds, runs forward and backward, and takes a finite step -----


def _train_step(model: nn.Module, input_dim: int, batch: int = 6) -> torch.Tensor:
    x = torch.randn(batch, input_dim)
    y = torch.randint(0, 10, (batch,))
    out = model(x)
    assert out.shape == (batch, 10)
    loss = nn.functional.cross_entropy(out, y)
    loss.backward()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    opt.step()
    assert torch.isfinite(loss)
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p).all(), f"{name} is not finite after one step"
    assert torch.isfinite(model(x)).all()
    return out


@pytest.mark.parametrize("norm", NORM_NAMES)
@pytest.mark.parametrize("init", INITS)
@pytest.mark.parametrize("activation", ACTS)
def test_every_activation_init_norm_combination_trains(activation, init, norm):
    cfg = ModelConfig(hidden=[8, 6], activation=activation, init=init, norm=norm, init_value=0.1)
    _train_step(build_model(cfg, 12, 10), 12)


@pytest.mark.parametrize("activation", ACTS)
@pytest.mark.parametrize("norm", ["batchnorm", "layernorm"])
def test_norm_after_activation_with_dropout_trains(activation, norm):
    cfg = ModelConfig(hidden=[8, 6], activation=activation, norm=norm, norm_position="after_activation", dropout=0.3)
    model = build_model(cfg, 12, 10)
    _train_step(model, 12)
    # Every norm sits right after an activation and normalises the layer's h units.
    for block, h in zip(hidden_blocks(model), cfg.hidden):
        i = list(model).index(block.norm)
        assert model[i - 1] is block.activation
        assert count_params(block.norm) == 2 * h


@pytest.mark.parametrize("bias_init", get_args(schema.BiasInit))
@pytest.mark.parametrize("norm", NORM_NAMES)
def test_softmax_regression_and_every_bias_init_train(bias_init, norm):
    cfg = ModelConfig(hidden=[], bias_init=bias_init, norm=norm, dropout=0.5)
    model = build_model(cfg, 12, 10)
    assert len(model) == 1 and isinstance(model[0], nn.Linear)  # norm and dropout only act on hidden layers
    _train_step(model, 12)


def test_layer_order_and_printable_flat_sequential():
    cfg = ModelConfig(hidden=[5, 4], activation="tanh", norm="batchnorm", dropout=0.2)
    model = build_model(cfg, 7, 10)
    kinds = [type(m) for m in model]
    assert kinds == [
        nn.Linear,
        nn.BatchNorm1d,
        nn.Tanh,
        nn.Dropout,
        nn.Linear,
        nn.BatchNorm1d,
        nn.Tanh,
        nn.Dropout,
        nn.Linear,
    ]
    assert model[3].p == 0.2
    assert not any(list(m.children()) for m in model)  # flat: no nested containers
    assert "BatchNorm1d(5" in str(model)


# --- parameter counts ------------------------------------------------------------------

HEAD = 256 * 10 + 10  # 256 -> 10 output layer


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ({}, 784 * 256 + 256 + 256 * 256 + 256 + HEAD),  # 269,322: the lecture's MLP
        ({"hidden": []}, 784 * 10 + 10),  # softmax regression: 7,850
        # maxout k=2: each hidden Linear has twice the outputs; the next one still sees 256 inputs
        ({"activation": "maxout"}, 784 * 512 + 512 + 256 * 512 + 512 + HEAD),
        ({"activation": "maxout", "maxout_pieces": 3}, 784 * 768 + 768 + 256 * 768 + 768 + HEAD),
        # batch norm before maxout normalises all h*k pieces: gamma and beta for each
        ({"activation": "maxout", "norm": "batchnorm"}, 784 * 512 + 512 + 2 * 512 + 256 * 512 + 512 + 2 * 512 + HEAD),
        ({"activation": "prelu"}, 269_322 + 256 + 256),  # one learned slope per unit
        ({"norm": "batchnorm"}, 269_322 + 2 * 256 + 2 * 256),
        ({"norm": "layernorm", "norm_position": "after_activation"}, 269_322 + 2 * 256 + 2 * 256),
    ],
)
def test_param_count(overrides, expected):
    assert count_params(build_model(ModelConfig(**overrides), 784, 10)) == expected


def test_param_count_of_the_default_mlp_is_269322():
    assert count_params(build_model(ModelConfig(), 784, 10)) == 269_322


def test_param_count_excludes_batchnorm_running_stats():
    model = build_model(ModelConfig(hidden=[4], norm="batchnorm"), 3, 10)
    assert count_params(model) == (3 * 4 + 4) + (2 * 4) + (4 * 10 + 10)


# --- init semantics --------------------------------------------------------------------


def _first_layer(**overrides) -> nn.Linear:
    return linears(build_model(ModelConfig(hidden=[256], **overrides), 784, 10))[0]


def _rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


def test_default_init_is_pytorchs_own():
    model = build_model(ModelConfig(hidden=[32], init="default", bias_init="default"), 20, 10)
    torch.manual_seed(0)
    ref = [nn.Linear(20, 32), nn.Linear(32, 10)]
    for got, want in zip(linears(model), ref):
        assert torch.equal(got.weight, want.weight)
        assert torch.equal(got.bias, want.bias)


def test_zeros_init_zeroes_every_weight():
    model = build_model(ModelConfig(init="zeros"), 784, 10)
    assert all(torch.count_nonzero(lin.weight) == 0 for lin in linears(model))


def test_constant_init():
    for lin in linears(build_model(ModelConfig(init="constant", init_value=0.3), 784, 10)):
        assert torch.all(lin.weight == 0.3)


@pytest.mark.parametrize("std", [0.01, 1.0])
def test_normal_init_std(std):
    w = _first_layer(init="normal", init_std=std).weight
    assert _rel(w.std().item(), std) < 0.02
    assert abs(w.mean().item()) < 0.01 * std


def test_uniform_init_range():
    w = _first_layer(init="uniform", init_range=0.2).weight
    assert w.abs().max() <= 0.2
    assert w.abs().max() > 0.199
    assert _rel(w.std().item(), 0.2 / math.sqrt(3)) < 0.02


def test_kaiming_normal_relu_std_is_sqrt_2_over_fan_in():
    w = _first_layer(init="kaiming_normal", activation="relu").weight
    assert _rel(w.std().item(), math.sqrt(2 / 784)) < 0.02


def test_kaiming_uniform_relu_bound():
    w = _first_layer(init="kaiming_uniform", activation="relu").weight
    bound = math.sqrt(6 / 784)  # gain sqrt(2) * sqrt(3 / fan_in)
    assert w.abs().max() <= bound
    assert _rel(w.std().item(), math.sqrt(2 / 784)) < 0.02


@pytest.mark.parametrize("activation, slope", [("leaky_relu", 0.2), ("prelu", 0.25)])
def test_kaiming_normal_uses_the_negative_slope(activation, slope):
    cfg = {"negative_slope": slope} if activation == "leaky_relu" else {"prelu_init": slope}
    w = _first_layer(init="kaiming_normal", activation=activation, **cfg).weight
    assert _rel(w.std().item(), math.sqrt(2 / (1 + slope**2) / 784)) < 0.02


def test_xavier_normal_uses_the_tanh_gain_and_linear_for_the_output():
    hidden, out = linears(build_model(ModelConfig(hidden=[256], init="xavier_normal", activation="tanh"), 784, 10))
    assert _rel(hidden.weight.std().item(), 5 / 3 * math.sqrt(2 / (784 + 256))) < 0.02
    assert _rel(out.weight.std().item(), 1.0 * math.sqrt(2 / (256 + 10))) < 0.05  # 2,560 samples


def test_xavier_uniform_with_explicit_gain():
    w = _first_layer(init="xavier_uniform", activation="tanh", init_gain=2.0).weight
    assert w.abs().max() <= 2.0 * math.sqrt(6 / (784 + 256))
    assert _rel(w.std().item(), 2.0 * math.sqrt(2 / (784 + 256))) < 0.02


@pytest.mark.parametrize("activation, gain", [("relu", math.sqrt(2)), ("tanh", 5 / 3), ("sigmoid", 1.0)])
def test_orthogonal_rows_are_orthogonal_with_gain(activation, gain):
    hidden, out = linears(build_model(ModelConfig(hidden=[256], init="orthogonal", activation=activation), 784, 10))
    w = hidden.weight  # [256, 784]: 256 orthogonal rows
    assert torch.allclose(w @ w.T, gain**2 * torch.eye(256), atol=1e-4)
    assert torch.allclose(out.weight @ out.weight.T, torch.eye(10), atol=1e-5)  # output: 'linear', gain 1


def test_maxout_layers_init_over_all_pieces():
    lin = linears(build_model(ModelConfig(hidden=[256], activation="maxout", init="kaiming_normal"), 784, 10))[0]
    assert lin.weight.shape == (512, 784)
    assert _rel(lin.weight.std().item(), math.sqrt(2 / 784)) < 0.02


@pytest.mark.parametrize(
    "bias_init, check",
    [
        ("zeros", lambda b: torch.all(b == 0)),
        ("constant", lambda b: torch.all(b == 0.1)),
        ("uniform", lambda b: b.abs().max() <= 0.05 and b.abs().max() > 0),
        ("normal", lambda b: b.std() > 0 and b.abs().max() < 0.1),
        # PyTorch's own: uniform in +-1/sqrt(fan_in)
        ("default", lambda b: b.abs().max() > 0 and b.abs().max() <= 1 / math.sqrt(784)),
    ],
)
def test_bias_init(bias_init, check):
    b = _first_layer(bias_init=bias_init, bias_value=0.1).bias
    assert check(b)


def test_bias_init_is_independent_of_the_weight_init():
    lin = _first_layer(init="normal", init_std=1.0, bias_init="constant", bias_value=0.5)
    assert torch.all(lin.bias == 0.5)
    assert _rel(lin.weight.std().item(), 1.0) < 0.02


# --- activations -----------------------------------------------------------------------


def test_maxout_takes_the_max_of_contiguous_groups():
    x = torch.tensor([[1.0, 5.0, 3.0, 2.0, -1.0, -4.0], [0.0, -2.0, 7.0, 8.0, 9.0, 6.0]])
    assert torch.equal(Maxout(2)(x), torch.tensor([[5.0, 3.0, -1.0], [0.0, 8.0, 9.0]]))
    assert torch.equal(Maxout(3)(x), torch.tensor([[5.0, 2.0], [7.0, 9.0]]))
    with pytest.raises(ValueError, match="multiple"):
        Maxout(4)(x)


def test_maxout_gradient_flows_only_to_the_winning_piece():
    x = torch.tensor([[1.0, 5.0, 3.0, 2.0]], requires_grad=True)
    Maxout(2)(x).sum().backward()
    assert torch.equal(x.grad, torch.tensor([[0.0, 1.0, 1.0, 0.0]]))


def test_activation_modules_and_their_parameters():
    cfg = ModelConfig(hidden=[4], negative_slope=0.2, elu_alpha=0.5, maxout_pieces=3)
    want = {
        "sigmoid": nn.Sigmoid,
        "tanh": nn.Tanh,
        "relu": nn.ReLU,
        "leaky_relu": nn.LeakyReLU,
        "prelu": nn.PReLU,
        "elu": nn.ELU,
        "maxout": Maxout,
        "gelu": nn.GELU,
        "silu": nn.SiLU,
    }
    for name, cls in want.items():
        act = hidden_blocks(build_model(cfg.model_copy(update={"activation": name}), 3, 10))[0].activation
        assert type(act) is cls, name
    assert ACTIVATIONS["leaky_relu"](cfg, 4).negative_slope == 0.2
    assert ACTIVATIONS["elu"](cfg, 4).alpha == 0.5
    assert ACTIVATIONS["maxout"](cfg, 4).pieces == 3


def test_prelu_is_learned_per_unit():
    model = build_model(ModelConfig(hidden=[5, 3], activation="prelu", prelu_init=0.3), 4, 10)
    prelus = [b.activation for b in hidden_blocks(model)]
    assert [p.weight.shape for p in prelus] == [(5,), (3,)]
    assert all(torch.all(p.weight == 0.3) for p in prelus)
    x = torch.randn(16, 4)
    nn.functional.cross_entropy(model(x), torch.randint(0, 10, (16,))).backward()
    for p in prelus:
        assert p.weight.grad is not None and p.weight.grad.abs().sum() > 0
    before = prelus[0].weight.detach().clone()
    torch.optim.SGD(model.parameters(), lr=0.5).step()
    assert not torch.equal(prelus[0].weight, before)


# --- train vs eval ---------------------------------------------------------------------


@pytest.mark.parametrize("norm, differs", [("batchnorm", True), ("layernorm", False), ("none", False)])
def test_train_and_eval_differ_only_with_batchnorm(norm, differs):
    model = build_model(ModelConfig(hidden=[8, 8], norm=norm), 5, 10)
    x = torch.randn(32, 5) * 3 + 1
    model.train()
    out_train = model(x)
    model.eval()  # batch norm now uses its running statistics, not the batch's
    with torch.no_grad():
        out_eval = model(x)
    assert torch.allclose(out_train, out_eval) is not differs


def test_dropout_is_off_in_eval():
    model = build_model(ModelConfig(hidden=[64], dropout=0.5), 5, 10)
    x = torch.randn(8, 5)
    model.eval()
    assert torch.equal(model(x), model(x))
    model.train()
    assert not torch.equal(model(x), model(x))


# --- hidden_blocks, for diagnostics ----------------------------------------------------


def test_hidden_blocks_lets_diagnostics_hook_pre_and_post_activations():
    cfg = ModelConfig(hidden=[6, 4], activation="maxout", norm="batchnorm", dropout=0.1)
    model = build_model(cfg, 5, 10)
    blocks = hidden_blocks(model)
    assert len(blocks) == 2
    assert [b.linear.out_features for b in blocks] == [12, 8]
    assert all(isinstance(b.norm, nn.BatchNorm1d) for b in blocks)
    seen = []
    for b in blocks:
        b.activation.register_forward_hook(lambda m, inp, out: seen.append((inp[0].shape, out.shape)))
    model(torch.randn(3, 5))
    assert seen == [((3, 12), (3, 6)), ((3, 8), (3, 4))]


def test_hidden_blocks_without_norm_and_for_softmax_regression():
    blocks = hidden_blocks(build_model(ModelConfig(hidden=[3]), 5, 10))
    assert len(blocks) == 1 and blocks[0].norm is None and isinstance(blocks[0].activation, nn.ReLU)
    assert hidden_blocks(build_model(ModelConfig(hidden=[]), 5, 10)) == []
