"""Is the search's winner really ahead? Re-run its top trials on fresh seeds and say.

A search's best trial is the maximum of many noisy scores: its own score is biased up,
and its margin over the next trials is often inside the seed noise. ``mlp-lab confirm
FOLDER --top K --seeds N`` writes a sweep (``confirm.yaml`` beside ``confirm-base.yaml``
in the search folder) that trains the top K trials' values on N seeds the search never
used, so on fresh initialisations, batch orders and validation splits (the split is drawn
from the seed). The caller runs it as any sweep; ``verdict_lines`` then tests every other
trial against the winner on the search's metric, Holm-adjusted for the K - 1 comparisons.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mlp_lab import atomic_files
from mlp_lab.errors import ConfigError, RunError
from mlp_lab.sweeps.folder import load_manifest
from mlp_lab.sweeps.search_runner import spec_of, trial_rows

BASE_FILE, CONFIRM_FILE = "confirm-base.yaml", "confirm.yaml"


@dataclass(frozen=True)
class Confirmation:
    """The sweep file to run, what it re-runs, and on what it is judged."""

    file: Path
    trials: list[dict[str, Any]]  # the top trials' rows (trial, values, metric), the winner first
    seeds: list[int]
    metric: str
    maximize: bool

    def lines(self) -> list[str]:
        head = (
            f"confirming the top {len(self.trials)} trials by {self.metric} on {len(self.seeds)} fresh seeds "
            f"({self.seeds[0]}-{self.seeds[-1]}: new inits, batch orders and validation splits):"
        )
        return [
            head,
            *(
                f"  trial {t['trial']}: {_values(t['values'])} ({_score(self.metric, t['metric'])} in the search)"
                for t in self.trials
            ),
        ]


def plan_confirmation(folder: Path, top: int = 3, seeds: int = 5) -> Confirmation:
    """Write the confirming sweep file for the search in ``folder``."""
    if top < 2:
        raise ConfigError(f"--top {top}: confirming needs the winner and at least 1 rival (2 or more)")
    if seeds < 3:
        raise ConfigError(f"--seeds {seeds}: at least 3 seeds, or no difference can be told from seed noise")
    manifest = load_manifest(folder)
    if "search" not in manifest.data:
        raise RunError(
            f"{folder}: not a search folder (its sweep file has no search: section); confirm re-runs a search's top trials"
        )
    spec = spec_of(manifest)
    done = [r for r in trial_rows(manifest) if r["status"] == "completed" and r["metric"] is not None]
    if len(done) < 2:
        raise RunError(
            f"{folder}: {len(done)} completed trial{'s' if len(done) != 1 else ''}; confirming needs 2 or more "
            f"(finish the search first: mlp-lab resume {folder})"
        )
    maximize = spec.direction == "maximize"
    best = sorted(done, key=lambda r: r["metric"], reverse=maximize)[:top]
    used = [int(s) for s in manifest.data["search"]["seeds"]]
    fresh = list(range(max(used) + 1, max(used) + 1 + seeds))
    doc = {
        "name": f"{manifest.data['name']}-confirm",
        "base": BASE_FILE,
        "seeds": fresh,
        "cases": [{"name": f"trial{t['trial']:03d}", **t["values"]} for t in best],
    }
    base_path, file = folder / BASE_FILE, folder / CONFIRM_FILE
    atomic_files.atomic_write_text(base_path, yaml.safe_dump(manifest.data["search"]["base"], sort_keys=False))
    atomic_files.atomic_write_text(
        file,
        f"# The top {len(best)} trials of {folder.name} on fresh seeds: mlp-lab confirm {folder}\n"
        + yaml.safe_dump(doc, sort_keys=False),
    )
    return Confirmation(file, best, fresh, spec.metric, maximize)


def judge(confirmation: Confirmation, sweep_folder: Path) -> tuple[Any, list[str]]:
    """The comparison of the confirming runs, the winner as its baseline; and the lines that
    say whether the winner stays ahead of each rival beyond noise."""
    from mlp_lab.results import build_comparison

    winner = confirmation.trials[0]
    baseline = ",".join(f"{k}={_yaml(v)}" for k, v in winner["values"].items())
    comp = build_comparison([sweep_folder], sort=confirmation.metric, baseline=baseline)
    return comp, verdict_lines(confirmation, comp)


def verdict_lines(confirmation: Confirmation, comp: Any) -> list[str]:
    """Whether the winner (``comp``'s baseline) stays ahead of each rival beyond noise."""
    winner = confirmation.trials[0]
    if comp.baseline is None:
        return [f"the winner's runs on the fresh seeds reached no {confirmation.metric}: nothing to confirm"]
    key = comp.best_key
    base = getattr(comp.baseline, "stats", None)
    lines = [f"on fresh seeds, trial {winner['trial']} reaches {_spread(key, base)}"]
    behind: list[str] = []
    unclear: list[str] = []
    ahead: list[str] = []
    for row, trial in _rivals(comp, confirmation):
        vs = comp.versus_of(row)
        d = vs.difference if vs is not None else None
        name = f"trial {trial['trial']} ({_spread(key, getattr(row, 'stats', None))})"
        if d is None:
            unclear.append(f"{name}: not tested ({vs.reason if vs else 'no result'})")
            continue
        better = d.diff > 0 if confirmation.maximize else d.diff < 0
        said = f"{name}: {_diff(key, d.diff)}, p_holm = {vs.p_holm:.2g}"
        (unclear if vs.within_noise else ahead if better else behind).append(said)
    n = len(behind) + len(unclear) + len(ahead)
    lines += [f"  behind it beyond noise: {s}" for s in behind]
    lines += [f"  within noise of it: {s}" for s in unclear]
    lines += [f"  ahead of it beyond noise: {s}" for s in ahead]
    if ahead:
        lines.append(f"not confirmed: a rival is ahead of trial {winner['trial']} on fresh seeds; prefer it")
    elif unclear:
        lines.append(
            f"not confirmed: trial {winner['trial']} cannot be told from {len(unclear)} of its {n} rivals on "
            f"{len(confirmation.seeds)} fresh seeds (Holm over {n} comparisons); any of them is as good a choice, "
            "or run more seeds"
        )
    else:
        lines.append(f"confirmed: trial {winner['trial']} stays ahead of all {n} rivals beyond noise (Holm over {n})")
    return lines


def _rivals(comp: Any, confirmation: Confirmation) -> list[tuple[Any, dict[str, Any]]]:
    """(group row, trial row) of every top trial but the winner, in the search's order."""
    from mlp_lab.results.values import canon

    out = []
    for trial in confirmation.trials[1:]:
        for row in comp.rows:
            params = row.params or {}
            if all(canon(params.get(k)) == canon(v) for k, v in trial["values"].items()):
                out.append((row, trial))
                break
    return out


def _yaml(v: Any) -> str:
    return yaml.safe_dump(v, default_flow_style=True).strip().removesuffix("...").strip()


def _values(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())


def _score(metric: str, v: float) -> str:
    return f"{metric} {100 * v:.2f}%" if metric.endswith("acc") else f"{metric} {v:.4g}"


def _spread(key: str, st: Any) -> str:
    if st is None:
        return "no result"
    pct = key.endswith("acc")
    scale, unit = (100.0, "%") if pct else (1.0, "")
    return f"{key} {scale * st.mean:.2f} ± {scale * st.std:.2f}{unit}, n={st.n}"


def _diff(key: str, d: float) -> str:
    return f"{100 * d:+.2f} pp" if key.endswith("acc") else f"{d:+.4g}"
