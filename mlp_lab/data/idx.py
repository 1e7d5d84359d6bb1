"""MNIST and Fashion-MNIST: the idx file format, decoded with numpy, no per-sample parsing."""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from mlp_lab.data.files import FileDataset, Tensors, check_labels, corrupt
from mlp_lab.errors import DataError

_IDX_UBYTE = 0x08  # the idx type code for unsigned bytes, the only one these data sets use


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise corrupt(path, f"not a valid gzip file ({' '.join(str(e).split())})") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read file ({e.strerror or e})") from None


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """Decode one idx file (images: ndim 3, labels: ndim 1) into a uint8 array."""
    # Format: 2 zero bytes, a type byte (0x08 = ubyte), a byte with the number of
    # dimensions, then each dimension as a big-endian uint32, then the values.
    data = _read_bytes(path)
    header = 4 + 4 * ndim
    expected_magic = (_IDX_UBYTE << 8) | ndim
    if len(data) < 4:
        raise corrupt(path, f"only {len(data)} bytes, too short for an idx header")
    (magic,) = struct.unpack(">I", data[:4])
    if magic != expected_magic:
        what = "image" if ndim == 3 else "label"
        raise corrupt(path, f"wrong magic number 0x{magic:08x} for an idx {what} file (expected 0x{expected_magic:08x})")
    if len(data) < header:
        raise corrupt(path, f"only {len(data)} bytes, too short for an idx header")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    size = int(np.prod(dims, dtype=np.int64))
    if len(data) != header + size:
        raise corrupt(path, f"{len(data)} bytes but its header {list(dims)} needs {header + size}")
    # frombuffer: no per-sample parsing. copy(): bytes are read-only and torch wants writable memory.
    return np.frombuffer(data, dtype=np.uint8, count=size, offset=header).reshape(dims).copy()


def _parse_idx_pair(images_path: Path, labels_path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    images = read_idx(images_path, ndim=3)
    if images.shape[1:] != (28, 28):
        raise corrupt(images_path, f"images are {images.shape[1]}x{images.shape[2]}, expected 28x28")
    labels = read_idx(labels_path, ndim=1)
    if len(images) == 0:
        raise corrupt(images_path, "contains no images")
    if len(labels) != len(images):
        raise corrupt(labels_path, f"has {len(labels)} labels but {images_path.name} has {len(images)} images")
    check_labels(labels_path, labels)
    return torch.from_numpy(images).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))



def _parse_mnist_like(train_paths: list[Path], test_paths: list[Path]) -> Tensors:
    return (*_parse_idx_pair(*train_paths), *_parse_idx_pair(*test_paths))


_IDX_TRAIN = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
_IDX_TEST = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

MNIST = FileDataset(
    name="mnist", title="MNIST", folder="MNIST/raw",
    train_files=_IDX_TRAIN, test_files=_IDX_TEST, allow_gz=True,
    layout_hint="torchvision's layout: <data dir>/MNIST/raw/train-images-idx3-ubyte etc., .gz or not",
    parse=_parse_mnist_like,
)
FASHION_MNIST = FileDataset(
    name="fashion_mnist", title="Fashion-MNIST", folder="FashionMNIST/raw",
    train_files=_IDX_TRAIN, test_files=_IDX_TEST, allow_gz=True,
    layout_hint="torchvision's layout: <data dir>/FashionMNIST/raw/train-images-idx3-ubyte etc., .gz or not",
    parse=_parse_mnist_like,
)

