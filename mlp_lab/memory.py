"""Will the network fit? An estimate of a run's memory, checked before anything is built.

A config with ``model.hidden`` of two million layers validated, then took every byte of a
23 GB machine before it failed, leaving an empty run folder. Counting is cheap and needs
no torch: parameters x 4 bytes for the weights, again for the gradients, again for each
copy of state the optimizer keeps per parameter; a training batch's activations (and
their gradients) through every layer; the data set held as uint8. The estimate is
compared with the memory there is (``MemAvailable``, or the CUDA device's total) and a
run that cannot fit is refused with both numbers. ``train.check_memory: false`` skips
the check on a machine the estimate misjudges.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

from mlp_lab.errors import ConfigError

# data.dataset -> (the shape of one input, training images); synthetic's size is in its config.
INPUT_SHAPES: dict[str, tuple[int, int, int]] = {
    "mnist": (1, 28, 28),
    "fashion_mnist": (1, 28, 28),
    "synthetic": (1, 28, 28),
    "cifar10": (3, 32, 32),
}
TRAIN_SIZES = {"mnist": 60_000, "fashion_mnist": 60_000, "cifar10": 50_000}
TEST_SIZE = 10_000
NUM_CLASSES = 10
FLOAT_BYTES = 4  # weights, gradients and optimizer state stay fp32 (bf16 is autocast)
# Tensors of a layer's width that autograd keeps per training sample: the Linear's output,
# the norm's, the activation's and dropout's mask. Evaluation (no autograd) holds about two
# layers' outputs of its batch at a time.
ACTIVATION_COPIES = 4
# Python, torch's libraries and allocator slack beside the tensors.
OVERHEAD_BYTES = 400 * 2**20


def optimizer_copies(opt: Any) -> int:
    """How many tensors the size of the parameters ``opt`` keeps as state."""
    name = opt.name
    if name == "sgd":
        return 1 if opt.momentum else 0
    if name in ("adam", "adamw"):
        return 3 if opt.amsgrad else 2
    if name == "rmsprop":
        return 1 + (opt.momentum > 0) + bool(opt.centered)
    if name == "lbfgs":  # its history of steps and gradient differences, plus the flat gradients
        return 2 * opt.history_size + 3
    return {"adagrad": 1, "adadelta": 2, "asgd": 2, "rprop": 3}.get(name, 2)


@dataclass(frozen=True)
class Estimate:
    params: int
    bytes: int
    parts: dict[str, int]


def estimate(cfg: Any) -> Estimate:
    """The memory a run of ``cfg`` needs, from its shapes alone."""
    m = cfg.model
    channels, h, w = INPUT_SHAPES.get(cfg.data.dataset, (1, 28, 28))
    widths = [channels * h * w, *m.hidden, NUM_CLASSES]
    pieces = m.maxout_pieces if m.activation == "maxout" else 1
    params = 0
    activations = 0  # per training sample, every layer
    for i, (fan_in, fan_out) in enumerate(zip(widths, widths[1:])):
        hidden = i < len(widths) - 2
        out = fan_out * pieces if hidden else fan_out
        params += fan_in * out + out
        if hidden and m.norm != "none":
            params += 2 * out
        if hidden and m.activation == "prelu":
            params += fan_out  # a learned slope per unit
        activations += out
    train = TRAIN_SIZES.get(cfg.data.dataset, getattr(cfg.data, "synthetic_train_size", 6000))
    test = TEST_SIZE if cfg.data.dataset in TRAIN_SIZES else getattr(cfg.data, "synthetic_test_size", 1000)
    # A batch holds at most the samples there are: batch_size 100000 on 1,000 images (full-
    # batch gradient descent, said generously) trains on batches of 1,000.
    used = min(train, cfg.data.limit_train or train)
    batch, eval_batch = min(cfg.train.batch_size, used), min(cfg.train.eval_batch_size, max(test, used))
    parts = {
        "weights": params * FLOAT_BYTES,
        "gradients": params * FLOAT_BYTES,
        "optimizer state": params * FLOAT_BYTES * optimizer_copies(cfg.optimizer),
        "activations": FLOAT_BYTES * (activations * ACTIVATION_COPIES * batch + 2 * max(widths) * pieces * eval_batch),
        "data": (train + test) * channels * h * w,
        "overhead": OVERHEAD_BYTES,
    }
    return Estimate(params=params, bytes=sum(parts.values()), parts=parts)


def available_bytes(device: Any = None) -> tuple[int | None, str]:
    """The memory a run can have and where that number comes from: the CUDA device's total,
    else this machine's MemAvailable (Linux), else its physical memory; None if unknown."""
    if device is not None and getattr(device, "type", None) == "cuda":
        import torch

        return torch.cuda.get_device_properties(device).total_memory, f"{device}'s memory"
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024, "the memory available on this machine"
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "this machine's memory"
    except (ValueError, OSError, AttributeError):
        return None, "unknown"


def check_fits(cfg: Any, device: Any = None, source: str | None = None) -> None:
    """ConfigError, before anything is built or written, when a run of ``cfg`` cannot fit."""
    if not cfg.train.check_memory:
        return
    est = estimate(cfg)
    limit, where = available_bytes(device)
    if limit is None or est.bytes <= limit:
        return
    biggest = max(est.parts, key=est.parts.get)  # type: ignore[arg-type]
    layers = len(cfg.model.hidden)
    shape = f"{layers:,} hidden layers" if layers > 8 else f"model.hidden {cfg.model.hidden}"
    raise ConfigError(
        f"{source or cfg.name}: {shape} ({_count(est.params)} parameters) does not fit: it needs about "
        f"{_size(est.bytes)} (mostly {biggest}), more than {where} ({_size(limit)}); use fewer or smaller hidden "
        "layers or a smaller train.batch_size, or set train.check_memory: false if this estimate misjudges your machine"
    )


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} PB"


def _count(n: int) -> str:
    if n < 10_000:
        return f"{n:,}"
    exp = int(math.log10(n)) // 3
    return f"{n / 1000**exp:.1f}{' KMGTPE'[exp]}".replace(" ", "")
