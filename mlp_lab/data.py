"""Data sets as uint8 tensors: find, decode, cache, split, and normalise per batch.

Why it is built this way:

* An MLP on MNIST or CIFAR-10 is tiny, so per-sample ``Dataset``/``DataLoader``/PIL
  pipelines would dominate the run time. We decode the raw files once into uint8 tensors,
  keep them on the training device as uint8 (CIFAR-10's 50000 images are 150 MB instead
  of 600 MB as float32) and convert one batch at a time in :meth:`DataSplits.normalize`.
* We read the raw files ourselves instead of through torchvision's dataset classes:
  torchvision's CIFAR10 insists on the official md5 sums, and its loaders unpickle with
  the full ``pickle`` module. Loading data must never run code, so CIFAR's pickles go
  through an unpickler that can build numpy arrays and nothing else.
* Decoding the gzip'd idx files takes about a second; students run many short
  experiments, so the decoded tensors are cached next to the data (or in ~/.cache when
  the data folder is read-only) and the cache is keyed on the raw files' sizes and
  modification times, so replacing a raw file rebuilds it.
* Every problem a user can cause (missing or corrupt files) is a one-line ``DataError``
  that says what is wrong and how to fix it; the CLI prints it without a traceback.
* Missing MNIST/Fashion-MNIST/CIFAR-10 files are downloaded through torchvision when
  ``data.download`` is true, unless the environment sets ``MLP_LAB_OFFLINE=1``: then no
  download is ever attempted (machines without network, tests).
"""

from __future__ import annotations

import codecs
import contextlib
import copyreg
import gzip
import hashlib
import io
import os
import pickle
import stat
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from mlp_lab.schema import DataConfig
from mlp_lab.errors import DataError
from mlp_lab.runs import atomic_write

NUM_CLASSES = 10  # every data set here has ten classes

# Bumped whenever the cache's layout changes, so an old cache is rebuilt instead of misread.
CACHE_FORMAT = "mlp-lab decoded data v1"
CACHE_DIRNAME = "mlp_lab_cache"
# Set to 1 to forbid downloads even when data.download is true (see offline()).
OFFLINE_ENV = "MLP_LAB_OFFLINE"


# --- where the data lives --------------------------------------------------------------


def resolve_data_dir(flag: Path | None, cfg: DataConfig) -> Path:
    """The data folder: ``--data-dir``, then ``$MLP_LAB_DATA``, then ``data.data_dir``, then ./data."""
    # The most specific setting wins: a flag typed for this run beats the shell's
    # environment, which beats the (shared, committed) config file.
    env = os.environ.get("MLP_LAB_DATA", "").strip()
    for candidate in (flag, env or None, cfg.data_dir):
        if candidate is not None and str(candidate) != "":
            return Path(candidate).expanduser()
    return Path("data")


# --- what load_data returns -------------------------------------------------------------


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


# --- the entry point ---------------------------------------------------------------------


class _Decoded(NamedTuple):
    """A data set as its loader returns it: full train and test sets, on the CPU."""

    train_x: torch.Tensor  # uint8 [N, C, H, W]
    train_y: torch.Tensor  # int64 [N]
    test_x: torch.Tensor
    test_y: torch.Tensor
    source: str


def load_data(
    cfg: DataConfig, data_dir: Path, device: torch.device | str = "cpu", seed: int = 0
) -> DataSplits:
    """Load ``cfg.dataset``, apply limit_train and val_split, compute the preprocessing stats."""
    loader = DATASETS.get(cfg.dataset)
    if loader is None:
        raise DataError(f"unknown data set {cfg.dataset!r}; known: {', '.join(DATASETS)}")
    # Absolute, so messages and the fallback cache's key name the folder unambiguously.
    data = loader(cfg, Path(data_dir).expanduser().absolute())

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
    move = lambda t: None if t is None else t.to(device)  # noqa: E731
    return DataSplits(
        train_x=move(train_x), train_y=move(train_y),
        test_x=move(data.test_x), test_y=move(data.test_y),
        val_x=move(val_x), val_y=move(val_y),
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
    elif kind == "standardize":
        # A constant channel has std 0: leave it unscaled rather than divide by zero.
        safe_std = torch.where(channel_std > 1e-12, channel_std, torch.ones_like(channel_std))
        mean, std = channel_mean.view(c, 1, 1), safe_std.view(c, 1, 1)
    else:
        raise DataError(f"unknown preprocessing {kind!r}; known: none, channel_mean, pixel_mean, standardize")
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


# --- files on disk: locating, downloading, caching ---------------------------------------


@dataclass(frozen=True)
class _FileDataset:
    """A data set stored as files in torchvision's layout under the data folder."""

    name: str  # the config's name, also the cache file's name
    title: str  # for messages: "MNIST"
    folder: str  # relative to the data folder
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    allow_gz: bool  # idx files may be stored gzip'd
    layout_hint: str  # how to provide the files, for the "not found" message
    parse: Callable[[list[Path], list[Path]], tuple[torch.Tensor, ...]]

    def __call__(self, cfg: DataConfig, data_dir: Path) -> _Decoded:
        folder = data_dir / self.folder
        found, missing = self._locate(folder)
        download_problem = ""
        if missing and cfg.download and not offline():
            download_problem = _try_download(self.name, data_dir)
            found, missing = self._locate(folder)
        if missing:
            raise DataError(self._missing_message(folder, missing, cfg.download, download_problem))

        train_paths = found[: len(self.train_files)]
        test_paths = found[len(self.train_files) :]
        key = _cache_key(found)
        cached = _read_cache(data_dir, self.name, key)
        if cached is not None:
            return _Decoded(*cached, source=f"{self.title} from {folder} (cache)")
        tensors = self.parse(train_paths, test_paths)
        _write_cache(data_dir, self.name, key, tensors)
        return _Decoded(*tensors, source=f"{self.title} from {folder}")

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
        _download(dataset, data_dir)
    except Exception as e:  # noqa: BLE001 - any failure just means "still missing"
        text = " ".join(str(e).split()) or "no details"
        if len(text) > 200:
            text = text[:197] + "..."
        return f"{type(e).__name__}: {text}"
    return ""


def _download(dataset: str, data_dir: Path) -> None:
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


def _cache_key(paths: list[Path]) -> list[list[Any]]:
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


def _read_cache(data_dir: Path, dataset: str, key: list[list[Any]]) -> tuple[torch.Tensor, ...] | None:
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


def _write_cache(data_dir: Path, dataset: str, key: list[list[Any]], tensors: tuple[torch.Tensor, ...]) -> None:
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


def _corrupt(path: Path, problem: str) -> DataError:
    return DataError(f"{path}: {problem}; the file is corrupt or incomplete, delete it and download it again")


# --- MNIST and Fashion-MNIST: idx files ----------------------------------------------------

_IDX_UBYTE = 0x08  # the idx type code for unsigned bytes, the only one these data sets use


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise _corrupt(path, f"not a valid gzip file ({' '.join(str(e).split())})") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read file ({e.strerror or e})") from None


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    """Decode one idx file (images: ndim 3, labels: ndim 1) into a uint8 array."""
    # Format: 2 zero bytes, a type byte (0x08 = ubyte), a byte with the number of
    # dimensions, then each dimension as a big-endian uint32, then the values.
    data = _read_bytes(path)
    header = 4 + 4 * ndim
    expected_magic = (_IDX_UBYTE << 8) | ndim
    if len(data) < 4:
        raise _corrupt(path, f"only {len(data)} bytes, too short for an idx header")
    (magic,) = struct.unpack(">I", data[:4])
    if magic != expected_magic:
        what = "image" if ndim == 3 else "label"
        raise _corrupt(path, f"wrong magic number 0x{magic:08x} for an idx {what} file (expected 0x{expected_magic:08x})")
    if len(data) < header:
        raise _corrupt(path, f"only {len(data)} bytes, too short for an idx header")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    size = int(np.prod(dims, dtype=np.int64))
    if len(data) != header + size:
        raise _corrupt(path, f"{len(data)} bytes but its header {list(dims)} needs {header + size}")
    # frombuffer: no per-sample parsing. copy(): bytes are read-only and torch wants writable memory.
    return np.frombuffer(data, dtype=np.uint8, count=size, offset=header).reshape(dims).copy()


def _parse_idx_pair(images_path: Path, labels_path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    images = _read_idx(images_path, ndim=3)
    if images.shape[1:] != (28, 28):
        raise _corrupt(images_path, f"images are {images.shape[1]}x{images.shape[2]}, expected 28x28")
    labels = _read_idx(labels_path, ndim=1)
    if len(images) == 0:
        raise _corrupt(images_path, "contains no images")
    if len(labels) != len(images):
        raise _corrupt(labels_path, f"has {len(labels)} labels but {images_path.name} has {len(images)} images")
    _check_labels(labels_path, labels)
    return torch.from_numpy(images).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))


def _check_labels(path: Path, labels: np.ndarray) -> None:
    if len(labels) and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        bad = labels[(labels < 0) | (labels >= NUM_CLASSES)][0]
        raise _corrupt(path, f"label {int(bad)} is outside 0..{NUM_CLASSES - 1}")


def _parse_mnist_like(train_paths: list[Path], test_paths: list[Path]) -> tuple[torch.Tensor, ...]:
    return (*_parse_idx_pair(*train_paths), *_parse_idx_pair(*test_paths))


_IDX_TRAIN = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
_IDX_TEST = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

MNIST = _FileDataset(
    name="mnist", title="MNIST", folder="MNIST/raw",
    train_files=_IDX_TRAIN, test_files=_IDX_TEST, allow_gz=True,
    layout_hint="torchvision's layout: <data dir>/MNIST/raw/train-images-idx3-ubyte etc., .gz or not",
    parse=_parse_mnist_like,
)
FASHION_MNIST = _FileDataset(
    name="fashion_mnist", title="Fashion-MNIST", folder="FashionMNIST/raw",
    train_files=_IDX_TRAIN, test_files=_IDX_TEST, allow_gz=True,
    layout_hint="torchvision's layout: <data dir>/FashionMNIST/raw/train-images-idx3-ubyte etc., .gz or not",
    parse=_parse_mnist_like,
)


# --- CIFAR-10: pickled numpy arrays --------------------------------------------------------


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


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 batch file -> (uint8 [n, 3, 32, 32], int64 [n])."""
    try:
        with open(path, "rb") as f:
            # encoding='bytes': the official batches are Python 2 pickles, whose str
            # values (keys, the pixel buffer) must stay bytes rather than be decoded.
            batch = _NumpyOnlyUnpickler(f, encoding="bytes").load()
    except pickle.UnpicklingError as e:
        raise _corrupt(path, f"not a valid CIFAR-10 pickle ({e})") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read file ({e.strerror or e})") from None
    except Exception as e:  # noqa: BLE001 - truncated or garbled pickles raise all sorts
        raise _corrupt(path, f"not a valid CIFAR-10 pickle ({type(e).__name__}: {' '.join(str(e).split())})") from None

    if not isinstance(batch, dict):
        raise _corrupt(path, f"holds a {type(batch).__name__}, expected a dict with data and labels")
    # Official files have byte keys; a batch written by Python 3 code may have str keys.
    batch = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in batch.items()}
    if "data" not in batch or "labels" not in batch:
        raise _corrupt(path, f"has keys {sorted(map(str, batch))}, expected 'data' and 'labels'")
    data = batch["data"]
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2 and data.shape[1] == 3 * 32 * 32):
        shape = getattr(data, "shape", None)
        dtype = getattr(data, "dtype", type(data).__name__)
        raise _corrupt(path, f"'data' is {dtype} with shape {shape}, expected uint8 [n, 3072]")
    try:
        labels = np.asarray(batch["labels"], dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        raise _corrupt(path, "'labels' is not a list of integers") from None
    if labels.ndim != 1 or len(labels) != len(data):
        raise _corrupt(path, f"has {labels.size} labels but {len(data)} images")
    if len(data) == 0:
        raise _corrupt(path, "contains no images")
    _check_labels(path, labels)
    # Each row is the red 32x32 plane, then green, then blue, each row-major: exactly
    # [3, 32, 32] in C order, so this reshape is free.
    return data.reshape(-1, 3, 32, 32), labels


def _parse_cifar10(train_paths: list[Path], test_paths: list[Path]) -> tuple[torch.Tensor, ...]:
    out: list[torch.Tensor] = []
    for paths in (train_paths, test_paths):
        batches = [_read_cifar_batch(p) for p in paths]
        out.append(torch.from_numpy(np.ascontiguousarray(np.concatenate([b[0] for b in batches]))))
        out.append(torch.from_numpy(np.concatenate([b[1] for b in batches])))
    return tuple(out)


CIFAR10 = _FileDataset(
    name="cifar10", title="CIFAR-10", folder="cifar-10-batches-py",
    train_files=tuple(f"data_batch_{i}" for i in range(1, 6)), test_files=("test_batch",), allow_gz=False,
    layout_hint="the python version of CIFAR-10 unpacked: <data dir>/cifar-10-batches-py/data_batch_1..5 and test_batch",
    parse=_parse_cifar10,
)


# --- synthetic: MNIST-shaped, generated, learnable -----------------------------------------

_SYNTHETIC_SEED = 20240601  # fixed: the data must not change with the training seed


def _load_synthetic(cfg: DataConfig, data_dir: Path) -> _Decoded:
    """Ten fixed blob "digits", each sample shifted, rescaled, blended and noised.

    Shifts and blending make classes overlap, so a linear model gets most samples right
    but not all, and a hidden layer helps; it trains to well above chance in one epoch.
    """
    prototypes = _synthetic_prototypes()
    train_x, train_y = _synthetic_samples(prototypes, cfg.synthetic_train_size, _SYNTHETIC_SEED + 1)
    # The test set has its own generator, so it is the same whatever the training size.
    test_x, test_y = _synthetic_samples(prototypes, cfg.synthetic_test_size, _SYNTHETIC_SEED + 2)
    return _Decoded(train_x, train_y, test_x, test_y, source="synthetic")


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


# --- the registry -------------------------------------------------------------------------

# data.dataset -> a function (cfg, data_dir) -> _Decoded. A new data set is one entry here
# (and its name in config.Dataset).
DATASETS: dict[str, Callable[[DataConfig, Path], _Decoded]] = {
    "mnist": MNIST,
    "fashion_mnist": FASHION_MNIST,
    "cifar10": CIFAR10,
    "synthetic": _load_synthetic,
}
