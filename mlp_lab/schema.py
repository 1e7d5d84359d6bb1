"""The experiment config's schema: what a user reads to learn what a config may say.

One pydantic model per section is the single source of truth: defaults, validation and
the JSON schema (``mlp-lab schema``) all come from the classes below, and so do the tuples
of allowed names (``OPTIMIZER_NAMES`` ...), derived from the unions rather than copied.
Loading YAML, ``--set`` overrides and one-line error messages live in ``config.py``.
No torch here: ``compare`` and ``--help`` read configs and have to start fast.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any, Literal, cast, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# --- the names each choice accepts (model.py / optim.py map them to torch) -------------

Activation = Literal["sigmoid", "tanh", "relu", "leaky_relu", "prelu", "elu", "maxout", "gelu", "silu"]
Init = Literal[
    "default",
    "zeros",
    "constant",
    "normal",
    "uniform",
    "xavier_uniform",
    "xavier_normal",
    "kaiming_uniform",
    "kaiming_normal",
    "orthogonal",
]
BiasInit = Literal["default", "zeros", "constant", "normal", "uniform"]
Norm = Literal["none", "batchnorm", "layernorm"]
NormPosition = Literal["before_activation", "after_activation"]
Dataset = Literal["mnist", "fashion_mnist", "cifar10", "synthetic"]
Preprocessing = Literal["none", "channel_mean", "pixel_mean", "standardize"]
Device = Annotated[str, Field(pattern=r"^(auto|cpu|cuda(:\d+)?|mps)$")]
Precision = Literal["fp32", "tf32", "bf16"]

PositiveFloat = Annotated[float, Field(gt=0)]
NonNegFloat = Annotated[float, Field(ge=0)]
Beta = Annotated[float, Field(ge=0, lt=1)]


class _Section(BaseModel):
    # Unknown keys are errors (with a did-you-mean), never silently ignored: a typo in
    # a config must not quietly run a different experiment.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, data: Any) -> Any:
        # YAML reads yes/no/on/off/true/false as booleans and pydantic would take them as
        # 1 and 0: `epochs: yes` must be an error, not a quiet one-epoch run. Spelled as
        # the string 'true'/'false', the value fails the field's own number check.
        if not isinstance(data, dict):
            return data
        out = dict(data)
        for key, v in data.items():
            field = cls.model_fields.get(key) if isinstance(key, str) else None
            if field is None or not _is_numeric(field.annotation):
                continue
            if isinstance(v, bool):
                out[key] = str(v).lower()
            elif isinstance(v, (list, tuple)) and any(isinstance(x, bool) for x in v):
                out[key] = [str(x).lower() if isinstance(x, bool) else x for x in v]
        return out


def _is_numeric(annotation: Any) -> bool:
    """Does a field hold numbers (int, float, or lists/tuples of them) and never booleans?"""
    found: set[Any] = set()
    stack = [annotation]
    while stack:
        a = stack.pop()
        if isinstance(a, type):
            found.add(a)
        stack.extend(getattr(a, "__args__", None) or ())
        if getattr(a, "__origin__", None) is Annotated:
            stack.append(a.__origin__)
    return bool(found & {int, float}) and bool not in found


# --- data -----------------------------------------------------------------------------


class DataConfig(_Section):
    dataset: Dataset = Field("mnist", description="Data set to train on.")
    data_dir: str | None = Field(
        None,
        description="Where the data lives (torchvision's layout). "
        "--data-dir, then $MLP_LAB_DATA, then this, then ./data.",
    )
    download: bool = Field(
        True, description="Download through torchvision when the files are missing (never when $MLP_LAB_OFFLINE=1)."
    )
    preprocessing: Preprocessing = Field(
        "channel_mean",
        description="channel_mean: subtract each channel's training-set mean (VGG); pixel_mean: "
        "subtract the mean image (AlexNet); standardize: per-channel mean and std; none: pixels in [0, 1].",
    )
    val_split: float = Field(0.0, ge=0, lt=1, description="Fraction of the training set held out for validation.")
    limit_train: int | None = Field(None, ge=1, description="Use only the first N training samples (quick runs).")
    synthetic_train_size: int = Field(6000, ge=10, description="Training samples of the synthetic data set.")
    synthetic_test_size: int = Field(1000, ge=10, description="Test samples of the synthetic data set.")


# --- model ----------------------------------------------------------------------------


class ModelConfig(_Section):
    hidden: list[Annotated[int, Field(ge=1)]] = Field(
        default_factory=lambda: [256, 256],
        description="Hidden layer sizes; [] is softmax regression.",
    )
    activation: Activation = Field("relu", description="The nonlinearity after each hidden layer.")
    negative_slope: float = Field(0.01, ge=0, description="leaky_relu's slope for x < 0.")
    prelu_init: float = Field(0.25, description="prelu's initial learned slope.")
    elu_alpha: float = Field(1.0, gt=0, description="elu's alpha.")
    maxout_pieces: int = Field(2, ge=2, description="maxout: each hidden unit is the max of k linear pieces.")
    init: Init = Field("default", description="Weight initialiser; 'default' keeps PyTorch's.")
    init_std: PositiveFloat = Field(0.01, description="std of init: normal (0.01 = 'small random', 1 = large).")
    init_range: PositiveFloat = Field(0.05, description="init: uniform draws from [-init_range, init_range].")
    init_value: float = Field(0.0, description="init: constant fills weights with this value.")
    init_gain: PositiveFloat | None = Field(
        None, description="Gain for xavier_* and orthogonal; None uses torch.nn.init.calculate_gain(activation)."
    )
    bias_init: BiasInit = Field("zeros", description="Bias initialiser ('default' keeps PyTorch's).")
    bias_value: float = Field(0.0, description="bias_init: constant fills biases with this value.")
    norm: Norm = Field("none", description="A normalisation layer in each hidden layer (batchnorm: BatchNorm1d).")
    norm_position: NormPosition = Field(
        "before_activation", description="Where the norm layer sits: Linear -> norm -> activation, or after it."
    )
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout rate after each hidden activation.")


# --- optimizers: one model per torch.optim class, discriminated by name ----------------
# Defaults are torch's own (tests/test_optim.py checks them against the signatures), so
# a saved config says exactly which hyper-parameters ran.


class _Optimizer(_Section):
    lr: PositiveFloat = 1e-3


class SGDConfig(_Optimizer):
    name: Literal["sgd"] = "sgd"
    lr: PositiveFloat = 1e-3
    momentum: NonNegFloat = 0.0
    dampening: NonNegFloat = 0.0
    nesterov: bool = False
    weight_decay: NonNegFloat = 0.0

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self) -> SGDConfig:
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError("nesterov: true needs momentum > 0 and dampening 0")
        return self


class AdamConfig(_Optimizer):
    name: Literal["adam"] = "adam"
    betas: tuple[Beta, Beta] = (0.9, 0.999)
    eps: PositiveFloat = 1e-8
    weight_decay: NonNegFloat = 0.0
    amsgrad: bool = False


class AdamWConfig(AdamConfig):
    name: Literal["adamw"] = "adamw"  # type: ignore[assignment]
    weight_decay: NonNegFloat = 0.01


class SparseAdamConfig(_Optimizer):
    name: Literal["sparse_adam"] = "sparse_adam"
    betas: tuple[Beta, Beta] = (0.9, 0.999)
    eps: PositiveFloat = 1e-8


class AdadeltaConfig(_Optimizer):
    name: Literal["adadelta"] = "adadelta"
    lr: PositiveFloat = 1.0
    rho: float = Field(0.9, ge=0, le=1)
    eps: PositiveFloat = 1e-6
    weight_decay: NonNegFloat = 0.0


class AdagradConfig(_Optimizer):
    name: Literal["adagrad"] = "adagrad"
    lr: PositiveFloat = 0.01
    lr_decay: NonNegFloat = 0.0
    weight_decay: NonNegFloat = 0.0
    initial_accumulator_value: NonNegFloat = 0.0
    eps: PositiveFloat = 1e-10


class ASGDConfig(_Optimizer):
    name: Literal["asgd"] = "asgd"
    lr: PositiveFloat = 0.01
    lambd: NonNegFloat = 1e-4
    alpha: NonNegFloat = 0.75
    t0: NonNegFloat = 1e6
    weight_decay: NonNegFloat = 0.0


class LBFGSConfig(_Optimizer):
    name: Literal["lbfgs"] = "lbfgs"
    lr: PositiveFloat = 1.0
    max_iter: int = Field(20, ge=1)
    history_size: int = Field(100, ge=1)
    line_search_fn: Literal["strong_wolfe"] | None = Field(
        None, description="strong_wolfe keeps mini-batch L-BFGS stable; without a line search it often diverges."
    )


class RMSpropConfig(_Optimizer):
    name: Literal["rmsprop"] = "rmsprop"
    lr: PositiveFloat = 0.01
    alpha: float = Field(0.99, ge=0, le=1)
    eps: PositiveFloat = 1e-8
    weight_decay: NonNegFloat = 0.0
    momentum: NonNegFloat = 0.0
    centered: bool = False


class RpropConfig(_Optimizer):
    name: Literal["rprop"] = "rprop"
    lr: PositiveFloat = 0.01
    etas: tuple[PositiveFloat, PositiveFloat] = (0.5, 1.2)
    step_sizes: tuple[PositiveFloat, PositiveFloat] = (1e-6, 50.0)

    @model_validator(mode="after")
    def _etas_shrink_then_grow(self) -> RpropConfig:
        # torch checks etas only as the optimizer is built (a ValueError and a traceback there).
        minus, plus = self.etas
        if not minus < 1 < plus:
            raise ValueError(f"etas: [{minus}, {plus}]: needs [etaminus, etaplus] with etaminus < 1 < etaplus")
        low, high = self.step_sizes
        if low > high:
            raise ValueError(f"step_sizes: [{low}, {high}]: needs [smallest, largest] with smallest <= largest")
        return self


OptimizerConfig = Annotated[
    SGDConfig
    | AdadeltaConfig
    | AdagradConfig
    | AdamConfig
    | AdamWConfig
    | SparseAdamConfig
    | ASGDConfig
    | LBFGSConfig
    | RMSpropConfig
    | RpropConfig,
    Field(discriminator="name"),
]


def _variants(union: Any) -> dict[str, type[_Section]]:
    """name -> model class of a discriminated union, in the union's order."""
    members = get_args(get_args(union)[0])
    return {cls.model_fields["name"].default: cls for cls in members}


OPTIMIZER_VARIANTS = _variants(OptimizerConfig)
OPTIMIZER_NAMES = tuple(OPTIMIZER_VARIANTS)


# --- schedulers (stepped once per epoch) ----------------------------------------------


class _Scheduler(_Section):
    warmup_epochs: int = Field(
        0,
        ge=0,
        description="Linear warm-up from lr/10 to lr over this many epochs; the schedule's own "
        "epoch counts (step_size, milestones, t_max) start after it.",
    )


class NoScheduler(_Scheduler):
    name: Literal["none"] = "none"


class StepSchedulerConfig(_Scheduler):
    name: Literal["step"] = "step"
    step_size: int = Field(5, ge=1, description="Multiply the lr by gamma every step_size epochs.")
    gamma: PositiveFloat = 0.1


class MultiStepSchedulerConfig(_Scheduler):
    name: Literal["multistep"] = "multistep"
    milestones: list[Annotated[int, Field(ge=1)]] = Field(default_factory=lambda: [10, 15])
    gamma: PositiveFloat = 0.1


class ExponentialSchedulerConfig(_Scheduler):
    name: Literal["exponential"] = "exponential"
    gamma: PositiveFloat = 0.9


class CosineSchedulerConfig(_Scheduler):
    name: Literal["cosine"] = "cosine"
    t_max: int | None = Field(None, ge=1, description="Epochs of one cosine half-period; None = all epochs.")
    eta_min: NonNegFloat = 0.0


SchedulerConfig = Annotated[
    NoScheduler | StepSchedulerConfig | MultiStepSchedulerConfig | ExponentialSchedulerConfig | CosineSchedulerConfig,
    Field(discriminator="name"),
]
SCHEDULER_VARIANTS = _variants(SchedulerConfig)
SCHEDULER_NAMES = tuple(SCHEDULER_VARIANTS)


# --- training -------------------------------------------------------------------------


class EarlyStoppingConfig(_Section):
    """Stop a run whose validation metric has stopped improving (Keras' and Lightning's
    EarlyStopping): it ends completed, saying why, with best.pt the chosen epoch's weights."""

    metric: Literal["val_loss", "val_acc"] = Field("val_loss", description="The validation metric watched.")
    patience: int = Field(3, ge=1, description="Epochs without improvement before the run stops.")
    min_delta: float = Field(
        0.0, ge=0, description="The least change of the metric that counts as an improvement (a fraction for val_acc)."
    )


class TrainConfig(_Section):
    epochs: int = Field(15, ge=1, description="Passes over the training set.")
    batch_size: int = Field(100, ge=1, description="Training mini-batch size.")
    # 1000, not the whole test set at once: for CIFAR-10 a 10000-image batch briefly holds
    # ~100 MB more and evaluates slower on CPU (0.33 s vs 0.27 s); for MNIST 1000 costs
    # 8 ms more per epoch (0.058 s vs 0.050 s, under 1%). benchmarks/README.md
    eval_batch_size: int = Field(1000, ge=1, description="Batch size for evaluation (no autograd).")
    seed: int = Field(
        0, description="Seeds init, dropout and batch order: same seed, same config, same metrics on CPU."
    )
    device: Device = Field("auto", description="auto picks CUDA when present, else CPU.")
    precision: Precision = Field("fp32", description="fp32; tf32 matmuls on CUDA; bf16 autocast.")
    compile: bool = Field(False, description="Wrap the model in torch.compile.")
    threads: int | None = Field(
        None,
        ge=1,
        description="CPU threads torch may use; None keeps torch's choice (one per core). "
        "On a machine shared with other jobs, 1 avoids threads waiting on each other.",
    )
    diagnostics: bool = Field(False, description="Record per-layer activation and gradient statistics.")
    diagnostics_per_epoch: int = Field(4, ge=1, description="How many times per epoch diagnostics are recorded.")
    checkpoint: bool = Field(True, description="Write a resumable checkpoint at the end of each epoch.")
    early_stopping: EarlyStoppingConfig | None = Field(
        None,
        description="Stop when the validation metric has not improved for `patience` epochs (needs data.val_split); "
        "null: train every epoch.",
    )
    check_memory: bool = Field(
        True,
        description="Refuse, before anything is built, a run whose estimated memory (weights, gradients, "
        "optimizer state, a batch's activations, the data) exceeds what the device has; false where the estimate misjudges.",
    )


class ExperimentConfig(_Section):
    name: str = Field("experiment", description="Run name; the run folder is <name>-<timestamp>-<id>.")
    description: str = Field("", description="Free text: what the experiment is for (shown by mlp-lab configs).")
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    # The one place the default optimizer and scheduler are written.
    optimizer: OptimizerConfig = Field(default_factory=AdamConfig)
    scheduler: SchedulerConfig = Field(default_factory=NoScheduler)
    train: TrainConfig = Field(default_factory=TrainConfig)

    @model_validator(mode="before")
    @classmethod
    def _default_union_names(cls, data: Any) -> Any:
        # A config only states what it changes: `optimizer: {lr: 0.01}` means Adam.
        if isinstance(data, dict):
            for section, default in DEFAULT_NAMES.items():
                if isinstance(data.get(section), dict) and "name" not in data[section]:
                    data = {**data, section: {"name": default, **data[section]}}
        return data

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v: str) -> str:
        # The name becomes a folder under runs/: it must not be able to escape it.
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}", v) or ".." in v:
            raise ValueError(
                "must be 1-64 letters, digits, '_', '-' or '.', start with a letter or digit, "
                "and contain no '..' or path separators"
            )
        return v

    @model_validator(mode="after")
    def _cross_checks(self) -> ExperimentConfig:
        if self.optimizer.name == "sparse_adam":
            raise ValueError(
                "optimizer.name: sparse_adam only trains sparse gradients (nn.Embedding(sparse=True)); "
                "an MLP's Linear layers have dense gradients, so use adam or adamw instead"
            )
        if self.train.early_stopping is not None and self.data.val_split == 0:
            raise ValueError(
                "train.early_stopping watches the validation set, and there is none: "
                "set data.val_split (e.g. 0.1), or remove train.early_stopping"
            )
        return self


# Sections whose fields depend on their `name`: section -> {name -> model class}.
VARIANTS: dict[str, dict[str, type[_Section]]] = {"optimizer": OPTIMIZER_VARIANTS, "scheduler": SCHEDULER_VARIANTS}


# The name a section gets when a config leaves it out: read off ExperimentConfig's defaults.
def _default_name(section: str) -> str:
    # (not ExperimentConfig().optimizer.name: building a config runs the validator that reads this)
    factory = cast(Callable[[], Any], ExperimentConfig.model_fields[section].default_factory)
    return str(factory().name)


DEFAULT_NAMES: dict[str, str] = {section: _default_name(section) for section in VARIANTS}


def json_schema() -> dict[str, Any]:
    return ExperimentConfig.model_json_schema()
