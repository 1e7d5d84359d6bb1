"""The synthetic data set: MNIST-shaped, generated from a fixed seed, learnable, no files."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from mlp_lab.data.files import NUM_CLASSES, Decoded
from mlp_lab.schema import DataConfig

_SYNTHETIC_SEED = 20240601  # fixed: the data must not change with the training seed


def load_synthetic(cfg: DataConfig, data_dir: Path) -> Decoded:
    """Ten fixed blob "digits", each sample shifted, rescaled, blended and noised.

    Shifts and blending make classes overlap, so a linear model gets most samples right
    but not all, and a hidden layer helps; it trains to well above chance in one epoch.
    """
    prototypes = _synthetic_prototypes()
    train_x, train_y = _synthetic_samples(prototypes, cfg.synthetic_train_size, _SYNTHETIC_SEED + 1)
    # The test set has its own generator, so it is the same whatever the training size.
    test_x, test_y = _synthetic_samples(prototypes, cfg.synthetic_test_size, _SYNTHETIC_SEED + 2)
    return Decoded(train_x, train_y, test_x, test_y, source="synthetic")


def _synthetic_prototypes() -> torch.Tensor:
    g = torch.Generator().manual_seed(_SYNTHETIC_SEED)
    # Smooth random blobs: 6x6 noise upsampled to the 20x20 box MNIST digits occupy,
    # keeping only its upper part so each prototype is a few bright strokes on black.
    coarse = torch.rand(NUM_CLASSES, 1, 6, 6, generator=g)
    smooth = F.interpolate(coarse, size=(20, 20), mode="bicubic", align_corners=False)
    blobs = (smooth - 0.5).clamp(min=0)
    blobs = blobs / blobs.amax(dim=(1, 2, 3), keepdim=True)
    return F.pad(blobs, (4, 4, 4, 4))  # [10, 1, 28, 28] in [0, 1]


def _synthetic_samples(prototypes: torch.Tensor, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % NUM_CLASSES  # balanced classes, in shuffled order
    labels = labels[torch.randperm(n, generator=g)]
    # Shift each sample by up to 3 pixels: index a padded prototype with per-sample offsets
    # (one gather for the whole set, no loop over samples).
    pad = 3
    padded = F.pad(prototypes[:, 0], (pad, pad, pad, pad))  # [10, 34, 34]
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=g)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=g)
    ar = torch.arange(28)
    rows = (ar[None, :] + dy[:, None])[:, :, None]  # [n, 28, 1]
    cols = (ar[None, :] + dx[:, None])[:, None, :]  # [n, 1, 28]
    images = padded[labels[:, None, None], rows, cols]  # [n, 28, 28]
    # Blend in a different class's prototype: makes some samples genuinely ambiguous.
    other = (labels + torch.randint(1, NUM_CLASSES, (n,), generator=g)) % NUM_CLASSES
    weight = torch.rand(n, 1, 1, generator=g) * 0.6
    images = images + weight * padded[other[:, None, None], rows, cols]
    contrast = 0.6 + 0.6 * torch.rand(n, 1, 1, generator=g)
    noise = 0.3 * torch.randn(n, 28, 28, generator=g)
    images = (images * contrast + noise).clamp(0, 1)
    return (images * 255).round().to(torch.uint8).unsqueeze(1), labels.to(torch.int64)

