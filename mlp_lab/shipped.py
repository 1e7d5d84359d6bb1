"""The configs and sweep files that ship with mlp-lab, found by name.

``configs/`` sits at the top of the repository (where the README points) and inside the
wheel as ``mlp_lab/configs`` (pyproject maps it there), so ``mlp-lab train --config
relu_adam.yaml`` works from any folder and from an installed wheel: a path that exists is
used as it is, anything else is looked up among the shipped files (``relu_adam``,
``relu_adam.yaml``, ``configs/relu_adam.yaml``, ``lecture/init_tanh_small``). No torch here.
"""

from __future__ import annotations

import glob
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from mlp_lab.errors import ConfigError, RunError, close_names

_PACKAGE = Path(__file__).resolve().parent
SWEEP_KEYS = ("base", "configs")  # what a sweep file has and a train config has not


@dataclass(frozen=True)
class Shipped:
    name: str  # relative path without .yaml: relu_adam, lecture/init_tanh_small, sweeps/batchnorm
    path: Path
    kind: str  # "config" or "sweep"
    description: str


def shipped_dir() -> Path | None:
    """Where the shipped configs are: in the installed package, or in the source checkout."""
    for candidate in (_PACKAGE / "configs", _PACKAGE.parent / "configs"):
        if candidate.is_dir():
            return candidate
    return None


def list_shipped() -> list[Shipped]:
    root = shipped_dir()
    if root is None:
        return []
    out = []
    for path in sorted(root.rglob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError:
            continue
        kind = "sweep" if isinstance(raw, dict) and any(k in raw for k in SWEEP_KEYS) else "config"
        out.append(Shipped(path.relative_to(root).with_suffix("").as_posix(), path, kind, _description(text, raw)))
    return out


def _description(text: str, raw: object) -> str:
    """The config's description field, else its first comment line."""
    if isinstance(raw, dict) and isinstance(raw.get("description"), str) and raw["description"].strip():
        return raw["description"].strip().splitlines()[0]
    words = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        words.append(line.lstrip("# ").strip())
    first = " ".join(words).split(". ")[0].strip()
    return first if len(first) <= 110 else first[:107].rsplit(" ", 1)[0] + "..."


def locate(arg: str | Path, kind: str = "config") -> tuple[Path, Shipped | None]:
    """The file ``arg`` names: itself when it exists, else the shipped file of that name
    (with the Shipped entry, so the caller can say which it used). ConfigError, one line
    with the near names, when it is neither."""
    path = Path(arg)
    if path.exists():
        return path, None
    entry = shipped_named(arg, kind)
    if entry is not None:
        return entry.path, entry
    raise ConfigError(
        f"{kind} file not found: {arg}, and no shipped {kind} has that name{near_shipped(arg, kind)} "
        "(mlp-lab configs lists them)"
    )


def shipped_named(arg: str | Path, kind: str = "config") -> Shipped | None:
    """The shipped config (or sweep file) ``arg`` names: 'relu_adam', 'lecture/opt_sgd.yaml',
    a sweep's stem alone ('batchnorm' for sweeps/batchnorm); None when none is."""
    wanted = _name(str(arg))
    found = {s.name: s for s in list_shipped()}
    for name in (wanted, f"sweeps/{wanted}" if kind == "sweep" else None):
        if name in found:
            return found[name]
    by_stem = [s for s in found.values() if s.name.rsplit("/", 1)[-1] == wanted and s.kind == kind]
    return by_stem[0] if len(by_stem) == 1 else None


def near_shipped(arg: str | Path, kind: str = "config") -> str:
    """'; did you mean relu_adam, relu_sgd?' for the shipped names near ``arg``, or ''."""
    names = [s.name for s in list_shipped() if s.kind == kind]
    near = close_names(_name(str(arg)), names, n=3, cutoff=0.5)
    return f"; did you mean {', '.join(near)}?" if near else ""


def _name(arg: str) -> str:
    """'configs/relu_adam.yaml', './relu_adam', '../relu_sgd.yaml' (a sweep file's base,
    copied out of configs/sweeps) -> the shipped name."""
    name = arg.replace("\\", "/").removesuffix(".yaml").removesuffix(".yml")
    while name.startswith(("./", "../")):
        name = name.split("/", 1)[1]
    return name.removeprefix("configs/")


@dataclass(frozen=True)
class Copied:
    """What ``copy_out`` wrote, and what to know about it before running it."""

    path: Path
    notes: list[str]


def copy_out(name: str, dest: Path) -> Copied:
    """Copy a shipped config, sweep file or folder of them (``lecture``) to ``dest``: a
    file or folder name, or an existing folder to put it in. Never overwrites."""
    folder = _shipped_folder(name)
    if folder is not None:
        return Copied(_copy(folder, Path(dest), shutil.copytree), [])
    _, entry = locate(name, "sweep" if _name(name).startswith("sweeps/") else "config")
    if entry is None:  # an existing path was given, not a shipped name
        entry = next((s for s in list_shipped() if s.path == Path(name).resolve()), None)
        if entry is None:
            raise ConfigError(f"{name}: not a shipped config; mlp-lab configs lists them")
    target = _copy(entry.path, Path(dest), shutil.copyfile)
    return Copied(target, _configs_left_behind(entry, target))


def _shipped_folder(name: str) -> Path | None:
    """The shipped folder ``name`` is (``configs/lecture`` in a checkout) or names
    (``lecture``, ``sweeps/``), if it is one: a folder of one's own is not copied."""
    root = shipped_dir()
    if root is None:
        return None
    for candidate in (Path(name).resolve(), root / _name(name.rstrip("/\\"))):
        if candidate.is_dir() and candidate != root and candidate.is_relative_to(root):
            return candidate
    return None


def _copy(source: Path, dest: Path, copy: Callable[[Path, Path], object]) -> Path:
    target = dest / source.name if dest.is_dir() else dest
    if target.exists():
        raise RunError(f"{target} exists already; give another name, or remove it first")
    try:
        copy(source, target)
    except OSError as e:
        raise RunError(f"cannot write {target}: {e.strerror or e}") from None
    return target


def _configs_left_behind(entry: Shipped, target: Path) -> list[str]:
    """A sweep file's ``configs:`` are read beside it: the patterns its copy no longer finds."""
    raw = yaml.safe_load(entry.path.read_text(encoding="utf-8"))
    patterns = raw.get("configs") if isinstance(raw, dict) else None
    if entry.kind != "sweep" or not isinstance(patterns, list):
        return []
    missing = [str(p) for p in patterns if not glob.glob(str(target.parent / str(p)))]
    if not missing:
        return []
    folder = entry.name.rsplit("/", 1)[0] if "/" in entry.name else ""
    whole = f"copy the whole folder (mlp-lab configs --copy {folder} --to DIR)" if folder else "copy them too"
    return [
        f"{target} reads its configs: beside it ({', '.join(missing)}), which are not there; "
        f"to run it, {whole}, or point its configs: at your own"
    ]
