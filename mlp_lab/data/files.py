"""Data files on disk: where they are, downloading them when missing, and the decoded cache.

* The data folder is ``--data-dir``, then ``$MLP_LAB_DATA``, then ``data.data_dir``, then ./data.
* Missing MNIST/Fashion-MNIST/CIFAR-10 files are downloaded through torchvision when
  ``data.download`` is true, unless the environment sets ``MLP_LAB_OFFLINE=1``: then no
  download is ever attempted (machines without network, tests).
* Decoding the gzip'd idx files takes about a second; students run many short
  experiments, so the decoded tensors are cached next to the data (or in ~/.cache when
  the data folder is read-only), keyed on the raw files' sizes and modification times,
  so replacing a raw file rebuilds it.
* Every problem a user can cause (missing or corrupt files) is a one-line ``DataError``
  that says what is wrong and how to fix it; the CLI prints it without a traceback.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, NamedTuple

import numpy as np
import torch

from mlp_lab.errors import DataError
from mlp_lab.atomic_files import atomic_write
from mlp_lab.schema import DataConfig

NUM_CLASSES = 10  # every data set here has ten classes

# Bumped whenever the cache's layout changes, so an old cache is rebuilt instead of misread.
CACHE_FORMAT = "mlp-lab decoded data v1"
CACHE_DIRNAME = "mlp_lab_cache"
# Set to 1 to forbid downloads even when data.download is true (see offline()).
OFFLINE_ENV = "MLP_LAB_OFFLINE"


def resolve_data_dir(flag: Path | None, cfg: DataConfig) -> Path:
    """The data folder: ``--data-dir``, then ``$MLP_LAB_DATA``, then ``data.data_dir``, then ./data."""
    # The most specific setting wins: a flag typed for this run beats the shell's
    # environment, which beats the (shared, committed) config file.
    env = os.environ.get("MLP_LAB_DATA", "").strip()
    for candidate in (flag, env or None, cfg.data_dir):
        if candidate is not None and str(candidate) != "":
            return Path(candidate).expanduser()
    return Path("data")



# A data set's four tensors, as a parser or the cache gives them: train_x, train_y, test_x, test_y.
Tensors = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


class Decoded(NamedTuple):
    """A data set as its loader returns it: full train and test sets, on the CPU."""

    train_x: torch.Tensor  # uint8 [N, C, H, W]
    train_y: torch.Tensor  # int64 [N]
    test_x: torch.Tensor
    test_y: torch.Tensor
    source: str


def corrupt(path: Path, problem: str) -> DataError:
    return DataError(f"{path}: {problem}; the file is corrupt or incomplete, delete it and download it again")


def check_labels(path: Path, labels: np.ndarray) -> None:
    if len(labels) and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        bad = labels[(labels < 0) | (labels >= NUM_CLASSES)][0]
        raise corrupt(path, f"label {int(bad)} is outside 0..{NUM_CLASSES - 1}")


@dataclass(frozen=True)
class FileDataset:
    """A data set stored as files in torchvision's layout under the data folder."""

    name: str  # the config's name, also the cache file's name
    title: str  # for messages: "MNIST"
    folder: str  # relative to the data folder
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    allow_gz: bool  # idx files may be stored gzip'd
    layout_hint: str  # how to provide the files, for the "not found" message
    parse: Callable[[list[Path], list[Path]], Tensors]

    def __call__(self, cfg: DataConfig, data_dir: Path) -> Decoded:
        if data_dir.exists() and not data_dir.is_dir():  # not a download's failure to report
            raise DataError(
                f"the data directory {data_dir} is a file; point --data-dir or MLP_LAB_DATA at a folder "
                f"that holds {self.folder}/ ({self.layout_hint})"
            )
        folder = data_dir / self.folder
        found, missing = self._locate(folder)
        download_problem = ""
        if missing and cfg.download and not offline():
            made = _missing_dirs(folder)
            download_problem = _try_download(self.name, data_dir)
            found, missing = self._locate(folder)
            if missing:  # a failed download leaves no empty data/MNIST/raw behind
                _remove_if_empty(made)
        if missing:
            raise DataError(self._missing_message(folder, missing, cfg.download, download_problem))

        train_paths = found[: len(self.train_files)]
        test_paths = found[len(self.train_files) :]
        key = cache_key(found)
        cached = read_cache(data_dir, self.name, key)
        if cached is not None:
            return Decoded(*cached, source=f"{self.title} from {folder} (cache)")
        tensors = self.parse(train_paths, test_paths)
        write_cache(data_dir, self.name, key, tensors)
        return Decoded(*tensors, source=f"{self.title} from {folder}")

    def _locate(self, folder: Path) -> tuple[list[Path], list[str]]:
        found, missing = [], []
        for name in self.train_files + self.test_files:
            # Uncompressed first: it reads several times faster than gunzipping.
            options = [folder / name] + ([folder / f"{name}.gz"] if self.allow_gz else [])
            path = next((p for p in options if p.is_file()), None)
            if path is None:
                missing.append(name + ("[.gz]" if self.allow_gz else ""))
            else:
                found.append(path)
        return found, missing

    def _missing_message(self, folder: Path, missing: list[str], download: bool, problem: str) -> str:
        if not download:
            why = "download is off (data.download: false)"
        elif offline():
            why = f"download is off ({OFFLINE_ENV} is set)"
        else:
            why = f"downloading it failed ({problem or 'torchvision finished but the files are not there'})"
        return (
            f"{self.title} not found: {folder} lacks {', '.join(missing)}; {why}. "
            f"Put the files there ({self.layout_hint}), or point --data-dir or MLP_LAB_DATA "
            f"at a folder that holds {self.folder}/"
        )


def offline() -> bool:
    """True when ``$MLP_LAB_OFFLINE`` is set (to anything but '', 0, false, no): never download.

    For machines without network (CI, exam rooms) and for tests, which must never touch
    the network: with it set, missing data is reported at once instead of after
    torchvision's connection attempts and retries.
    """
    return os.environ.get(OFFLINE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _try_download(dataset: str, data_dir: Path) -> str:
    """Download through torchvision; '' on success, else a one-line reason."""
    try:
        download(dataset, data_dir)
    except Exception as e:  # noqa: BLE001 - any failure just means "still missing"
        text = " ".join(str(e).split()) or "no details"
        if len(text) > 200:
            text = text[:197] + "..."
        return f"{type(e).__name__}: {text}"
    return ""


def download(dataset: str, data_dir: Path) -> None:
    """Fetch a data set with torchvision, which writes its usual layout under data_dir.

    The only function here that touches the network (tests replace it, or set
    MLP_LAB_OFFLINE=1 so that it is never called).
    """
    from torchvision import datasets  # slow to import; only needed here

    cls = {"mnist": datasets.MNIST, "fashion_mnist": datasets.FashionMNIST, "cifar10": datasets.CIFAR10}[dataset]
    # (After downloading, torchvision's classes read the files with plain pickle; that is
    # acceptable only because they have just checked the official md5 sums.)
    # torchvision prints "Downloading ..." and retry chatter to stdout; keep stdout for
    # the training output (its progress bars go to stderr and stay visible).
    with contextlib.redirect_stdout(io.StringIO()):
        for train in (True, False):
            cls(str(data_dir), train=train, download=True)


def _missing_dirs(path: Path) -> list[Path]:
    """``path`` and its parents that do not exist yet, deepest first."""
    out = []
    while not path.exists() and path != path.parent:
        out.append(path)
        path = path.parent
    return out


def _remove_if_empty(folders: list[Path]) -> None:
    for folder in folders:  # deepest first: a parent empties once its child is gone
        try:
            folder.rmdir()
        except OSError:
            pass  # not empty (some files came), or gone already


def cache_key(paths: list[Path]) -> list[list[Any]]:
    # Name, size and mtime of each raw file: re-downloading or replacing a file changes
    # them and so invalidates the cache, without hashing hundreds of megabytes each run.
    key = []
    for p in paths:
        st = p.stat()
        key.append([p.name, int(st.st_size), int(st.st_mtime_ns)])
    return key


def _cache_dirs(data_dir: Path) -> list[Path]:
    """Where a cache may live: beside the data, then a per-user fallback."""
    try:
        resolved = str(data_dir.resolve())
    except OSError:
        resolved = str(data_dir.absolute())
    digest = hashlib.sha256(resolved.encode()).hexdigest()[:16]
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return [data_dir / CACHE_DIRNAME, base / "mlp-lab" / digest]


def _writable_dir(path: Path) -> bool:
    # os.access alone says yes to root for everything; a folder whose write bits are all
    # off (a shared, read-only data set) is meant to stay untouched, so honour that too.
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return stat.S_ISDIR(mode) and bool(mode & 0o222) and os.access(path, os.W_OK | os.X_OK)


def read_cache(data_dir: Path, dataset: str, key: list[list[Any]]) -> Tensors | None:
    """The cached tensors if a cache matches the raw files, else None (never raises)."""
    for folder in _cache_dirs(data_dir):
        path = folder / f"{dataset}.pt"
        if not path.is_file():
            continue
        try:
            # weights_only: a cache file is data, and loading it must not run code either.
            blob = torch.load(path, map_location="cpu", weights_only=True)
            tensors = (blob["train_x"], blob["train_y"], blob["test_x"], blob["test_y"])
            if blob["format"] != CACHE_FORMAT or blob["dataset"] != dataset or blob["files"] != key:
                continue
            _check_decoded(*tensors)
            return tensors
        except Exception:  # noqa: BLE001 - a stale or corrupt cache is simply rebuilt
            continue
    return None


def _check_decoded(train_x, train_y, test_x, test_y) -> None:
    for x, y in ((train_x, train_y), (test_x, test_y)):
        if not (isinstance(x, torch.Tensor) and x.dtype == torch.uint8 and x.dim() == 4):
            raise ValueError("images must be uint8 [N, C, H, W]")
        if not (isinstance(y, torch.Tensor) and y.dtype == torch.int64 and y.shape == (len(x),)):
            raise ValueError("labels must be int64 [N]")


def write_cache(data_dir: Path, dataset: str, key: list[list[Any]], tensors: Tensors) -> None:
    """Save the decoded tensors where we may write; silently skip if nowhere (never raises)."""
    train_x, train_y, test_x, test_y = tensors
    blob = {
        "format": CACHE_FORMAT, "dataset": dataset, "files": key,
        "train_x": train_x.contiguous(), "train_y": train_y.contiguous(),
        "test_x": test_x.contiguous(), "test_y": test_y.contiguous(),
    }
    primary, fallback = _cache_dirs(data_dir)
    for folder in (primary, fallback):
        if folder.exists() and not _writable_dir(folder):
            continue
        if folder == primary and not folder.exists() and not _writable_dir(data_dir):
            continue  # never create folders inside a read-only data set
        try:
            folder.mkdir(parents=True, exist_ok=True)
            # Atomic: a concurrent run sees the old cache or the new one, never half a file.
            atomic_write(folder / f"{dataset}.pt", lambda f: torch.save(blob, f))
            return
        except Exception:  # noqa: BLE001 - a cache we cannot write is not an error
            pass

