"""mlp-lab sweep running: the local backend, failures, Ctrl-C and resume, the closing table
(its plan and bad input: test_sweep_plan.py)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import yaml

from mlp_lab.sweeps import load_manifest, load_sweep
from mlp_lab.sweeps.folder import held

from helpers import (
    assert_user_error,
    cli,
    cli_subprocess,
    start,
    sweep_file,
    wait_for,
    without_seconds,
    write_yaml,
)

REPO = Path(__file__).resolve().parents[1]


# --- running ----------------------------------------------------------------------------


def test_two_jobs_run_every_run_into_one_sweep_folder(tmp_path, base):
    r = cli_subprocess(
        "sweep",
        sweep_file(tmp_path, grid={"model.activation": ["relu", "tanh"]}, seeds=2),
        "--jobs",
        "2",
        "--threads",
        "1",
        "--runs-dir",
        tmp_path / "runs",
        cwd=tmp_path,
        timeout=300,
    )
    assert r.code == 0, r
    (folder,) = (tmp_path / "runs").iterdir()
    manifest = load_manifest(folder)
    assert [e["status"] for e in manifest.runs] == ["completed"] * 4
    assert all((folder / e["folder"] / "summary.json").is_file() for e in manifest.runs)
    assert yaml.safe_load((folder / "sweep.yaml").read_text())["grid"] == {"model.activation": ["relu", "tanh"]}
    assert "[4/4] completed" in r.stdout and "2 groups of runs that differ only in their seed" in r.stdout
    assert "sweep s-" in r.stdout and "4 completed" in r.stdout
    doc = json.loads(cli("compare", folder, "--format", "json").stdout)  # compare reads the sweep unchanged
    assert [row["n"] for row in doc["rows"]] == [2, 2]
    doc = json.loads(cli("compare", tmp_path / "runs", "--format", "json").stdout)  # and the folder holding it
    assert [row["n"] for row in doc["rows"]] == [2, 2]


def test_the_closing_table_fits_the_terminal_as_compares_does(tmp_path, base, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")  # an 80-column terminal (a pipe without COLUMNS gets every column)
    grid = {"optimizer.lr": [0.05, 0.123456], "model.hidden": [[16], [8, 8]], "model.norm": ["none", "batchnorm"]}
    r = cli("sweep", sweep_file(tmp_path, grid=grid), "--quiet", "--jobs", "2", "--threads", "1")
    assert r.code == 0, r
    (folder,) = (tmp_path / "runs").iterdir()
    compared = cli("compare", folder).stdout  # what compare prints in that terminal: the table, the verdict
    assert compared.rstrip() in r.stdout, (compared, r.stdout)
    assert max(len(line) for line in compared.splitlines()) <= 80, compared


def test_a_run_killed_outright_is_failed_and_the_others_complete(tmp_path, base):
    from mlp_lab import sweeps
    from mlp_lab.sweeps.views import LineView

    folder = sweeps.start_sweep(
        load_sweep(sweep_file(tmp_path, grid={"model.activation": ["relu", "tanh"]})), tmp_path / "runs"
    ).folder
    lines = []

    class KillTanh(LineView):  # SIGKILL the tanh run's process as soon as it is started
        def started(self, index, place):
            if load_manifest(folder).runs[index]["config"]["name"] == "tanh":
                os.kill(place.pid, signal.SIGKILL)

        def ended(self, entry, finished, total):
            lines.append(entry)

    outcome = sweeps.run_sweep(folder, jobs=2, threads=1, watch=KillTanh(folder))
    assert outcome.counts == {"completed": 1, "failed": 1}
    by_name = {e["config"]["name"]: e for e in load_manifest(folder).runs}
    assert by_name["relu"]["status"] == "completed"
    assert by_name["tanh"]["status"] == "failed" and by_name["tanh"]["reason"] == "process killed by SIGKILL"
    assert len(lines) == 2
    r = cli("sweep", "--resume", folder, "--quiet")  # (the older spelling) the failed run starts again, and completes
    assert r.code == 0, r
    assert [e["status"] for e in load_manifest(folder).runs] == ["completed", "completed"]


def test_ctrl_c_then_resume_ends_with_the_uninterrupted_metrics(tmp_path, base):
    # Three runs of 150 short epochs (a few seconds each): Ctrl-C once the first has completed
    # lands in the second, and the third has not started.
    doc = {
        "base": "tiny.yaml",
        "set": {"train.epochs": 150, "data.synthetic_train_size": 1000},
        "grid": {"model.activation": ["relu", "tanh", "elu"]},
    }
    sfile = write_yaml(tmp_path / "s.yaml", doc)
    # Its own process group, as a terminal gives: Ctrl-C reaches the sweep and its runs alike.
    command = ["sweep", sfile, "--runs-dir", tmp_path / "stopped", "--quiet", "--jobs", "1"]
    proc = start(*command, cwd=tmp_path, start_new_session=True)
    folder_of = lambda: next(iter((tmp_path / "stopped").glob("s-*")), None)  # noqa: E731

    def one_run_done_another_going():
        folder = folder_of()
        if folder is None or not (folder / "manifest.json").exists():
            return False
        entries = load_manifest(folder).runs  # the snapshot and the journal's events
        running = [e for e in entries if e["status"] == "running" and e["folder"]]
        return any(e["status"] == "completed" for e in entries) and any(
            (folder / e["folder"] / "metrics.jsonl").exists() for e in running
        )

    wait_for(one_run_done_another_going, proc)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (out, err)
    folder = folder_of()
    assert f"continue with: mlp-lab resume {folder}" in err
    statuses = [e["status"] for e in load_manifest(folder).runs]
    assert "interrupted" in statuses and "pending" in statuses

    # A second process cannot drive the same sweep at once.
    with held(folder):
        assert_user_error(cli("resume", folder), "is being run by process")

    r = cli_subprocess("resume", folder, "--quiet", cwd=tmp_path, timeout=300)
    assert r.code == 0, r
    resumed = load_manifest(folder).runs
    assert [e["status"] for e in resumed] == ["completed"] * 3

    r = cli_subprocess(
        "sweep", sfile, "--runs-dir", tmp_path / "straight", "--quiet", "--jobs", "1", cwd=tmp_path, timeout=300
    )
    assert r.code == 0, r
    straight = load_manifest(next((tmp_path / "straight").iterdir())).runs

    def metrics(root, entry):
        lines = (root / entry["folder"] / "metrics.jsonl").read_text().splitlines()
        return without_seconds([json.loads(x) for x in lines])

    for a, b in zip(resumed, straight):
        assert (a["cell"], a["seed"]) == (b["cell"], b["seed"])
        assert metrics(folder, a) == metrics(next((tmp_path / "straight").iterdir()), b)
    assert_user_error(cli("resume", folder), "every run of this sweep has ended")
