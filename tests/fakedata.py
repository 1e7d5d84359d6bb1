"""Small data sets in the real on-disk formats, written by tests (and benchmarks).

MNIST/Fashion-MNIST as idx files (big-endian headers, optionally gzipped) and CIFAR-10
as protocol-2 pickles of dicts with byte keys, exactly as the official files are laid
out, so the loaders under test are the real ones.
"""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np

# The Python-2 style pickler lives with the benchmark tool that writes full-size fake
# CIFAR-10 (benchmarks/ is on pytest's pythonpath); the tests use the same one, so both
# write exactly the same format.
from make_fake_cifar10 import Py2StylePickler  # noqa: F401 - re-exported for tests

IDX_NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


# --- writing files in the real formats -----------------------------------------------------


def write_idx(path: Path, array: np.ndarray, gz: bool = False, magic: int | None = None) -> Path:
    """An idx file: 0x0000, type 0x08 (ubyte), ndim, big-endian uint32 dims, the bytes."""
    array = np.asarray(array, dtype=np.uint8)
    if magic is None:
        magic = 0x00000800 | array.ndim
    payload = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)
    return path


def make_idx_dataset(
    root: Path, folder: str = "MNIST/raw", n_train: int = 60, n_test: int = 20, gz: bool = True, seed: int = 0
) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": np.arange(n_train, dtype=np.uint8) % 10,
        "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_labels": (np.arange(n_test, dtype=np.uint8) * 3) % 10,
    }
    for key, arr in arrays.items():
        write_idx(root / folder / IDX_NAMES[key], arr, gz=gz)
    return arrays


def make_cifar(root: Path, per_batch: int = 20, str_keys: bool = False, seed: int = 0) -> dict[str, np.ndarray]:
    """cifar-10-batches-py with data_batch_1..5 and test_batch, as protocol-2 pickled dicts."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, list] = {"train_x": [], "train_y": [], "test_x": [], "test_y": []}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        rows = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, per_batch)]
        write_cifar_batch(folder / name, rows, labels, str_keys=str_keys)
        split = "test" if name == "test_batch" else "train"
        out[f"{split}_x"].append(rows)
        out[f"{split}_y"].extend(labels)
    return {
        "train_x": np.concatenate(out["train_x"]),
        "train_y": np.array(out["train_y"]),
        "test_x": np.concatenate(out["test_x"]),
        "test_y": np.array(out["test_y"]),
    }


def write_cifar_batch(path: Path, rows: np.ndarray, labels, str_keys: bool = False, pickler=None) -> None:
    batch = {
        b"batch_label": b"training batch 1 of 5",
        b"labels": labels,
        b"data": rows,
        b"filenames": [f"img_{i}.png".encode() for i in range(len(rows))],
    }
    if str_keys:
        batch = {k.decode(): v for k, v in batch.items()}
    with open(path, "wb") as f:
        (pickler or pickle.Pickler)(f, protocol=2).dump(batch)
