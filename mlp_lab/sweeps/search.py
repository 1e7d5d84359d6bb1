"""Hyperparameter search: a sweep file's ``search`` section, sampled and pruned by Optuna.

```yaml
search:
  method: random              # random | tpe
  trials: 24
  seed: 0                     # the sampler's seed
  metric: val_acc             # val_acc (maximised) or val_loss (minimised); never a test metric
  space:
    optimizer.lr: {log_uniform: [1.0e-4, 1.0]}
    model.activation: {choice: [relu, tanh]}
  prune: {rule: successive_halving, min_epochs: 1, reduction: 3}
```

mlp-lab owns what it owns for a grid (validation up front, the sweep folder and manifest,
the runs, the local backend); Optuna samples and prunes, through ask-and-tell, and is
imported only when a search runs. Why the two methods differ in when they ask: a random
trial does not depend on the others, so every trial is drawn when the sweep is planned
(the dry run lists them, and a resumed search draws nothing again); TPE learns from the
trials that ended, so its trials are asked as places free up, and the manifest grows by
one entry per trial. A resume rebuilds the study from the manifest: each trial enqueued
with its recorded values, its epochs reported again from its metrics, and ended trials
told. Pruning stops a trial's process through SIGTERM: it ends with every epoch it
finished, and its status is ``pruned``, which is final (never resumed, never retried).
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mlp_lab.errors import did_you_mean

KINDS = {
    "uniform": "a number in [low, high]",
    "log_uniform": "a number in [low, high] on a log scale",
    "int": "an integer in [low, high]",
    "log_int": "an integer in [low, high] on a log scale",
    "choice": "one of a list",
}
METRICS: dict[str, Literal["maximize", "minimize"]] = {"val_acc": "maximize", "val_loss": "minimize"}
DEFAULT_VAL_SPLIT = 0.1  # held out when the runs' config has none: a search never selects on test


class Prune(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rule: Literal["none", "median", "successive_halving", "hyperband"] = "none"
    min_epochs: int = Field(1, ge=1, description="Epochs every trial trains before it can be stopped.")
    reduction: int = Field(
        3, ge=2, description="Successive halving and Hyperband keep 1 trial in this many at each rung."
    )


class SearchSpec(BaseModel):
    """What a sweep file's ``search`` section may say."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["random", "tpe"] = "random"
    trials: int = Field(..., ge=1, le=10_000, description="Configs to try.")
    seed: int = Field(0, description="The sampler's seed: the same file and seed draw the same trials.")
    metric: str = Field("val_acc", description="val_acc (maximised) or val_loss (minimised).")
    space: dict[str, dict[str, Any]] = Field(
        ..., description="Key path -> {uniform|log_uniform|int|log_int: [low, high]} or {choice: [...]}."
    )
    prune: Prune = Field(default_factory=Prune)

    @field_validator("metric")
    @classmethod
    def _validation_metric(cls, v: str) -> str:
        if v.startswith("test"):
            raise ValueError(
                f"metric {v}: a search selects on validation data, never on the test set (tuning on it "
                f"makes its number meaningless); use {' or '.join(METRICS)}"
            )
        if v not in METRICS:
            raise ValueError(f"metric {v!r} is not allowed{did_you_mean(v, METRICS)}; allowed: {', '.join(METRICS)}")
        return v

    @field_validator("space")
    @classmethod
    def _forms(cls, space: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        if not space:
            raise ValueError("space: empty; give at least one key path with a distribution")
        for key, dist in space.items():
            problem = _form_problem(dist)
            if problem:
                raise ValueError(f"space {key}: {problem}")
        return space

    @property
    def direction(self) -> Literal["maximize", "minimize"]:
        return METRICS[self.metric]


def _form_problem(dist: Any) -> str | None:
    """What is wrong with one distribution's form and bounds, or None."""
    allowed = f"give one of {', '.join(f'{{{k}: ...}}' for k in KINDS)}"
    if not isinstance(dist, dict) or len(dist) != 1:
        return f"{dist!r}: {allowed}"
    ((kind, args),) = dist.items()
    if kind not in KINDS:
        return f"unknown distribution {kind!r}{did_you_mean(kind, KINDS)}; {allowed}"
    if kind == "choice":
        if not isinstance(args, list) or not args:
            return "choice needs a non-empty list of values"
        return None
    if (
        not isinstance(args, list)
        or len(args) != 2
        or any(isinstance(a, bool) or not isinstance(a, (int, float)) for a in args)
    ):
        return f"{kind} needs [low, high], two numbers, got {args!r}"
    low, high = args
    if not (math.isfinite(low) and math.isfinite(high)):
        return f"{kind} [{low}, {high}]: the bounds must be finite numbers"
    if not low < high:
        return f"{kind} [{low}, {high}]: low must be below high"
    if kind.startswith("log") and low <= 0:
        return f"{kind} [{low}, {high}]: a log scale needs low > 0"
    if kind.endswith("int") and not (float(low).is_integer() and float(high).is_integer()):
        return f"{kind} [{low}, {high}]: the bounds must be integers"
    return None


def edge_values(dist: dict[str, Any]) -> list[Any]:
    """Values the distribution can produce that validation must accept: both ends (and the
    middle) of a range, every choice."""
    ((kind, args),) = dist.items()
    if kind == "choice":
        return list(args)
    low, high = args
    if kind.endswith("int"):
        return [int(low), int(high)]
    mid = math.sqrt(low * high) if kind.startswith("log") else (low + high) / 2
    return [float(low), mid, float(high)]


def distributions(space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The space as Optuna distributions."""
    import optuna.distributions as od

    out: dict[str, od.BaseDistribution] = {}
    for key, dist in space.items():
        ((kind, args),) = dist.items()
        if kind == "choice":
            out[key] = od.CategoricalDistribution([_choice(v) for v in args])
        elif kind.endswith("int"):
            out[key] = od.IntDistribution(int(args[0]), int(args[1]), log=kind.startswith("log"))
        else:
            out[key] = od.FloatDistribution(float(args[0]), float(args[1]), log=kind.startswith("log"))
    return out


def _choice(v: Any) -> Any:
    """Optuna's categorical values are None, bool, int, float or str: a list (hidden sizes)
    is carried as its YAML text and parsed back when the trial's config is made."""
    return v if v is None or isinstance(v, (bool, int, float, str)) else repr(v)


def from_choice(dist: dict[str, Any], value: Any) -> Any:
    ((kind, args),) = dist.items()
    if kind == "choice" and isinstance(value, str):
        for option in args:
            if _choice(option) == value:
                return option
    return value


def make_study(spec: SearchSpec, epochs: int, storage: Any = None, name: str | None = None) -> Any:
    """An Optuna study with the spec's sampler, pruner and direction: in memory, or the study
    ``name`` in ``storage`` (created there, or loaded when it exists)."""
    import optuna

    # ERROR: a resumed trial reports again the epochs it redoes after its checkpoint, which
    # Optuna ignores with a warning each (the values are the same on CPU).
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    sampler = (
        optuna.samplers.RandomSampler(seed=spec.seed)
        if spec.method == "random"
        else optuna.samplers.TPESampler(seed=spec.seed)
    )
    p = spec.prune
    pruner = {
        "none": lambda: optuna.pruners.NopPruner(),
        "median": lambda: optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=p.min_epochs - 1),
        "successive_halving": lambda: optuna.pruners.SuccessiveHalvingPruner(
            min_resource=p.min_epochs, reduction_factor=p.reduction
        ),
        "hyperband": lambda: optuna.pruners.HyperbandPruner(
            min_resource=p.min_epochs, max_resource=max(epochs, p.min_epochs), reduction_factor=p.reduction
        ),
    }[p.rule]()
    return optuna.create_study(
        direction=spec.direction, sampler=sampler, pruner=pruner, storage=storage, study_name=name, load_if_exists=True
    )


def sample(spec: SearchSpec, n: int) -> list[dict[str, Any]]:
    """The first ``n`` trials' values a random search draws (they depend on nothing else)."""
    study = make_study(spec, 1)
    dists = distributions(spec.space)
    out = []
    for _ in range(n):
        trial = study.ask(dists)
        out.append({k: from_choice(spec.space[k], trial.params[k]) for k in spec.space})
        study.tell(trial, state=_pruned_state())  # nothing is learnt from it: random draws only
    return out


def _pruned_state() -> Any:
    import optuna

    return optuna.trial.TrialState.PRUNED
