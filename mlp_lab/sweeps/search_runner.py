"""Running a search: ``SearchPlan``, the hooks the scheduler calls (trials asked as
places free up, each epoch's validation metric told to Optuna's pruner, pruned runs
recorded), and at the end ``best.yaml`` and the closing summary (``search_summary``).

The study lives in Optuna's journal file in the search folder (``optuna.log``, study name =
the sweep's name), written as trials are asked, report epochs and end, so ``optuna.load_study``
and optuna-dashboard read it, live. The manifest and the run folders stay the truth: on a
resume ``open_study`` continues the journal's study when it agrees with the manifest, and
rebuilds it from the manifest when it is missing or does not (see search.py)."""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlp_lab import atomic_files, runs
from mlp_lab.console import err_console
from mlp_lab.sweeps.folder import DONE, Manifest, entry_of, mark_summary
from mlp_lab.sweeps.plan import Plan
from mlp_lab.sweeps.search import SearchSpec, distributions, from_choice, make_study
from mlp_lab.sweeps.search_plan import trial_runs

BEST = "best.yaml"
STUDY = "optuna.log"  # Optuna's journal file: optuna-dashboard <search folder>/optuna.log


@dataclass
class Study:
    """The Optuna study of a search folder, and its trials by number."""

    spec: SearchSpec
    study: Any
    trials: dict[int, Any] = field(default_factory=dict)  # trial number -> optuna trial (asked)
    told: set[int] = field(default_factory=set)


def spec_of(manifest: Manifest) -> SearchSpec:
    return SearchSpec.model_validate(manifest.data["search"]["spec"])


def trial_epochs(manifest: Manifest) -> int:
    """The epochs each trial trains: the base config's, else the schema's default."""
    from mlp_lab.schema import TrainConfig

    epochs = manifest.data["search"]["base"].get("train", {}).get("epochs")
    return int(epochs if epochs is not None else TrainConfig.model_fields["epochs"].default)


def planned_runs(manifest: Manifest) -> int:
    """How many runs the search has once every trial is asked (a run per trial and seed)."""
    return max(len(manifest.runs), spec_of(manifest).trials * len(manifest.data["search"]["seeds"]))


def journal(folder: Path) -> Any:
    """The Optuna storage of the search in ``folder``: its journal file."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(str(folder / STUDY)))


def open_study(manifest: Manifest) -> tuple[Study, str | None]:
    """The search's study, in its journal file: the one there when it agrees with the
    manifest (the same trials, with the same values, in the same order), else made again
    from the manifest. Returns it and, when it was made again, why (one line)."""
    spec = spec_of(manifest)
    path = manifest.folder / STUDY
    why = None
    if path.exists():
        try:
            return _continued(manifest, spec), None
        except Exception as e:  # noqa: BLE001 - any disagreement or damage means the same: rebuild
            why = f"{path}: {' '.join(str(e).split())[:160] or e.__class__.__name__}; rebuilt from the manifest"
            _set_aside(path)
    elif any(e["status"] != "pending" for e in manifest.runs):
        why = f"{path} is missing; rebuilt from the manifest"
    return rebuild(manifest, journal(manifest.folder)), why


def _set_aside(path: Path) -> None:
    """Move a journal that cannot be continued out of the way (kept, for a look)."""
    shutil.move(str(path), str(path.with_suffix(".log.bad")))
    for lock in path.parent.glob(f"{path.name}.lock*"):
        lock.unlink(missing_ok=True)


def _continued(manifest: Manifest, spec: SearchSpec) -> Study:
    """The journal's study, checked against the manifest; its unfinished trials continue."""
    import optuna

    s = Study(spec, make_study(spec, trial_epochs(manifest), journal(manifest.folder), manifest.data["name"]))
    numbers = sorted({e["trial"] for e in manifest.runs})
    trials = s.study.get_trials(deepcopy=False)
    if [t.number for t in trials] != list(range(len(trials))) or len(trials) > len(numbers):
        raise ValueError(f"it holds {len(trials)} trials, the manifest {len(numbers)}")
    first: dict[int, dict[str, Any]] = {}  # trial number -> its values, as the manifest's first run of it has them
    for e in manifest.runs:
        first.setdefault(e["trial"], e["varies"])
    for t in trials:
        varies = first[t.number]
        if t.params != {k: _optuna_value(spec, k, v) for k, v in varies.items()}:
            raise ValueError(f"trial {t.number}'s values differ from the manifest's")
        if t.state.is_finished():
            s.told.add(t.number)
        s.trials[t.number] = optuna.trial.Trial(s.study, t._trial_id)
    for number in numbers[len(trials) :]:  # planned in the manifest, not asked yet (a random search's)
        _ask_as_planned(s, manifest, number)
    for number in numbers:
        _tell_if_ended(s, manifest, number)
    return s


def rebuild(manifest: Manifest, storage: Any = None) -> Study:
    """The study as it stood: every trial of the manifest asked again with its recorded
    values, the epochs its runs finished reported again, and ended trials told."""
    spec = spec_of(manifest)
    s = Study(spec, make_study(spec, trial_epochs(manifest), storage, manifest.data["name"]))
    for number in sorted({e["trial"] for e in manifest.runs}):
        _ask_as_planned(s, manifest, number)
        _tell_if_ended(s, manifest, number)
    return s


def _ask_as_planned(s: Study, manifest: Manifest, number: int) -> None:
    """Ask trial ``number`` with the values the manifest recorded, and report its epochs."""
    entries = [e for e in manifest.runs if e["trial"] == number]
    s.study.enqueue_trial({k: _optuna_value(s.spec, k, v) for k, v in entries[0]["varies"].items()})
    s.trials[number] = s.study.ask(distributions(s.spec.space))
    if len(entries) == 1:
        for epoch, value in enumerate(_metric_history(manifest, entries[0], s.spec.metric), 1):
            if math.isfinite(value):
                s.trials[number].report(value, epoch)


def _optuna_value(spec: SearchSpec, key: str, value: Any) -> Any:
    ((kind, args),) = spec.space[key].items()
    if kind == "choice" and not (value is None or isinstance(value, (bool, int, float, str))):
        return repr(value)
    return value


def _metric_history(manifest: Manifest, entry: dict[str, Any], metric: str) -> list[float]:
    if not entry.get("folder"):
        return []
    path = manifest.folder / entry["folder"] / runs.METRICS
    if not path.is_file():
        return []
    values = []
    for rec in atomic_files.read_jsonl(path)[0]:
        v = rec.get(metric)
        values.append(float(v) if isinstance(v, (int, float)) and math.isfinite(v) else math.nan)
    return values


def _tell_if_ended(s: Study, manifest: Manifest, number: int) -> None:
    """Tell the study how trial ``number`` ended once every run of it has."""
    import optuna

    entries = [e for e in manifest.runs if e.get("trial") == number]
    if number in s.told or any(e["status"] not in (*DONE, "failed") for e in entries):
        return
    trial = s.trials[number]
    # Where the trial's runs are, for a reader of the study alone (optuna-dashboard).
    trial.set_user_attr("run_folders", [e["folder"] for e in entries if e.get("folder")])
    trial.set_user_attr("seeds", [e.get("seed") for e in entries])
    if any(e["status"] == "pruned" for e in entries):
        s.study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    else:
        finals = [
            h[-1] for e in entries if e["status"] == "completed" and (h := _metric_history(manifest, e, s.spec.metric))
        ]
        if len(finals) == len(entries) and all(math.isfinite(v) for v in finals):
            s.study.tell(trial, sum(finals) / len(finals))  # several seeds: their mean
        else:
            s.study.tell(trial, state=optuna.trial.TrialState.FAIL)
    s.told.add(number)


def ask_next(s: Study, manifest: Manifest) -> list[int]:
    """Ask the study for one more trial and add its runs (one per seed) to the manifest."""
    number = max(s.trials, default=-1) + 1
    trial = s.study.ask(distributions(s.spec.space))
    values = {k: from_choice(s.spec.space[k], trial.params[k]) for k in s.spec.space}
    s.trials[number] = trial
    search = manifest.data["search"]
    planned = trial_runs(search["base"], values, number, search["seeds"], len(manifest.runs))
    manifest.add([entry_of(r) for r in planned])
    return [r.index for r in planned]


def to_ask(s: Study, manifest: Manifest) -> int:
    """Trials still to ask: a TPE search asks them one by one until ``trials`` are."""
    return max(0, s.spec.trials - len({e["trial"] for e in manifest.runs}))


def report_epochs(s: Study, manifest: Manifest, index: int, reported: dict[int, int]) -> bool:
    """Report run ``index``'s epochs not reported yet (from its metrics.jsonl) to its trial;
    True when the pruner says stop."""
    history = _metric_history(manifest, manifest.runs[index], s.spec.metric)
    stop = False
    for epoch in range(reported.get(index, 0) + 1, len(history) + 1):
        stop = _report(s, manifest, index, epoch, history[epoch - 1]) or stop
        reported[index] = epoch
    return stop


def _report(s: Study, manifest: Manifest, index: int, epoch: int, value: Any) -> bool:
    """One epoch's metric of run ``index`` to its trial; True when the pruner says stop
    (never after the last epoch, and never for a trial of several seeds: refused up front)."""
    entry = manifest.runs[index]
    if len([e for e in manifest.runs if e.get("trial") == entry["trial"]]) > 1:
        return False
    if not isinstance(value, (int, float)) or not math.isfinite(value) or entry["trial"] in s.told:
        return False
    trial = s.trials[entry["trial"]]
    trial.report(float(value), epoch)
    return epoch < trial_epochs(manifest) and trial.should_prune()


def mark_pruned(manifest: Manifest, index: int, rule: str) -> dict[str, Any]:
    """A run stopped by the pruner: ``pruned``, in the manifest and in its folder."""
    entry = manifest.runs[index]
    folder = manifest.folder / entry["folder"]
    done = len(atomic_files.read_jsonl(folder / runs.METRICS)[0]) if (folder / runs.METRICS).is_file() else 0
    reason = f"pruned by {rule} after {done} epoch{'s' if done != 1 else ''}"
    mark_summary(folder, entry, status="pruned", message=reason)
    manifest.update(index, status="pruned", reason=reason)
    return manifest.runs[index]


class SearchPlan(Plan):
    """A search as the scheduler (``scheduler.drive``, for either backend) sees it: new
    trials asked as places free up, each epoch's metric told to the pruner (read from the
    run folder here, posted by the task on Ray), a stopped run recorded ``pruned``, each
    trial told once its runs ended, and best.yaml at the end."""

    asks = True

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest
        self.s, rebuilt = open_study(manifest)
        if rebuilt is not None:
            err_console.print(f"[yellow]warning:[/] {rebuilt}", highlight=False)
        self.reported: dict[int, int] = {}  # run index -> epochs reported

    def left(self) -> bool:
        return to_ask(self.s, self.manifest) > 0

    def more(self) -> list[int]:
        return ask_next(self.s, self.manifest)

    def total(self, manifest: Manifest) -> int:
        return planned_runs(manifest)

    def epoch(self, index: int, record: dict[str, Any] | None = None) -> bool:
        if record is None:
            return report_epochs(self.s, self.manifest, index, self.reported)
        epoch = record.get("epoch")
        if not isinstance(epoch, int) or epoch <= self.reported.get(index, 0):
            return False
        self.reported[index] = epoch
        return _report(self.s, self.manifest, index, epoch, record.get(self.s.spec.metric))

    def ended(self, entry: dict[str, Any], stopped: bool) -> dict[str, Any]:
        if stopped and entry["status"] == "interrupted":  # (one that completed first stays completed)
            entry = mark_pruned(self.manifest, entry["index"], self.s.spec.prune.rule)
        report_epochs(self.s, self.manifest, entry["index"], self.reported)  # any not heard yet: others compare to them
        _tell_if_ended(self.s, self.manifest, entry["trial"])
        return entry

    def close(self) -> None:
        write_best(self.manifest)


# --- the end of a search -------------------------------------------------------------------


def trial_rows(manifest: Manifest) -> list[dict[str, Any]]:
    """One row per trial: its values, metric (mean over seeds), epochs trained, status."""
    spec = spec_of(manifest)
    rows = []
    for number in sorted({e["trial"] for e in manifest.runs}):
        entries = [e for e in manifest.runs if e["trial"] == number]
        histories = [_metric_history(manifest, e, spec.metric) for e in entries]
        finals = [h[-1] for h in histories if h and math.isfinite(h[-1])]
        status = (
            "pruned"
            if any(e["status"] == "pruned" for e in entries)
            else "completed"
            if all(e["status"] == "completed" for e in entries)
            else entries[0]["status"]
        )
        rows.append(
            {
                "trial": number,
                "values": entries[0]["varies"],
                "status": status,
                "metric": sum(finals) / len(finals)
                if finals and status == "completed"
                else (finals[-1] if finals else None),
                "epochs": sum(len(h) for h in histories),
                "planned": trial_epochs(manifest) * len(entries),
                "config": entries[0]["config"],
            }
        )
    return rows


def best_row(manifest: Manifest) -> dict[str, Any] | None:
    spec = spec_of(manifest)
    done = [r for r in trial_rows(manifest) if r["status"] == "completed" and r["metric"] is not None]
    if not done:
        return None
    return (max if spec.direction == "maximize" else min)(done, key=lambda r: r["metric"])


def write_best(manifest: Manifest) -> Path | None:
    """best.yaml: a train config with the best trial's values, and how to use it."""
    best = best_row(manifest)
    if best is None:
        return None
    spec = spec_of(manifest)
    config = {k: v for k, v in best["config"].items()}
    config["name"] = f"{manifest.data['name']}-best"
    config["train"] = {k: v for k, v in config["train"].items() if k != "seed"}
    path = manifest.folder / BEST
    header = (
        f"# The best trial of search {manifest.folder.name}: trial {best['trial']}, {spec.metric} "
        f"{best['metric']:.4f} on the validation split.\n"
        f"# Values found: {', '.join(f'{k}={v}' for k, v in best['values'].items())}\n"
        f"# Train it on several seeds and read its test accuracy once, at the end:\n"
        f"#   mlp-lab sweep --config {path} --seeds 5 && mlp-lab compare <that sweep folder>\n"
    )
    atomic_files.atomic_write_text(path, header + yaml.safe_dump(config, sort_keys=False))
    return path


def search_summary(manifest: Manifest, top: int = 5) -> list[str]:
    """The closing lines: the top trials, and what early stopping saved."""
    spec = spec_of(manifest)
    rows = trial_rows(manifest)
    ranked = sorted(
        [r for r in rows if r["metric"] is not None],
        key=lambda r: (r["status"] != "completed", -r["metric"] if spec.direction == "maximize" else r["metric"]),
    )
    lines = [f"top trials by {spec.metric} (validation):"]
    for r in ranked[:top]:
        values = ", ".join(f"{k}={_short(v)}" for k, v in r["values"].items())
        lines.append(
            f"  trial {r['trial']:>3}  {spec.metric} {r['metric']:.4f}  {r['epochs']}/{r['planned']} epochs  "
            f"{r['status']:<9}  {values}"
        )
    pruned = sum(r["status"] == "pruned" for r in rows)
    trained, planned = sum(r["epochs"] for r in rows), sum(r["planned"] for r in rows)
    lines.append(f"{pruned} of {len(rows)} trials pruned, {trained} of {planned} epochs trained")
    return lines


def _short(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def draw_search(folder: Path, path: Path) -> Path:
    """The search's scatter (search_plots.search_figure) of ``folder`` to ``path``."""
    from mlp_lab.search_plots import plot_search
    from mlp_lab.sweeps.folder import load_manifest

    manifest = load_manifest(folder)
    return plot_search(
        trial_rows(manifest),
        spec_of(manifest),
        path,
        title=f"{folder.name}: {spec_of(manifest).metric} against each searched value",
    )
