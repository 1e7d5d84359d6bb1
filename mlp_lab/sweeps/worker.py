"""One sweep run in a process of its own: ``python -m mlp_lab.sweeps.worker RUN_DIR``.

The sweep's driver writes the run's resolved ``config.yaml`` into an empty run folder and
starts this; it trains into that folder exactly as ``mlp-lab train`` would (or continues it
from its checkpoint with ``--resume``) and exits with train's exit code. Whatever happens
to this process (a crash, out of memory, SIGKILL), the driver goes on with the others.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mlp_lab.sweeps.worker")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--threads", type=int, default=None, help="torch threads for this run")
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--resume", action="store_true", help="continue the run from its checkpoint")
    args = p.parse_args(argv)

    from mlp_lab import runs
    from mlp_lab.config import config_from_dict
    from mlp_lab.errors import MlpLabError

    try:
        import torch

        if args.threads is not None:
            torch.set_num_threads(args.threads)
        from mlp_lab.training import train_experiment

        cfg = config_from_dict(runs.load_config_dict(args.run_dir), source=str(args.run_dir / runs.CONFIG))
        if args.resume:
            result = train_experiment(cfg, args.data_dir, resume=args.run_dir)
        else:
            result = train_experiment(cfg, args.data_dir, run_dir=args.run_dir)
    except MlpLabError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted before training started", file=sys.stderr)
        return 130
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
