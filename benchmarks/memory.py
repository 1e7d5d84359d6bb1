"""Peak memory (maximum resident set size) of real `mlp-lab train` runs.

    .venv/bin/python benchmarks/memory.py --data-dir ../shared/data [--epochs 1] [--json FILE]

Runs, each as its own process under ``/usr/bin/time -v`` (which reports the peak RSS):

  torch import     python -c "import torch" (the CUDA build of torch maps its CUDA libraries
                   even on a machine without a GPU: ~700 MB here, ~290 MB for the CPU-only build);
  torch floor      import torch + one forward/backward/Adam step of the MNIST model on random
                   data: the least any PyTorch training process holds (torch.optim's first
                   use imports torch._dynamo, ~175 MB more);
  mnist cold       mlp-lab train --config configs/relu_adam.yaml --set train.epochs=1, with an
                   empty decoded-data cache (the raw idx files are parsed and the cache written);
  mnist cached     the same again: the decoded tensors come from the cache file;
  cifar10 cold / cifar10 cached   the same with configs/cifar10_relu_adam.yaml.

MNIST is the real data in --data-dir when present, else mlp-lab's synthetic set of the same
shape (60000 + 10000 images). CIFAR-10 is real when --data-dir holds its batch files, else
synthetic files in the exact on-disk format are written to a temp dir (make_fake_cifar10.py);
the output says which. The decoded-data cache goes to a temp dir (XDG_CACHE_HOME), so "cold"
is really cold and nothing is left behind in ~/.cache.

Limits (issue 5): MNIST under 800 MB, CIFAR-10 under 1.2 GB.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import default_data_dir, write_json  # noqa: E402
from make_fake_cifar10 import has_cifar10, write_fake_cifar10  # noqa: E402

LIMITS_MB = {"mnist": 800, "cifar10": 1200}
TIME = "/usr/bin/time"
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


# The least any PyTorch training process here holds: torch imported, a model, one
# forward/backward and one Adam step (torch.optim's first use imports torch._dynamo).
FLOOR = (
    "import torch; m = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256), "
    "torch.nn.ReLU(), torch.nn.Linear(256, 10)); o = torch.optim.Adam(m.parameters()); "
    "torch.nn.functional.cross_entropy(m(torch.randn(100, 784)), torch.randint(0, 10, (100,))).backward(); o.step()"
)


def torch_build(env: dict[str, str]) -> str:
    """'torch 2.x.y+cu130 (CUDA build)' or '... (CPU-only build)', of the torch the runs import."""
    code = "import torch; print(torch.__version__, torch.version.cuda or '')"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True).stdout.split()
    if not out:
        return "torch ?"
    return f"torch {out[0]} ({'CUDA ' + out[1] + ' build' if len(out) > 1 else 'CPU-only build'})"


def mlp_lab_command() -> list[str]:
    script = Path(sys.executable).parent / "mlp-lab"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "mlp_lab"]


def measure(cmd: list[str], env: dict[str, str]) -> dict:
    """Run cmd under /usr/bin/time -v: peak RSS (MB), wall seconds, exit code."""
    proc = subprocess.run([TIME, "-v", *cmd], env=env, capture_output=True, text=True)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)", proc.stderr)
    seconds = None
    if wall:
        h, m, s = wall.groups()
        seconds = int(h or 0) * 3600 + int(m) * 60 + float(s)
    if proc.returncode != 0 or rss is None:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {proc.returncode}):\n{tail}")
    return {"max_rss_mb": int(rss.group(1)) / 1024, "wall_s": seconds, "exit_code": proc.returncode}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description="Peak resident memory of mlp-lab train runs (MNIST and CIFAR-10).")
    p.add_argument(
        "--data-dir", type=Path, default=None, help="data folder (default: $MLP_LAB_DATA, else ../shared/data)"
    )
    p.add_argument("--epochs", type=int, default=1, help="train.epochs of each run (default 1)")
    p.add_argument(
        "--limit-train", type=int, default=None, help="data.limit_train (quick checks only: lowers the peak)"
    )
    p.add_argument(
        "--cifar-per-batch",
        type=int,
        default=10000,
        help="images per synthetic CIFAR batch file (default 10000, as real)",
    )
    p.add_argument("--datasets", default="mnist,cifar10", help="comma list (default both)")
    p.add_argument("--no-baseline", action="store_true", help="leave out the torch import / torch floor rows")
    p.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    args = p.parse_args(argv)
    if not Path(TIME).is_file():
        p.error(f"{TIME} not found (apt-get install time)")
    data_dir = (args.data_dir or default_data_dir()).expanduser().absolute()
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731

    rows = []
    with tempfile.TemporaryDirectory(prefix="mlp-lab-mem-") as tmp_name:
        tmp = Path(tmp_name)
        env = {**os.environ, "XDG_CACHE_HOME": str(tmp / "cache"), "MLP_LAB_OFFLINE": "1"}
        env.pop("MLP_LAB_DATA", None)
        build = torch_build(env)
        if not args.no_baseline:
            r = measure([sys.executable, "-c", "import torch"], env)
            rows.append({"row": "torch import", "data": build, **r, "limit_mb": None})
            log(f"torch import: {r['max_rss_mb']:.0f} MB ({build})")
            r = measure([sys.executable, "-c", FLOOR], env)
            rows.append(
                {
                    "row": "torch floor",
                    "data": "784-256-256-10 MLP, one Adam step on random data, no mlp-lab",
                    **r,
                    "limit_mb": None,
                }
            )
            log(f"torch floor: {r['max_rss_mb']:.0f} MB")
        for kind in datasets:
            overrides = [f"train.epochs={args.epochs}", "train.device=cpu"]
            if kind == "mnist":
                config = REPO / "configs" / "relu_adam.yaml"
                if all(
                    (data_dir / "MNIST" / "raw" / n).is_file() or (data_dir / "MNIST" / "raw" / f"{n}.gz").is_file()
                    for n in MNIST_FILES
                ):
                    root, source = data_dir, f"real MNIST in {data_dir}"
                else:
                    root, source = tmp, "SYNTHETIC (mlp-lab's synthetic set, 60000+10000)"
                    overrides += [
                        "data.dataset=synthetic",
                        "data.synthetic_train_size=60000",
                        "data.synthetic_test_size=10000",
                    ]
            else:
                config = REPO / "configs" / "cifar10_relu_adam.yaml"
                if has_cifar10(data_dir):
                    root, source = data_dir, f"real CIFAR-10 in {data_dir}"
                else:
                    root = tmp / "cifar"
                    write_fake_cifar10(root, per_batch=args.cifar_per_batch)
                    source = (
                        f"SYNTHETIC CIFAR-10 files ({5 * args.cifar_per_batch}+{args.cifar_per_batch}, official format)"
                    )
            if args.limit_train is not None:
                overrides.append(f"data.limit_train={args.limit_train}")
            cmd = mlp_lab_command() + [
                "train",
                "--config",
                str(config),
                "--data-dir",
                str(root),
                "--runs-dir",
                str(tmp / "runs"),
                "--quiet",
            ]
            for o in overrides:
                cmd += ["--set", o]
            for phase in ("cold", "cached"):
                r = measure(cmd, env)
                rows.append(
                    {
                        "row": f"{kind} {phase}",
                        "data": source,
                        **r,
                        "limit_mb": LIMITS_MB[kind],
                        "ok": r["max_rss_mb"] < LIMITS_MB[kind],
                        "command": " ".join(cmd),
                    }
                )
                log(f"{kind} {phase}: {r['max_rss_mb']:.0f} MB in {r['wall_s']:.1f} s")
            if not has_cifar10(data_dir) and kind == "cifar10":
                shutil.rmtree(tmp / "cifar", ignore_errors=True)

    print(f"peak resident memory of `mlp-lab train ... --set train.epochs={args.epochs}` (/usr/bin/time -v), {build}")
    print(f"  {'run':<16} {'max RSS':>9} {'limit':>8} {'ok':>4} {'wall':>7}  data")
    for r in rows:
        limit = f"{r['limit_mb']:>5} MB" if r["limit_mb"] else " " * 8
        ok = ("yes" if r["ok"] else "NO") if "ok" in r else ""
        print(f"  {r['row']:<16} {r['max_rss_mb']:6.0f} MB {limit} {ok:>4} {r['wall_s']:6.1f}s  {r['data']}")
    out = {"benchmark": "memory", "torch": build, "epochs": args.epochs, "limit_train": args.limit_train, "rows": rows}
    write_json(args.json, out)
    return out


if __name__ == "__main__":
    main()
