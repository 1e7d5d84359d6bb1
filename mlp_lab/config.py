"""The experiment config: one pydantic schema is the single source of truth.

Defaults, validation, error messages and the JSON schema (``mlp-lab schema``) all come
from the models below. A YAML file only states what it changes. This module must not
import torch: ``compare`` and ``--help`` read configs and have to start fast.
"""

from __future__ import annotations

import copy
import difflib
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mlp_lab.errors import ConfigError
from mlp_lab.keys import flatten  # noqa: F401 - part of this module's API

# --- the names each choice accepts (model.py / optim.py map them to torch) -------------

Activation = Literal["sigmoid", "tanh", "relu", "leaky_relu", "prelu", "elu", "maxout", "gelu", "silu"]
Init = Literal[
    "default", "zeros", "constant", "normal", "uniform", "xavier_uniform", "xavier_normal",
    "kaiming_uniform", "kaiming_normal", "orthogonal",
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
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

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
        None, description="Where the data lives (torchvision's layout). "
        "--data-dir, then $MLP_LAB_DATA, then this, then ./data."
    )
    download: bool = Field(True, description="Download through torchvision when the files are missing (never when $MLP_LAB_OFFLINE=1).")
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
    activation: Activation = "relu"
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
    norm: Norm = "none"
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


OptimizerConfig = Annotated[
    Union[
        SGDConfig, AdadeltaConfig, AdagradConfig, AdamConfig, AdamWConfig, SparseAdamConfig,
        ASGDConfig, LBFGSConfig, RMSpropConfig, RpropConfig,
    ],
    Field(discriminator="name"),
]
OPTIMIZER_NAMES = ("sgd", "adadelta", "adagrad", "adam", "adamw", "sparse_adam", "asgd", "lbfgs", "rmsprop", "rprop")


# --- schedulers (stepped once per epoch) ----------------------------------------------


class _Scheduler(_Section):
    warmup_epochs: int = Field(
        0, ge=0, description="Linear warm-up from lr/10 to lr over this many epochs; the schedule's own "
        "epoch counts (step_size, milestones, t_max) start after it."
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
    Union[NoScheduler, StepSchedulerConfig, MultiStepSchedulerConfig, ExponentialSchedulerConfig, CosineSchedulerConfig],
    Field(discriminator="name"),
]
SCHEDULER_NAMES = ("none", "step", "multistep", "exponential", "cosine")


# --- training -------------------------------------------------------------------------


class TrainConfig(_Section):
    epochs: int = Field(15, ge=1, description="Passes over the training set.")
    batch_size: int = Field(100, ge=1, description="Training mini-batch size.")
    # 1000, not the whole test set at once: for CIFAR-10 a 10000-image batch briefly holds
    # ~100 MB more and evaluates slower on CPU (0.33 s vs 0.27 s); for MNIST 1000 costs
    # 8 ms more per epoch (0.058 s vs 0.050 s, under 1%). benchmarks/README.md
    eval_batch_size: int = Field(1000, ge=1, description="Batch size for evaluation (no autograd).")
    seed: int = Field(0, description="Seeds init, dropout and batch order: same seed, same config, same metrics on CPU.")
    device: Device = Field("auto", description="auto picks CUDA when present, else CPU.")
    precision: Precision = Field("fp32", description="fp32; tf32 matmuls on CUDA; bf16 autocast.")
    compile: bool = Field(False, description="Wrap the model in torch.compile.")
    threads: int | None = Field(
        None, ge=1, description="CPU threads torch may use; None keeps torch's choice (one per core). "
        "On a machine shared with other jobs, 1 avoids threads waiting on each other."
    )
    diagnostics: bool = Field(False, description="Record per-layer activation and gradient statistics.")
    diagnostics_per_epoch: int = Field(4, ge=1, description="How many times per epoch diagnostics are recorded.")
    checkpoint: bool = Field(True, description="Write a resumable checkpoint at the end of each epoch.")


class ExperimentConfig(_Section):
    name: str = Field("experiment", description="Run name; the run folder is <name>-<timestamp>-<id>.")
    description: str = ""
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    optimizer: OptimizerConfig = Field(default_factory=AdamConfig)
    scheduler: SchedulerConfig = Field(default_factory=NoScheduler)
    train: TrainConfig = Field(default_factory=TrainConfig)

    @model_validator(mode="before")
    @classmethod
    def _default_union_names(cls, data: Any) -> Any:
        # A config only states what it changes: `optimizer: {lr: 0.01}` means Adam.
        if isinstance(data, dict):
            for section, default in (("optimizer", "adam"), ("scheduler", "none")):
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
        return self


# --- loading, overrides, errors -------------------------------------------------------

# Sections whose field set depends on a `name` discriminator.
_UNIONS = {"optimizer": OptimizerConfig, "scheduler": SchedulerConfig}


def load_config(path: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read a YAML experiment, apply ``--set key.path=value`` overrides, validate."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file not found: {path}")
    if path.is_dir():
        raise ConfigError(f"config path is a directory, not a YAML file: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read config file ({e.__class__.__name__}: {e})") from None
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)  # a safe loader only: a config can never run code
    except yaml.YAMLError as e:
        where = ""
        mark = getattr(e, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{path}: invalid YAML{where}: {problem}") from None
    if raw is None:
        raise ConfigError(f"{path}: config file is empty; it must be a YAML mapping such as 'model: {{activation: relu}}'")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: config must be a YAML mapping of sections (data, model, optimizer, ...), got a {type(raw).__name__}")
    raw.setdefault("name", _default_name(path))
    for item in overrides or []:
        apply_override(raw, item)
    return validate_config(raw, source=str(path))


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader (no Python objects, no code) that refuses duplicate keys: plain
    YAML keeps the last one, so `epochs: 5 ... epochs: 50` would quietly run 50."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, Any] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # `<<: *defaults` may be overridden by explicit keys
                key = self.construct_object(key_node, deep=deep)
                try:
                    first = seen.setdefault(key, key_node.start_mark)
                except TypeError:
                    continue  # unhashable: the base class reports it
                if first is not key_node.start_mark:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r} (first at line {first.line + 1}); keep only one",
                        key_node.start_mark,
                    )
        return super().construct_mapping(node, deep=deep)


def config_from_dict(raw: dict[str, Any], overrides: list[str] | None = None, source: str = "config") -> ExperimentConfig:
    raw = copy.deepcopy(raw)  # overrides write into nested sections: never into the caller's dict
    for item in overrides or []:
        apply_override(raw, item)
    return validate_config(raw, source=source)


def _default_name(path: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9_.\-]", "_", path.stem).strip("._-") or "experiment"
    return name[:64]


def validate_config(raw: dict[str, Any], source: str = "config") -> ExperimentConfig:
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(f"{source}: {describe_validation_error(e)}") from None


def apply_override(raw: dict[str, Any], item: str) -> None:
    """Apply one ``key.path=value`` to the raw config dict. The value is parsed as YAML."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected key.path=value, e.g. --set optimizer.lr=0.01")
    key, _, text = item.partition("=")
    key = key.strip()
    parts = key.split(".")
    if not key or any(not p for p in parts):
        raise ConfigError(f"--set {item!r}: expected key.path=value, e.g. --set optimizer.lr=0.01")
    try:
        value = yaml.load(text, Loader=_UniqueKeyLoader) if text.strip() else None
    except yaml.YAMLError:
        raise ConfigError(f"--set {key}: cannot parse value {text!r} (write it as YAML: 0.01, true, [256, 128], relu)") from None
    _check_path(parts, raw)
    node = raw
    for p in parts[:-1]:
        child = node.get(p)
        if child is None:
            child = node[p] = {}
        elif not isinstance(child, dict):
            raise ConfigError(f"--set {key}: '{p}' is a value, not a section")
        node = child
    node[parts[-1]] = value


def _check_path(parts: list[str], raw: dict[str, Any]) -> None:
    """Reject an override path that names no field, with a did-you-mean."""
    model: type[BaseModel] = ExperimentConfig
    for depth, part in enumerate(parts):
        fields = {name: f.annotation for name, f in model.model_fields.items()}
        if part not in fields:
            where = ".".join(parts[:depth]) or "top level"
            hint = _other_variants_hint(parts[0], part) if depth == 1 else ""
            raise ConfigError(f"--set {'.'.join(parts)}: unknown key '{part}' in {where}{_did_you_mean(part, fields)}; allowed: {', '.join(sorted(fields))}{hint}")
        annotation = fields[part]
        if depth < len(parts) - 1:
            sub = _section_model(parts[: depth + 1], annotation, raw)
            if sub is None:
                raise ConfigError(f"--set {'.'.join(parts)}: '{'.'.join(parts[:depth + 1])}' is a value, not a section")
            model = sub


def _section_model(path: list[str], annotation: Any, raw: dict[str, Any]) -> type[BaseModel] | None:
    if len(path) == 1 and path[0] in _UNIONS:
        section = raw.get(path[0]) if isinstance(raw.get(path[0]), dict) else {}
        name = section.get("name", "adam" if path[0] == "optimizer" else "none")
        return section_class(path[0], name)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def section_class(section: str, name: str) -> type[BaseModel]:
    """The pydantic model for ``optimizer`` / ``scheduler`` with the given name."""
    union = _UNIONS[section]
    for cls in union.__origin__.__args__:  # type: ignore[attr-defined]
        if cls.model_fields["name"].default == name:
            return cls
    names = OPTIMIZER_NAMES if section == "optimizer" else SCHEDULER_NAMES
    raise ConfigError(f"{section}.name: unknown {section} {name!r}{_did_you_mean(str(name), names)}; allowed: {', '.join(names)}")


def _other_variants_hint(section: str, key: str) -> str:
    """`optimizer: {momentum: 0.9}` means Adam, which has no momentum: say which have it."""
    if section not in _UNIONS:
        return ""
    names = OPTIMIZER_NAMES if section == "optimizer" else SCHEDULER_NAMES
    owners = [n for n in names if key in section_class(section, n).model_fields]
    if not owners:
        return ""
    return f" ('{key}' is a setting of {section} {', '.join(owners)}: set {section}.name)"


def _did_you_mean(word: str, choices: Any) -> str:
    match = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


def _loc_str(loc: tuple[Any, ...]) -> str:
    # Pydantic puts the union tag into the location (optimizer.adam.lr): drop it.
    parts = [str(p) for p in loc]
    for section in _UNIONS:
        if len(parts) >= 2 and parts[0] == section and parts[1] in (OPTIMIZER_NAMES + SCHEDULER_NAMES):
            del parts[1]
    return ".".join(parts)


def describe_validation_error(e: ValidationError) -> str:
    """Turn pydantic's multi-line report into one line: key, value, what is allowed."""
    errors = e.errors()
    first = errors[0]
    text = _describe_one(first)
    if len(errors) > 1:
        text += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return text


def _describe_one(err: dict[str, Any]) -> str:
    loc = err.get("loc", ())
    key = _loc_str(loc)
    kind = err.get("type", "")
    value = err.get("input")
    ctx = err.get("ctx") or {}
    if kind == "extra_forbidden":
        parent = _model_at(loc[:-1])
        allowed = sorted(parent.model_fields) if parent else []
        where = ".".join(_loc_str(loc[:-1]).split(".")) or "top level"
        hint = _other_variants_hint(str(loc[0]), str(loc[-1])) if len(loc) in (2, 3) else ""
        return f"unknown key '{loc[-1]}' in {where}{_did_you_mean(str(loc[-1]), allowed)}; allowed: {', '.join(allowed)}{hint}"
    if kind == "literal_error":
        allowed = [a.strip().strip("'") for a in re.split(r",| or ", ctx.get("expected", "")) if a.strip()]
        return f"{key}: {value!r} is not allowed{_did_you_mean(str(value), allowed)}; allowed: {', '.join(allowed)}"
    if kind == "union_tag_invalid":
        section = str(loc[0]) if loc else ""
        names = OPTIMIZER_NAMES if section == "optimizer" else SCHEDULER_NAMES
        tag = ctx.get("tag", value)
        return f"{key}.name: unknown {section} {tag!r}{_did_you_mean(str(tag), names)}; allowed: {', '.join(names)}"
    if kind == "union_tag_not_found":
        section = str(loc[0]) if loc else ""
        names = OPTIMIZER_NAMES if section == "optimizer" else SCHEDULER_NAMES
        return f"{key}: needs a 'name', one of {', '.join(names)}"
    if kind == "string_pattern_mismatch" and key.endswith("device"):
        return f"{key}: {value!r} is not a device; allowed: auto, cpu, cuda, cuda:N, mps"
    if kind == "value_error":
        msg = str(err.get("msg", "")).removeprefix("Value error, ")
        if msg.startswith("optimizer.name:"):
            return msg
        shown = "" if isinstance(value, dict) else f" {value!r}:"
        return f"{key}:{shown} {msg}" if key else msg
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"{key or 'config'}: must be a mapping of keys to values, got {value!r}"
    msg = str(err.get("msg", "invalid value"))
    msg = msg[0].lower() + msg[1:] if msg else msg
    return f"{key}: {value!r}: {msg}" if key else msg


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    model: type[BaseModel] = ExperimentConfig
    parts = list(loc)
    i = 0
    while i < len(parts):
        p = str(parts[i])
        if p in _UNIONS and i + 1 < len(parts) and str(parts[i + 1]) in (OPTIMIZER_NAMES + SCHEDULER_NAMES):
            model = section_class(p, str(parts[i + 1]))
            i += 2
            continue
        field = model.model_fields.get(p)
        if field is None or not (isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)):
            return None
        model = field.annotation
        i += 1
    return model


# --- saving and describing ------------------------------------------------------------


def config_to_dict(cfg: ExperimentConfig) -> dict[str, Any]:
    """The fully resolved config as plain data (tuples as lists, so YAML stays readable)."""
    d = cfg.model_dump(mode="json")
    for section in _UNIONS:  # the name first: it says what the other keys mean
        d[section] = {"name": d[section].pop("name"), **d[section]}
    return d


def dump_config(cfg: ExperimentConfig) -> str:
    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False, default_flow_style=False)


def json_schema() -> dict[str, Any]:
    return ExperimentConfig.model_json_schema()
