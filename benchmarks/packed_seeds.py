"""Seeds trained one after another vs packed into one stacked model (torch.func + vmap).

    .venv/bin/python benchmarks/packed_seeds.py --data-dir DATA --device cuda --seeds 3,5

A lecture cell (configs/lecture/init_relu_he.yaml: 8 hidden layers of 256, ReLU, He init,
SGD lr 0.1, batch 100, 10,000 MNIST images, 2 epochs) trained for K seeds two ways, in one
process, on the same device:

  separate  K models, one after another: the plain in-memory loop (float images on the
            device, randperm, index, zero_grad / forward / loss / backward / step);
  packed    the K models' parameters stacked (torch.func.stack_module_state), one
            forward for all seeds with vmap(functional_call), each seed with its own
            init and its own batch order, one SGD step over the stacked tensors (SGD's
            update is elementwise, so it is each seed's own update).

Both train only (no evaluation, no diagnostics, no files), after one warm-up epoch each.
The table gives seconds per K-seed cell and the ratio separate / packed. "max |dW|" is
the largest difference between a packed seed's final weights and the same seed trained
alone: float rounding only, when packing is exact. This is a measurement for deciding
whether mlp-lab should pack seeds; mlp-lab itself trains each seed in its own run.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mlp_lab.config import load_config  # noqa: E402
from mlp_lab.data import load_data  # noqa: E402
from mlp_lab.model import build_model  # noqa: E402

from _common import default_data_dir, write_json  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "lecture" / "init_relu_he.yaml"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _models(cfg, seeds: list[int], input_dim: int, classes: int, device: torch.device) -> list[torch.nn.Module]:
    out = []
    for seed in seeds:
        torch.manual_seed(seed)
        out.append(build_model(cfg.model, input_dim, classes).to(device))
    return out


def _orders(n: int, seeds: list[int], epochs: int, device: torch.device) -> list[list[torch.Tensor]]:
    """Each seed's batch order for each epoch: its own generator, as a run has."""
    gens = [torch.Generator().manual_seed(1000 + s) for s in seeds]
    return [[torch.randperm(n, generator=g).to(device) for g in gens] for _ in range(epochs)]


def train_separate(models, x, y, orders, bs: int, lr: float) -> None:
    for k, model in enumerate(models):
        opt = torch.optim.SGD(model.parameters(), lr=lr)
        model.train()
        for epoch_orders in orders:
            perm = epoch_orders[k]
            for i in range(0, len(perm), bs):
                idx = perm[i : i + bs]
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(model(x[idx]), y[idx]).backward()
                opt.step()


def train_packed(models, x, y, orders, bs: int, lr: float) -> dict[str, torch.Tensor]:
    params, buffers = stack_module_state(models)  # each [K, ...], leaves that require grad
    base = copy.deepcopy(models[0]).to("meta")

    def one(p, b, xb):
        return functional_call(base, (p, b), (xb,))

    forward = torch.vmap(one)
    opt = torch.optim.SGD(list(params.values()), lr=lr)
    k = len(models)
    for epoch_orders in orders:
        perms = torch.stack(epoch_orders)  # [K, n]
        for i in range(0, perms.shape[1], bs):
            idx = perms[:, i : i + bs]  # [K, B]: each seed its own batch
            logits = forward(params, buffers, x[idx])  # [K, B, C]
            # Sum over seeds of each seed's mean loss: seed k's gradient is its own alone.
            loss = F.cross_entropy(logits.flatten(0, 1), y[idx].flatten(), reduction="none").view(k, -1).mean(1).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return params


def bench(k: int, device: torch.device, data, cfg, epochs: int, repeats: int) -> dict:
    seeds = list(range(k))
    x = data.train_x.to(device, torch.float32).div_(255).flatten(1)
    x = x - x.mean(0, keepdim=True)
    y = data.train_y.to(device)
    bs, lr = cfg.train.batch_size, cfg.optimizer.lr
    orders = _orders(len(y), seeds, epochs, device)

    def timed(fn) -> float:
        _sync(device)
        t = time.perf_counter()
        fn()
        _sync(device)
        return time.perf_counter() - t

    # Warm-up (one epoch each; kernels, allocator, vmap's first trace), then take turns.
    train_separate(_models(cfg, seeds, x.shape[1], 10, device), x, y, orders[:1], bs, lr)
    train_packed(_models(cfg, seeds, x.shape[1], 10, device), x, y, orders[:1], bs, lr)
    sep, pack = [], []
    for _ in range(repeats):
        separate = _models(cfg, seeds, x.shape[1], 10, device)
        sep.append(timed(lambda ms=separate: train_separate(ms, x, y, orders, bs, lr)))
        packed = _models(cfg, seeds, x.shape[1], 10, device)
        out: dict = {}
        pack.append(timed(lambda mp=packed, out=out: out.update(params=train_packed(mp, x, y, orders, bs, lr))))
    ms = separate
    # Same seeds, same orders: packed seed j's weights against separate seed j's.
    diff = max(
        (out["params"][name][j] - dict(ms[j].named_parameters())[name]).abs().max().item()
        for name in out["params"]
        for j in range(k)
    )
    s, p = statistics.median(sep), statistics.median(pack)
    return {
        "seeds": k,
        "device": str(device),
        "separate_s": s,
        "packed_s": p,
        "ratio": s / p,
        "max_abs_dw": diff,
        "steps_per_seed": epochs * ((len(y) + bs - 1) // bs),
    }


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--seeds", default="3,5", help="comma list of K (seeds per cell)")
    p.add_argument("--epochs", type=int, default=None, help="default: the config's (2)")
    p.add_argument("--limit-train", type=int, default=None, help="default: the config's (10000)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    device = torch.device(args.device)
    overrides = [f"train.device={device.type}"]
    if args.limit_train:
        overrides.append(f"data.limit_train={args.limit_train}")
    cfg = load_config(CONFIG, overrides)
    data_dir = (args.data_dir or default_data_dir()).expanduser()
    data = load_data(cfg.data, data_dir, "cpu", seed=cfg.train.seed)
    epochs = args.epochs or cfg.train.epochs
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    rows = [bench(int(k), device, data, cfg, epochs, args.repeats) for k in args.seeds.split(",")]
    print(
        f"packed seeds on {name} (torch {torch.__version__}): {CONFIG.relative_to(REPO)}, "
        f"{len(data.train_y)} images, {epochs} epochs, batch {cfg.train.batch_size}; train only, median of {args.repeats}"
    )
    print(f"  {'K':>3} {'separate s':>11} {'packed s':>9} {'ratio':>6} {'max |dW|':>9}")
    for r in rows:
        print(
            f"  {r['seeds']:>3} {r['separate_s']:>11.3f} {r['packed_s']:>9.3f} {r['ratio']:>6.2f} {r['max_abs_dw']:>9.1e}"
        )
    write_json(args.json, {"benchmark": "packed_seeds", "gpu": name, "rows": rows})
    return rows


if __name__ == "__main__":
    main()
