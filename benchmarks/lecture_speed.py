"""Many small runs: the lecture sweep against its compute floor, and how a sweep scales.

    .venv/bin/python benchmarks/lecture_speed.py --data-dir DATA
    .venv/bin/python benchmarks/lecture_speed.py --data-dir DATA --sizes 100,2000 --trials 300

Rows, one command at a time:

  lecture sweep   ``mlp-lab sweep lecture/sweep --jobs J --threads 1 --quiet``, a whole
                  command timed from the outside (start-up, 54 runs, the closing lines).
  compute floor   the same 54 runs' training and test evaluation in a tight in-memory loop
                  (float images in memory, randperm, index, forward / loss / backward /
                  step; mlp-lab's model and optimizer builders, so the same networks and
                  kernels) in J processes of 1 thread that imported torch and decoded MNIST
                  beforehand: no diagnostics, no files, no start-up.
  ratio           lecture sweep / compute floor (goal: <= 1.4).

Scaling (tiny synthetic runs: 200 images, one hidden layer of 16, 1 epoch): a sweep of N
seeds for each N of --sizes, and a random search of --trials trials, each in a process of
its own that reports its driver's bytes written (/proc/self/io: the manifest and the
sweep's own files; each run's process writes its own folder). The table gives seconds per
run and bytes the driver wrote per run: both should not grow with the sweep's size.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import default_data_dir, load_avg, write_json

MLP_LAB = [sys.executable, "-m", "mlp_lab"]
TINY = (
    "name: tiny\ndata: {dataset: synthetic, synthetic_train_size: 200, synthetic_test_size: 50}\n"
    "model: {hidden: [16]}\noptimizer: {name: sgd, lr: 0.05}\ntrain: {epochs: 1, batch_size: 50, device: cpu}\n"
)
# A child that runs `mlp-lab ARGS` and prints, last, the bytes this process (the driver) wrote,
# then leaves as the console script does.
DRIVER = (
    "import sys\nfrom mlp_lab.cli import app\nfrom mlp_lab.process_exit import leave\n"
    "sys.argv = ['mlp-lab', *sys.argv[1:]]\n"
    "try:\n    app()\nexcept SystemExit as e:\n    code = e.code\nelse:\n    code = 0\n"
    "io = dict(line.split(': ') for line in open('/proc/self/io').read().splitlines())\n"
    "print('WRITE_BYTES', io['write_bytes'], io['wchar'], flush=True)\nleave(code)\n"
)


def lecture_sweep(data_dir: Path, jobs: int, tmp: Path) -> float:
    cmd = [*MLP_LAB, "sweep", "lecture/sweep", "--jobs", str(jobs), "--threads", "1", "--quiet"]
    cmd += ["--data-dir", str(data_dir), "--runs-dir", str(tmp / "lecture")]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    if r.returncode not in (0, 1):  # 1: the lecture's diverging cells diverge
        raise SystemExit(f"lecture sweep failed ({r.returncode}): {r.stderr[-1000:]}")
    return wall


# --- the compute floor: the same runs, a tight loop, warm processes ------------------------

_decoded: dict[str, object] = {}


def _warm(data_dir: str) -> None:
    import torch

    from mlp_lab.data import decode
    from mlp_lab.schema import DataConfig

    torch.set_num_threads(1)
    _decoded["mnist"] = decode(DataConfig(dataset="mnist", download=False), Path(data_dir))


def _train_and_evaluate(config: dict) -> float:
    import torch
    import torch.nn.functional as F

    from mlp_lab.config import config_from_dict
    from mlp_lab.data import make_splits
    from mlp_lab.model import build_model
    from mlp_lab.optim import build_optimizer

    cfg = config_from_dict(config)
    t0 = time.perf_counter()
    data = make_splits(_decoded["mnist"], cfg.data, "cpu", seed=cfg.train.seed)

    def floats(x: torch.Tensor) -> torch.Tensor:
        return ((x.float() / 255 - data.mean) / data.std).flatten(1)

    x, y, tx, ty = floats(data.train_x), data.train_y, floats(data.test_x), data.test_y
    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg.model, data.input_dim, data.num_classes)
    optimizer = build_optimizer(cfg.optimizer, model.parameters(), torch.device("cpu"))
    bs = cfg.train.batch_size
    for _ in range(cfg.train.epochs):
        model.train()
        perm = torch.randperm(len(y))
        for i in range(0, len(y), bs):
            idx = perm[i : i + bs]
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            (model(tx).argmax(1) == ty).float().mean().item()
    return time.perf_counter() - t0


def compute_floor(data_dir: Path, jobs: int) -> float:
    from mlp_lab.config import config_to_dict
    from mlp_lab.shipped import locate
    from mlp_lab.sweeps import load_sweep

    path, _ = locate(Path("lecture/sweep"), "sweep")
    configs = [config_to_dict(r.config) for r in load_sweep(path).runs]
    with multiprocessing.get_context("forkserver").Pool(jobs, initializer=_warm, initargs=(str(data_dir),)) as pool:
        pool.map(time.sleep, [0.0] * jobs)  # every worker up, torch imported, MNIST decoded
        t0 = time.perf_counter()
        pool.map(_train_and_evaluate, configs, chunksize=1)
        return time.perf_counter() - t0


# --- scaling -------------------------------------------------------------------------------


def driven(args: list[str], cwd: Path) -> tuple[float, int, int]:
    """(wall seconds, bytes the driver wrote to disk, bytes it wrote through write calls)."""
    t0 = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-c", DRIVER, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "MLP_LAB_OFFLINE": "1"},
    )
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"mlp-lab {' '.join(args)} failed ({r.returncode}): {r.stderr[-1000:]}")
    line = next(x for x in r.stdout.splitlines() if x.startswith("WRITE_BYTES"))
    _, disk, chars = line.split()
    return wall, int(disk), int(chars)


def scaling(sizes: list[int], trials: int, jobs: int, tmp: Path) -> list[dict]:
    (tmp / "tiny.yaml").write_text(TINY, encoding="utf-8")
    rows = []
    for n in sizes:
        wall, disk, chars = driven(
            [
                "sweep",
                "--config",
                "tiny.yaml",
                "--seeds",
                str(n),
                "--jobs",
                str(jobs),
                "--threads",
                "1",
                "--quiet",
                "--runs-dir",
                f"grid{n}",
            ],
            tmp,
        )
        rows.append(
            {
                "what": f"sweep of {n} runs",
                "runs": n,
                "wall_s": wall,
                "s_per_run": wall / n,
                "driver_bytes_per_run": chars / n,
                "disk_bytes_per_run": disk / n,
            }
        )
    if trials:
        search = f"search: {{trials: {trials}, space: {{optimizer.lr: {{log_uniform: [0.001, 0.5]}}}}}}\n"
        (tmp / "s.yaml").write_text(f"base: tiny.yaml\n{search}", encoding="utf-8")
        wall, disk, chars = driven(
            ["sweep", "s.yaml", "--jobs", str(jobs), "--threads", "1", "--quiet", "--runs-dir", "search"], tmp
        )
        rows.append(
            {
                "what": f"random search of {trials} trials",
                "runs": trials,
                "wall_s": wall,
                "s_per_run": wall / trials,
                "driver_bytes_per_run": chars / trials,
                "disk_bytes_per_run": disk / trials,
            }
        )
    return rows


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="processes for both rows (default: the cores)")
    p.add_argument("--sizes", default="100,600", help="sweep sizes for the scaling table (default 100,600)")
    p.add_argument("--trials", type=int, default=300, help="trials of the scaling table's search (0: none)")
    p.add_argument("--skip-lecture", action="store_true", help="only the scaling table (no MNIST needed)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    data_dir = (args.data_dir or default_data_dir()).expanduser().resolve()
    out: dict = {"benchmark": "lecture_speed", "jobs": args.jobs, "cpus": os.cpu_count(), "load_before": load_avg()}
    with tempfile.TemporaryDirectory(prefix="mlp-lab-lecture-") as name:
        tmp = Path(name)
        if not args.skip_lecture:
            out["lecture_s"] = lecture_sweep(data_dir, args.jobs, tmp)
            out["floor_s"] = compute_floor(data_dir, args.jobs)
            out["ratio"] = out["lecture_s"] / out["floor_s"]
        out["scaling"] = scaling([int(s) for s in args.sizes.split(",") if s], args.trials, args.jobs, tmp)
    out["load_after"] = load_avg()
    print(
        f"lecture speed ({out['cpus']} CPUs, {args.jobs} processes of 1 thread; "
        f"load average before {out['load_before']}, after {out['load_after']})"
    )
    if "ratio" in out:
        print(f"  lecture sweep (54 runs)  {out['lecture_s']:7.1f} s")
        print(f"  compute floor            {out['floor_s']:7.1f} s")
        print(f"  ratio                    {out['ratio']:7.2f}   (goal <= 1.4)")
    print(f"  {'scaling':<32} {'wall s':>7} {'s/run':>6} {'driver bytes/run':>17} {'disk bytes/run':>15}")
    for r in out["scaling"]:
        print(
            f"  {r['what']:<32} {r['wall_s']:>7.1f} {r['s_per_run']:>6.3f} {r['driver_bytes_per_run']:>17,.0f} "
            f"{r['disk_bytes_per_run']:>15,.0f}"
        )
    write_json(args.json, out)
    return out


if __name__ == "__main__":
    main()
