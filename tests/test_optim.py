"""optim.py: registries match the schema, config defaults are torch's, every optimizer
learns, fast kernels are picked and exact, schedules follow the expected lr sequence."""

from __future__ import annotations

import inspect
import math
from typing import get_args

import pytest
import torch
from torch import nn

from mlp_lab import config, schema
from mlp_lab.errors import ConfigError
from mlp_lab.model import build_model
from mlp_lab.optim import (
    OPTIMIZERS,
    SCHEDULERS,
    WARMUP_START_FACTOR,
    _fast_kernel_kwargs,
    build_optimizer,
    build_scheduler,
    needs_closure,
)
from mlp_lab.schema import ModelConfig

OPTIMIZER_CONFIGS = {cls.model_fields["name"].default: cls for cls in get_args(get_args(schema.OptimizerConfig)[0])}
SCHEDULER_CONFIGS = {cls.model_fields["name"].default: cls for cls in get_args(get_args(schema.SchedulerConfig)[0])}


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# --- registries and the schema ---------------------------------------------------------


def test_optimizer_registry_is_the_config_names():
    assert set(OPTIMIZERS) == set(schema.OPTIMIZER_NAMES) == set(OPTIMIZER_CONFIGS)


def test_scheduler_registry_is_the_config_names():
    assert set(SCHEDULERS) == set(schema.SCHEDULER_NAMES) == set(SCHEDULER_CONFIGS)


def _default_cases():
    for name, cls in OPTIMIZER_CONFIGS.items():
        for field in cls.model_fields:
            if field == "name":
                continue
            yield pytest.param(name, field, id=f"{name}.{field}")


@pytest.mark.parametrize("name, field", list(_default_cases()))
def test_config_default_is_torchs_default(name, field):
    params = inspect.signature(OPTIMIZERS[name].__init__).parameters
    assert field in params, f"torch.optim.{OPTIMIZERS[name].__name__} has no argument {field!r}"
    torch_default = params[field].default
    if torch_default is inspect.Parameter.empty or type(torch_default).__name__ == "_RequiredParameter":
        pytest.skip(f"this torch has no default for {name}.{field}")
    ours = getattr(OPTIMIZER_CONFIGS[name](), field)
    assert ours == torch_default, f"{name}.{field}: config default {ours!r}, torch's {torch_default!r}"


@pytest.mark.parametrize("name", [n for n in schema.OPTIMIZER_NAMES if n != "sparse_adam"])
def test_config_fields_reach_the_optimizer(name):
    cls = OPTIMIZER_CONFIGS[name]
    cfg = cls()
    model = nn.Linear(3, 2)
    opt = build_optimizer(cfg, model.parameters())
    assert type(opt) is OPTIMIZERS[name]
    for field, value in cfg.model_dump(exclude={"name"}).items():
        assert opt.defaults[field] == value, field


def test_non_default_values_pass_straight_through():
    cfg = schema.SGDConfig(lr=0.3, momentum=0.9, nesterov=True, weight_decay=5e-4)
    group = build_optimizer(cfg, nn.Linear(3, 2).parameters()).param_groups[0]
    assert (group["lr"], group["momentum"], group["nesterov"], group["weight_decay"]) == (0.3, 0.9, True, 5e-4)
    group = build_optimizer(schema.AdamConfig(betas=(0.5, 0.9)), nn.Linear(3, 2).parameters()).param_groups[0]
    assert group["betas"] == (0.5, 0.9)
    group = build_optimizer(schema.RpropConfig(etas=(0.4, 1.5)), nn.Linear(3, 2).parameters()).param_groups[0]
    assert group["etas"] == (0.4, 1.5)


TRIAL_VALUES = (-1.0, 0.0, 1e-3, 0.5, 1.0, 1.5, 50.0)


@pytest.mark.parametrize("name", [n for n in OPTIMIZER_CONFIGS if n != "sparse_adam"])
def test_every_value_the_config_accepts_builds_the_optimizer(name):
    """Where the schema is looser than torch, torch's ValueError reached the user as a
    traceback (rprop's etas [1.2, 0.5]): each numeric field, alone, at values on either side
    of the usual bounds; a pair takes every ordered pair of them."""
    cls = OPTIMIZER_CONFIGS[name]
    params = list(nn.Linear(3, 2).parameters())
    for field, info in cls.model_fields.items():
        default = info.default
        if isinstance(default, bool) or not isinstance(default, (int, float, tuple)):
            continue
        values = [(a, b) for a in TRIAL_VALUES for b in TRIAL_VALUES] if isinstance(default, tuple) else TRIAL_VALUES
        for value in values:
            try:
                cfg = cls(**{field: value})
            except ValueError:  # pydantic's ValidationError: the config refuses it, as it should
                continue
            build_optimizer(cfg, params)  # torch must not refuse what the config let through


def test_sparse_adam_is_mapped_but_rejected_by_the_config():
    assert OPTIMIZERS["sparse_adam"] is torch.optim.SparseAdam
    with pytest.raises(ConfigError, match="sparse_adam"):
        config.config_from_dict({"optimizer": {"name": "sparse_adam"}})


def test_unknown_optimizer_and_scheduler_are_config_errors():
    bad = schema.AdamConfig.model_construct(name="adamax", lr=1e-3)
    # (the schema's own words for it, did-you-mean included)
    with pytest.raises(
        ConfigError, match=r"optimizer\.name: 'adamax' is not allowed \(did you mean 'adam'\?\); allowed: sgd, "
    ):
        build_optimizer(bad, nn.Linear(3, 2).parameters())
    opt = torch.optim.SGD(nn.Linear(3, 2).parameters(), lr=1.0)
    with pytest.raises(ConfigError, match=r"scheduler\.name: 'plateau' is not allowed; allowed: none, "):
        build_scheduler(schema.NoScheduler.model_construct(name="plateau", warmup_epochs=0), opt, 5)


def test_needs_closure_only_for_lbfgs():
    for name in schema.OPTIMIZER_NAMES:
        if name == "sparse_adam":
            continue
        opt = build_optimizer(OPTIMIZER_CONFIGS[name](), nn.Linear(3, 2).parameters())
        assert needs_closure(opt) is (name == "lbfgs"), name


# --- every optimizer learns ------------------------------------------------------------

# SGD and ASGD at their default lr (0.01) need more than 20 steps to show progress here.
TEST_LR = {"sgd": 0.1, "asgd": 0.1}


@pytest.mark.parametrize("name", [n for n in schema.OPTIMIZER_NAMES if n != "sparse_adam"])
def test_every_optimizer_lowers_the_loss(name):
    x = torch.randn(128, 20)
    y = (x @ torch.randn(20, 4)).argmax(dim=1)  # a linear teacher: learnable
    model = build_model(ModelConfig(hidden=[32]), 20, 4)
    cfg = OPTIMIZER_CONFIGS[name](**({"lr": TEST_LR[name]} if name in TEST_LR else {}))
    opt = build_optimizer(cfg, model.parameters())

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        return loss

    with torch.no_grad():
        before = nn.functional.cross_entropy(model(x), y).item()
    for _ in range(20):
        if needs_closure(opt):
            opt.step(closure)
        else:
            closure()
            opt.step()
    with torch.no_grad():
        after = nn.functional.cross_entropy(model(x), y).item()
    assert after < 0.95 * before, f"{name}: loss {before:.4f} -> {after:.4f}"


# --- fast kernels ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_adam_uses_a_fast_kernel_on_cpu(name):
    opt = build_optimizer(OPTIMIZER_CONFIGS[name](), nn.Linear(3, 2).parameters())
    flag = "fused" if torch.__version__ >= (2, 4) else "foreach"  # CPU fused Adam: torch 2.4+
    assert opt.defaults[flag] is True
    assert _fast_kernel_kwargs(name, torch.device("cpu")) == {flag: True}


def test_other_optimizers_keep_torchs_kernel_choice():
    for name in ("sgd", "adagrad", "rmsprop", "lbfgs"):
        assert _fast_kernel_kwargs(name, torch.device("cpu")) == {}


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_fast_adam_matches_the_reference_loop(name):
    cfg = OPTIMIZER_CONFIGS[name](lr=0.01, weight_decay=0.1)
    x, y = torch.randn(16, 6), torch.randint(0, 3, (16,))
    models = [build_model(ModelConfig(hidden=[8]), 6, 3) for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    opts = [
        build_optimizer(cfg, models[0].parameters()),
        OPTIMIZERS[name](models[1].parameters(), **cfg.model_dump(exclude={"name"}), foreach=False),
    ]
    for _ in range(5):
        for model, opt in zip(models, opts):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    for fast, ref in zip(models[0].parameters(), models[1].parameters()):
        torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-6)


def test_device_is_taken_from_param_groups():
    model = build_model(ModelConfig(hidden=[4]), 3, 2)
    groups = [{"params": list(model[0].parameters())}, {"params": list(model[2].parameters()), "lr": 0.1}]
    opt = build_optimizer(schema.AdamConfig(), groups)
    assert [g["lr"] for g in opt.param_groups] == [1e-3, 0.1]


# --- schedulers: the lr each epoch runs at ---------------------------------------------


def lr_sequence(sched_cfg, epochs: int = 10, lr: float = 1.0) -> list[float]:
    """The lr of each epoch, stepping the scheduler once per epoch as training.py does."""
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=lr)
    sched = build_scheduler(sched_cfg, opt, epochs)
    out = []
    for _ in range(epochs):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        if sched is not None:
            sched.step()
    return out


C = schema
W = WARMUP_START_FACTOR


def _cos(t: int, t_max: int, lo: float = 0.0, hi: float = 1.0) -> float:
    return lo + (hi - lo) * (1 + math.cos(math.pi * t / t_max)) / 2


@pytest.mark.parametrize(
    "sched_cfg, expected",
    [
        (C.NoScheduler(), [1.0] * 10),
        (C.NoScheduler(warmup_epochs=3), [0.1, 0.4, 0.7] + [1.0] * 7),
        (C.StepSchedulerConfig(step_size=3, gamma=0.5), [1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.125]),
        # warm-up is prepended: step_size counts from its end
        (
            C.StepSchedulerConfig(step_size=3, gamma=0.5, warmup_epochs=2),
            [0.1, 0.55, 1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25],
        ),
        (C.MultiStepSchedulerConfig(milestones=[2, 5], gamma=0.1), [1, 1, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01, 0.01, 0.01]),
        (
            C.MultiStepSchedulerConfig(milestones=[2, 5], gamma=0.1, warmup_epochs=2),
            [0.1, 0.55, 1, 1, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01],
        ),
        (C.ExponentialSchedulerConfig(gamma=0.5), [0.5**e for e in range(10)]),
        (C.ExponentialSchedulerConfig(gamma=0.5, warmup_epochs=1), [0.1] + [0.5**e for e in range(9)]),
        (C.CosineSchedulerConfig(), [_cos(e, 10) for e in range(10)]),  # t_max defaults to all epochs
        (
            C.CosineSchedulerConfig(eta_min=0.1, warmup_epochs=4),
            [0.1, 0.325, 0.55, 0.775] + [_cos(e, 6, 0.1) for e in range(6)],
        ),
        (C.CosineSchedulerConfig(t_max=5), [_cos(e, 5) for e in range(10)]),  # then back up: torch's periodic cosine
    ],
    ids=lambda v: getattr(v, "name", None) and f"{v.name}-warmup{v.warmup_epochs}",
)
def test_lr_sequence(sched_cfg, expected):
    assert lr_sequence(sched_cfg) == pytest.approx(expected, abs=1e-9)


def test_no_scheduler_without_warmup_is_none():
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    assert build_scheduler(C.NoScheduler(), opt, 5) is None


def test_warmup_starts_at_a_tenth_and_chained_scheduler_resumes_from_state_dict():
    cfg = C.CosineSchedulerConfig(warmup_epochs=2)
    full = lr_sequence(cfg, epochs=8)
    assert full[0] == pytest.approx(W * 1.0)
    # A resumed run (checkpoint after epoch 3) continues the same sequence.
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = build_scheduler(cfg, opt, 8)
    for _ in range(3):
        opt.step()
        sched.step()
    state = sched.state_dict(), opt.state_dict()
    opt2 = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched2 = build_scheduler(cfg, opt2, 8)
    sched2.load_state_dict(state[0])
    opt2.load_state_dict(state[1])
    rest = []
    for _ in range(5):
        rest.append(opt2.param_groups[0]["lr"])
        opt2.step()
        sched2.step()
    assert rest == pytest.approx(full[3:])
