"""Data sets as uint8 tensors: find, decode, cache, split, and normalise per batch.

One module per concern: ``files`` (where the files are, downloading, the decoded cache),
``idx`` (MNIST, Fashion-MNIST), ``cifar`` (CIFAR-10), ``synthetic`` (no files), and
``splits`` (``DataSplits``: train/val/test on the device, preprocessing). ``load_data``
below ties them together; ``DATASETS`` is the one registry of data sets.

Why it is built this way:

* An MLP on MNIST or CIFAR-10 is tiny, so per-sample ``Dataset``/``DataLoader``/PIL
  pipelines would dominate the run time. We decode the raw files once into uint8 tensors,
  keep them on the training device as uint8 (CIFAR-10's 50000 images are 150 MB instead
  of 600 MB as float32) and convert one batch at a time in :meth:`DataSplits.normalize`.
* We read the raw files ourselves instead of through torchvision's dataset classes:
  torchvision's CIFAR10 insists on the official md5 sums, and its loaders unpickle with
  the full ``pickle`` module. Loading data must never run code, so CIFAR's pickles go
  through an unpickler that can build numpy arrays and nothing else.
* Finding, downloading and caching the files, and the one-line errors for missing or
  corrupt ones: see ``files``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from mlp_lab.data.cifar import CIFAR10
from mlp_lab.data.files import NUM_CLASSES, Decoded, offline, resolve_data_dir
from mlp_lab.data.idx import FASHION_MNIST, MNIST
from mlp_lab.data.splits import DataSplits, make_splits
from mlp_lab.data.synthetic import load_synthetic
from mlp_lab.errors import DataError, lookup
from mlp_lab.schema import DataConfig

__all__ = ["DATASETS", "NUM_CLASSES", "DataSplits", "Decoded", "decode", "load_data", "make_splits", "offline",
           "resolve_data_dir"]

# --- the registry -------------------------------------------------------------------------

# data.dataset -> a function (cfg, data_dir) -> _Decoded. A new data set is one entry here
# (and its name in config.Dataset).
DATASETS: dict[str, Callable[[DataConfig, Path], Decoded]] = {
    "mnist": MNIST,
    "fashion_mnist": FASHION_MNIST,
    "cifar10": CIFAR10,
    "synthetic": load_synthetic,
}


def decode(cfg: DataConfig, data_dir: Path) -> Decoded:
    """``cfg.dataset`` whole, as uint8 tensors on the CPU (from the decoded cache when it can)."""
    loader = lookup(DATASETS, "data.dataset", cfg.dataset, error=DataError)
    # Absolute, so messages and the fallback cache's key name the folder unambiguously.
    return loader(cfg, Path(data_dir).expanduser().absolute())


def load_data(cfg: DataConfig, data_dir: Path, device: torch.device | str = "cpu", seed: int = 0) -> DataSplits:
    """Load ``cfg.dataset``, apply limit_train and val_split, compute the preprocessing stats."""
    return make_splits(decode(cfg, data_dir), cfg, device, seed)
