"""How long does `mlp-lab check` take? Goal: the whole check of relu_adam on MNIST in at
most ~15 s on a 2-core CPU.

Times the CLI as a user runs it (a subprocess: start-up, torch import and data loading
included) and each part inside the library (``checklist.run_check``), for each config:

    .venv/bin/python benchmarks/check_speed.py [--data-dir ../shared/data] [--repeat 3] [--json FILE]

Prints one table of median wall times. Nothing here asserts a time: machines differ.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import REPO, default_data_dir, load_avg, write_json

CONFIGS = ["configs/relu_adam.yaml", "configs/lecture/init_tanh_small.yaml", "configs/relu_sgd.yaml"]


def time_cli(config: str, data_dir: Path, repeat: int) -> tuple[float, int]:
    times, code = [], 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        code = subprocess.run(
            [
                str(Path(sys.executable).parent / "mlp-lab"),
                "check",
                "--config",
                str(REPO / config),
                "--data-dir",
                str(data_dir),
            ],
            capture_output=True,
        ).returncode
        times.append(time.perf_counter() - t0)
    return statistics.median(times), code


def time_library(config: str, data_dir: Path, repeat: int) -> float:
    from mlp_lab.checklist import run_check
    from mlp_lab.config import load_config

    cfg = load_config(REPO / config)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        run_check(cfg, data_dir)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=default_data_dir())
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--configs", nargs="*", default=CONFIGS)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    rows = []
    print(f"load average before: {load_avg()}")
    print("| config | mlp-lab check (CLI, wall s) | run_check (library, s) | exit code |")
    print("|---|---:|---:|---:|")
    for config in args.configs:
        cli_s, code = time_cli(config, args.data_dir, args.repeat)
        lib_s = time_library(config, args.data_dir, args.repeat)
        rows.append({"config": config, "cli_s": round(cli_s, 2), "library_s": round(lib_s, 2), "exit_code": code})
        print(f"| {config} | {cli_s:.2f} | {lib_s:.2f} | {code} |")
    result = {"rows": rows, "repeat": args.repeat, "load_avg_after": load_avg()}
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
