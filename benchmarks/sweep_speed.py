"""What a sweep costs: N short MNIST runs as one sweep against the same N runs of
``mlp-lab train`` one after another, the Ray backend against the local one, and a table of
--jobs x --threads on this machine.

    .venv/bin/python benchmarks/sweep_speed.py --data-dir ../shared/data
    .venv/bin/python benchmarks/sweep_speed.py --runs 8 --epochs 2 --limit-train 20000 --json sweep_speed.json

The runs: configs/relu_adam.yaml (784-256-256-10, Adam), --epochs epochs on the first
--limit-train training images, seeds 0..N-1. Every row is a whole command, timed from the
outside (wall seconds, start-up included), one command at a time:

  train x N, T threads   ``mlp-lab train --set train.seed=i --set train.threads=T`` N times
                         in a row, for T = 1 and T = the cores; the better is "one after another"
  sweep J x T            ``mlp-lab sweep --config ... --seeds N --jobs J --threads T``, for
                         every J x T <= cores ("default" marks what --jobs/--threads default to)
  sweep ray J x T        the same with --backend ray (a local Ray started and stopped by the
                         command). Its cost per run: the manifest's seconds per run (from
                         hand-out to the run folder written) over the local backend's, same J x T

The goals (issue 9): the default sweep at most 5% slower than the better "one after
another"; the Ray backend at most 2 s more per run than the local one.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, default_data_dir, load_avg, write_json

MLP_LAB = [sys.executable, "-m", "mlp_lab"]


def timed(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip().splitlines()[-1:]}")
    return time.perf_counter() - t0


def run_seconds(runs_dir: Path) -> list[float]:
    """The manifest's seconds per run of the one sweep under ``runs_dir``."""
    (manifest,) = runs_dir.glob("*/manifest.json")
    return [e["seconds"] for e in json.loads(manifest.read_text())["runs"]]


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=8)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--limit-train", type=int, default=20000)
    p.add_argument("--dataset", default="mnist", help="mnist (real files in --data-dir), or synthetic for a smoke test")
    p.add_argument("--data-dir", type=Path, default=default_data_dir())
    p.add_argument("--skip-ray", action="store_true", help="no Ray rows (Ray not installed, or not wanted)")
    p.add_argument("--shapes", default=None, help="JxT,... for the sweep rows (default: every J x T <= cores)")
    p.add_argument(
        "--train-threads", default=None, help="T,... for the one-after-another rows (default: 1 and the cores)"
    )
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)

    sys.path.insert(0, str(REPO))
    from mlp_lab.sweeps import default_workers

    cores = os.cpu_count() or 1
    env = {**os.environ, "MLP_LAB_DATA": str(args.data_dir.absolute()), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    sets = [
        "--set",
        f"train.epochs={args.epochs}",
        "--set",
        f"data.limit_train={args.limit_train}",
        "--set",
        f"data.dataset={args.dataset}",
        "--set",
        "train.checkpoint=true",
    ]
    config = str(REPO / "configs" / "relu_adam.yaml")
    default_jobs, default_threads = default_workers(None, None)
    rows: list[dict] = []
    print(
        f"{args.runs} runs of {config} on {args.dataset} ({args.limit_train} images, {args.epochs} epochs), "
        f"{cores} cores; load average before: {load_avg()}",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        # Data decoded once (the cache) before anything is timed.
        timed(
            [
                *MLP_LAB,
                "train",
                "--config",
                config,
                *sets,
                "--set",
                "train.epochs=1",
                "--set",
                "data.limit_train=100",
                "--runs-dir",
                f"{tmp}/warm",
                "--quiet",
            ],
            env,
        )
        train_threads = [int(t) for t in args.train_threads.split(",")] if args.train_threads else sorted({1, cores})
        for threads in train_threads:
            seconds = sum(
                timed(
                    [
                        *MLP_LAB,
                        "train",
                        "--config",
                        config,
                        *sets,
                        "--set",
                        f"train.seed={seed}",
                        "--set",
                        f"train.threads={threads}",
                        "--runs-dir",
                        f"{tmp}/train{threads}",
                        "--quiet",
                    ],
                    env,
                )
                for seed in range(args.runs)
            )
            rows.append(
                {"what": f"train x {args.runs}, {threads} thread{'s' if threads > 1 else ''}", "seconds": seconds}
            )
            print(f"  {rows[-1]['what']}: {seconds:.1f} s", flush=True)
        shapes = (
            [tuple(int(x) for x in shape.split("x")) for shape in args.shapes.split(",")]
            if args.shapes
            else [(j, t) for j in range(1, cores + 1) for t in range(1, cores + 1) if j * t <= cores]
        )
        backends = ["local"] + ([] if args.skip_ray else ["ray"])
        for backend in backends:
            for jobs, threads in shapes:
                out = Path(tmp) / f"sweep-{backend}-{jobs}x{threads}"
                seconds = timed(
                    [
                        *MLP_LAB,
                        "sweep",
                        "--config",
                        config,
                        "--seeds",
                        str(args.runs),
                        *sets,
                        "--jobs",
                        str(jobs),
                        "--threads",
                        str(threads),
                        "--backend",
                        backend,
                        "--runs-dir",
                        str(out),
                        "--quiet",
                    ],
                    env,
                )
                per_run = statistics.mean(run_seconds(out))
                label = "sweep" if backend == "local" else "sweep ray"
                default = backend == "local" and (jobs, threads) == (default_jobs, default_threads)
                rows.append(
                    {
                        "what": f"{label} {jobs} x {threads}" + (" (default)" if default else ""),
                        "backend": backend,
                        "jobs": jobs,
                        "threads": threads,
                        "seconds": seconds,
                        "seconds_per_run": per_run,
                    }
                )
                print(f"  {rows[-1]['what']}: {seconds:.1f} s ({per_run:.2f} s per run)", flush=True)

    best_train = min(r["seconds"] for r in rows if r["what"].startswith("train"))
    print(f"\nload average after: {load_avg()}\n")
    print("| command | wall s | vs one after another | s per run (manifest) |\n|---|---|---|---|")
    for r in rows:
        per_run = f"{r['seconds_per_run']:.2f}" if "seconds_per_run" in r else ""
        print(f"| {r['what']} | {r['seconds']:.1f} | {100 * (r['seconds'] / best_train - 1):+.1f}% | {per_run} |")
    summary = {
        "runs": args.runs,
        "epochs": args.epochs,
        "limit_train": args.limit_train,
        "cores": cores,
        "rows": rows,
        "one_after_another_s": best_train,
    }
    default_row = next((r for r in rows if r["what"].endswith("(default)")), None)
    if default_row is not None:
        summary["default_sweep_vs_one_after_another_pct"] = 100 * (default_row["seconds"] / best_train - 1)
        print(
            f"\ndefault sweep ({default_jobs} x {default_threads}) vs the better one after another: "
            f"{summary['default_sweep_vs_one_after_another_pct']:+.1f}% (goal: at most +5%)"
        )
    if not args.skip_ray:
        extra = [
            r["seconds_per_run"]
            - next(
                x["seconds_per_run"]
                for x in rows
                if x.get("backend") == "local" and (x["jobs"], x["threads"]) == (r["jobs"], r["threads"])
            )
            for r in rows
            if r.get("backend") == "ray"
        ]
        summary["ray_extra_s_per_run"] = extra
        print(
            "Ray's cost per run over local, same jobs x threads: "
            + ", ".join(f"{e:+.2f} s" for e in extra)
            + " (goal: at most 2 s)"
        )
    write_json(args.json, summary)
    return summary


if __name__ == "__main__":
    main()
