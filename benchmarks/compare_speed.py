"""How fast does `mlp-lab compare` read and render many run folders?

Creates N synthetic run folders (default 1000: config.yaml, 15-line metrics.jsonl,
summary.json with the resolved config inside, as training.py writes them) in a temporary
directory, and N more as older versions wrote them (no config in summary.json), then times

* the library: ``build_comparison`` (discover + read + compare) of each set, and each renderer;
* the CLI in a subprocess, start-up included: ``mlp-lab --help``, ``compare`` as a
  table, as JSON, with ``--top 10``, and with a filter.

    .venv/bin/python benchmarks/compare_speed.py [--runs 1000] [--repeat 3] [--keep DIR]

Prints one table of median wall times. Nothing here asserts a time: machines differ.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mlp_lab import atomic_files, results, runs
from mlp_lab.config import config_from_dict, config_to_dict, dump_config

ACTIVATIONS = ("relu", "tanh", "sigmoid", "gelu", "elu")
LRS = tuple(round(0.1 * 0.85**k, 6) for k in range(40))  # 5 activations x 40 lrs: 200 configs
SEEDS = 5  # each config run with 5 seeds: 1,000 runs are 200 seed groups


def make_runs(root: Path, n: int, epochs: int = 15, legacy: bool = False) -> None:
    """``n`` run folders as train writes them (the config also inside summary.json); ``legacy``:
    as runs written before that were, so compare reads config.yaml."""
    rng = random.Random(0)
    for i in range(n):
        act, lr = ACTIVATIONS[i % len(ACTIVATIONS)], LRS[(i // len(ACTIVATIONS)) % len(LRS)]
        seed = (i // (len(ACTIVATIONS) * len(LRS))) % SEEDS
        cfg = config_from_dict(
            {
                "name": f"{act}-lr{lr}",
                "model": {"activation": act},
                "optimizer": {"lr": lr},
                "train": {"seed": seed, "epochs": epochs},
            }
        )
        d = root / f"{cfg.name}-20260101-120000-{i:06x}"
        d.mkdir(parents=True)
        atomic_files.atomic_write_text(d / runs.CONFIG, dump_config(cfg))
        history = []
        acc = 0.9 + rng.random() * 0.05
        with open(d / runs.METRICS, "w", encoding="utf-8") as f:
            for e in range(1, epochs + 1):
                acc = min(0.995, acc + rng.random() * 0.004)
                rec = {
                    "epoch": e,
                    "train_loss": 0.5 / e,
                    "train_acc": acc + 0.01,
                    "test_loss": 0.3 / e + rng.random() * 0.01,
                    "test_acc": acc,
                    "lr": lr,
                    "seconds": 3.1,
                }
                history.append(rec)
                f.write(json.dumps(rec) + "\n")
        best = max(history, key=lambda r: r["test_acc"])
        summary = {
            "name": cfg.name,
            "run_id": d.name,
            "status": "completed",
            "started_at": "2026-01-01T12:00:00+00:00",
            "finished_at": "2026-01-01T12:00:47+00:00",
            "duration_s": 46.5,
            "epochs_done": epochs,
            "epochs_planned": epochs,
            "final": history[-1],
            "best": {"test_acc": best["test_acc"], "epoch": best["epoch"]},
            "device": "cpu",
            "torch_version": "2.x",
            "mlp_lab_version": "0.1.0",
            "param_count": 203530,
            "preprocessing": {"mean": [0.1307]},
            "error": None,
            "warnings": [],
        }
        if not legacy:
            summary["config"] = config_to_dict(cfg)
        atomic_files.atomic_write_json(d / runs.SUMMARY, summary)


def timed(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def cli(*args: str) -> None:
    env = {**os.environ, "COLUMNS": "200"}
    r = subprocess.run(
        [sys.executable, "-m", "mlp_lab", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True
    )
    if r.returncode != 0:
        raise SystemExit(f"mlp-lab {' '.join(args)} failed ({r.returncode}): {r.stderr.strip()}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=1000, help="how many run folders (default 1000)")
    ap.add_argument("--repeat", type=int, default=3, help="timings per row; the median is shown (default 3)")
    ap.add_argument("--keep", type=Path, default=None, help="create the runs in this (new) folder and keep them")
    args = ap.parse_args()

    root = args.keep or Path(tempfile.mkdtemp(prefix="mlp-lab-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        t = time.perf_counter()
        make_runs(root / "new", args.runs)
        setup = time.perf_counter() - t
        make_runs(root / "old", args.runs, legacy=True)
        d, old = str(root / "new"), str(root / "old")
        comp = results.build_comparison([d])
        rows = [
            (
                "library",
                "build_comparison (discover, read, group, compare)",
                timed(lambda: results.build_comparison([d]), args.repeat),
            ),
            (
                "library",
                "build_comparison --no-group",
                timed(lambda: results.build_comparison([d], group=False), args.repeat),
            ),
            (
                "library",
                "build_comparison, older runs (config.yaml, libyaml)",
                timed(lambda: results.build_comparison([old]), args.repeat),
            ),
            ("library", "  to_table (plain text)", timed(lambda: results.to_table(comp, width=200), args.repeat)),
            ("library", "  to_json", timed(lambda: results.to_json(comp), args.repeat)),
            ("library", "  to_csv", timed(lambda: results.to_csv(comp), args.repeat)),
            ("library", "  to_markdown", timed(lambda: results.to_markdown(comp), args.repeat)),
            ("CLI", "mlp-lab --help (start-up only)", timed(lambda: cli("--help"), args.repeat)),
            ("CLI", "mlp-lab compare DIR (seed groups)", timed(lambda: cli("compare", d), args.repeat)),
            ("CLI", "mlp-lab compare DIR --no-group", timed(lambda: cli("compare", d, "--no-group"), args.repeat)),
            (
                "CLI",
                "mlp-lab compare DIR --format json",
                timed(lambda: cli("compare", d, "--format", "json"), args.repeat),
            ),
            ("CLI", "mlp-lab compare DIR --top 10", timed(lambda: cli("compare", d, "--top", "10"), args.repeat)),
            (
                "CLI",
                "mlp-lab compare DIR -f model.activation=relu",
                timed(lambda: cli("compare", d, "-f", "model.activation=relu"), args.repeat),
            ),
        ]
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)

    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"compare on {args.runs} run folders (median of {args.repeat}; {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f})",
        title_justify="left",
    )
    table.add_column("")
    table.add_column("what")
    table.add_column("seconds", justify="right")
    table.add_column("ms per run", justify="right")
    for kind, what, secs in rows:
        per = f"{1000 * secs / args.runs:.3f}" if "help" not in what else "-"
        table.add_row(kind, what, f"{secs:.3f}", per)
    console = Console()
    console.print(table)
    console.print(
        f"(creating the {args.runs} folders took {setup:.1f}s; "
        f"{len(comp.rows)} rows (seed groups), {len(comp.param_columns)} differing config fields)"
    )


if __name__ == "__main__":
    main()
