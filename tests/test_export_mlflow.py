"""mlp-lab export mlflow: a sweep folder read back through MlflowClient equals its run
folders, twice without a copy; bad inputs are one line."""

from __future__ import annotations

import json
import logging
import os
import socket
from pathlib import Path

import pytest
import yaml

from mlp_lab import __version__
from mlp_lab.keys import flatten

from helpers import SWEEP_TINY, assert_user_error, cli, merge, write_yaml

mlflow = pytest.importorskip("mlflow")
from mlflow.tracking import MlflowClient  # noqa: E402

STATUS = {"completed": "FINISHED", "failed": "FAILED", "diverged": "FAILED", "interrupted": "KILLED"}


@pytest.fixture(scope="module")
def sweep_folder(tmp_path_factory) -> Path:
    """A grid of two cells x two seeds with a validation split; one cell diverges."""
    root = tmp_path_factory.mktemp("mlflow-sweep")
    base = {"train": {"epochs": 3}, "data": {"val_split": 0.2}, "optimizer": {"name": "sgd", "lr": 0.05}}
    write_yaml(root / "tiny.yaml", merge(SWEEP_TINY, base))
    write_yaml(root / "s.yaml", {"base": "tiny.yaml", "grid": {"optimizer.lr": [0.05, 1.0e6]}, "seeds": 2})
    res = cli("sweep", root / "s.yaml", "--runs-dir", root / "runs", "--quiet", "--jobs", "1")
    assert res.code == 1, res  # the huge learning rate diverges: exit 1, as a sweep with a diverged run
    (folder,) = (root / "runs").iterdir()
    return folder


def _export(folder: Path, uri: str, *extra: str):
    return cli("export", "mlflow", folder, "--tracking-uri", uri, "--experiment", "lesson", *extra)


def _runs(client: MlflowClient) -> dict[str, object]:
    experiment = client.get_experiment_by_name("lesson")
    found = client.search_runs([experiment.experiment_id], max_results=1000)
    return {r.data.tags["mlp_lab.run_folder"]: r for r in found}


def test_a_sweep_exports_to_mlflow_and_reads_back_equal_twice_without_copies(sweep_folder, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    first = _export(sweep_folder, uri)
    assert first.code == 0, first
    assert "exported 4 runs" in first.stderr and "(4 new, 0 updated)" in first.stderr
    again = _export(sweep_folder, uri)
    assert again.code == 0 and "(0 new, 4 updated)" in again.stderr, again

    client = MlflowClient(tracking_uri=uri)
    exported = _runs(client)
    manifest = json.loads((sweep_folder / "manifest.json").read_text())["runs"]
    assert sorted(exported) == sorted(e["folder"] for e in manifest)  # each run once, after two exports
    for entry in manifest:
        folder = sweep_folder / entry["folder"]
        run = exported[entry["folder"]]
        config = yaml.safe_load((folder / "config.yaml").read_text())
        summary = json.loads((folder / "summary.json").read_text())
        lines = (folder / "metrics.jsonl").read_text().splitlines() if (folder / "metrics.jsonl").exists() else []
        history = [json.loads(line) for line in lines]  # (a run that diverged in its first epoch has none)

        expected = {k: v if isinstance(v, str) else json.dumps(v) for k, v in flatten(config).items()}
        assert run.data.params == expected
        assert run.info.status == STATUS[summary["status"]]
        assert run.data.tags["mlp_lab.sweep_folder"] == sweep_folder.name
        assert run.data.tags["mlp_lab.seed"] == str(config["train"]["seed"])
        assert run.data.tags["mlp_lab.seed_group"] == entry["cell"]
        assert run.data.tags["mlp_lab.version"] == __version__
        for key in ("train_loss", "test_acc", "val_acc", "lr", "seconds"):
            points = client.get_metric_history(run.info.run_id, key)
            assert [(m.step, m.value) for m in points] == [
                (r["epoch"], pytest.approx(r[key])) for r in history if key in r
            ]
            assert all(b.timestamp >= a.timestamp for a, b in zip(points, points[1:]))  # the time each epoch ended
        if summary["status"] == "completed":
            chosen = max(history, key=lambda r: r["val_acc"])
            assert run.data.metrics["selected.epoch"] == chosen["epoch"]
            assert run.data.metrics["selected.test_acc"] == pytest.approx(chosen["test_acc"])
            assert run.data.metrics["final.test_acc"] == pytest.approx(history[-1]["test_acc"])
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert artifacts == {"config.yaml", "summary.json"}
    assert {r.info.status for r in exported.values()} == {"FINISHED", "FAILED"}


def test_an_export_leaves_mlflows_settings_as_it_found_them(sweep_folder, tmp_path, monkeypatch):
    # In a notebook that goes on using MLflow, the export's quick-failing requests and quiet
    # logs were left in place for good (conftest checks the environment after every test).
    from mlp_lab.export_mlflow import export_mlflow

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "120")  # the user's own
    logging.getLogger("mlflow").setLevel(logging.DEBUG)
    try:
        export_mlflow([sweep_folder], f"sqlite:///{tmp_path / 'mlflow.db'}", "lesson")
        assert logging.getLogger("mlflow").level == logging.DEBUG
    finally:
        logging.getLogger("mlflow").setLevel(logging.NOTSET)
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "120" and "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ


def test_no_runs_a_folder_that_is_not_a_run_and_an_unreachable_store_are_one_line(tmp_path, sweep_folder):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    (tmp_path / "empty").mkdir()
    assert_user_error(_export(tmp_path / "empty", uri), "empty", "not a run folder")
    (tmp_path / "notes.txt").write_text("hello")
    assert_user_error(_export(tmp_path / "notes.txt", uri), "notes.txt", "not a run folder")
    with socket.socket() as s:  # a port on this machine that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert_user_error(_export(sweep_folder, f"http://127.0.0.1:{port}"), "--tracking-uri", "cannot open")
    (tmp_path / "a-file").write_text("not a folder")
    assert_user_error(_export(sweep_folder, f"sqlite:///{tmp_path / 'a-file' / 'm.db'}"), "cannot open")
    assert_user_error(_export(sweep_folder, str(tmp_path / "mlruns")), "refuses a folder", "sqlite:///mlflow.db")
    assert not (tmp_path / "mlflow.db").exists()
