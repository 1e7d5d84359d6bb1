"""Seconds per training epoch: the usual tutorial loop vs a hand-written loop vs mlp-lab.

    .venv/bin/python benchmarks/epoch_speed.py --data-dir ../shared/data
    .venv/bin/python benchmarks/epoch_speed.py --data-dir ../shared/data \\
        --precision fp32,tf32,bf16 --compile --json epoch_speed.json

In ONE process, on the same data, model, batch size (100) and optimizer (Adam, lr 1e-3):

  a   the usual tutorial loop: torchvision's MNIST/CIFAR10 dataset with
      transforms.ToTensor() in a DataLoader(batch_size=100, shuffle=True, num_workers=0),
      plain torch.optim.Adam, zero_grad / forward / loss / backward / step;
  b   a hand-written in-memory loop: float32 tensors already in memory, torch.randperm,
      index a slice of it, step, plain torch.optim.Adam;
  b+f the same with Adam(fused=True) (what mlp-lab uses on CPU), to show how much of
      the b -> c difference is the optimizer kernel;
  c   mlp-lab's own training epoch: the shipped config (configs/relu_adam.yaml, or
      cifar10_relu_adam.yaml) through load_data() and the very function run_experiment()
      calls per epoch (train._train_epoch, with the disabled progress bar the CLI passes
      when stderr is not a terminal). Training only, like a and b;
  c bf16 / c tf32 / c compile   the same with train.precision / train.compile (flags);
  eval       mlp-lab's evaluate() on the 10,000 test images (part of every epoch of a run);
  c+eval     run_experiment()'s own per-epoch "seconds" (metrics.jsonl): training plus the
             test-set evaluation, checkpoint writing not included.

Each is timed over whole epochs after one warm-up epoch; the methods take turns epoch by
epoch (a, b, b+f, c, ... then again), so a burst of load from another process hits all of
them alike; the table shows the median of epochs x repeats epochs (and min/max).

Data: real files in --data-dir when present (and the output says so). MNIST is read by
torchvision straight from <data dir>/MNIST/raw (it needs the uncompressed idx files; if
only .gz files are there they are unpacked into a temp dir). Without MNIST, synthetic
MNIST-shaped idx files are written to a temp dir and all three loops read those. Without
CIFAR-10 batches, synthetic ones in the exact on-disk format are written to a temp dir
(make_fake_cifar10.py), and torchvision's CIFAR10 reads them with its md5 check bypassed:
the per-sample path (PIL image -> ToTensor) is torchvision's own either way.

Nothing here asserts a time. Timings on a loaded machine are noisy: the load average is
printed before and after.
"""

from __future__ import annotations

import argparse
import gzip
import os
import pickle
import platform
import shutil
import statistics
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from mlp_lab import training as mltrain  # noqa: E402
from mlp_lab.config import load_config  # noqa: E402
from mlp_lab.console import TrainingProgress  # noqa: E402
from mlp_lab.data import DataSplits, load_data  # noqa: E402
from mlp_lab.devices import set_matmul_precision  # noqa: E402
from mlp_lab.model import build_model  # noqa: E402
from mlp_lab.optim import build_optimizer  # noqa: E402
from mlp_lab.schema import DataConfig, ExperimentConfig  # noqa: E402
from mlp_lab.signals import StopFlag  # noqa: E402

from _common import default_data_dir, load_avg, write_json  # noqa: E402
from make_fake_cifar10 import has_cifar10, write_fake_cifar10  # noqa: E402

MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
DEVICE = torch.device("cpu")


# --- data: real when present, else synthetic in the same on-disk format -------------------


def _write_idx(path: Path, array: torch.Tensor) -> None:
    a = array.numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack(">I", 0x800 | a.ndim) + struct.pack(f">{a.ndim}I", *a.shape) + a.tobytes())


def mnist_root(data_dir: Path, tmp: Path) -> tuple[Path, str]:
    """A root torchvision's MNIST and mlp-lab's loader both read, and what it holds."""
    raw = data_dir / "MNIST" / "raw"
    if all((raw / n).is_file() for n in MNIST_FILES):
        return data_dir, f"real MNIST from {raw} (torchvision reads it in place, read-only)"
    if all((raw / f"{n}.gz").is_file() for n in MNIST_FILES):
        out = tmp / "mnist" / "MNIST" / "raw"
        out.mkdir(parents=True)
        for n in MNIST_FILES:
            with gzip.open(raw / f"{n}.gz", "rb") as src, open(out / n, "wb") as dst:
                shutil.copyfileobj(src, dst)
        return tmp / "mnist", f"real MNIST from {raw} (.gz only: unpacked into a temp dir for torchvision)"
    # No MNIST: mlp-lab's synthetic digits, 60000 + 10000 of them, written as idx files.
    syn = load_data(DataConfig(dataset="synthetic", synthetic_train_size=60000, synthetic_test_size=10000), tmp)
    out = tmp / "mnist" / "MNIST" / "raw"
    for name, t in zip(
        MNIST_FILES, (syn.train_x[:, 0], syn.train_y.to(torch.uint8), syn.test_x[:, 0], syn.test_y.to(torch.uint8))
    ):
        _write_idx(out / name, t)
    return tmp / "mnist", f"SYNTHETIC MNIST-shaped idx files (no MNIST in {data_dir})"


def cifar_root(data_dir: Path, tmp: Path, per_batch: int) -> tuple[Path, str, bool]:
    """(root, description, real?)"""
    if has_cifar10(data_dir):
        return data_dir, f"real CIFAR-10 from {data_dir / 'cifar-10-batches-py'}", True
    root = tmp / "cifar"
    write_fake_cifar10(root, per_batch=per_batch)
    return (
        root,
        (
            f"SYNTHETIC CIFAR-10 ({5 * per_batch}+{per_batch} random images in the official pickle format, "
            f"no data batches in {data_dir / 'cifar-10-batches-py'})"
        ),
        False,
    )


def torchvision_dataset(kind: str, root: Path, real: bool):
    from torchvision import datasets, transforms

    if kind == "mnist":
        return datasets.MNIST(str(root), train=True, transform=transforms.ToTensor())
    if real:
        return datasets.CIFAR10(str(root), train=True, transform=transforms.ToTensor())

    class UncheckedCIFAR10(datasets.CIFAR10):
        # Synthetic files cannot match the official md5 sums; everything else (the
        # unpickling, __getitem__'s PIL image, ToTensor) is torchvision's own code.
        def _check_integrity(self) -> bool:
            return True

        def _load_meta(self) -> None:
            with open(os.path.join(self.root, self.base_folder, self.meta["filename"]), "rb") as f:
                self.classes = pickle.load(f, encoding="latin1")[self.meta["key"]]
            self.class_to_idx = {c: i for i, c in enumerate(self.classes)}

    return UncheckedCIFAR10(str(root), train=True, transform=transforms.ToTensor())


# --- the loops ------------------------------------------------------------------------


def plain_mlp(in_dim: int, hidden: list[int], classes: int = 10) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Flatten()]
    for h in hidden:
        layers += [nn.Linear(in_dim, h), nn.ReLU()]
        in_dim = h
    layers.append(nn.Linear(in_dim, classes))
    return nn.Sequential(*layers)


class TutorialLoop:
    """(a) torchvision dataset + ToTensor + DataLoader, plain Adam."""

    def __init__(self, dataset, limit: int | None, in_dim: int, hidden: list[int], bs: int, lr: float) -> None:
        from torch.utils.data import DataLoader, Subset

        if limit is not None and limit < len(dataset):
            dataset = Subset(dataset, range(limit))
        self.loader = DataLoader(dataset, batch_size=bs, shuffle=True, num_workers=0)
        torch.manual_seed(0)
        self.model = plain_mlp(in_dim, hidden).to(DEVICE)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr)
        self.loss_fn = nn.CrossEntropyLoss()

    def epoch(self) -> None:
        torch.set_float32_matmul_precision("highest")
        self.model.train()
        for x, y in self.loader:
            x, y = x.to(DEVICE), y.to(DEVICE)
            self.optimizer.zero_grad()
            loss = self.loss_fn(self.model(x), y)
            loss.backward()
            self.optimizer.step()


class InMemoryLoop:
    """(b) float tensors in memory, randperm, index, step; plain (or fused) Adam."""

    def __init__(
        self, data: DataSplits, limit: int | None, hidden: list[int], bs: int, lr: float, fused: bool = False
    ) -> None:
        n = len(data.train_y) if limit is None else min(limit, len(data.train_y))
        self.x = data.train_x[:n].to(DEVICE, torch.float32).div_(255).flatten(1).contiguous()
        self.y = data.train_y[:n].to(DEVICE)
        self.bs = bs
        torch.manual_seed(0)
        self.model = plain_mlp(self.x.shape[1], hidden).to(DEVICE)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr, **({"fused": True} if fused else {}))

    def epoch(self) -> None:
        torch.set_float32_matmul_precision("highest")
        self.model.train()
        n = len(self.y)
        perm = torch.randperm(n).to(DEVICE)
        for i in range(0, n, self.bs):
            idx = perm[i : i + self.bs]
            x, y = self.x[idx], self.y[idx]
            self.optimizer.zero_grad()
            loss = F.cross_entropy(self.model(x), y)
            loss.backward()
            self.optimizer.step()


class MlpLabLoop:
    """(c) mlp-lab: set up as run_experiment() does, then its per-epoch functions."""

    def __init__(self, cfg: ExperimentConfig, data: DataSplits) -> None:
        self.cfg, self.data = cfg, data
        # The same steps, in the same order, as train.run_experiment().
        set_matmul_precision(cfg)
        torch.manual_seed(cfg.train.seed)
        self.shuffle = torch.Generator().manual_seed(cfg.train.seed)
        self.model = build_model(cfg.model, data.input_dim, data.num_classes).to(DEVICE)
        self.optimizer = build_optimizer(cfg.optimizer, self.model.parameters(), DEVICE)
        self.forward = torch.compile(self.model) if cfg.train.compile else self.model
        self.stop = StopFlag()
        # What train_from_cli passes when stderr is not a terminal: a disabled bar.
        self.progress = TrainingProgress(enabled=False, run_name="bench")

    def epoch(self) -> None:
        set_matmul_precision(self.cfg)
        mltrain._train_epoch(
            self.forward,
            self.optimizer,
            self.data,
            self.cfg,
            DEVICE,
            self.shuffle,
            self.stop,
            on_step=self.progress.step,
        )

    def evaluate(self) -> None:
        set_matmul_precision(self.cfg)
        mltrain.evaluate(self.forward, self.data.test_x, self.data.test_y, self.data, self.cfg, DEVICE)


def run_experiment_seconds(cfg: ExperimentConfig, data: DataSplits, epochs: int, tmp: Path) -> list[float]:
    """run_experiment()'s own per-epoch seconds (train + test eval), first epoch dropped."""
    cfg = cfg.model_copy(deep=True)
    cfg.train.epochs = epochs + 1
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=tmp))
    with TrainingProgress(enabled=False, run_name=run_dir.name) as progress:
        result = mltrain.run_experiment(cfg, run_dir, data, DEVICE, progress=progress)
    if result.status != "completed":
        raise RuntimeError(f"run_experiment ended {result.status}: {result.summary.get('message')}")
    shutil.rmtree(run_dir, ignore_errors=True)
    return [float(r["seconds"]) for r in result.history[1:]]


# --- timing ---------------------------------------------------------------------------


def _sync() -> None:
    if DEVICE.type == "cuda":  # CUDA runs asynchronously: a timing ends when the GPU's work does
        torch.cuda.synchronize(DEVICE)


def _timed(fn: Callable[[], None]) -> float:
    _sync()
    t = time.perf_counter()
    fn()
    _sync()
    return time.perf_counter() - t


def summarize(times: list[float]) -> dict[str, float]:
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times), "n": len(times)}


def bench_dataset(kind: str, args: argparse.Namespace, tmp: Path, log: Callable[[str], None]) -> dict:
    if kind == "mnist":
        root, source = mnist_root(args.data_dir, tmp)
        real = True
        config = REPO / "configs" / "relu_adam.yaml"
    else:
        root, source, real = cifar_root(args.data_dir, tmp, args.cifar_per_batch)
        config = REPO / "configs" / "cifar10_relu_adam.yaml"
    overrides = [f"train.device={DEVICE}"]
    if args.limit_train is not None:
        overrides.append(f"data.limit_train={args.limit_train}")
    cfg = load_config(config, overrides)
    data = load_data(cfg.data, root, DEVICE, seed=cfg.train.seed)
    hidden = list(cfg.model.hidden)
    bs, lr = cfg.train.batch_size, cfg.optimizer.lr
    n_train = len(data.train_y)
    model_desc = "-".join(str(v) for v in [data.input_dim, *hidden, data.num_classes]) + f" {cfg.model.activation}"
    log(f"[{kind}] data: {source}; {n_train} training images; model {model_desc}, batch {bs}, Adam lr {lr:g}")

    loops: dict[str, Callable[[], None]] = {}
    what: dict[str, str] = {}
    if not args.skip_tutorial:
        ds = torchvision_dataset(kind, root, real)
        tut = TutorialLoop(ds, args.limit_train, data.input_dim, hidden, bs, lr)
        loops["a"] = tut.epoch
        what["a"] = "tutorial: torchvision dataset+ToTensor, DataLoader(shuffle, workers=0), Adam; train only"
    loops["b"] = InMemoryLoop(data, None, hidden, bs, lr).epoch
    what["b"] = "hand-written: float tensors in memory, randperm+index, Adam; train only"
    loops["b+f"] = InMemoryLoop(data, None, hidden, bs, lr, fused=True).epoch
    what["b+f"] = "b with Adam(fused=True); train only"
    variants: list[tuple[str, list[str], str]] = []
    for prec in args.precision:
        name = "c" if prec == "fp32" else f"c {prec}"
        variants.append((name, [f"train.precision={prec}"], f"mlp-lab _train_epoch, {prec}; train only"))
    if args.compile:
        variants.append(("c compile", ["train.compile=true"], "mlp-lab _train_epoch, torch.compile; train only"))
    mlp: dict[str, MlpLabLoop] = {}
    first_epoch: dict[str, float] = {}
    for name, extra, desc in variants:
        vcfg = load_config(config, overrides + extra)
        mlp[name] = MlpLabLoop(vcfg, data)
        loops[name] = mlp[name].epoch
        what[name] = desc
    if "c" not in mlp:  # eval and c+eval always use the fp32 config
        mlp["c"] = MlpLabLoop(cfg, data)

    # Warm-up: one epoch each (for 'c compile' this includes compiling: reported apart).
    for name, fn in loops.items():
        first_epoch[name] = _timed(fn)
        log(f"[{kind}] warm-up {name}: {first_epoch[name]:.3f} s")
    mlp["c"].evaluate()  # warm-up evaluation too

    times: dict[str, list[float]] = {name: [] for name in loops}
    eval_times: list[float] = []
    for r in range(args.repeats):
        for name, fn in loops.items():
            for _ in range(args.epochs):
                times[name].append(_timed(fn))
        eval_times.append(_timed(mlp["c"].evaluate))
        log(
            f"[{kind}] repeat {r + 1}/{args.repeats}: "
            + "  ".join(f"{k} {statistics.median(v[-args.epochs :]):.3f}" for k, v in times.items())
            + f"  eval {eval_times[-1]:.3f}"
        )

    rows = []
    for name in loops:
        rows.append({"row": name, "what": what[name], **summarize(times[name]), "first_epoch_s": first_epoch[name]})
    rows.append(
        {
            "row": "eval",
            "what": f"mlp-lab evaluate(): {len(data.test_y)} test images, eval_batch_size {cfg.train.eval_batch_size}",
            **summarize(eval_times),
        }
    )
    if not args.skip_run:
        run_times: list[float] = []
        for _ in range(args.repeats):
            run_times += run_experiment_seconds(cfg, data, args.epochs, tmp)
        rows.append(
            {
                "row": "c+eval",
                "what": "run_experiment() per-epoch 'seconds': train + test eval (no checkpoint write)",
                **summarize(run_times),
            }
        )
    by = {r["row"]: r["median_s"] for r in rows}
    ratios = {}
    if "a" in by and "c" in by:
        ratios["a/c"] = by["a"] / by["c"]
    if "c" in by:
        ratios["c/b"] = by["c"] / by["b"]
        ratios["eval/c"] = by["eval"] / by["c"]
    if "c+eval" in by:
        ratios["c+eval/b"] = by["c+eval"] / by["b"]
        if "a" in by:
            ratios["a/(c+eval)"] = by["a"] / by["c+eval"]
    return {
        "dataset": kind,
        "data": source,
        "real_data": real and "SYNTHETIC" not in source,
        "train_images": n_train,
        "test_images": len(data.test_y),
        "model": model_desc,
        "config": str(config.relative_to(REPO)),
        "batch_size": bs,
        "lr": lr,
        "rows": rows,
        "ratios": ratios,
    }


def format_table(result: dict) -> str:
    rows = result["rows"]
    c = next((r["median_s"] for r in rows if r["row"] == "c"), None)
    lines = [
        f"{result['dataset']}: {result['data']}",
        (
            f"  model {result['model']}, batch {result['batch_size']}, Adam lr {result['lr']:g}, "
            f"{result['train_images']} training images; seconds per epoch, median of n"
        ),
        f"  {'row':<10} {'median':>8} {'min':>8} {'max':>8} {'n':>3} {'x c':>6}  what",
    ]
    for r in rows:
        rel = f"{r['median_s'] / c:6.2f}" if c else "      "
        lines.append(
            f"  {r['row']:<10} {r['median_s']:8.3f} {r['min_s']:8.3f} {r['max_s']:8.3f} {r['n']:>3} {rel}  {r['what']}"
        )
    extra = [f"{r['row']} first epoch {r['first_epoch_s']:.2f} s" for r in rows if r["row"] == "c compile"]
    ratio_text = "  ".join(f"{k} = {v:.2f}" for k, v in result["ratios"].items())
    lines.append(f"  ratios: {ratio_text}" + (f"  ({'; '.join(extra)})" if extra else ""))
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Seconds per epoch: tutorial loop vs hand-written loop vs mlp-lab.")
    p.add_argument(
        "--data-dir", type=Path, default=None, help="data folder (default: $MLP_LAB_DATA, else ../shared/data)"
    )
    p.add_argument("--epochs", type=int, default=2, help="timed epochs per method per repeat (default 2)")
    p.add_argument("--repeats", type=int, default=3, help="rounds of taking turns (default 3)")
    p.add_argument("--datasets", default="mnist,cifar10", help="comma list: mnist, cifar10 (default both)")
    p.add_argument(
        "--precision", default="fp32", help="comma list of train.precision rows for c: fp32,tf32,bf16 (default fp32)"
    )
    p.add_argument(
        "--compile", action="store_true", help="add a 'c compile' row (train.compile: true; needs a C compiler)"
    )
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda: where every row trains")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    p.add_argument("--limit-train", type=int, default=None, help="use only N training images (quick checks)")
    p.add_argument(
        "--cifar-per-batch",
        type=int,
        default=10000,
        help="images per synthetic CIFAR batch file (default 10000, as real)",
    )
    p.add_argument("--skip-tutorial", action="store_true", help="leave out row a (slow)")
    p.add_argument("--skip-run", action="store_true", help="leave out row c+eval (run_experiment)")
    p.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    args = p.parse_args(argv)
    args.data_dir = (args.data_dir or default_data_dir()).expanduser()
    args.precision = [s.strip() for s in args.precision.split(",") if s.strip()]
    args.datasets = [s.strip() for s in args.datasets.split(",") if s.strip()]
    bad = [d for d in args.datasets if d not in ("mnist", "cifar10")] + [
        x for x in args.precision if x not in ("fp32", "tf32", "bf16")
    ]
    if bad:
        p.error(f"unknown: {', '.join(bad)}")
    if args.epochs < 1 or args.repeats < 1:
        p.error("--epochs and --repeats must be >= 1")
    return args


def main(argv: list[str] | None = None) -> dict:
    global DEVICE
    args = parse_args(argv)
    DEVICE = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    env = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "load_before": load_avg(),
        "device": torch.cuda.get_device_name(DEVICE) if DEVICE.type == "cuda" else "cpu",
    }
    log(
        f"torch {env['torch']}, {env['cpu_count']} CPUs, {env['torch_threads']} torch threads, load average {env['load_before']}"
    )
    results = []
    with tempfile.TemporaryDirectory(prefix="mlp-lab-bench-") as tmp_name:
        tmp = Path(tmp_name)
        for kind in args.datasets:
            results.append(bench_dataset(kind, args, tmp, log))
    env["load_after"] = load_avg()
    out = {
        "benchmark": "epoch_speed",
        "env": env,
        "settings": {
            "epochs": args.epochs,
            "repeats": args.repeats,
            "warmup_epochs": 1,
            "limit_train": args.limit_train,
            "precision": args.precision,
            "compile": args.compile,
        },
        "results": results,
    }
    print(
        f"epoch speed on {env['device']} (torch {env['torch']}, {env['torch_threads']} threads, {env['cpu_count']} CPUs; "
        f"load average before {env['load_before']}, after {env['load_after']})"
    )
    for r in results:
        print(format_table(r))
    write_json(args.json, out)
    return out


if __name__ == "__main__":
    main()
