"""Where a run computes: the device, its precision, and how many CPU threads torch uses."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import torch

from mlp_lab.errors import ConfigError
from mlp_lab.schema import ExperimentConfig


def resolve_device(name: str) -> torch.device:
    """``train.device`` -> a torch device that exists here; ConfigError (one line) if it doesn't."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"train.device: {name!r} requested but no CUDA device is available here "
                f"(torch {torch.__version__}); use device: auto or cpu"
            )
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise ConfigError(f"train.device: {name!r} but only {torch.cuda.device_count()} CUDA device(s) exist")
    if name == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ConfigError("train.device: 'mps' requested but no MPS device is available here; use device: auto or cpu")
    return torch.device(name)


def autocast(cfg: ExperimentConfig, device: torch.device) -> Any:
    """bf16 autocast for ``train.precision: bf16``; a no-op context otherwise."""
    if cfg.train.precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return nullcontext()


def set_matmul_precision(cfg: ExperimentConfig) -> None:
    # tf32 trades a few mantissa bits for Ampere+ tensor-core speed; "highest" is exact fp32.
    torch.set_float32_matmul_precision("high" if cfg.train.precision == "tf32" else "highest")


@contextmanager
def matmul_precision(cfg: ExperimentConfig) -> Iterator[None]:
    """``train.precision``'s float32 matmul precision inside the block, then torch's as it
    was (a notebook that trained a tf32 run goes on in its own precision)."""
    previous = torch.get_float32_matmul_precision()
    set_matmul_precision(cfg)
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(previous)


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Use ``n`` CPU threads inside the block (None: leave torch's choice), then restore."""
    previous = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
