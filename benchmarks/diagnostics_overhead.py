"""What do training diagnostics cost? Seconds per epoch with and without them.

Trains the same experiment with ``train.diagnostics`` off and on, interleaved (off, on,
off, on, ...) so that other load on the machine hits both alike, and prints the median
and minimum seconds per epoch of each (wall clock, and this process's CPU time, which
other load disturbs less) and the overhead in percent. The time is the whole
``run_experiment`` call divided by the epochs (training, evaluation, and with
diagnostics the recorded steps, the probe batch and the jsonl lines; no checkpoints).

The floor beside it: the probe's forwards alone (the fixed batch of ``PROBE_SIZE``
training images through the network, no grad, once at the start and once an epoch), which
no implementation that records the same numbers can skip, in percent of a run without
diagnostics.

The whole-run difference moves by a few points between runs of this script (other load,
where the allocator puts things): the overhead is also given as the median of the
interleaved pairs' differences with its quartiles, and, steadier, as the time spent inside
the diagnostics' own calls, by part: the probes (their forwards, and the rest: statistics,
a cold cache), the recorded steps (weights copied and measured, activation statistics),
the writes of diagnostics.jsonl and the rest (warnings, setting up). What the run pays
outside those calls (hooked modules' slower calls, caches the probes evicted) is the
difference between the two.

Data: MNIST from ``--data-dir`` when the files are there, else the synthetic MNIST-shaped
set (``--train-size`` samples). Nothing here asserts a time: machines differ, and a busy
machine makes single runs noisy, so use several repeats and read the medians.

    .venv/bin/python benchmarks/diagnostics_overhead.py [--data-dir /work/shared/data]
        [--train-size 60000] [--repeat 5] [--epochs 1] [--per-epoch 4] [--nets 256x2,256x8] [--threads N]
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from mlp_lab import training_diagnostics
from mlp_lab.config import config_from_dict
from mlp_lab.data import load_data
from mlp_lab.diagnostics import PROBE_SIZE
from mlp_lab.model import build_model
from mlp_lab.training import run_experiment


def parse_net(text: str) -> list[int]:
    width, _, depth = text.partition("x")
    return [int(width)] * int(depth or 1)


def has_mnist(data_dir: Path | None) -> bool:
    return data_dir is not None and (Path(data_dir) / "MNIST" / "raw").is_dir()


# The parts of the diagnostics' cost, by the TrainingDiagnostics method that does each. The
# entry points (the constructor, the optimizer's step hooks, end_epoch, close) make the total;
# probes and writes happen inside the constructor and end_epoch.
ENTRY_POINTS = ("__init__", "_before_step", "_after_step", "end_epoch", "close")
PARTS = {"_probe": "probes", "_before_step": "recorded steps", "_after_step": "recorded steps",
         "_write_probe": "writes", "close": "writes"}  # fmt: skip


@contextmanager
def time_inside(cls: type, names: Sequence[str], totals: dict[str, float]) -> Iterator[None]:
    """Add the seconds spent in each of ``cls``'s methods ``names`` to ``totals[name]``
    while the block runs (the methods are wrapped on the class, so bound hooks see it)."""
    originals = {name: cls.__dict__[name] for name in names}

    def timed(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                totals[name] = totals.get(name, 0.0) + time.perf_counter() - t0

        return wrapper

    for name, method in originals.items():
        setattr(cls, name, timed(name, method))
    try:
        yield
    finally:
        for name, method in originals.items():
            setattr(cls, name, method)


def inside_parts(totals: dict[str, float]) -> dict[str, float]:
    """Seconds by part of one run's time inside the diagnostics: PARTS, then the rest."""
    parts = {part: 0.0 for part in PARTS.values()}
    for name, part in PARTS.items():
        parts[part] += totals.get(name, 0.0)
    inside = sum(totals.get(name, 0.0) for name in ENTRY_POINTS)
    return {**parts, "other": inside - sum(parts.values()), "total inside": inside}


def time_run(
    raw: dict, data, diagnostics: bool, root: Path, epochs: int, inside: list[dict[str, float]] | None = None
) -> tuple[float, float]:
    """(wall seconds, this process's CPU seconds) per epoch. CPU time is less sensitive to
    other load than wall time (with --threads 1 it is close to the work done)."""
    cfg = config_from_dict(raw, [f"train.diagnostics={str(diagnostics).lower()}"])
    run_dir = Path(tempfile.mkdtemp(dir=root))
    totals: dict[str, float] = {}
    with time_inside(training_diagnostics.TrainingDiagnostics, list(dict.fromkeys([*ENTRY_POINTS, *PARTS])), totals):
        t0, c0 = time.perf_counter(), time.process_time()
        result = run_experiment(cfg, run_dir, data, torch.device("cpu"))
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    if inside is not None and diagnostics:
        inside.append(inside_parts(totals))
    if result.status != "completed":
        sys.exit(f"run ended {result.status}: {result.summary.get('message')}")
    return seconds / epochs, cpu / epochs


def probe_floor(raw: dict, data, epochs: int, repeat: int) -> float:
    """Seconds per epoch of the probe's forwards alone (epochs + 1 of them a run), median."""
    cfg = config_from_dict(raw)
    model = build_model(cfg.model, data.input_dim, data.num_classes).eval()
    probe = data.normalize(data.train_x[:PROBE_SIZE])
    times = []
    with torch.no_grad():
        model(probe)  # warm-up
        for _ in range(repeat):
            t0 = time.perf_counter()
            for _ in range(epochs + 1):
                model(probe)
            times.append((time.perf_counter() - t0) / epochs)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", type=Path, default=None, help="Use real MNIST from here when present.")
    p.add_argument(
        "--train-size",
        type=int,
        default=60000,
        help="Training samples: synthetic set size, or data.limit_train for MNIST when below 60000.",
    )
    p.add_argument("--repeat", type=int, default=5, help="Runs per mode and net (median reported).")
    p.add_argument("--epochs", type=int, default=1, help="Epochs per run.")
    p.add_argument("--per-epoch", type=int, default=4, help="train.diagnostics_per_epoch.")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--nets", default="256x2,256x8", help="Comma-separated WIDTHxDEPTH hidden stacks.")
    p.add_argument("--activation", default="relu")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice).")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    real = has_mnist(args.data_dir)
    data_cfg = (
        {"dataset": "mnist", "limit_train": min(args.train_size, 60000)}
        if real
        else {"dataset": "synthetic", "synthetic_train_size": args.train_size, "synthetic_test_size": 10000}
    )
    base = {
        "name": "bench",
        "data": data_cfg,
        "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
        "train": {
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "checkpoint": False,
            "diagnostics_per_epoch": args.per_epoch,
            "device": "cpu",
        },
    }
    data = load_data(config_from_dict(base).data, args.data_dir or Path("data"), "cpu")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"data: {data.source}, {data.train_x.shape[0]} training samples, batch {args.batch_size}; "
        f"{args.per_epoch} recorded steps per epoch; torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{os.cpu_count()} CPUs, load average {load:.2f} at start"
    )

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for net in args.nets.split(","):
            hidden = parse_net(net)
            raw = {**base, "model": {"hidden": hidden, "activation": args.activation, "init": "kaiming_normal"}}
            time_run(raw, data, True, root, args.epochs)  # warm-up: allocator, kernels, imports
            off, on, inside = [], [], []
            for _ in range(args.repeat):
                off.append(time_run(raw, data, False, root, args.epochs))
                on.append(time_run(raw, data, True, root, args.epochs, inside))
            rows.append((net, off, on, probe_floor(raw, data, args.epochs, args.repeat), inside))
            print(f"  {net} wall: off {[round(t, 2) for t, _ in off]}  on {[round(t, 2) for t, _ in on]}", flush=True)
            print(f"  {net} cpu:  off {[round(c, 2) for _, c in off]}  on {[round(c, 2) for _, c in on]}", flush=True)
    load_end = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

    print_overhead(rows)
    for net, off, _, floor, inside in rows:
        print_parts(net, statistics.median(t for t, _ in off) * args.epochs, floor * args.epochs, inside)
    print(
        f"\nload average {load:.2f} at start, {load_end:.2f} at end "
        f"({os.cpu_count()} CPUs): above ~{max(1, (os.cpu_count() or 1) // 2)} the machine was busy and "
        f"the numbers are noisy"
    )


def print_overhead(rows: list) -> None:
    """Seconds per epoch off and on, the overhead of the medians and of the pairs, the floor."""
    print()
    header = (
        f"{'hidden':>8} | {'time':>4} | {'off s/epoch (median, min)':>26} | {'on s/epoch (median, min)':>25} | "
        f"{'overhead (medians)':>18} | {'pairs: median (quartiles)':>29} | {'floor (probe forwards)':>22}"
    )
    print(header)
    print("-" * len(header))
    for net, off, on, floor, _ in rows:
        for k, kind in ((0, "wall"), (1, "cpu")):
            a, b = [t[k] for t in off], [t[k] for t in on]
            mo, mn, lo, ln = statistics.median(a), statistics.median(b), min(a), min(b)
            pairs = [100 * (y - x) / x for x, y in zip(a, b)]
            q1, _, q3 = statistics.quantiles(pairs, n=4) if len(pairs) > 1 else pairs * 3
            paired = f"{statistics.median(pairs):+.1f}% ({q1:+.1f}%, {q3:+.1f}%)"
            print(
                f"{net:>8} | {kind:>4} | {mo:>15.3f}, {lo:>8.3f} | {mn:>14.3f}, {ln:>8.3f} | "
                f"{100 * (mn - mo) / mo:>+17.1f}% | {paired:>29} | "
                + (f"{100 * floor / mo:>+21.1f}%" if kind == "wall" else "")
            )


def print_parts(net: str, off_run: float, floor_run: float, inside: list[dict[str, float]]) -> None:
    """Where the time inside the diagnostics goes, per run (medians), beside a run without."""
    parts = {part: statistics.median(run[part] for run in inside) for part in inside[0]}
    lines = {
        "probes: the forwards (the floor, timed alone)": floor_run,
        "probes: the rest (statistics, a cold cache)": parts.pop("probes") - floor_run,
        **parts,
    }
    print(f"\n{net}: time inside the diagnostics' own calls, per run (median of {len(inside)} runs)")
    header = f"{'part':<46} | {'ms/run':>7} | {'% of a run without':>18}"
    print(header)
    print("-" * len(header))
    for part, seconds in lines.items():
        print(f"{part:<46} | {1000 * seconds:>7.1f} | {100 * seconds / off_run:>17.1f}%")


if __name__ == "__main__":
    main()
