"""Reading, overriding and saving experiment configs; the schema itself is ``schema.py``.

``load_config`` reads a YAML file (duplicate keys refused, a safe loader only), applies
``--set key.path=value`` overrides with a did-you-mean for unknown keys, and validates
against ``schema.ExperimentConfig``; pydantic's multi-line report becomes one line that
names the key, the value and what is allowed. No torch here.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ValidationError

from mlp_lab.errors import ConfigError, did_you_mean, shorten
from mlp_lab.schema import DEFAULT_NAMES, VARIANTS, ExperimentConfig

# --- loading ----------------------------------------------------------------------------


def load_config(path: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read a YAML experiment, apply ``--set key.path=value`` overrides, validate."""
    path = Path(path)
    raw = read_yaml_mapping(
        path, "config", "a YAML mapping of sections (data, model, optimizer, ...)", "'model: {activation: relu}'"
    )
    _not_a_sweep_file(raw, path)
    raw.setdefault("name", default_name(path))
    for item in overrides or []:
        apply_override(raw, item)
    return validate_config(raw, source=str(path))


# Keys only a sweep file has (sweeps/spec.py's SweepFile; this layer does not import it).
SWEEP_FILE_KEYS = ("base", "configs", "grid", "cases", "seeds", "search")


def _not_a_sweep_file(raw: dict[str, Any], path: Path) -> None:
    """A sweep file handed to train or check: say what it is and what to run instead."""
    found = [k for k in SWEEP_FILE_KEYS if k in raw]
    if not found or any(k in raw for k in ExperimentConfig.model_fields if k not in ("name", "description")):
        return
    base = raw.get("base")
    instead = (
        f"; to check or train its base, pass that config ({base}, relative to {path.parent or '.'})"
        if isinstance(base, str)
        else ""
    )
    raise ConfigError(
        f"{path} is a sweep file (it has {', '.join(repr(k) for k in found)}), not an experiment config: "
        f"run it with mlp-lab sweep {path}{instead}"
    )


def read_yaml_mapping(path: Path, what: str, must_be: str, example: str) -> dict[str, Any]:
    """A YAML file that must hold a mapping (duplicate keys refused, a safe loader only);
    ConfigError, one line, for a missing, unreadable, invalid or empty file."""
    if not path.exists():
        raise ConfigError(f"{what} file not found: {path}")
    if path.is_dir():
        raise ConfigError(f"{what} path is a directory, not a YAML file: {path}")
    try:
        size = path.stat().st_size
        if size > MAX_YAML_BYTES:
            raise ConfigError(
                f"{path}: {size:,} bytes; a {what} file is at most {MAX_YAML_BYTES:,} "
                f"(real ones are a few hundred bytes)"
            )
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read {what} file ({e.__class__.__name__}: {e})") from None
    check_yaml_shape(text, str(path))
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
        raise ConfigError(f"{path}: {what} file is empty; it must be a YAML mapping such as {example}")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: {what} must be {must_be}, got a {type(raw).__name__}")
    return raw


# What no real config or sweep file comes near, checked before YAML builds anything: a
# 368-byte file of nested aliases ("billion laughs") expands to billions of values, and a
# list nested 600 deep overflows the parser's recursion. Aliases and merge keys stay
# allowed for repeating small pieces.
MAX_YAML_BYTES = 1 << 20
MAX_YAML_DEPTH = 32
MAX_YAML_VALUES = 20_000  # values after aliases are expanded
MAX_SET_CHARS = 10_000  # one --set value


def check_yaml_shape(text: str, source: str) -> None:
    """ConfigError, in one pass over the parser's events (nothing is built), when ``text``
    nests deeper than MAX_YAML_DEPTH or its aliases expand it beyond MAX_YAML_VALUES values.
    Invalid YAML passes: the loader reports it with its line and column."""
    sizes: dict[str, int] = {}  # anchor -> the values it expands to
    stack: list[list[Any]] = [[0, None]]  # per open collection: [values so far, its anchor]
    try:
        for event in yaml.parse(text, Loader=_EVENT_LOADER):
            if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                if len(stack) > MAX_YAML_DEPTH:
                    raise ConfigError(
                        f"{source}: YAML nested more than {MAX_YAML_DEPTH} levels deep; "
                        "a config is a few levels of sections"
                    )
                stack.append([1, event.anchor])
                continue
            if isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                size, anchor = stack.pop()
            elif isinstance(event, yaml.ScalarEvent):
                size, anchor = 1, event.anchor
            elif isinstance(event, yaml.AliasEvent):
                size, anchor = sizes.get(event.anchor or "", 1), None
            else:
                continue
            if anchor is not None:
                sizes[anchor] = size
            stack[-1][0] += size
            if stack[-1][0] > MAX_YAML_VALUES:
                raise ConfigError(
                    f"{source}: YAML expands to more than {MAX_YAML_VALUES:,} values "
                    "(aliases repeating aliases?); a config has a few dozen"
                )
    except yaml.YAMLError:
        return


_EVENT_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


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
                        None,
                        None,
                        f"duplicate key {key!r} (first at line {first.line + 1}); keep only one",
                        key_node.start_mark,
                    )
        return super().construct_mapping(node, deep=deep)


def config_from_dict(
    raw: dict[str, Any], overrides: list[str] | None = None, source: str = "config"
) -> ExperimentConfig:
    raw = copy.deepcopy(raw)  # overrides write into nested sections: never into the caller's dict
    for item in overrides or []:
        apply_override(raw, item)
    return validate_config(raw, source=source)


def default_name(path: Path) -> str:
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
        raise ConfigError(f"--set {shorten(item)}: expected key.path=value, e.g. --set optimizer.lr=0.01")
    key, _, text = item.partition("=")
    key = key.strip()
    parts = key.split(".")
    if not key or any(not p for p in parts):
        raise ConfigError(f"--set {shorten(item)}: expected key.path=value, e.g. --set optimizer.lr=0.01")
    set_value(raw, key, parse_yaml_value(key, text))


def parse_yaml_value(key: str, text: str) -> Any:
    """A ``--set`` value: YAML, so 0.01, true, [256, 128] and relu mean what they say."""
    key = shorten(key, 60)[1:-1]
    if len(text) > MAX_SET_CHARS:
        raise ConfigError(f"--set {key}: a value of {len(text):,} characters; at most {MAX_SET_CHARS:,}")
    check_yaml_shape(text, f"--set {key}")
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader) if text.strip() else None
    except yaml.YAMLError:
        raise ConfigError(
            f"--set {key}: cannot parse value {shorten(text)} (write it as YAML: 0.01, true, [256, 128], relu)"
        ) from None


def set_value(raw: dict[str, Any], key: str, value: Any, label: str = "--set") -> None:
    """Put ``value`` at the dotted ``key`` of the raw config dict; ConfigError (a did-you-mean,
    prefixed with ``label``) for a path that names no field."""
    parts = key.split(".")
    if not key or any(not p for p in parts):
        raise ConfigError(f"{label} {shorten(key)}: expected a dotted key such as optimizer.lr")
    _check_path(parts, raw, label)
    node = raw
    for p in parts[:-1]:
        child = node.get(p)
        if child is None:
            child = node[p] = {}
        elif not isinstance(child, dict):
            raise ConfigError(f"{label} {key}: '{p}' is a value, not a section")
        node = child
    node[parts[-1]] = copy.deepcopy(value)


def settable_keys() -> list[str]:
    """Every dotted key ``--set`` takes (an optimizer's or scheduler's fields, of every one)."""
    out: dict[str, None] = {}
    for name, field in ExperimentConfig.model_fields.items():
        if name in VARIANTS:
            for cls in VARIANTS[name].values():
                out.update(dict.fromkeys(f"{name}.{f}" for f in cls.model_fields))
        elif isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            out.update(dict.fromkeys(f"{name}.{f}" for f in field.annotation.model_fields))
        else:
            out[name] = None
    return list(out)


def _check_path(parts: list[str], raw: dict[str, Any], label: str = "--set") -> None:
    """Reject an override path that names no field, with a did-you-mean."""
    model: type[BaseModel] = ExperimentConfig
    for depth, part in enumerate(parts):
        fields = {name: f.annotation for name, f in model.model_fields.items()}
        if part not in fields:
            where = ".".join(parts[:depth]) or "top level"
            hint = _other_variants_hint(parts[0], part) if depth == 1 else ""
            raise ConfigError(
                f"{label} {'.'.join(parts)}: unknown key '{part}' in {where}{did_you_mean(part, fields)}; allowed: {', '.join(sorted(fields))}{hint}"
            )
        annotation = fields[part]
        if depth < len(parts) - 1:
            sub = _section_model(parts[: depth + 1], annotation, raw)
            if sub is None:
                raise ConfigError(
                    f"{label} {'.'.join(parts)}: '{'.'.join(parts[: depth + 1])}' is a value, not a section"
                )
            model = sub


def _section_model(path: list[str], annotation: Any, raw: dict[str, Any]) -> type[BaseModel] | None:
    if len(path) == 1 and path[0] in VARIANTS:
        value = raw.get(path[0])
        section = value if isinstance(value, dict) else {}
        return section_class(path[0], section.get("name", DEFAULT_NAMES[path[0]]))
    # A section that may be null (train.early_stopping): setting one of its keys makes it.
    for a in (annotation, *get_args(annotation)):
        if isinstance(a, type) and issubclass(a, BaseModel):
            return a
    return None


def section_class(section: str, name: str) -> type[BaseModel]:
    """The pydantic model for ``optimizer`` / ``scheduler`` with the given name."""
    variants = VARIANTS[section]
    try:
        return variants[name]
    except (KeyError, TypeError):
        raise ConfigError(f"{section}.name: {_unknown_name(section, name)}") from None


def _unknown_name(section: str, name: Any) -> str:
    names = list(VARIANTS[section])
    return f"unknown {section} {shorten(name)}{did_you_mean(str(name), names)}; allowed: {', '.join(names)}"


def _other_variants_hint(section: str, key: str) -> str:
    """`optimizer: {momentum: 0.9}` means Adam, which has no momentum: say which have it."""
    if section not in VARIANTS:
        return ""
    owners = [n for n, cls in VARIANTS[section].items() if key in cls.model_fields]
    if not owners:
        return ""
    return f" ('{key}' is a setting of {section} {', '.join(owners)}: set {section}.name)"


def _loc_str(loc: tuple[Any, ...]) -> str:
    # Pydantic puts the union tag into the location (optimizer.adam.lr): drop it.
    parts = [str(p) for p in loc]
    if len(parts) >= 2 and parts[0] in VARIANTS and parts[1] in VARIANTS[parts[0]]:
        del parts[1]
    return ".".join(parts)


def describe_validation_error(e: ValidationError) -> str:
    """Turn pydantic's multi-line report into one line: key, value, what is allowed."""
    errors = e.errors()
    first = errors[0]
    text = _describe_one(dict(first))
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
        return f"unknown key '{loc[-1]}' in {where}{did_you_mean(str(loc[-1]), allowed)}; allowed: {', '.join(allowed)}{hint}"
    if kind == "literal_error":
        allowed = [a.strip().strip("'") for a in re.split(r",| or ", ctx.get("expected", "")) if a.strip()]
        return (
            f"{key}: {shorten(value)} is not allowed{did_you_mean(str(value), allowed)}; allowed: {', '.join(allowed)}"
        )
    if kind == "union_tag_invalid":
        return f"{key}.name: {_unknown_name(str(loc[0]), ctx.get('tag', value))}"
    if kind == "union_tag_not_found":
        return f"{key}: needs a 'name', one of {', '.join(VARIANTS[str(loc[0])])}"
    if kind == "string_pattern_mismatch" and key.endswith("device"):
        return f"{key}: {shorten(value)} is not a device; allowed: auto, cpu, cuda, cuda:N, mps"
    if kind == "value_error":
        msg = str(err.get("msg", "")).removeprefix("Value error, ")
        if msg.startswith("optimizer.name:"):
            return msg
        shown = "" if isinstance(value, dict) else f" {shorten(value)}:"
        return f"{key}:{shown} {msg}" if key else msg
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"{key or 'config'}: must be a mapping of keys to values, got {shorten(value)}"
    msg = str(err.get("msg", "invalid value"))
    msg = msg[0].lower() + msg[1:] if msg else msg
    return f"{key}: {shorten(value)}: {msg}" if key else msg


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    model: type[BaseModel] = ExperimentConfig
    parts = list(loc)
    i = 0
    while i < len(parts):
        p = str(parts[i])
        if p in VARIANTS and i + 1 < len(parts) and str(parts[i + 1]) in VARIANTS[p]:
            model = VARIANTS[p][str(parts[i + 1])]
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
    for section in VARIANTS:  # the name first: it says what the other keys mean
        d[section] = {"name": d[section].pop("name"), **d[section]}
    return d


def dump_config(cfg: ExperimentConfig) -> str:
    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False, default_flow_style=False)
