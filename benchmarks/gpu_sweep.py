"""The lecture sweep on one GPU with 1, 4, 16 runs at once: wall, GPU utilisation, memory.

    .venv/bin/python benchmarks/gpu_sweep.py --data-dir DATA --jobs 1,4,16

For each J, ``mlp-lab sweep lecture/sweep --jobs J --threads 1 --quiet`` runs as a user
runs it (its own process, the shipped sweep file, every run on ``train.device: auto``,
which is the GPU), while ``nvidia-smi`` samples every 200 ms: the GPU's utilisation
(the share of time a kernel was running) and memory, and each process's memory. The table
gives the sweep's wall seconds, seconds per run, mean and peak utilisation over the
sweep, the peak memory of one run's process and of the whole GPU. Needs a CUDA machine
with nvidia-smi.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import default_data_dir, write_json  # noqa: E402

MLP_LAB = [sys.executable, "-m", "mlp_lab"]


class Sampler(threading.Thread):
    """nvidia-smi every ``period`` seconds: (utilisation %, GPU memory MiB, {pid: MiB})."""

    def __init__(self, period: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.period, self.samples, self.halt = period, [], threading.Event()

    def _query(self, what: str, fields: str) -> list[list[str]]:
        out = subprocess.run(
            ["nvidia-smi", f"--query-{what}={fields}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
        return [[c.strip() for c in line.split(",")] for line in out.splitlines() if line.strip()]

    def run(self) -> None:
        while not self.halt.wait(self.period):
            gpu = self._query("gpu", "utilization.gpu,memory.used")
            apps = self._query("compute-apps", "pid,used_memory")
            if gpu:
                procs = {int(p): float(m) for p, m in apps if p.isdigit() and m.replace(".", "").isdigit()}
                self.samples.append((float(gpu[0][0]), float(gpu[0][1]), procs))


def run_sweep(jobs: int, data_dir: Path, runs_dir: Path) -> dict:
    sampler = Sampler()
    sampler.start()
    t0 = time.perf_counter()
    proc = subprocess.run(
        [
            *MLP_LAB,
            "sweep",
            "lecture/sweep",
            "--jobs",
            str(jobs),
            "--threads",
            "1",
            "--quiet",
            "--data-dir",
            str(data_dir),
            "--runs-dir",
            str(runs_dir),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "MLP_LAB_OFFLINE": "1"},
    )
    wall = time.perf_counter() - t0
    sampler.halt.set()
    sampler.join()
    if proc.returncode not in (0, 1):  # 1: a run diverged, as the lecture's own diverging cells do
        raise SystemExit(f"sweep --jobs {jobs} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    (folder,) = [p for p in runs_dir.iterdir() if p.is_dir()]
    entries = json.loads((folder / "manifest.json").read_text())["runs"]
    devices = set()
    for e in entries:
        summary = folder / e["folder"] / "summary.json"
        if summary.is_file():
            devices.add(json.loads(summary.read_text()).get("device", "?"))
    utils = [s[0] for s in sampler.samples]
    per_proc = [m for s in sampler.samples for m in s[2].values()]
    return {
        "jobs": jobs,
        "runs": len(entries),
        "wall_s": wall,
        "s_per_run": wall / len(entries),
        "statuses": {st: sum(e["status"] == st for e in entries) for st in {e["status"] for e in entries}},
        "devices": sorted(devices),
        "util_mean": statistics.mean(utils) if utils else None,
        "util_max": max(utils, default=None),
        "proc_mem_max_mib": max(per_proc, default=None),
        "gpu_mem_max_mib": max((s[1] for s in sampler.samples), default=None),
        "samples": len(sampler.samples),
    }


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--jobs", default="1,4,16")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    data_dir = (args.data_dir or default_data_dir()).expanduser().resolve()
    name = subprocess.run(
        ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True
    ).stdout.strip()
    rows = []
    with tempfile.TemporaryDirectory(prefix="mlp-lab-gpu-sweep-") as tmp:
        for jobs in (int(j) for j in args.jobs.split(",")):
            rows.append(run_sweep(jobs, data_dir, Path(tmp) / f"j{jobs}"))
            print(f"  jobs {jobs}: {rows[-1]}", file=sys.stderr, flush=True)
    print(f"lecture sweep on one {name} ({time.strftime('%Y-%m-%d')}): {rows[0]['runs']} runs, --threads 1")
    print(
        f"  {'jobs':>4} {'wall s':>7} {'s/run':>6} {'util mean %':>11} {'util max %':>10} {'MiB/run':>8} {'GPU MiB':>8}"
    )
    for r in rows:
        print(
            f"  {r['jobs']:>4} {r['wall_s']:>7.1f} {r['s_per_run']:>6.2f} {r['util_mean'] or 0:>11.1f} "
            f"{r['util_max'] or 0:>10.0f} {r['proc_mem_max_mib'] or 0:>8.0f} {r['gpu_mem_max_mib'] or 0:>8.0f}"
        )
    write_json(args.json, {"benchmark": "gpu_sweep", "gpu": name, "rows": rows})
    return rows


if __name__ == "__main__":
    main()
