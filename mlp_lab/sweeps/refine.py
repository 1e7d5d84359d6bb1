"""Coarse to fine: a new search around the best trials of a finished one.

``mlp-lab refine FOLDER [--top K] [--trials N]`` narrows each searched range to the
box the top K completed trials span, widened by a margin (in log space for log ranges:
a quarter of the span, at least a factor of 1.5 each way, never past the old range), and
each choice to the options that appear among them. It writes two files into FOLDER, the
old search's base config and the new sweep file, so the refined search can also be run
again as a file, and returns that file's path, for the new search to run as ``mlp-lab sweep`` runs a file.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from mlp_lab import atomic_files
from mlp_lab.errors import ConfigError, RunError
from mlp_lab.sweeps.folder import load_manifest

MARGIN = 0.25  # of the top trials' span, each side
MIN_FACTOR = 1.5  # a log range narrows to no less than [low / 1.5, high * 1.5] around a single value
BASE_FILE, REFINED_FILE = "refine-base.yaml", "refined.yaml"


def refine(folder: Path, top: int = 5, trials: int | None = None) -> tuple[Path, list[str]]:
    """(the new sweep file, lines saying each old and new range)."""
    from mlp_lab.sweeps.search_runner import spec_of, trial_rows

    if top < 1:
        raise ConfigError(f"--top {top}: refine around 1 trial or more")
    if trials is not None and trials < 1:
        raise ConfigError(f"--trials {trials}: must be 1 or more (or leave it out: as many as before)")
    manifest = load_manifest(folder)
    if "search" not in manifest.data:
        raise RunError(
            f"{folder} is not a search folder (its sweep file has no search: section); "
            "mlp-lab refine narrows a finished search"
        )
    spec = spec_of(manifest)
    done = [r for r in trial_rows(manifest) if r["status"] == "completed" and r["metric"] is not None]
    if not done:
        raise RunError(f"{folder}: no trial of this search completed; finish it first (mlp-lab resume {folder})")
    done.sort(key=lambda r: r["metric"], reverse=spec.direction == "maximize")
    best = done[:top]
    space, lines = {}, [f"refining around the top {len(best)} of {len(done)} completed trials by {spec.metric}:"]
    for key, dist in spec.space.items():
        space[key] = narrow(dist, [r["values"][key] for r in best])
        lines.append(f"  {key}: {_show(dist)} -> {_show(space[key])}")
    name = f"{manifest.data['name']}-refined"
    search = {**spec.model_dump(), "space": space, "trials": spec.trials if trials is None else trials}
    base_path, sweep_path = folder / BASE_FILE, folder / REFINED_FILE
    atomic_files.atomic_write_text(base_path, yaml.safe_dump(manifest.data["search"]["base"], sort_keys=False))
    doc = {"name": name, "base": BASE_FILE, "seeds": manifest.data["search"]["seeds"], "search": search}
    atomic_files.atomic_write_text(
        sweep_path, f"# Refined from {folder.name}: mlp-lab sweep {sweep_path}\n" + yaml.safe_dump(doc, sort_keys=False)
    )
    return sweep_path, lines


def narrow(dist: dict[str, Any], values: list[Any]) -> dict[str, Any]:
    """The part of ``dist`` around ``values``."""
    ((kind, args),) = dist.items()
    if kind == "choice":
        return {"choice": [v for v in args if v in values]}
    low, high = args
    log = kind.startswith("log")
    f = math.log if log else (lambda v: v)
    inv = math.exp if log else (lambda v: v)
    lo, hi = f(min(values)), f(max(values))
    pad = max(MARGIN * (hi - lo), math.log(MIN_FACTOR) if log else 0.05 * (f(high) - f(low)))
    new_lo, new_hi = max(f(low), lo - pad), min(f(high), hi + pad)
    if kind.endswith("int"):
        a, b = max(int(low), math.floor(inv(new_lo))), min(int(high), math.ceil(inv(new_hi)))
        return {kind: [a, b] if b > a else [int(low), int(high)]}
    a, b = max(float(low), float(f"{inv(new_lo):.4g}")), min(float(high), float(f"{inv(new_hi):.4g}"))
    return {kind: [a, b] if a < b else [float(low), float(high)]}


def _show(dist: dict[str, Any]) -> str:
    ((kind, args),) = dist.items()
    return f"{kind} {args}"
