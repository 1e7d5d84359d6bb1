"""Write a synthetic CIFAR-10 in the exact on-disk format of the official python version.

    .venv/bin/python benchmarks/make_fake_cifar10.py DIR [--per-batch 10000] [--seed 0]

creates ``DIR/cifar-10-batches-py/`` with ``data_batch_1`` .. ``data_batch_5``,
``test_batch`` and ``batches.meta``, laid out like the real download:

* each batch is a Python-2 style protocol-2 pickle of a dict with byte-string keys
  ``b'batch_label'``, ``b'labels'`` (list of ints 0..9), ``b'data'`` (numpy uint8
  ``[n, 3072]``: the red 32x32 plane, then green, then blue, row-major) and
  ``b'filenames'`` (list of byte strings);
* strings are pickled as 8-bit strings (SHORT_BINSTRING/BINSTRING) and numpy under its
  old module name ``numpy.core``, as Python 2's cPickle wrote them, so both readers
  work on it: mlp-lab's (``encoding='bytes'``) and torchvision's (``encoding='latin1'``).
  (tests/fakedata.py writes the same format for the unit tests.)

The pixels are random, so nothing learns anything: these files are for measuring speed
and memory (benchmarks/epoch_speed.py, benchmarks/memory.py), not accuracy. torchvision's
``CIFAR10`` class checks the official md5 sums and so rejects these files unless its
integrity check is bypassed (epoch_speed.py does that, and says so).
"""

from __future__ import annotations

import argparse
import pickle
import struct
from pathlib import Path

import numpy as np

FOLDER = "cifar-10-batches-py"
LABEL_NAMES = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]


class Py2StylePickler(pickle._Pickler):  # the pure-Python pickler: its dispatch table can be extended
    """Pickles bytes/str as Python 2 8-bit strings and numpy under ``numpy.core``."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_str8(self, obj):
        raw = obj.encode("latin1") if isinstance(obj, str) else bytes(obj)
        if len(raw) < 256:
            head = pickle.SHORT_BINSTRING + bytes([len(raw)])
        else:
            head = pickle.BINSTRING + struct.pack("<i", len(raw))
        self.write(head)
        self.write(raw)
        self.memoize(obj)

    def save_global(self, obj, name=None):
        module = "numpy" if obj in (np.ndarray, np.dtype) else obj.__module__.replace("numpy._core", "numpy.core")
        self.write(pickle.GLOBAL + f"{module}\n{name or obj.__qualname__}\n".encode())
        self.memoize(obj)

    dispatch[bytes] = _save_str8
    dispatch[str] = _save_str8
    dispatch[type] = save_global


def _dump(path: Path, obj: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        Py2StylePickler(f, protocol=2).dump(obj)
    tmp.replace(path)


def write_fake_cifar10(root: Path | str, per_batch: int = 10000, test_size: int | None = None, seed: int = 0) -> Path:
    """Write the seven files under ``root/cifar-10-batches-py`` and return that folder.

    ``per_batch`` images in each of the five training batches (10000 in the real data
    set), ``test_size`` (default: per_batch) in ``test_batch``.
    """
    folder = Path(root) / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    test_size = per_batch if test_size is None else test_size
    names = [(f"data_batch_{i}", f"training batch {i} of 5", per_batch) for i in range(1, 6)]
    names.append(("test_batch", "testing batch 1 of 1", test_size))
    for name, label, n in names:
        batch = {
            b"batch_label": label.encode(),
            b"labels": [int(v) for v in rng.integers(0, 10, n)],
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"filenames": [f"fake_{name}_{i:05d}.png".encode() for i in range(n)],
        }
        _dump(folder / name, batch)
        del batch  # one batch in memory at a time
    _dump(folder / "batches.meta", {b"num_cases_per_batch": per_batch, b"label_names": LABEL_NAMES, b"num_vis": 3072})
    return folder


def has_cifar10(data_dir: Path | str) -> bool:
    """True when ``data_dir`` holds all six CIFAR-10 batch files (real or not)."""
    folder = Path(data_dir) / FOLDER
    return all((folder / n).is_file() for n in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("root", type=Path, help="data folder to create cifar-10-batches-py/ in")
    p.add_argument("--per-batch", type=int, default=10000, help="images per batch file (real: 10000)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    folder = write_fake_cifar10(args.root, per_batch=args.per_batch, seed=args.seed)
    print(f"wrote synthetic CIFAR-10 ({5 * args.per_batch} train + {args.per_batch} test images) to {folder}")


if __name__ == "__main__":
    main()
