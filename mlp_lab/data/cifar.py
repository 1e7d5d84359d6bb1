"""CIFAR-10: the official python batches, pickled numpy arrays, read by an unpickler that
can build numpy arrays and nothing else (loading data must never run code)."""

from __future__ import annotations

import codecs
import copyreg
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mlp_lab.data.files import FileDataset, Tensors, check_labels, corrupt
from mlp_lab.errors import DataError

def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    # Protocol-2 pickles store bytes as _codecs.encode(text, 'latin1'); allow only that.
    if encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"refusing _codecs.encode with encoding {encoding!r}")
    return codecs.encode(text, "latin1")


# numpy's own reconstructors, taken from numpy itself so they match whichever numpy is
# installed (numpy 1 calls the module numpy.core, numpy 2 numpy._core).
_np_reconstruct = np.empty(0).__reduce__()[0]
_np_scalar = np.uint8(0).__reduce__()[0]

# Everything a pickled dict of numpy arrays needs, and nothing else: no function that
# could run a command, import a module or open a file is reachable from a data file.
_PICKLE_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _np_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _np_reconstruct,
    ("numpy.core.multiarray", "scalar"): _np_scalar,
    ("numpy._core.multiarray", "scalar"): _np_scalar,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("copyreg", "_reconstructor"): copyreg._reconstructor,  # type: ignore[attr-defined]
    ("_codecs", "encode"): _latin1_encode,
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _PICKLE_ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"it refers to {module}.{name}, which a data file has no business using") from None


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 batch file -> (uint8 [n, 3, 32, 32], int64 [n])."""
    try:
        with open(path, "rb") as f:
            # encoding='bytes': the official batches are Python 2 pickles, whose str
            # values (keys, the pixel buffer) must stay bytes rather than be decoded.
            batch = _NumpyOnlyUnpickler(f, encoding="bytes").load()
    except pickle.UnpicklingError as e:
        raise corrupt(path, f"not a valid CIFAR-10 pickle ({e})") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read file ({e.strerror or e})") from None
    except Exception as e:  # noqa: BLE001 - truncated or garbled pickles raise all sorts
        raise corrupt(path, f"not a valid CIFAR-10 pickle ({type(e).__name__}: {' '.join(str(e).split())})") from None

    if not isinstance(batch, dict):
        raise corrupt(path, f"holds a {type(batch).__name__}, expected a dict with data and labels")
    # Official files have byte keys; a batch written by Python 3 code may have str keys.
    batch = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in batch.items()}
    if "data" not in batch or "labels" not in batch:
        raise corrupt(path, f"has keys {sorted(map(str, batch))}, expected 'data' and 'labels'")
    data = batch["data"]
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2 and data.shape[1] == 3 * 32 * 32):
        shape = getattr(data, "shape", None)
        dtype = getattr(data, "dtype", type(data).__name__)
        raise corrupt(path, f"'data' is {dtype} with shape {shape}, expected uint8 [n, 3072]")
    try:
        labels = np.asarray(batch["labels"], dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        raise corrupt(path, "'labels' is not a list of integers") from None
    if labels.ndim != 1 or len(labels) != len(data):
        raise corrupt(path, f"has {labels.size} labels but {len(data)} images")
    if len(data) == 0:
        raise corrupt(path, "contains no images")
    check_labels(path, labels)
    # Each row is the red 32x32 plane, then green, then blue, each row-major: exactly
    # [3, 32, 32] in C order, so this reshape is free.
    return data.reshape(-1, 3, 32, 32), labels


def _parse_cifar10(train_paths: list[Path], test_paths: list[Path]) -> Tensors:
    out: list[torch.Tensor] = []
    for paths in (train_paths, test_paths):
        batches = [read_cifar_batch(p) for p in paths]
        out.append(torch.from_numpy(np.ascontiguousarray(np.concatenate([b[0] for b in batches]))))
        out.append(torch.from_numpy(np.concatenate([b[1] for b in batches])))
    return out[0], out[1], out[2], out[3]


CIFAR10 = FileDataset(
    name="cifar10", title="CIFAR-10", folder="cifar-10-batches-py",
    train_files=tuple(f"data_batch_{i}" for i in range(1, 6)), test_files=("test_batch",), allow_gz=False,
    layout_hint="the python version of CIFAR-10 unpacked: <data dir>/cifar-10-batches-py/data_batch_1..5 and test_batch",
    parse=_parse_cifar10,
)

