"""Start-up: how long the CLI takes to answer, what it imports, and the decoded-data cache.

    .venv/bin/python benchmarks/startup.py --data-dir ../shared/data [--runs 10] [--json FILE]

Section 1, the command line (each a fresh process, median of --runs):

  python -c pass           the interpreter alone: the floor for any command;
  mlp-lab --help           target: within 0.3 s;
  mlp-lab train --help     parses no config, loads no data;
  mlp-lab compare DIR      20 synthetic run folders (benchmarks/compare_speed.py times 1000);
  import torch             for scale: what --help would cost if it imported torch.

  Then, in-process, which of --help / train --help / compare import torch (they must not),
  and the slowest imports of ``python -X importtime -c "import mlp_lab.cli"``.

Section 2, a lecture run (``mlp-lab train --config lecture/init_relu_he``: 8 layers of
256, 10,000 MNIST images, 2 epochs, diagnostics on; the synthetic set of that size when
MNIST is absent), median of --runs after one warm-up run that fills the data cache:

  import torch, torch._dynamo   the floor of any process that trains: torch.optim's
                                optimizers import torch._dynamo when built and at every step
                                (then ``os._exit``, no teardown, as mlp-lab train);
  mlp-lab train                 the console script (it skips the interpreter's teardown);
  ... ordinary exit             the same command through ``app()``, which tears the
                                interpreter down as an ordinary exit does (the old ending).

  Each train row's wall against its run's training seconds (summary.json's duration_s),
  and the floor's: (the imports + training) / training.

Section 3, the decoded-data cache (in this process, torch already imported): load_data()
with an empty cache (parses the raw files and writes the cache) and then from the cache
(median of --runs), for MNIST (real files in --data-dir when present, else skipped) and a
CIFAR-10 (real when present, else synthetic files in the official format, written to a temp
dir). The cache goes to a temp dir (XDG_CACHE_HOME), never to ~/.cache.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import default_data_dir, load_avg, write_json  # noqa: E402

HELP_TARGET_S = 0.3
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

# Runs the CLI in-process and reports whether torch got imported (the CLI may exit).
_IMPORTS_TORCH = """
import sys
from mlp_lab.cli import app
try:
    app(sys.argv[1:], standalone_mode=True)
except SystemExit:
    pass
print('TORCH_IMPORTED=' + str('torch' in sys.modules), file=sys.stderr)
"""


def mlp_lab_command() -> list[str]:
    script = Path(sys.executable).parent / "mlp-lab"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "mlp_lab"]


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def time_command(cmd: list[str], runs: int, env: dict[str, str]) -> dict:
    """Wall time and the child's CPU time (user+sys: less sensitive to other processes' load)."""
    times, cpu = [], []
    for _ in range(runs):
        c = _children_cpu()
        t = time.perf_counter()
        proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        times.append(time.perf_counter() - t)
        cpu.append(_children_cpu() - c)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.strip()[-500:]}")
    return {
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "n": runs,
        "cpu_median_s": statistics.median(cpu),
    }


def imports_torch(args: list[str], env: dict[str, str]) -> bool:
    proc = subprocess.run([sys.executable, "-c", _IMPORTS_TORCH, *args], env=env, capture_output=True, text=True)
    m = re.search(r"TORCH_IMPORTED=(True|False)", proc.stderr)
    if m is None:
        raise RuntimeError(f"could not run the CLI in-process with {args}: {proc.stderr.strip()[-500:]}")
    return m.group(1) == "True"


def slowest_imports(env: dict[str, str], top: int) -> list[dict]:
    """The largest cumulative times of `python -X importtime -c 'import mlp_lab.cli'`."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import mlp_lab.cli"], env=env, capture_output=True, text=True
    )
    rows = []
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if m:
            rows.append(
                {
                    "module": m.group(4),
                    "self_ms": int(m.group(1)) / 1000,
                    "cumulative_ms": int(m.group(2)) / 1000,
                    "depth": len(m.group(3)) // 2,
                }
            )
    total = next((r["cumulative_ms"] for r in rows if r["module"] == "mlp_lab.cli"), None)
    top_rows = sorted((r for r in rows if r["depth"] <= 2), key=lambda r: -r["cumulative_ms"])[:top]
    return [{"total_ms": total}] + top_rows


def cli_section(runs: int, tmp: Path, log) -> dict:
    env = {**os.environ}
    env.pop("MLP_LAB_DATA", None)
    runs_dir = tmp / "runs"
    runs_dir.mkdir()
    from compare_speed import make_runs  # the compare benchmark's synthetic run folders

    make_runs(runs_dir, 20)
    cli = mlp_lab_command()
    rows = []
    for name, cmd in [
        ("python -c pass", [sys.executable, "-c", "pass"]),
        ("mlp-lab --help", cli + ["--help"]),
        ("mlp-lab train --help", cli + ["train", "--help"]),
        ("mlp-lab compare DIR", cli + ["compare", str(runs_dir)]),
        ("import torch", [sys.executable, "-c", "import torch"]),
    ]:
        r = time_command(cmd, runs, env)
        rows.append({"row": name, **r})
        log(f"{name}: median {r['median_s']:.3f} s")
    torch_imports = {
        "mlp-lab --help": imports_torch(["--help"], env),
        "mlp-lab train --help": imports_torch(["train", "--help"], env),
        "mlp-lab compare DIR": imports_torch(["compare", str(runs_dir)], env),
    }
    help_s = next(r["median_s"] for r in rows if r["row"] == "mlp-lab --help")
    return {
        "rows": rows,
        "imports_torch": torch_imports,
        "slowest_imports": slowest_imports(env, 8),
        "help_target_s": HELP_TARGET_S,
        "help_ok": help_s <= HELP_TARGET_S,
    }


LECTURE_RUN = ["train", "--quiet", "--config", "lecture/init_relu_he"]
SYNTHETIC = ["--set", "data.dataset=synthetic", "--set", "data.synthetic_train_size=10000"]
# The old ending: the app raises SystemExit and the interpreter is torn down as usual.
_ORDINARY_EXIT = "import sys\nfrom mlp_lab.cli import app\nsys.argv[0] = 'mlp-lab'\napp()\n"


def _timed_train(cmd: list[str], runs_dir: Path, env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds of the command, the run's training seconds from its summary.json)."""
    before = set(runs_dir.glob("*")) if runs_dir.exists() else set()
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.strip()[-500:]}")
    (folder,) = set(runs_dir.glob("*")) - before
    return wall, json.loads((folder / "summary.json").read_text())["duration_s"]


def train_section(data_dir: Path, runs: int, tmp: Path, log) -> dict:
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp / "xdg-cache")}
    env.pop("MLP_LAB_DATA", None)
    real = (data_dir / "MNIST" / "raw").is_dir()
    args = [*LECTURE_RUN, "--data-dir", str(data_dir), "--runs-dir", str(tmp / "train-runs")]
    args += [] if real else SYNTHETIC
    commands = {
        "mlp-lab train": mlp_lab_command() + args,
        "... ordinary exit": [sys.executable, "-c", _ORDINARY_EXIT, *args],
    }
    _timed_train(commands["mlp-lab train"], tmp / "train-runs", env)  # warm-up: the data cache
    # The imports alone, leaving as mlp-lab train does (no teardown): what no run can avoid.
    floor = time_command([sys.executable, "-c", "import os, torch, torch._dynamo\nos._exit(0)"], runs, env)
    timed: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    for _ in range(runs):  # interleaved, so that other load hits both alike
        for name, cmd in commands.items():
            timed[name].append(_timed_train(cmd, tmp / "train-runs", env))
    rows = [{"row": "import torch, torch._dynamo", "median_s": floor["median_s"], "min_s": floor["min_s"]}]
    for name, pairs in timed.items():
        wall = statistics.median(w for w, _ in pairs)
        training = statistics.median(d for _, d in pairs)
        rows.append(
            {
                "row": name,
                "median_s": wall,
                "min_s": min(w for w, _ in pairs),
                "training_s": training,
                "ratio": wall / training,
                "floor_ratio": (floor["median_s"] + training) / training,
            }
        )
        log(f"{name}: wall {wall:.2f} s for {training:.2f} s of training")
    return {"data": "real MNIST" if real else "SYNTHETIC (no MNIST in the data folder)", "rows": rows}


@contextmanager
def cache_home(folder: Path) -> Iterator[None]:
    """XDG_CACHE_HOME set to ``folder`` inside the block, as it was after: read-only data's
    decoded cache falls back there. (Left set, it sent the rest of a test session's
    fallback caches into this script's deleted temp folder, which they made again.)"""
    before = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(folder)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("XDG_CACHE_HOME", None)
        else:
            os.environ["XDG_CACHE_HOME"] = before


def cache_section(data_dir: Path, runs: int, tmp: Path, cifar_per_batch: int, log) -> dict:
    import torch  # noqa: F401  (imported before timing: not part of any load)

    from mlp_lab import data as mldata
    from mlp_lab.data import files as data_files
    from mlp_lab.data import load_data
    from mlp_lab.schema import DataConfig

    from make_fake_cifar10 import has_cifar10, write_fake_cifar10

    rows = []
    cases = []
    raw = data_dir / "MNIST" / "raw"
    if all((raw / n).is_file() or (raw / f"{n}.gz").is_file() for n in MNIST_FILES):
        cases.append(("mnist", data_dir, f"real MNIST in {raw}"))
    else:
        log(f"no MNIST in {data_dir}: MNIST cache rows skipped")
    if has_cifar10(data_dir):
        cases.append(("cifar10", data_dir, f"real CIFAR-10 in {data_dir}"))
    else:
        write_fake_cifar10(tmp / "cifar", per_batch=cifar_per_batch)
        cases.append(("cifar10", tmp / "cifar", f"SYNTHETIC CIFAR-10 files ({5 * cifar_per_batch}+{cifar_per_batch})"))
    for name, root, source in cases:
        cfg = DataConfig(dataset=name, download=False)
        t = time.perf_counter()
        d = load_data(cfg, root)
        first = time.perf_counter() - t
        if "(cache)" in d.source:
            raise RuntimeError(f"{name}: the first load came from a cache ({d.source}); expected an empty cache")
        cached, cached_cpu, read = [], [], []
        for _ in range(runs):
            t, c = time.perf_counter(), time.process_time()
            d = load_data(cfg, root)
            cached.append(time.perf_counter() - t)
            cached_cpu.append(time.process_time() - c)
            if "(cache)" not in d.source:
                raise RuntimeError(f"{name}: no cache was written or used ({d.source})")
            # The cache file alone (what load_data reads before computing the
            # preprocessing statistics, which it does on every load).
            ds = mldata.DATASETS[name]
            found, _ = ds._locate(Path(root) / ds.folder)
            t = time.perf_counter()
            data_files.read_cache(Path(root), name, data_files.cache_key(found))
            read.append(time.perf_counter() - t)
        size = sum(p.stat().st_size for p in (tmp / "xdg-cache").rglob(f"{name}.pt")) + sum(
            p.stat().st_size for p in Path(root).glob(f"mlp_lab_cache/{name}.pt")
        )
        rows.append(
            {
                "dataset": name,
                "data": source,
                "first_load_s": first,
                "cached_median_s": statistics.median(cached),
                "cached_min_s": min(cached),
                "cached_cpu_median_s": statistics.median(cached_cpu),
                "cache_read_median_s": statistics.median(read),
                "n": runs,
                "cache_mb": size / 2**20,
                "train_images": len(d.train_y),
            }
        )
        log(f"{name}: first {first:.3f} s, cached {statistics.median(cached):.3f} s")
    return {"rows": rows}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description="CLI start-up time, torch-free commands, decoded-data cache.")
    p.add_argument(
        "--data-dir", type=Path, default=None, help="data folder (default: $MLP_LAB_DATA, else ../shared/data)"
    )
    p.add_argument("--runs", type=int, default=10, help="repetitions, median reported (default 10)")
    p.add_argument(
        "--cifar-per-batch", type=int, default=10000, help="images per synthetic CIFAR batch file (default 10000)"
    )
    p.add_argument("--skip-cache", action="store_true", help="no decoded-data cache section")
    p.add_argument("--skip-train", action="store_true", help="no lecture-run section")
    p.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    args = p.parse_args(argv)
    data_dir = (args.data_dir or default_data_dir()).expanduser().absolute()
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    out: dict = {"benchmark": "startup", "load_before": load_avg(), "cpu_count": os.cpu_count(), "runs": args.runs}
    with tempfile.TemporaryDirectory(prefix="mlp-lab-startup-") as tmp_name:
        tmp = Path(tmp_name)
        out["cli"] = cli_section(args.runs, tmp, log)
        if not args.skip_cache:  # before any run fills the cache
            with cache_home(tmp / "xdg-cache"):
                out["cache"] = cache_section(data_dir, args.runs, tmp, args.cifar_per_batch, log)
        if not args.skip_train:
            out["train"] = train_section(data_dir, args.runs, tmp, log)
    out["load_after"] = load_avg()

    cli = out["cli"]
    print(
        f"start-up ({out['cpu_count']} CPUs; load average before {out['load_before']}, after {out['load_after']}); "
        f"wall seconds, median of {args.runs}"
    )
    print(f"  {'command':<22} {'median':>8} {'min':>8} {'max':>8} {'cpu':>8}  imports torch")
    for r in cli["rows"]:
        flag = cli["imports_torch"].get(r["row"])
        print(
            f"  {r['row']:<22} {r['median_s']:8.3f} {r['min_s']:8.3f} {r['max_s']:8.3f} {r['cpu_median_s']:8.3f}  "
            f"{'' if flag is None else ('YES' if flag else 'no')}"
        )
    print(f"  mlp-lab --help within {HELP_TARGET_S} s: {'yes' if cli['help_ok'] else 'NO'}")
    imports = cli["slowest_imports"]
    print(
        f"  python -X importtime -c 'import mlp_lab.cli': {imports[0]['total_ms']:.0f} ms in all; slowest (cumulative):"
    )
    print("    " + ", ".join(f"{r['module']} {r['cumulative_ms']:.0f} ms" for r in imports[1:]))
    if "train" in out:
        print(f"a lecture run (init_relu_he, {out['train']['data']}): wall seconds, median of {args.runs}")
        print(f"  {'command':<28} {'median':>8} {'min':>8} {'training':>9} {'wall/training':>14} {'floor':>7}")
        for r in out["train"]["rows"]:
            ratio = f"{r['ratio']:13.2f}x {r['floor_ratio']:6.2f}x" if "ratio" in r else ""
            training = f"{r['training_s']:9.2f}" if "training_s" in r else " " * 9
            print(f"  {r['row']:<28} {r['median_s']:8.3f} {r['min_s']:8.3f} {training} {ratio}")
        print("  floor: (import torch, torch._dynamo + the run's training seconds) / its training seconds")
    if "cache" in out:
        print(
            f"decoded-data cache: load_data() wall seconds (cached: median of {args.runs}; cpu = its process CPU time; "
            "read = the cache file alone)"
        )
        print(f"  {'dataset':<9} {'first':>8} {'cached':>8} {'cpu':>8} {'read':>8} {'cache':>8}  data")
        for r in out["cache"]["rows"]:
            print(
                f"  {r['dataset']:<9} {r['first_load_s']:8.3f} {r['cached_median_s']:8.3f} {r['cached_cpu_median_s']:8.3f} "
                f"{r['cache_read_median_s']:8.3f} {r['cache_mb']:6.0f}MB  {r['data']}"
            )
    write_json(args.json, out)
    return out


if __name__ == "__main__":
    main()
