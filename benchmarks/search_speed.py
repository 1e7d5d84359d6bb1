"""What does early stopping save in a hyperparameter search, and what does it cost?

The same search (SGD with momentum on MNIST, learning rate and init scale on log scales)
three ways: random without pruning, random with successive halving, TPE with successive
halving; and, at the same budget of runs, a grid over the same box without pruning
(6 learning rates x 4 init scales, log-spaced, for 24 trials: Bergstra & Bengio's point
is that it tries only 6 distinct values of the parameter that matters, where random
search tries 24). For each: epochs trained, wall time, distinct learning rates tried, the
best validation accuracy found, and that config's test accuracy (read once, after the
search: selection never sees test).

    .venv/bin/python benchmarks/search_speed.py [--data-dir ../shared/data] [--trials 24] [--epochs 6]
        [--limit-train N] [--jobs 2] [--json FILE]

Goal: pruning trains at most half the epochs while its best validation accuracy stays
within 0.5 pp of the unpruned search's. Prints one table. Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from _common import REPO, default_data_dir, load_avg, write_json

VARIANTS = [
    ("random, no pruning", "random", "none"),
    ("random + successive halving", "random", "successive_halving"),
    ("TPE + successive halving", "tpe", "successive_halving"),
    ("grid, no pruning", "grid", "none"),
]
LR_RANGE, STD_RANGE = (1.0e-4, 1.0), (1.0e-3, 1.0)


def grid_shape(trials: int) -> tuple[int, int]:
    """Learning rates x init scales, as many cells as the searches have trials, more
    learning rates than scales: 24 -> 6 x 4."""
    lrs = next(a for a in range(math.ceil(math.sqrt(trials)), trials + 1) if trials % a == 0)
    return lrs, trials // lrs


def log_spaced(low: float, high: float, n: int) -> list[float]:
    if n == 1:
        return [float(f"{math.sqrt(low * high):.3g}")]
    return [float(f"{low * (high / low) ** (i / (n - 1)):.3g}") for i in range(n)]


def sweep_file(folder: Path, method: str, rule: str, trials: int, epochs: int, limit: int | None) -> Path:
    base = yaml.safe_load((REPO / "configs" / "relu_sgd_momentum.yaml").read_text())
    base["scheduler"] = {"name": "none"}  # the search's job here: lr and init scale, on a flat schedule
    (folder / "base.yaml").write_text(yaml.safe_dump(base, sort_keys=False))
    settings = {"train.epochs": epochs, "model.init": "normal"}
    if limit:
        settings["data.limit_train"] = limit
    doc = {"name": f"{method}-{rule}", "base": "base.yaml", "set": settings}
    if method == "grid":  # the same 10% validation split a search holds out by itself
        doc["set"] = {**settings, "data.val_split": 0.1}
        lrs, stds = grid_shape(trials)
        doc["grid"] = {"optimizer.lr": log_spaced(*LR_RANGE, lrs), "model.init_std": log_spaced(*STD_RANGE, stds)}
    else:
        doc["search"] = {
            "method": method,
            "trials": trials,
            "seed": 0,
            "metric": "val_acc",
            "space": {
                "optimizer.lr": {"log_uniform": list(LR_RANGE)},
                "model.init_std": {"log_uniform": list(STD_RANGE)},
            },
            "prune": {"rule": rule, "min_epochs": 1, "reduction": 3},
        }
    path = folder / f"{method}-{rule}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def grid_rows(manifest) -> list[dict]:
    """A grid's runs as trial rows: the last epoch's val_acc, as a search judges a trial."""
    from mlp_lab import atomic_files, runs

    rows = []
    for e in manifest.runs:
        path = manifest.folder / e["folder"] / runs.METRICS  # none for a run that diverged in its first epoch
        history = atomic_files.read_jsonl(path)[0] if path.is_file() else []
        final = history[-1].get("val_acc") if history else None
        rows.append(
            {
                "trial": e["index"],
                "values": e["varies"],
                "status": e["status"],
                "epochs": len(history),
                "planned": e["config"]["train"]["epochs"],
                "folder": e["folder"],
                "metric": final if e["status"] == "completed" else None,
            }
        )
    return rows


def run_variant(label: str, method: str, rule: str, args: argparse.Namespace, work: Path) -> dict:
    from mlp_lab.sweeps import load_manifest
    from mlp_lab.sweeps.search_runner import trial_rows

    mlp_lab = str(Path(sys.executable).parent / "mlp-lab")
    sfile = sweep_file(work, method, rule, args.trials, args.epochs, args.limit_train)
    t0 = time.perf_counter()
    subprocess.run(
        [
            mlp_lab,
            "sweep",
            str(sfile),
            "--quiet",
            "--jobs",
            str(args.jobs),
            "--data-dir",
            str(args.data_dir),
            "--runs-dir",
            str(work / "runs"),
        ],
        capture_output=True,
        check=False,
    )
    wall = time.perf_counter() - t0
    folder = sorted((work / "runs").glob(f"{method}-{rule}-*"))[-1]
    manifest = load_manifest(folder)
    if method == "grid":
        rows = grid_rows(manifest)
    else:
        rows = trial_rows(manifest)
        by_trial = {e["trial"]: e["folder"] for e in manifest.runs}
        rows = [{**r, "folder": by_trial[r["trial"]]} for r in rows]
    done = [r for r in rows if r["status"] == "completed" and r["metric"] is not None]
    best = max(done, key=lambda r: r["metric"]) if done else None
    test_acc = None
    if best is not None:  # the chosen config's test accuracy, read once
        summary = json.loads((folder / best["folder"] / "summary.json").read_text())
        test_acc = summary["final"]["test_acc"]
    return {
        "variant": label,
        "epochs": sum(r["epochs"] for r in rows),
        "planned": sum(r["planned"] for r in rows),
        "pruned": sum(r["status"] == "pruned" for r in rows),
        "wall_s": round(wall, 1),
        "distinct_lrs": len({r["values"]["optimizer.lr"] for r in rows}),
        "best_val_acc": best["metric"] if best else None,
        "test_acc": test_acc,
        "best_values": best["values"] if best else None,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=default_data_dir())
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--limit-train", type=int, default=None)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    rows = []
    print(f"load average before: {load_avg()}")
    print(
        "| search | epochs trained | trials pruned | distinct lrs | wall s | best val acc | its test acc | its lr, init std |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    with tempfile.TemporaryDirectory(prefix="mlp-lab-search-") as tmp:
        for label, method, rule in VARIANTS:
            row = run_variant(label, method, rule, args, Path(tmp))
            rows.append(row)
            pct = lambda v: f"{100 * v:.2f}%" if v is not None else "-"  # noqa: E731
            values = row["best_values"] or {}
            found = ", ".join(f"{values[k]:.3g}" for k in ("optimizer.lr", "model.init_std") if k in values) or "-"
            print(
                f"| {label} | {row['epochs']} of {row['planned']} | {row['pruned']} of {args.trials} | "
                f"{row['distinct_lrs']} | {row['wall_s']} | {pct(row['best_val_acc'])} | {pct(row['test_acc'])} | "
                f"{found} |",
                flush=True,
            )
    result = {
        "rows": rows,
        "trials": args.trials,
        "epochs": args.epochs,
        "limit_train": args.limit_train,
        "jobs": args.jobs,
        "load_avg_after": load_avg(),
    }
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
