"""mlp-lab sweep with a search section: the space checked up front, random and TPE trials,
pruning of hopeless trials, a stopped search resumed, best.yaml, and the pruned status in
compare/show/report. Synthetic data, CPU, seconds each."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
import yaml

from mlp_lab.sweeps import load_manifest, load_sweep

from helpers import assert_user_error, cli, cli_subprocess, start, without_seconds, write_yaml
from test_search_study import assert_study_is_the_manifest

BASE = {
    "name": "tiny",
    "data": {"dataset": "synthetic", "synthetic_train_size": 400, "synthetic_test_size": 100},
    "model": {"hidden": [16]},
    "optimizer": {"name": "sgd", "lr": 0.1},
    "train": {"epochs": 3, "batch_size": 50, "device": "cpu"},
}
SPACE = {"optimizer.lr": {"log_uniform": [1.0e-4, 1.0]}, "model.activation": {"choice": ["relu", "tanh"]}}


def search_file(tmp_path: Path, base: dict | None = None, **search) -> Path:
    write_yaml(tmp_path / "base.yaml", base or BASE)
    return write_yaml(tmp_path / "s.yaml", {"base": "base.yaml", "search": {"trials": 4, "space": SPACE, **search}})


PRUNE_BASE = {
    **BASE,
    "data": {"dataset": "synthetic", "synthetic_train_size": 4000, "synthetic_test_size": 100},
    "model": {"hidden": [128, 128]},
    "train": {"epochs": 6, "batch_size": 50, "device": "cpu"},
}


def test_the_pruner_stops_hopeless_learning_rates_and_lets_the_good_ones_finish(tmp_path):
    sfile = search_file(
        tmp_path,
        base=PRUNE_BASE,
        trials=6,
        space={"optimizer.lr": {"choice": [1.0e-6, 0.1]}},
        prune={"rule": "median", "min_epochs": 1},
    )
    r = cli_subprocess("sweep", sfile, "--quiet", "--jobs", "1", cwd=tmp_path, timeout=300)
    assert r.code == 0, r
    (folder,) = (tmp_path / "runs").iterdir()
    entries = load_manifest(folder).runs
    epochs = {e["index"]: len((folder / e["folder"] / "metrics.jsonl").read_text().splitlines()) for e in entries}
    good = [e for e in entries if e["varies"]["optimizer.lr"] == 0.1]
    bad = [e for e in entries if e["varies"]["optimizer.lr"] == 1e-6]
    assert good and bad
    assert all(e["status"] == "completed" and epochs[e["index"]] == 6 for e in good)
    pruned = [e for e in entries if e["status"] == "pruned"]
    assert pruned and all(e in bad and epochs[e["index"]] < 6 for e in pruned)
    assert "pruned of 6 trials" not in r.stdout and f"{len(pruned)} of 6 trials pruned" in r.stdout
    assert (folder / "best.yaml").exists()
    # compare, show and report know the status
    assert "pruned" in cli("compare", folder).stdout
    assert "pruned" in cli("show", folder / pruned[0]["folder"]).stdout
    assert cli("report", folder, "-o", tmp_path / "r.html").code == 0
    assert "pruned" in (tmp_path / "r.html").read_text()
    # best.yaml is a train config that trains
    best = yaml.safe_load((folder / "best.yaml").read_text())
    assert best["optimizer"]["lr"] == 0.1 and best["data"]["val_split"] == 0.1
    assert cli("train", "--config", folder / "best.yaml", "--set", "train.epochs=1", "--quiet").code == 0


def test_a_tpe_search_asks_trials_as_it_goes(tmp_path):
    sfile = search_file(tmp_path, method="tpe", trials=3)
    plan = load_sweep(sfile)
    assert plan.runs == []  # nothing is known before trials end
    r = cli_subprocess("sweep", sfile, "--quiet", "--jobs", "1", cwd=tmp_path, timeout=300)
    assert r.code == 0, r
    (folder,) = (tmp_path / "runs").iterdir()
    entries = load_manifest(folder).runs
    assert [e["trial"] for e in entries] == [0, 1, 2] and all(e["status"] == "completed" for e in entries)


def test_a_stopped_random_search_resumed_ends_as_one_never_stopped(tmp_path):
    base = {
        **BASE,
        "data": {"dataset": "synthetic", "synthetic_train_size": 1000, "synthetic_test_size": 100},
        "train": {"epochs": 40, "batch_size": 50, "device": "cpu"},
    }
    sfile = search_file(tmp_path, base=base, trials=3, space={"optimizer.lr": {"log_uniform": [0.01, 0.5]}})
    proc = start(
        "sweep", sfile, "--runs-dir", "stopped", "--quiet", "--jobs", "1", cwd=tmp_path, start_new_session=True
    )
    deadline = time.monotonic() + 120
    while True:
        folders = list((tmp_path / "stopped").glob("s-*/manifest.json"))
        if folders:
            entries = load_manifest(folders[0].parent).runs  # the snapshot and the journal's events
            if (
                entries[0]["status"] == "completed"
                and entries[1]["folder"]
                and (folders[0].parent / entries[1]["folder"] / "checkpoint.pt").exists()
            ):
                break
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (out, err)
    (stopped,) = (tmp_path / "stopped").iterdir()
    resumed = cli_subprocess("resume", stopped, "--quiet", cwd=tmp_path, timeout=300)
    assert resumed.code == 0, resumed
    r = cli_subprocess("sweep", sfile, "--runs-dir", "straight", "--quiet", "--jobs", "1", cwd=tmp_path, timeout=300)
    assert r.code == 0, r
    (straight,) = (tmp_path / "straight").iterdir()

    def trials(folder):
        out = []
        for e in load_manifest(folder).runs:
            lines = (folder / e["folder"] / "metrics.jsonl").read_text().splitlines()
            out.append((e["trial"], e["varies"], e["status"], without_seconds([json.loads(x) for x in lines])))
        return out

    assert trials(stopped) == trials(straight)
    assert yaml.safe_load((stopped / "best.yaml").read_text()) == yaml.safe_load((straight / "best.yaml").read_text())
    # The resumed search continued its Optuna study: each trial once, as the manifest has it.
    assert "rebuilt" not in resumed.stderr
    assert_study_is_the_manifest(stopped)
    assert_study_is_the_manifest(straight)


@pytest.fixture
def finished_search(tmp_path) -> Path:
    base = {**BASE, "train": {"epochs": 2, "batch_size": 50, "device": "cpu"}}
    sfile = search_file(
        tmp_path,
        base=base,
        trials=6,
        space={
            "optimizer.lr": {"log_uniform": [1.0e-4, 1.0]},
            "train.batch_size": {"log_int": [16, 128]},
            "model.activation": {"choice": ["relu", "tanh", "sigmoid"]},
        },
    )
    r = cli_subprocess("sweep", sfile, "--quiet", "--jobs", "2", cwd=tmp_path, timeout=300)
    assert r.code == 0, r
    (folder,) = (tmp_path / "runs").iterdir()
    return folder


@pytest.mark.parametrize("refine", [["refine"], ["sweep", "--refine"]], ids=["command", "older-flag"])
def test_refine_narrows_to_what_the_top_trials_span(finished_search, tmp_path, refine):
    from mlp_lab.sweeps.search_runner import trial_rows

    rows = sorted(trial_rows(load_manifest(finished_search)), key=lambda r: -r["metric"])[:3]
    for bad, words in [(["--trials", "0"], ["--trials 0", "1 or more"]), (["--jobs", "0"], ["--jobs 0"])]:
        assert_user_error(cli(*refine, finished_search, *bad, "--dry-run"), *words)
    assert not (finished_search / "refined.yaml").exists()  # a bad option: nothing written
    r = cli(*refine, finished_search, "--top", "3", "--trials", "5", "--dry-run")
    assert r.code == 0, r
    assert "optimizer.lr: log_uniform [0.0001, 1.0] ->" in r.stdout
    refined = yaml.safe_load((finished_search / "refined.yaml").read_text())
    space = refined["search"]["space"]
    lrs = [row["values"]["optimizer.lr"] for row in rows]
    low, high = space["optimizer.lr"]["log_uniform"]
    assert 1e-4 <= low <= min(lrs) and max(lrs) <= high <= 1.0 and (low, high) != (1e-4, 1.0)
    bs = [row["values"]["train.batch_size"] for row in rows]
    assert space["train.batch_size"]["log_int"][0] <= min(bs) and max(bs) <= space["train.batch_size"]["log_int"][1]
    assert set(space["model.activation"]["choice"]) == {row["values"]["model.activation"] for row in rows}
    assert refined["search"]["trials"] == 5 and refined["base"] == "refine-base.yaml"
    r = cli("sweep", finished_search / "refined.yaml", "--dry-run")  # the refined search, rerun as a file
    assert r.code == 0 and "a random search of 5 trials" in r.stdout, r


def test_refine_of_anything_but_a_search_folder_is_one_line(tmp_path):
    write_yaml(tmp_path / "base.yaml", BASE)
    write_yaml(tmp_path / "g.yaml", {"base": "base.yaml", "set": {"train.epochs": 1}})
    assert cli("sweep", "g.yaml", "--quiet").code == 0
    (folder,) = (tmp_path / "runs").iterdir()
    # (this sweep has no grid: the reason given is the one every non-search sweep has)
    assert_user_error(cli("refine", folder), "not a search folder", "no search: section", "refine narrows a finished")
    assert_user_error(cli("confirm", folder), "not a search folder", "no search: section", "a search's top trials")
    assert_user_error(cli("sweep", "--refine", folder), "not a search folder")
    for extra in (["--method", "tpe"], ["--config", "base.yaml"], ["g.yaml"]):  # the older spelling: its own file
        assert_user_error(cli("sweep", "--refine", folder, *extra), "--refine makes its own sweep file")
    assert_user_error(cli("refine", tmp_path / "nowhere"), "no such sweep folder")


def test_a_search_is_compared_and_drawn_on_its_own_metric(finished_search, tmp_path):
    r = cli("compare", finished_search, "--plot", tmp_path / "c.png", "--format", "json")
    assert r.code == 0, r
    assert json.loads(r.stdout)["sort"] == "val_acc"  # never on test
    assert (tmp_path / "c.search.png").read_bytes()[:4] == b"\x89PNG"
    assert cli("report", finished_search, "-o", tmp_path / "r.html").code == 0
    assert "against each searched value" in (tmp_path / "r.html").read_text()


def test_the_notebook_api_runs_a_search_and_its_trials_are_in_the_frames(tmp_path):
    import mlp_lab

    sfile = search_file(tmp_path, trials=3, space={"optimizer.lr": {"log_uniform": [0.01, 0.5]}})
    made = mlp_lab.sweep(sfile, {"train.epochs": 1}, runs_dir=tmp_path / "runs", jobs=1, threads=1)
    assert [r.status for r in made] == ["completed"] * 3
    frame = mlp_lab.runs_frame(made)
    assert sorted(frame["optimizer.lr"]) == sorted(r.varies["optimizer.lr"] for r in load_sweep(sfile).runs)


# --- a search from the command line ---------------------------------------------------


def test_a_search_from_the_command_line_plans_what_its_file_plans(tmp_path):
    from mlp_lab.sweeps.spec import SearchOptions, sweep_from_options

    write_yaml(tmp_path / "tiny.yaml", BASE)
    spec = {
        "trials": 5,
        "method": "random",
        "prune": {"rule": "successive_halving"},
        "space": {"optimizer.lr": {"log_uniform": [1.0e-4, 0.1]}, "model.hidden": {"choice": [[16], [8, 8]]}},
    }
    sfile = write_yaml(tmp_path / "s.yaml", {"name": "tiny", "base": "tiny.yaml", "search": spec, "seeds": 1})
    from_file = load_sweep(sfile)
    options = SearchOptions(
        ["optimizer.lr=log_uniform:1e-4:0.1", "model.hidden=choice:[16],[8,8]"], 5, "random", "successive_halving"
    )
    from_options = sweep_from_options(tmp_path / "tiny.yaml", [], "1", search=options)
    assert from_options.spec.search == from_file.spec.search
    assert [(r.varies, r.seed) for r in from_options.runs] == [(r.varies, r.seed) for r in from_file.runs]
    assert [r.config for r in from_options.runs] == [r.config for r in from_file.runs]

    # The CLI plans the same, and the folder it writes holds the search as a file: --resume
    # and --refine read it as they read a file's.
    printed = cli(
        "sweep",
        "--config",
        "tiny.yaml",
        "--search",
        "optimizer.lr=log_uniform:1e-4:0.1",
        "--search",
        "model.hidden=choice:[16],[8,8]",
        "--trials",
        "5",
        "--prune",
        "successive_halving",
        "--seeds",
        "1",
        "--dry-run",
    )
    assert printed.code == 0, printed
    assert printed.stdout == cli("sweep", "s.yaml", "--dry-run").stdout.replace("s.yaml", "tiny.yaml")
    res = cli(
        "sweep",
        "--config",
        "tiny.yaml",
        "--search",
        "optimizer.lr=log_uniform:1e-4:0.1",
        "--trials",
        "2",
        "--runs-dir",
        "runs",
        "--quiet",
    )
    assert res.code == 0, res
    (folder,) = (tmp_path / "runs").iterdir()
    written = yaml.safe_load((folder / "sweep.yaml").read_text())
    assert written["search"]["space"] == {"optimizer.lr": {"log_uniform": [1.0e-4, 0.1]}}
    assert written["search"]["trials"] == 2
    assert [e["status"] for e in load_manifest(folder).runs] == ["completed", "completed"]
