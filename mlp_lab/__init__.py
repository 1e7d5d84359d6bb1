"""mlp-lab: the 'training neural networks' lecture as a command-line lab, and a library.

``mlp_lab.training``, ``mlp_lab.load_runs``, ``mlp_lab.results`` and friends (``api.py``) are
what the CLI runs, for notebooks. They are imported on first use, so ``import mlp_lab``
(and ``mlp-lab --help``) stay fast and never import torch.
"""

from importlib import metadata
from typing import Any

try:  # the version is written once, in pyproject.toml; the installed distribution carries it
    __version__ = metadata.version("mlp-lab")
except metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

_API = ("Run", "train", "check", "sweep", "load_runs", "compare", "comparison", "runs_frame", "groups_frame")


def __getattr__(name: str) -> Any:
    if name in _API:
        from mlp_lab import api

        return getattr(api, name)
    raise AttributeError(f"module 'mlp_lab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
