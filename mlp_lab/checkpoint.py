"""Checkpoints: what a finished epoch leaves for ``--resume``, and putting it back.

A checkpoint holds the model, optimizer and scheduler states and every random state the
run draws from (torch's global generator for init and dropout, the batch-order generator,
CUDA's), so a resumed CPU run ends with exactly the metrics and weights of one that was
never interrupted. ``RunWriter.save_checkpoint`` writes it; ``restore`` reads it back.
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path
from typing import Any

import torch

from mlp_lab.errors import RunError


def capture(
    epoch: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    shuffle: torch.Generator,
    device: torch.device,
) -> dict[str, Any]:
    """Everything needed to continue after ``epoch``."""
    return {
        "epoch": epoch,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "rng_cpu": torch.get_rng_state(),
        "rng_shuffle": shuffle.get_state(),
        "rng_cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
    }


def load(path: Path) -> dict[str, Any]:
    """Read a checkpoint as data; RunError (one line) when it is missing, corrupt or unsafe."""
    try:
        # weights_only: a checkpoint is data; loading one must never run code. Its
        # warnings (about pickle protocols, say) would break the one-line error.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise RunError(
            f"{path.parent} has no {path.name}: it finished no epoch, or ran with train.checkpoint: false"
        ) from None
    except pickle.UnpicklingError as e:
        if "weights_only" in str(e) or "Weights only" in str(e):
            raise RunError(
                f"{path} is corrupt or not an mlp-lab checkpoint and cannot be resumed: it holds Python objects "
                "that loading could run as code, so it is refused (UnpicklingError)"
            ) from None
        raise RunError(f"{path} is corrupt and cannot be resumed (UnpicklingError)") from None
    except Exception as e:  # noqa: BLE001 - any unpickling problem means the same to the user
        raise RunError(f"{path} is corrupt and cannot be resumed ({e.__class__.__name__})") from None
    if not isinstance(ckpt, dict):
        raise RunError(f"{path} is corrupt and cannot be resumed (it holds a {type(ckpt).__name__}, not a checkpoint)")
    return ckpt


def restore(
    path: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    shuffle: torch.Generator,
    device: torch.device,
    config_path: Path,
) -> dict[str, Any]:
    """Load the checkpoint at ``path`` and put its states back; return it (its ``epoch`` is
    the last finished one). ``config_path`` names the config the model was built from,
    for the error when the two do not match."""
    ckpt = load(path)
    try:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if scheduler is not None and ckpt.get("scheduler") is not None:
            scheduler.load_state_dict(ckpt["scheduler"])
        torch.set_rng_state(ckpt["rng_cpu"])
        shuffle.set_state(ckpt["rng_shuffle"])
        if device.type == "cuda" and ckpt.get("rng_cuda") is not None:
            torch.cuda.set_rng_state(ckpt["rng_cuda"], device)
        ckpt["epoch"] = int(ckpt["epoch"])
        return ckpt
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        detail = " ".join(str(e).split())[:160]
        raise RunError(
            f"{path} does not match {config_path} (was the config edited?) and cannot be "
            f"resumed: {e.__class__.__name__}: {detail}"
        ) from None
