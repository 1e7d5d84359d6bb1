"""The sweep under the faults people meet: a driver killed outright, a run that leaves no
log, a script without a main guard, a hand-edited manifest, a resume that forgets where
the data is, --set on a key the sweep varies, a full disk."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from mlp_lab import run_lock, runs, sweeps
from mlp_lab.sweeps import load_manifest, load_sweep
from mlp_lab.sweeps.watch import Watch

from fakedata import make_idx_dataset
from helpers import (
    MLP_LAB,
    REPO,
    SWEEP_TINY,
    assert_user_error,
    cli,
    cli_subprocess,
    merge,
    offline_env,
    start,
    wait_for,
    without_seconds,
    write_yaml,
)

TINY = merge(SWEEP_TINY, {})  # a copy: a test may change its own


def alive(pid: int) -> bool:
    return not run_lock.process_gone({"pid": pid})


def _metrics(folder: Path, entry: dict) -> list[dict]:
    return without_seconds(
        [json.loads(x) for x in (folder / entry["folder"] / "metrics.jsonl").read_text().splitlines()]
    )


# --- the driver killed outright ------------------------------------------------------------


def test_sigkill_of_the_driver_ends_its_runs_and_an_immediate_resume_trains_nothing_twice(tmp_path):
    write_yaml(tmp_path / "tiny.yaml", TINY)
    sfile = write_yaml(
        tmp_path / "s.yaml",
        {
            "base": "tiny.yaml",
            "set": {"train.epochs": 120, "data.synthetic_train_size": 1000},
            "grid": {"model.activation": ["relu", "tanh", "elu"]},
        },
    )
    command = ["sweep", sfile, "--runs-dir", tmp_path / "killed", "--quiet", "--jobs", "2", "--threads", "1"]
    proc = start(*command, cwd=tmp_path, start_new_session=True)
    folder_of = lambda: next(iter((tmp_path / "killed").glob("s-*")), None)  # noqa: E731

    def two_training_with_a_checkpoint():
        folder = folder_of()
        if folder is None or not (folder / "manifest.json").exists():
            return False
        entries = load_manifest(folder).runs  # the snapshot and the journal's events
        going = [e for e in entries if e["status"] == "running" and e["folder"]]
        return len(going) == 2 and all((folder / e["folder"] / "checkpoint.pt").exists() for e in going)

    wait_for(two_training_with_a_checkpoint, proc=proc)
    folder = folder_of()
    before = load_manifest(folder).runs
    pids = [e["pid"] for e in before if e["status"] == "running"]
    assert len(pids) == 2 and all(alive(p) for p in pids)
    os.kill(proc.pid, signal.SIGKILL)  # the driver alone: its runs are not told
    proc.communicate(timeout=30)
    killed_at = time.monotonic()

    # Resume at once, while the orphaned runs may still be ending.
    resume = start("resume", folder, "--quiet", cwd=tmp_path)
    wait_for(lambda: not any(alive(p) for p in pids), timeout=15)
    assert time.monotonic() - killed_at < 15  # no training process of the old sweep is left
    out, err = resume.communicate(timeout=300)
    assert resume.returncode == 0, (out, err)

    after = load_manifest(folder).runs
    assert [e["status"] for e in after] == ["completed"] * 3
    for b, a in zip(before, after):
        if b["folder"]:  # a run that had started kept its folder and continued from its checkpoint
            assert a["folder"] == b["folder"]
            assert runs.load_run(folder / a["folder"]).summary.get("resumed_at_epoch", 1) > 1
    assert sorted(p.name for p in folder.iterdir() if runs.is_run_dir(p)) == sorted(e["folder"] for e in after)

    straight = cli_subprocess(
        "sweep",
        sfile,
        "--runs-dir",
        tmp_path / "straight",
        "--quiet",
        "--jobs",
        "2",
        "--threads",
        "1",
        cwd=tmp_path,
        timeout=300,
    )
    assert straight.code == 0, straight
    sfolder = next((tmp_path / "straight").iterdir())
    for a, s in zip(after, load_manifest(sfolder).runs):
        assert _metrics(folder, a) == _metrics(sfolder, s)


# --- one run's trouble is that run's --------------------------------------------------------


def test_a_run_that_exits_before_opening_its_log_is_failed_and_the_sweep_goes_on(tmp_path, monkeypatch):
    from mlp_lab.sweeps import worker

    write_yaml(tmp_path / "tiny.yaml", TINY)
    plan = load_sweep(
        write_yaml(tmp_path / "s.yaml", {"base": "tiny.yaml", "grid": {"model.activation": ["relu", "tanh"]}})
    )
    folder = sweeps.start_sweep(plan, tmp_path / "runs").folder
    real = worker.process

    def broken_first(run_dir, threads, data_dir, resume, log):
        if "relu" in run_dir.name:  # exits with code 3 before it opens its log or writes anything
            proc = multiprocessing.get_context("fork").Process(target=os._exit, args=(3,))
            proc.start()
            return proc
        return real(run_dir, threads, data_dir, resume, log)

    monkeypatch.setattr(worker, "process", broken_first)
    outcome = sweeps.run_sweep(folder, jobs=1, threads=1)
    entries = load_manifest(folder).runs
    assert outcome.counts == {"failed": 1, "completed": 1}
    assert entries[0]["status"] == "failed" and "exited with code 3 and left no log" in entries[0]["reason"]


def test_a_garbled_summary_is_that_runs_failure(tmp_path, monkeypatch):
    from mlp_lab.sweeps import local

    write_yaml(tmp_path / "tiny.yaml", TINY)
    folder = sweeps.start_sweep(
        load_sweep(write_yaml(tmp_path / "s.yaml", {"base": "tiny.yaml", "seeds": 2})), tmp_path / "runs"
    ).folder
    real = local._record

    def garble(manifest, r):
        if r.index == 0:
            (r.folder / "summary.json").write_text("{not json", encoding="utf-8")
        return real(manifest, r)

    monkeypatch.setattr(local, "_record", garble)
    outcome = sweeps.run_sweep(folder, jobs=1, threads=1)
    assert outcome.counts == {"failed": 1, "completed": 1}
    assert load_manifest(folder).runs[0]["status"] == "failed"


# --- the documentation's notebook example as a plain script ------------------------------------


def test_the_api_pages_python_example_runs_as_a_script_without_a_main_guard(tmp_path):
    text = (REPO / "docs" / "api.md").read_text(encoding="utf-8")
    block = text.split("```python\n", 1)[1].split("```", 1)[0]
    assert "mlp_lab.sweep(" in block and "__main__" not in block
    # The configs it names, on synthetic data, so that it runs here in seconds.
    small = {
        "data": {"dataset": "synthetic", "synthetic_train_size": 200, "synthetic_test_size": 50},
        "model": {"hidden": [16]},
        "train": {"batch_size": 50, "device": "cpu"},
    }
    write_yaml(tmp_path / "configs" / "relu_adam.yaml", {"name": "relu_adam", **small})
    write_yaml(
        tmp_path / "configs" / "relu_sgd.yaml", {"name": "relu_sgd", **small, "optimizer": {"name": "sgd", "lr": 0.1}}
    )
    sweep = yaml.safe_load((REPO / "configs" / "sweeps" / "batchnorm.yaml").read_text())
    sweep["set"] = {"model.hidden": [16, 16]}
    sweep["base"] = "../relu_sgd.yaml"  # the small one beside it, not the shipped one
    write_yaml(tmp_path / "configs" / "sweeps" / "batchnorm.yaml", sweep)
    (tmp_path / "example.py").write_text(block.replace("run.frame()", "print(run.frame())"), encoding="utf-8")
    env = offline_env()
    r = subprocess.run(
        [str(Path(MLP_LAB[0]).parent / "python") if len(MLP_LAB) == 1 else MLP_LAB[0], "example.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "bootstrapping phase" not in r.stderr
    made = [p for p in (tmp_path / "runs").rglob("summary.json")]
    assert len(made) == 1 + 12  # the train run and the sweep's 12: nothing ran twice
    assert len([p for p in (tmp_path / "runs").iterdir() if p.name.startswith("batchnorm-")]) == 1


# --- the manifest is checked; the run folders are the truth ------------------------------------


@pytest.fixture
def finished_sweep(tmp_path) -> Path:
    write_yaml(tmp_path / "tiny.yaml", TINY)
    plan = load_sweep(write_yaml(tmp_path / "s.yaml", {"base": "tiny.yaml", "seeds": 2}))
    folder = sweeps.start_sweep(plan, tmp_path / "runs").folder
    assert sweeps.run_sweep(folder, jobs=1, threads=1).counts == {"completed": 2}
    return folder


def _edit(sweep_dir: Path, index: int, **fields) -> None:
    data = json.loads((sweep_dir / "manifest.json").read_text())
    data["runs"][index].update(fields)
    (sweep_dir / "manifest.json").write_text(json.dumps(data))


@pytest.mark.parametrize(
    "fields,words",
    [
        ({"status": "weird"}, ("run 0", "status 'weird' is not one of", "compare")),
        ({"folder": "../../elsewhere"}, ("run 0", "folder '../../elsewhere'", "not the name of a run folder")),
        ({"seed": "zero"}, ("run 0", "seed 'zero' is not an integer")),
        ({"seed": 5}, ("run 0", "seed 5 but its config trains seed 0")),
        ({"config": {"model": {"activation": "nope"}}}, ("run 0", "model.activation")),
    ],
    ids=["status", "folder", "seed-type", "seed-config", "config"],
)
def test_a_hand_edited_manifest_is_one_line_and_keeps_every_folder(finished_sweep, fields, words):
    _edit(finished_sweep, 0, status="pending")  # so that there is something to resume
    _edit(finished_sweep, 0, **fields)
    folders = sorted(p.name for p in finished_sweep.iterdir())
    assert_user_error(cli("resume", finished_sweep), *words)
    assert sorted(p.name for p in finished_sweep.iterdir()) == folders
    assert cli("compare", finished_sweep).code == 0  # compare still reads the folder


def test_a_completed_folder_is_never_retrained_whatever_the_manifest_says(finished_sweep):
    entry = load_manifest(finished_sweep).runs[0]
    summary_before = (finished_sweep / entry["folder"] / "summary.json").read_text()
    for status in ("failed", "interrupted", "pending", "running"):
        _edit(finished_sweep, 0, status=status)
        r = cli("resume", finished_sweep, "--quiet")
        assert r.code == 0, r
        assert (finished_sweep / entry["folder"] / "summary.json").read_text() == summary_before
        assert load_manifest(finished_sweep).runs[0]["status"] == "completed"


def test_resume_waits_for_a_run_whose_process_still_writes_its_folder(finished_sweep, monkeypatch):
    from mlp_lab.sweeps import folder as folder_mod

    entry = load_manifest(finished_sweep).runs[1]
    run = finished_sweep / entry["folder"]
    s = json.loads((run / "summary.json").read_text())
    # A live process holding the run's lock, as a training process does (util-linux's flock).
    sleeper = subprocess.Popen(["flock", str(run / run_lock.RUN_LOCK), "sleep", "30"])
    wait_for(lambda: run_lock.run_lock_held(run), proc=sleeper)
    try:  # the run's summary says running, in a live process: nothing may touch it
        s.update(status="running", pid=sleeper.pid, host=None)
        (run / "summary.json").write_text(json.dumps(s))
        _edit(finished_sweep, 1, status="running")
        monkeypatch.setattr(folder_mod.settle, "__defaults__", (0.5,))
        assert_user_error(cli("resume", finished_sweep), "still being trained by process", "then resume")
        assert json.loads((run / "summary.json").read_text())["status"] == "running"
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_strangers_pid_in_a_running_summary_does_not_stop_a_resume(finished_sweep):
    """A run killed outright leaves its summary saying running and its lock file, free; its
    pid may since belong to an unrelated live process (after a crash or a reboot)."""
    entry = load_manifest(finished_sweep).runs[1]
    run = finished_sweep / entry["folder"]
    stranger = subprocess.Popen(["sleep", "30"])
    try:
        s = json.loads((run / "summary.json").read_text())
        s.update(status="running", pid=stranger.pid, host=None)
        (run / "summary.json").write_text(json.dumps(s))
        (run / run_lock.RUN_LOCK).write_text("")  # left by the killed run: nobody holds it
        _edit(finished_sweep, 1, status="running", pid=stranger.pid)
        assert run_lock.run_lock_held(run) is False
        res = cli("resume", finished_sweep, "--quiet")
        assert res.code == 0, res  # no wait for the stranger, no refusal
        assert [e["status"] for e in load_manifest(finished_sweep).runs] == ["completed", "completed"]
        assert json.loads((run / "summary.json").read_text())["status"] == "completed"
        assert stranger.poll() is None  # and the stranger was left alone
    finally:
        stranger.kill()
        stranger.wait()


def test_a_ray_tasks_scratch_left_by_a_killed_worker_goes_with_the_next_task(tmp_path, monkeypatch):
    from mlp_lab.sweeps.ray_backend import SCRATCH_PREFIX, scratch_folder

    task = "from mlp_lab.sweeps.ray_backend import scratch_folder\nwith scratch_folder() as d:\n print(d, flush=True)\n input()"
    env = dict(os.environ, TMPDIR=str(tmp_path))

    def start_task() -> tuple[subprocess.Popen, Path]:
        proc = subprocess.Popen(
            [sys.executable, "-c", task], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        return proc, Path(proc.stdout.readline().strip())

    killed, dead = start_task()
    (dead / "checkpoint.pt").write_bytes(b"x" * 1000)
    killed.kill()  # SIGKILL: its `with` never ends
    killed.wait()
    alive, live = start_task()
    try:
        assert not dead.exists() and live.is_dir()  # the second task removed the first's
        monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
        (tmp_path / f"{SCRATCH_PREFIX}nolock").mkdir()  # not one of ours yet, or from an older mlp-lab
        with scratch_folder() as mine:
            assert live.is_dir() and mine.is_dir() and (tmp_path / f"{SCRATCH_PREFIX}nolock").is_dir()
        assert not mine.exists()
    finally:
        alive.communicate("\n")
    assert not live.exists()  # a task that ends removes its own


def test_two_resumes_of_one_folder_run_it_once(finished_sweep, tmp_path):
    """A second resume while the first holds the folder is one line, exit 2; the first
    runs every run once. (The first is paused with SIGSTOP while the second tries: no
    race of timings decides what happens.)"""
    for index, entry in enumerate(load_manifest(finished_sweep).runs):  # both runs to do again
        shutil.rmtree(finished_sweep / entry["folder"])
        _edit(finished_sweep, index, status="pending", folder=None)

    def resume():
        return start("resume", finished_sweep, "--quiet", cwd=tmp_path)

    first = resume()
    wait_for(lambda: _sweep_lock_held(finished_sweep), proc=first)
    os.kill(first.pid, signal.SIGSTOP)
    try:
        second = resume()
        out, err = second.communicate(timeout=120)
        assert second.returncode == 2, (out, err)
        assert "is being run by process" in err and len(err.strip().splitlines()) == 1
    finally:
        os.kill(first.pid, signal.SIGCONT)
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, (out, err)
    assert [e["status"] for e in load_manifest(finished_sweep).runs] == ["completed", "completed"]
    assert len([p for p in finished_sweep.iterdir() if (p / "summary.json").exists()]) == 2  # no run twice
    assert not (finished_sweep / ".sweep.lock").exists()


def _sweep_lock_held(folder: Path) -> bool:
    return bool(run_lock.lock_held(folder / ".sweep.lock"))


def test_a_driver_that_locked_a_removed_lock_file_takes_the_new_one(tmp_path, monkeypatch):
    """Driver A ends and removes its lock file while driver B has just opened it: B's lock
    on the removed file must not count, or B and a third driver C would both hold the sweep."""
    from mlp_lab.errors import RunError
    from mlp_lab.sweeps import folder as folder_mod

    with folder_mod.held(tmp_path):  # A holds the sweep...
        stale = open(tmp_path / folder_mod.LOCK, "a+")  # noqa: SIM115 - ...while B opens its lock file
    assert not (tmp_path / folder_mod.LOCK).exists()  # A ended: its file is gone, B's handle is that file
    opened = []

    def b_opens(path, *args, **kwargs):
        opened.append(path)
        return stale if len(opened) == 1 else open(path, *args, **kwargs)

    monkeypatch.setattr(folder_mod, "open", b_opens, raising=False)
    with folder_mod.held(tmp_path):  # B locks the removed file, sees it, and locks the one at the path
        monkeypatch.undo()
        assert len(opened) == 2
        with pytest.raises(RunError, match="is being run by"), folder_mod.held(tmp_path):  # C is refused
            pass


# --- a resume remembers where the data is ----------------------------------------------------


def test_resume_reads_the_data_the_sweep_ran_with_and_checks_it_first(tmp_path):
    data = tmp_path / "elsewhere"
    make_idx_dataset(data, n_train=60, n_test=20)
    mnist = dict(TINY, data={"dataset": "mnist", "download": False, "preprocessing": "none"})
    write_yaml(tmp_path / "mnist.yaml", mnist)
    plan = load_sweep(write_yaml(tmp_path / "s.yaml", {"base": "mnist.yaml", "seeds": 3}))
    folder = sweeps.start_sweep(plan, tmp_path / "runs", data).folder

    class StopAfterFirst(Watch):
        def ended(self, entry, finished, total):
            os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C: the sweep stops, its next runs stay pending

    outcome = sweeps.run_sweep(folder, jobs=1, threads=1, data_dir=data, watch=StopAfterFirst())
    assert outcome.stopped and outcome.counts.get("pending") == 2
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    r = cli_subprocess("resume", folder, "--quiet", cwd=elsewhere, timeout=300)  # no --data-dir
    assert r.code == 0, r
    assert [e["status"] for e in load_manifest(folder).runs] == ["completed"] * 3
    assert not (elsewhere / "data").exists()

    # The data gone: one line before any run starts, nothing left behind.
    _edit(folder, 2, status="pending")
    run2 = load_manifest(folder).runs[2]["folder"]
    import shutil

    shutil.rmtree(data)
    r = cli_subprocess("resume", folder, "--quiet", cwd=elsewhere, timeout=120)
    assert_user_error(r, "MNIST")
    assert load_manifest(folder).runs[2]["status"] == "pending" and (folder / run2).is_dir()
    assert not (elsewhere / "data").exists()


# --- --set on a key the sweep varies ---------------------------------------------------------


@pytest.mark.parametrize(
    "doc,key,where",
    [
        ({"grid": {"model.activation": ["relu", "tanh"]}}, "model.activation=foo", "grid"),
        ({"cases": [{"optimizer.lr": 0.1}, {"optimizer.lr": 0.01}]}, "optimizer.lr=0.5", "cases"),
        ({"grid": {"model.hidden": [[8], [16]]}}, "model={hidden: [4]}", "grid"),
    ],
    ids=["grid", "cases", "section"],
)
def test_set_on_a_key_the_sweep_varies_is_one_line(tmp_path, doc, key, where):
    write_yaml(tmp_path / "tiny.yaml", TINY)
    write_yaml(tmp_path / "s.yaml", {"base": "tiny.yaml", **doc})
    assert_user_error(cli("sweep", "s.yaml", "--set", key, "--dry-run"), "--set", "the sweep varies", where)
    assert not (tmp_path / "runs").exists()


def test_set_on_a_key_the_sweeps_configs_differ_in_is_one_line(tmp_path):
    write_yaml(tmp_path / "a.yaml", TINY)
    write_yaml(tmp_path / "b.yaml", dict(TINY, model={"hidden": [16], "activation": "tanh"}))
    write_yaml(tmp_path / "s.yaml", {"configs": ["a.yaml", "b.yaml"]})
    assert_user_error(cli("sweep", "s.yaml", "--set", "model.activation=relu", "--dry-run"), "(its configs)")
    assert cli("sweep", "s.yaml", "--set", "train.epochs=2", "--dry-run").code == 0


# --- a full disk during a sweep ---------------------------------------------------------------


def test_a_sweep_stops_starting_runs_once_the_disk_is_full(tmp_path, monkeypatch):
    from mlp_lab.sweeps import local

    write_yaml(tmp_path / "tiny.yaml", TINY)
    folder = sweeps.start_sweep(
        load_sweep(write_yaml(tmp_path / "s.yaml", {"base": "tiny.yaml", "seeds": 4})), tmp_path / "runs"
    ).folder
    real = local._record

    def full_after_first(manifest, r):  # the first run's checkpoint found the disk full
        real(manifest, r)
        if r.index == 0:
            manifest.update(
                0, status="failed", reason=f"failed: no space left on device writing {r.folder}/checkpoint.pt"
            )
        return manifest.runs[r.index]

    monkeypatch.setattr(local, "_record", full_after_first)
    outcome = sweeps.run_sweep(folder, jobs=1, threads=1)
    assert outcome.disk_full and "no space left on device" in outcome.disk_full
    assert [e["status"] for e in load_manifest(folder).runs] == ["failed", "pending", "pending", "pending"]


# --- compare is honest about unfinished work --------------------------------------------------


def _train(tmp_path: Path, name: str, seed: int, **model) -> Path:
    from helpers import write_config

    cfg = write_config(
        tmp_path / f"{name}.yaml", {"name": name, "train": {"seed": seed}, "model": {"hidden": [16], **model}}
    )
    before = set((tmp_path / "runs").glob("*")) if (tmp_path / "runs").exists() else set()
    assert cli("train", "--config", cfg, "--quiet").code == 0
    return next(iter(set((tmp_path / "runs").glob("*")) - before))


def _as(run: Path, status: str, acc: float | None = None, **fields) -> None:
    s = json.loads((run / "summary.json").read_text())
    s.update(status=status, **fields)
    if acc is not None:  # partial numbers that look better than any finished run's
        lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        for rec in lines:
            rec["test_acc"] = acc
        (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
        s["final"] = lines[-1]
        s["best"] = {"test_acc": acc, "epoch": lines[-1]["epoch"]}
    (run / "summary.json").write_text(json.dumps(s))


def test_compare_counts_only_runs_that_reached_a_result(tmp_path):
    import mlp_lab

    partial = [_train(tmp_path, "tanh", seed, activation="tanh") for seed in range(4)]
    for seed in range(3):
        _train(tmp_path, "relu", seed)
    _as(partial[0], "completed", acc=0.01)  # the one finished tanh run: worse than every relu run
    for run in partial[1:]:
        _as(run, "failed", acc=0.999)
    comp = mlp_lab.comparison(tmp_path / "runs")
    tanh = next(g for g in comp.rows if g.params["model.activation"] == "tanh")
    relu = next(g for g in comp.rows if g.params["model.activation"] == "relu")
    assert tanh.n == 4 and tanh.stats.n == 1 and tanh.without("test_acc") == {"failed": 3}
    assert tanh.metrics["test_acc"] == pytest.approx(
        json.loads((partial[0] / "summary.json").read_text())["final"]["test_acc"]
    )
    assert comp.best is relu  # the failed runs' 99.9% is no result
    assert comp.baseline is relu
    assert comp.versus_of(tanh).difference is None and comp.versus_of(tanh).reason in (
        "too few results",
        "too few runs",
    )
    text = mlp_lab.compare(tmp_path / "runs")
    assert "n=1 of 4; 3 failed" in text or "1/4" in text
    # One row per run: a failed run is never the best, whatever it shows.
    flat = mlp_lab.comparison(tmp_path / "runs", group=False)
    assert flat.best.status == "completed"


def test_a_running_run_shows_as_running_with_its_epochs_and_no_warning(tmp_path):
    run = _train(tmp_path, "relu", 0)
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        _as(run, "running", pid=sleeper.pid, host=None, epochs_done=1, finished_at=None)
        lines = (run / "metrics.jsonl").read_text().splitlines()[:1]
        (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
        r = cli("compare", tmp_path / "runs", "--format", "json")
        assert r.code == 0 and "warning" not in r.stderr, r
        row = json.loads(r.stdout)["rows"][0]
        assert row["status"] == "running" and row["epochs_done"] == 1
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_sweep_run_that_has_not_written_its_summary_yet_reads_as_running(tmp_path):
    from mlp_lab.sweeps.folder import prepare_run

    write_yaml(tmp_path / "tiny.yaml", TINY)
    folder = sweeps.start_sweep(
        load_sweep(write_yaml(tmp_path / "s.yaml", {"base": "tiny.yaml", "seeds": 2})), tmp_path / "runs"
    ).folder
    run_dir, _ = prepare_run(load_manifest(folder), 0)  # what the driver does just before the run's process starts
    r = cli("compare", folder, "--format", "json")
    assert r.code == 0 and "warning" not in r.stderr, r
    assert [row["status"] for row in json.loads(r.stdout)["rows"]] == ["running"]


# --- the manifest's journal ---------------------------------------------------------------


@pytest.mark.parametrize(
    "content", ['{"format": "mlp-lab sweep v1", "runs": [{"ind', '["a list"]'], ids=["cut", "other"]
)
def test_a_corrupt_manifest_is_one_line_that_says_the_runs_are_intact(finished_sweep, content):
    (finished_sweep / "manifest.json").write_text(content)
    folders = sorted(p.name for p in finished_sweep.iterdir())
    assert_user_error(
        cli("resume", finished_sweep), "manifest.json", "cannot be resumed", f"mlp-lab compare {finished_sweep}"
    )
    assert sorted(p.name for p in finished_sweep.iterdir()) == folders
    assert cli("compare", finished_sweep).code == 0  # and compare does read them


def test_the_journal_is_replayed_over_the_manifest_and_a_torn_last_line_ignored(finished_sweep):
    from mlp_lab.sweeps.folder import JOURNAL

    journal = finished_sweep / JOURNAL
    journal.write_text(
        json.dumps({"run": 1, "set": {"status": "interrupted", "reason": "stopped"}}) + "\n" + '{"run": 0, "set": {"sta'
    )
    entries = load_manifest(finished_sweep).runs
    assert [e["status"] for e in entries] == ["completed", "interrupted"]  # the torn event never happened
    assert entries[1]["reason"] == "stopped"


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ('{"run": 7, "set": {"status": "completed"}}', ["line 1", "run 7 is not a run"]),
        ('{"run": 0, "set": {"config": {}}}', ["line 1", "sets config"]),
        ('not json\n{"run": 0, "set": {}}', ["line 1", "not JSON"]),
        ('{"add": {"index": 5}}', ["adds run 5", "has 2 runs"]),
    ],
)
def test_a_damaged_journal_is_one_line_and_nothing_runs(finished_sweep, line, words):
    from mlp_lab.sweeps.folder import JOURNAL

    (finished_sweep / JOURNAL).write_text(line + "\n")
    before = {
        p.name: (p / "summary.json").read_text() for p in finished_sweep.iterdir() if (p / "summary.json").exists()
    }
    assert_user_error(
        cli("resume", finished_sweep),
        "manifest.jsonl",
        *words,
        "cannot be resumed",
        f"mlp-lab compare {finished_sweep}",
    )
    after = {
        p.name: (p / "summary.json").read_text() for p in finished_sweep.iterdir() if (p / "summary.json").exists()
    }
    assert after == before


def test_an_event_costs_the_same_in_a_sweep_of_ten_runs_or_a_thousand(tmp_path):
    from mlp_lab.sweeps.folder import JOURNAL, Manifest

    sizes = []
    for n in (10, 1000):
        folder = tmp_path / str(n)
        folder.mkdir()
        entry = {"status": "pending", "folder": None, "reason": None, "config": merge(TINY, {})}
        manifest = Manifest(folder / "manifest.json", {"runs": [dict(entry, index=i) for i in range(n)]})
        manifest.save()
        saved = (folder / "manifest.json").stat().st_size
        manifest.update(n - 1, status="running", folder="tiny-20261204-000000-abcdef", pid=12345)
        assert (folder / "manifest.json").stat().st_size == saved  # the snapshot is not rewritten
        sizes.append((folder / JOURNAL).stat().st_size)
    assert sizes[1] - sizes[0] == len("999") - len("9")  # the same line, but for the run's number
    manifest.save()  # compaction: the journal's events are in the manifest now
    assert not (tmp_path / "1000" / JOURNAL).exists()
    assert json.loads((tmp_path / "1000" / "manifest.json").read_text())["runs"][999]["status"] == "running"
