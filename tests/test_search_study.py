"""A search's study in Optuna's own storage: ``<search folder>/optuna.log`` loads with
``optuna.load_study`` and in optuna-dashboard, holds what the manifest holds, and is made
again from the manifest when it is missing or damaged."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import pytest

from mlp_lab.sweeps import load_manifest
from mlp_lab.sweeps.search_runner import STUDY, open_study, trial_rows

from helpers import cli, write_yaml

BASE = {
    "name": "tiny",
    "data": {"dataset": "synthetic", "synthetic_train_size": 400, "synthetic_test_size": 100},
    "model": {"hidden": [16]},
    "optimizer": {"name": "sgd", "lr": 0.1},
    "train": {"epochs": 4, "batch_size": 50, "device": "cpu"},
}
SPACE = {
    "optimizer.lr": {"log_uniform": [1.0e-5, 1.0]},
    "model.hidden": {"choice": [[16], [8, 8]]},  # a list: carried as its text in Optuna
}
STATES = {"completed": "COMPLETE", "pruned": "PRUNED"}


def _search(tmp_path: Path, **search) -> Path:
    write_yaml(tmp_path / "base.yaml", BASE)
    spec = {"trials": 6, "space": SPACE, "method": "tpe", "seed": 3, **search}
    sfile = write_yaml(tmp_path / "s.yaml", {"name": "lrsearch", "base": "base.yaml", "search": spec})
    res = cli("sweep", sfile, "--runs-dir", tmp_path / "runs", "--quiet", "--jobs", "1")
    assert res.code in (0, 1), res  # 1: a trial diverged (lr near 1), which the search survives
    (folder,) = (tmp_path / "runs").iterdir()
    return folder


def load(folder: Path) -> optuna.Study:
    """The study as a user loads it: Optuna's public API, nothing of mlp-lab's."""
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(folder / STUDY)))
    return optuna.load_study(study_name=load_manifest(folder).data["name"], storage=storage)


def assert_study_is_the_manifest(folder: Path) -> None:
    manifest = load_manifest(folder)
    rows = trial_rows(manifest)
    trials = load(folder).get_trials()
    assert [t.number for t in trials] == [r["trial"] for r in rows]  # each trial once
    for t, row in zip(trials, rows):
        assert t.state.name == STATES.get(row["status"], "FAIL"), (t, row)
        # (a list, such as hidden sizes, is a categorical choice's text in Optuna)
        assert t.params == {k: v if isinstance(v, (float, int, str)) else repr(v) for k, v in row["values"].items()}
        if t.state.name == "COMPLETE":
            assert t.value == pytest.approx(row["metric"])
        runs = [e for e in manifest.runs if e["trial"] == row["trial"]]
        assert t.user_attrs["run_folders"] == [e["folder"] for e in runs]
        assert all((folder / name / "summary.json").is_file() for name in t.user_attrs["run_folders"])
        # Every epoch a single-seed trial reported, as its run folder has it.
        history = [json.loads(line) for line in (folder / runs[0]["folder"] / "metrics.jsonl").read_text().splitlines()]
        assert t.intermediate_values == {r["epoch"]: r["val_acc"] for r in history}


def test_a_search_keeps_its_study_in_optuna_storage_equal_to_the_manifest(tmp_path):
    folder = _search(tmp_path, prune={"rule": "successive_halving", "min_epochs": 1})
    assert (folder / STUDY).is_file()
    assert_study_is_the_manifest(folder)  # (which trials the pruner stopped depends on when it heard them)
    assert "COMPLETE" in {t.state.name for t in load(folder).get_trials()}
    assert load(folder).direction == optuna.study.StudyDirection.MAXIMIZE


def test_a_pruned_trial_is_pruned_in_the_study(tmp_path):
    folder = _search(tmp_path, trials=3)
    data = json.loads((folder / "manifest.json").read_text())
    data["runs"][1].update(status="pruned", reason="pruned by successive_halving after 2 epochs")
    (folder / "manifest.json").write_text(json.dumps(data))
    (folder / STUDY).unlink()
    study, why = open_study(load_manifest(folder))
    assert "missing" in why
    assert [t.state.name for t in load(folder).get_trials()] == ["COMPLETE", "PRUNED", "COMPLETE"]
    assert_study_is_the_manifest(folder)


@pytest.mark.parametrize("harm", ["missing", "damaged", "disagrees"])
def test_a_study_that_is_missing_damaged_or_different_is_rebuilt_from_the_manifest(tmp_path, harm):
    folder = _search(tmp_path, trials=3)
    path = folder / STUDY
    if harm == "missing":
        path.unlink()
    elif harm == "damaged":
        path.write_bytes(path.read_bytes()[:-40] + b"\x00garbage{\n")
    else:  # another search's study in its place
        other = _search(tmp_path / "other", trials=2, seed=11)
        path.write_bytes((other / STUDY).read_bytes())
    study, why = open_study(load_manifest(folder))
    assert why is not None and str(path) in why and "rebuilt from the manifest" in why and "\n" not in why
    assert_study_is_the_manifest(folder)
    if harm != "missing":
        assert (folder / "optuna.log.bad").is_file()  # the old file kept aside, for a look


def test_a_study_that_agrees_is_continued_as_it_is(tmp_path):
    folder = _search(tmp_path, trials=3)
    before = (folder / STUDY).read_bytes()
    study, why = open_study(load_manifest(folder))
    assert why is None
    assert len(study.study.get_trials()) == 3
    assert (folder / STUDY).read_bytes().startswith(before)  # appended to, never rewritten


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


def test_optuna_dashboard_lists_the_study_and_its_trials(tmp_path):
    pytest.importorskip("optuna_dashboard")
    folder = _search(tmp_path, trials=3)
    port = _free_port()
    dashboard = Path(sys.executable).parent / "optuna-dashboard"
    proc = subprocess.Popen(
        [str(dashboard), str(folder / STUDY), "--host", "127.0.0.1", "--port", str(port), "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:  # the server answers once it is up
            try:
                studies = _get(f"http://127.0.0.1:{port}/api/studies")["study_summaries"]
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
                time.sleep(0.1)
        (study,) = studies
        assert study["study_name"] == "lrsearch"
        detail = _get(f"http://127.0.0.1:{port}/api/studies/{study['study_id']}?after=0")
        assert len(detail["trials"]) == 3
        assert {p["name"] for p in detail["trials"][0]["params"]} == {"optimizer.lr", "model.hidden"}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
