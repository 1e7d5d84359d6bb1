"""``mlp-lab export mlflow``: run folders as MLflow runs.

Each run folder becomes one MLflow run in one experiment: its config as flat dotted
params (``optimizer.lr``), every per-epoch metric with its epoch as the step and the time
the epoch ended, the final metrics and the ones of the epoch chosen on validation
(``final.*``, ``selected.*``), its status (completed -> FINISHED, failed and diverged ->
FAILED, interrupted and pruned -> KILLED), tags (the folder's id, its sweep folder and seed
group, its seed, the mlp-lab version) and ``config.yaml`` and ``summary.json`` as
artifacts. Exporting again updates the same MLflow run (found by the folder's id tag) and
adds only the epochs it does not have yet: nothing is duplicated. The run folders are only
read. Needs the ``mlflow`` extra.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from mlp_lab import __version__, runs
from mlp_lab.errors import MlpLabError
from mlp_lab.keys import flatten

EXTRA = 'pip install -e ".[mlflow]"'
DEFAULT_URI = "sqlite:///mlflow.db"  # MLflow's own default store, now that its file store is deprecated
FOLDER_TAG = "mlp_lab.run_folder"  # the run folder's id (its name): the key an export is updated by
STATUSES = {
    "completed": "FINISHED",
    "failed": "FAILED",
    "diverged": "FAILED",
    "interrupted": "KILLED",
    "pruned": "KILLED",
    "running": "RUNNING",
}
EPOCH_METRICS = ("train_loss", "train_acc", "test_loss", "test_acc", "val_loss", "val_acc", "lr", "seconds")


@dataclass
class Exported:
    folder: Path
    run_id: str
    new: bool


def export_mlflow(
    paths: Iterable[str | Path], tracking_uri: str = DEFAULT_URI, experiment: str = "mlp-lab"
) -> list[Exported]:
    """Write every run under ``paths`` to the MLflow tracking store at ``tracking_uri``."""
    folders, warnings = runs.discover_runs([Path(p) for p in paths])
    if warnings:  # a folder that is not a run: said before anything is written
        raise MlpLabError(f"{warnings[0]}; nothing exported")
    if not folders:
        raise MlpLabError("no runs to export: pass run folders or folders holding them, e.g. runs/")
    with _quick_and_quiet():
        client, experiment_id = _open(tracking_uri, experiment)
        cells: dict[Path, dict[str, str] | None] = {}  # sweep folder -> {run folder: cell}, each read once
        return [_export_run(client, experiment_id, runs.load_run(folder), cells) for folder in folders]


@contextmanager
def _quick_and_quiet() -> Iterator[None]:
    """For the export's length, and as they were after (a notebook goes on using MLflow): a
    server that does not answer is one line now, not minutes of retries; MLflow's INFO lines
    (creating a store's tables) do not bury the one line the command prints."""
    settings = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
    before = {name: os.environ.get(name) for name in settings}
    loggers = [logging.getLogger(name) for name in ("mlflow", "alembic")]
    levels = [logger.level for logger in loggers]
    for name, value in settings.items():
        os.environ.setdefault(name, value)  # the user's own setting stands
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for name, was in before.items():
            if was is None:  # (a value the user had set was never changed)
                os.environ.pop(name, None)
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _open(tracking_uri: str, experiment: str) -> tuple[Any, str]:
    """The tracking store's client and the experiment's id (made when it is new)."""
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise MlpLabError(f"export mlflow needs MLflow: {EXTRA}") from None
    try:
        client = MlflowClient(tracking_uri=tracking_uri)
        found = client.get_experiment_by_name(experiment)
        return client, str(found.experiment_id if found is not None else client.create_experiment(experiment))
    except Exception as e:  # noqa: BLE001 - any store that cannot be reached or opened means the same
        if "MLFLOW_ALLOW_FILE_STORE" in str(e):  # (its own words run to 500 characters)
            raise MlpLabError(
                f"--tracking-uri {tracking_uri}: MLflow refuses a folder as its store (the file store is "
                "deprecated); give a database such as sqlite:///mlflow.db (mlflow migrate-filestore moves an old "
                "store into one), or set MLFLOW_ALLOW_FILE_STORE=true to use the folder"
            ) from None
        detail = " ".join(str(e).split())[:200]
        raise MlpLabError(
            f"--tracking-uri {tracking_uri}: cannot open the MLflow store ({e.__class__.__name__}: {detail})"
        ) from None


def _export_run(
    client: Any, experiment_id: str, run: runs.RunRecord, cells: dict[Path, dict[str, str] | None]
) -> Exported:
    from mlflow.entities import Metric, Param, RunTag

    summary, config = run.summary or {}, run.config or {}
    existing = client.search_runs([experiment_id], filter_string=f"tags.`{FOLDER_TAG}` = '{run.name}'", max_results=1)
    if existing:
        run_id, new = existing[0].info.run_id, False
    else:
        created = client.create_run(experiment_id, start_time=_ms(summary.get("started_at")), run_name=run.name)
        run_id, new = created.info.run_id, True
    ended = _ms(summary.get("finished_at")) or 0
    metrics = _epoch_metrics(run, Metric) + [Metric(k, v, ended, len(run.metrics)) for k, v in _ends(run).items()]
    if not new:  # what an earlier export logged stays; only the steps it did not have are added
        have = {key: {m.step for m in client.get_metric_history(run_id, key)} for key in {m.key for m in metrics}}
        metrics = [m for m in metrics if m.step not in have[m.key]]
    params = [Param(k, _text(v)) for k, v in flatten(config).items()] if new else []  # params never change
    parent = run.path.parent
    if parent not in cells:
        cells[parent] = _cells_of(parent)
    tags = [RunTag(k, v) for k, v in _tags(run, cells[parent]).items()]
    client.log_batch(run_id, params=params, tags=tags)
    for start in range(0, len(metrics), 1000):  # MLflow takes at most 1000 metrics a batch
        client.log_batch(run_id, metrics=metrics[start : start + 1000])
    for name in (runs.CONFIG, runs.SUMMARY):
        if (run.path / name).is_file():
            client.log_artifact(run_id, str(run.path / name))
    status = STATUSES.get(run.status, "FAILED")
    if status == "RUNNING":
        client.update_run(run_id, status="RUNNING")
    else:
        client.set_terminated(run_id, status=status, end_time=_ms(summary.get("finished_at")))
    return Exported(run.path, run_id, new)


def _epoch_metrics(run: runs.RunRecord, metric: Any) -> list[Any]:
    """Every per-epoch number, at its epoch, timed when that epoch ended."""
    start = _ms((run.summary or {}).get("started_at")) or 0
    out, elapsed = [], 0.0
    for record in run.metrics:
        elapsed += float(record.get("seconds") or 0.0)
        for key in EPOCH_METRICS:
            value = record.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out.append(metric(key, float(value), start + int(1000 * elapsed), int(record["epoch"])))
    return out


def _ends(run: runs.RunRecord) -> dict[str, float]:
    """The last epoch's metrics, and with a validation split those of the epoch with the
    best validation accuracy (the choice a user may make; the test set plays no part)."""
    out: dict[str, float] = {}
    if not run.metrics:
        return out
    for key, value in run.metrics[-1].items():
        if key in EPOCH_METRICS and _finite(value):
            out[f"final.{key}"] = float(value)
    validated = [r for r in run.metrics if _finite(r.get("val_acc"))]
    if validated:
        chosen = max(validated, key=lambda r: r["val_acc"])  # the first of equals: the earliest epoch
        out["selected.epoch"] = float(chosen["epoch"])
        out.update({f"selected.{k}": float(v) for k, v in chosen.items() if k in EPOCH_METRICS and _finite(v)})
    return out


def _cells_of(folder: Path) -> dict[str, str] | None:
    """A sweep folder's {run folder: cell}, from its manifest; None for a folder that is no
    sweep, {} for a damaged manifest (the config's name then stands for the group)."""
    manifest = folder / "manifest.json"
    if not manifest.is_file():
        return None
    try:
        return {e["folder"]: str(e["cell"]) for e in json.loads(manifest.read_text())["runs"] if e.get("folder")}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _tags(run: runs.RunRecord, cells: dict[str, str] | None) -> dict[str, str]:
    summary, config = run.summary or {}, run.config or {}
    tags = {
        FOLDER_TAG: run.name,
        "mlp_lab.status": run.status,
        "mlp_lab.version": __version__,
        "mlp_lab.seed": str(config.get("train", {}).get("seed", "")),
        "mlp_lab.seed_group": config.get("name", run.name),
        "mlflow.note.content": str(summary.get("message") or ""),
    }
    if cells is not None:  # a sweep's run: its sweep folder, and its cell as the seed group
        tags["mlp_lab.sweep_folder"] = run.path.parent.name
        tags["mlp_lab.seed_group"] = cells.get(run.name) or tags["mlp_lab.seed_group"]
    return {k: v for k, v in tags.items() if v != ""}


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _text(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v)


def _ms(stamp: Any) -> int | None:
    """An ISO time (summary.json's) in milliseconds since the epoch, as MLflow keeps time."""
    try:
        return int(datetime.fromisoformat(str(stamp)).timestamp() * 1000)
    except ValueError:
        return None
