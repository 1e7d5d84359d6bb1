"""What training gets: the splits as uint8 tensors on the device, and the preprocessing
statistics that ``DataSplits.normalize`` applies one batch at a time."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from mlp_lab.data.files import NUM_CLASSES, Decoded
from mlp_lab.errors import DataError
from mlp_lab.schema import DataConfig

@dataclass
class DataSplits:
    """Train/val/test tensors (uint8 images, int64 labels) plus the preprocessing to apply.

    Images stay uint8 ``[N, C, H, W]`` on the device; :meth:`normalize` turns one batch
    into float32 ``[B, C*H*W]`` as ``((x / 255) - mean) / std``.
    """

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    val_x: torch.Tensor | None
    val_y: torch.Tensor | None
    mean: torch.Tensor  # float32, [C,1,1] (per channel) or [C,H,W] (mean image); zeros for 'none'
    std: torch.Tensor  # float32, [C,1,1]; ones unless 'standardize'
    num_classes: int
    input_shape: tuple[int, int, int]
    source: str
    preprocessing: str = "channel_mean"
    # Per-channel statistics of the training split in [0, 1] units, whatever the kind:
    # students compare them with the well-known values (MNIST: 0.1307 / 0.3081).
    data_mean: list[float] = field(default_factory=list)
    data_std: list[float] = field(default_factory=list)
    # normalize() folds /255, -mean and /std into one multiply and one subtract.
    _scale: torch.Tensor = field(init=False, repr=False)
    _shift: torch.Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._scale = (1.0 / (255.0 * self.std.double())).float()
        self._shift = (self.mean.double() / self.std.double()).float()

    @property
    def input_dim(self) -> int:
        """Features per sample after flattening: C*H*W."""
        c, h, w = self.input_shape
        return c * h * w

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 ``[B, C, H, W]`` -> float32 ``[B, C*H*W]``; runs on x's device, no Python loops."""
        x = x.to(torch.float32).mul_(self._scale).sub_(self._shift)
        return x.flatten(1)

    def preprocessing_stats(self) -> dict[str, Any]:
        """What normalize() subtracts and divides by, as plain JSON-able data."""
        channels = self.input_shape[0]
        mean_per_channel = self.mean.double().reshape(channels, -1).mean(dim=1)
        stats: dict[str, Any] = {
            "kind": self.preprocessing,
            "computed_on": f"train split ({len(self.train_y)} samples)",
            "mean": [float(v) for v in mean_per_channel],
            "std": [float(v) for v in self.std.double().reshape(channels, -1)[:, 0]],
            "data_mean": list(self.data_mean),
            "data_std": list(self.data_std),
        }
        if self.preprocessing == "pixel_mean":
            # 784 or 3072 numbers would drown the report: summarise the mean image instead.
            image = self.mean.double().reshape(channels, -1)
            stats["mean_image_shape"] = list(self.mean.shape)
            stats["mean_image"] = {
                "min": [float(v) for v in image.min(dim=1).values],
                "max": [float(v) for v in image.max(dim=1).values],
                "mean": [float(v) for v in image.mean(dim=1)],
            }
        return stats


def make_splits(data: Decoded, cfg: DataConfig, device: torch.device | str = "cpu", seed: int = 0) -> DataSplits:
    """A decoded data set -> DataSplits: limit_train, val_split, preprocessing statistics."""
    train_x, train_y = data.train_x, data.train_y
    if cfg.limit_train is not None and cfg.limit_train < len(train_y):
        # clone(): a view would keep the whole decoded training set alive.
        train_x, train_y = train_x[: cfg.limit_train].clone(), train_y[: cfg.limit_train].clone()

    val_x = val_y = None
    if cfg.val_split > 0:
        train_x, train_y, val_x, val_y = _split_validation(train_x, train_y, cfg.val_split, seed)

    # Statistics come from the training split only: using val/test pixels would leak
    # information about the data we evaluate on.
    mean, std, data_mean, data_std = _preprocessing(train_x, cfg.preprocessing)

    device = torch.device(device)
    return DataSplits(
        train_x=train_x.to(device), train_y=train_y.to(device),
        test_x=data.test_x.to(device), test_y=data.test_y.to(device),
        val_x=None if val_x is None else val_x.to(device), val_y=None if val_y is None else val_y.to(device),
        mean=mean.to(device), std=std.to(device),
        num_classes=NUM_CLASSES,
        input_shape=tuple(int(s) for s in train_x.shape[1:]),  # type: ignore[arg-type]
        source=data.source,
        preprocessing=cfg.preprocessing,
        data_mean=data_mean, data_std=data_std,
    )


def _split_validation(x: torch.Tensor, y: torch.Tensor, fraction: float, seed: int):
    n = len(y)
    n_val = max(1, round(n * fraction))
    if n_val >= n:
        raise DataError(
            f"data.val_split={fraction} leaves no training samples out of {n}; use a smaller val_split "
            "or more training data (data.limit_train)"
        )
    # Its own generator: the split depends on the seed only, not on what else drew
    # random numbers before, so a run and its resumed continuation agree.
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    # Sorted, so both splits keep the files' order (training shuffles anyway).
    val_idx, train_idx = perm[:n_val].sort().values, perm[n_val:].sort().values
    return x[train_idx], y[train_idx], x[val_idx], y[val_idx]


def _preprocessing(x: torch.Tensor, kind: str):
    """(mean, std, per-channel data mean, per-channel data std) for uint8 images x."""
    n, c, h, w = x.shape
    pixel_sum, pixel_sq = _pixel_sums(x)  # exact integers, [C, H, W] each
    count = n * h * w
    channel_mean = pixel_sum.sum(dim=(1, 2)).double() / count / 255.0
    channel_sq = pixel_sq.sum(dim=(1, 2)).double() / count / (255.0 * 255.0)
    channel_std = (channel_sq - channel_mean**2).clamp(min=0).sqrt()

    ones = torch.ones(c, 1, 1, dtype=torch.float64)
    if kind == "none":
        mean, std = torch.zeros(c, 1, 1, dtype=torch.float64), ones
    elif kind == "channel_mean":
        mean, std = channel_mean.view(c, 1, 1), ones
    elif kind == "pixel_mean":
        mean, std = pixel_sum.double() / n / 255.0, ones
    else:  # standardize (the schema allows no other kind)
        # A constant channel has std 0: leave it unscaled rather than divide by zero.
        safe_std = torch.where(channel_std > 1e-12, channel_std, torch.ones_like(channel_std))
        mean, std = channel_mean.view(c, 1, 1), safe_std.view(c, 1, 1)
    return (
        mean.float(), std.float(),
        [float(v) for v in channel_mean], [float(v) for v in channel_std],
    )


def _pixel_sums(x: torch.Tensor, chunk: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel sum and sum of squares over the batch, exact (int64), in bounded memory."""
    # In chunks: 60000 MNIST images as float64 would be 376 MB at once. Within a chunk
    # int32 cannot overflow (512 * 255**2 < 2**31); numpy's sums and the totals are int64.
    # numpy, not torch: this runs on every load, and torch splits each of these small,
    # memory-bound ops across its intra-op threads, which on a busy machine wait for one
    # another (MNIST, 2 cores, load 9: 5.6 s with torch and 2 threads, 0.07 s with numpy;
    # the earlier torch version with 4096-image chunks also held a 200 MB transient for
    # CIFAR-10, its int32 .sum() promoting through a full int64 copy). benchmarks/README.md
    a = x.cpu().numpy().reshape(len(x), -1)
    total = np.zeros(a.shape[1], dtype=np.int64)
    total_sq = np.zeros(a.shape[1], dtype=np.int64)
    for start in range(0, len(a), chunk):
        part = a[start : start + chunk].astype(np.int32)
        total += part.sum(axis=0)
        total_sq += np.multiply(part, part, out=part).sum(axis=0)
    return torch.from_numpy(total).reshape(x.shape[1:]), torch.from_numpy(total_sq).reshape(x.shape[1:])

