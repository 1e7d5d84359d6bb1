"""Runs that go wrong: diverging losses, Ctrl-C and SIGTERM, crashes, SIGKILL, --resume,
files that must survive a failed write, and several runs started at the same moment.

Proven the way a user sees it: real `mlp-lab train` processes sent real signals, exit
codes, stderr, and the files in the run folder. On CPU a run that is interrupted and
resumed must end with exactly the metrics and weights of the same run left alone.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import threading
from pathlib import Path

import pytest
import torch

from mlp_lab import atomic_files, errors, runs
from mlp_lab import training as train_mod
from mlp_lab.run_writer import save_torch

from helpers import (
    cli,
    cli_subprocess,
    interrupt,
    metrics,
    only_run,
    run_folders,
    start,
    start_training,
    summary,
    wait_for_epochs,
    without_seconds,
    write_config,
)


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("MLP_LAB_OFFLINE", "1")  # (conftest's tripwire stops a download too)


def no_temp_files(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).rglob("*") if p.name.endswith(".tmp"))


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = load_weights(a), load_weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), f"{key} differs"


# --- diverging runs ----------------------------------------------------------------------------

# ReLU with a learning rate of 1e10: the loss is NaN within the first few steps of epoch 1.
DIVERGE_AT_ONCE = {"optimizer": {"name": "sgd", "lr": 1e10}, "train": {"epochs": 5}}
# A sane epoch 1, then the exponential scheduler multiplies the lr by 1e12: NaN in epoch 2.
DIVERGE_IN_EPOCH_2 = {
    "optimizer": {"name": "sgd", "lr": 0.01},
    "scheduler": {"name": "exponential", "gamma": 1e12},
    "train": {"epochs": 5},
}


def test_diverging_in_epoch_1_stops_with_status_diverged(tmp_path):
    write_config(tmp_path / "d.yaml", DIVERGE_AT_ONCE)
    res = cli("train", "--config", "d.yaml", "--quiet")
    assert res.code == 1, res
    assert "Traceback" not in res.output
    run = only_run(tmp_path / "runs")
    s = summary(run)
    assert s["status"] == "diverged"
    assert s["epochs_done"] == 0 and s["final"] is None
    assert s["finished_at"] is not None and "pid" not in s
    assert "diverged in epoch 1" in s["message"] and "nan" in s["message"]
    assert "lower optimizer.lr (now 1e+10)" in s["message"]  # says what to change
    assert "diverged" in res.stdout and "lower optimizer.lr" in " ".join(res.stderr.split())
    assert metrics(run) == []
    assert not (run / "model.pt").exists()  # NaN weights are not saved as a result


def test_diverging_in_epoch_2_keeps_epoch_1(tmp_path):
    write_config(tmp_path / "d.yaml", DIVERGE_IN_EPOCH_2)
    res = cli("train", "--config", "d.yaml", "--quiet")
    assert res.code == 1, res
    run = only_run(tmp_path / "runs")
    s = summary(run)
    assert s["status"] == "diverged"
    history = metrics(run)
    assert [r["epoch"] for r in history] == [1]  # epoch 1 kept; stopped at once, no epoch 3..5
    assert all(isinstance(v, float) and v == v for k, v in history[0].items() if k != "epoch")
    assert s["epochs_done"] == 1 and s["final"] == history[0] and s["best"]["epoch"] == 1
    assert "diverged in epoch 2" in s["message"]
    # The lr that diverged came from the scheduler: the advice says so, not just "lower lr".
    assert "scheduler exponential had taken the lr to 1e+10" in s["message"]
    assert torch.load(run / "checkpoint.pt", weights_only=True)["epoch"] == 1


def test_resuming_a_diverged_run_is_refused(tmp_path):
    """It would replay the same steps from the last checkpoint into the same NaN."""
    write_config(tmp_path / "d.yaml", DIVERGE_IN_EPOCH_2)
    assert cli("train", "--config", "d.yaml", "--quiet").code == 1
    run = only_run(tmp_path / "runs")
    res = cli("train", "--resume", run)
    assert res.code == 2 and res.stderr.count("\n") == 1, res
    assert "diverged" in res.stderr and "change the config" in res.stderr
    assert summary(run)["status"] == "diverged"


def test_diverging_subprocess_exit_1_no_traceback(tmp_path):
    write_config(tmp_path / "d.yaml", DIVERGE_AT_ONCE)
    res = cli_subprocess("train", "--config", "d.yaml", "--quiet", cwd=tmp_path)
    assert res.code == 1, res
    assert "Traceback" not in res.output
    assert "lower optimizer.lr" in " ".join(res.stderr.split())
    assert summary(only_run(tmp_path / "runs"))["status"] == "diverged"


# --- crashes -------------------------------------------------------------------------------------


def test_crash_inside_training_leaves_status_failed(tmp_path, monkeypatch):
    real = train_mod._train_epoch
    calls = []

    def crashing_epoch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("simulated crash in the training step")
        return real(*args, **kwargs)

    monkeypatch.setattr(train_mod, "_train_epoch", crashing_epoch)
    write_config(tmp_path / "c.yaml", {"train": {"epochs": 4}})
    res = cli("train", "--config", "c.yaml", "--quiet")
    assert res.code == 1, res
    assert res.exception is None  # the CLI ended normally, with the run's exit code
    run = only_run(tmp_path / "runs")
    s = summary(run)
    assert s["status"] == "failed"
    assert s["error"] == "RuntimeError: simulated crash in the training step"
    assert "failed in epoch 2" in s["message"] and "error.log" in s["message"]
    assert "simulated crash" in res.stderr
    assert [r["epoch"] for r in metrics(run)] == [1]
    log = (run / "error.log").read_text(encoding="utf-8")
    assert "Traceback" in log and "simulated crash" in log  # the details, for a bug report
    assert "Traceback" not in res.output  # but not on the terminal
    assert not (run / "model.pt").exists()


def test_crash_while_setting_up_leaves_no_empty_folder(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("simulated bug in build_model")

    monkeypatch.setattr(train_mod, "build_model", broken)
    write_config(tmp_path / "c.yaml")
    res = cli("train", "--config", "c.yaml", "--quiet")
    assert isinstance(res.exception, RuntimeError)  # a bug stays loud...
    assert run_folders(tmp_path / "runs") == []  # ...but leaves no folder without a summary


# --- signals: Ctrl-C and SIGTERM to a real process --------------------------------------------

SLOW = {"train": {"epochs": 300}}  # never finishes before the signal


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_ends_the_run_cleanly(tmp_path, sig):
    write_config(tmp_path / "slow.yaml", SLOW)
    proc = start_training(tmp_path / "slow.yaml", tmp_path)
    run = wait_for_epochs(tmp_path / "runs", proc, epochs=1)
    assert summary(run)["status"] == "running"
    code, out, err = interrupt(proc, sig)
    assert code == 130, (out, err)
    assert "Traceback" not in out + err
    s = summary(run)
    assert s["status"] == "interrupted"
    assert signal.Signals(sig).name in s["message"]
    assert f"mlp-lab resume {run.relative_to(tmp_path)}" in s["message"]
    history = metrics(run)
    assert len(history) >= 1 and [r["epoch"] for r in history] == list(range(1, len(history) + 1))
    assert s["epochs_done"] == len(history) and s["final"] == history[-1]
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    assert ckpt["epoch"] == len(history)
    assert "pid" not in s and s["finished_at"] is not None
    assert not (run / "model.pt").exists()
    assert no_temp_files(run) == []
    assert "interrupted" in out and "mlp-lab resume" in " ".join(err.split())


def test_second_ctrl_c_stops_at_once(tmp_path, monkeypatch):
    real = train_mod._train_epoch
    calls = []

    def epoch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGINT)  # noted: stop at the next step boundary
            os.kill(os.getpid(), signal.SIGINT)  # the impatient second one: stop now
            pytest.fail("the second Ctrl-C did not stop the run")
        return real(*args, **kwargs)

    monkeypatch.setattr(train_mod, "_train_epoch", epoch)
    write_config(tmp_path / "c.yaml", {"train": {"epochs": 4}})
    res = cli("train", "--config", "c.yaml", "--quiet")
    assert res.code == 130, res
    run = only_run(tmp_path / "runs")
    assert summary(run)["status"] == "interrupted"
    assert [r["epoch"] for r in metrics(run)] == [1]


def test_ctrl_c_while_the_last_files_are_written_is_ignored(tmp_path, monkeypatch):
    """A second Ctrl-C must not cut short the summary that records the first one."""
    real_epoch, real_write = train_mod._train_epoch, atomic_files.atomic_write_json
    calls, late = [], []

    def epoch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGINT)  # the first Ctrl-C, mid-epoch
        return real_epoch(*args, **kwargs)

    def write(path, obj):
        if isinstance(obj, dict) and obj.get("message"):  # the summaries written while stopping
            late.append(1)
            os.kill(os.getpid(), signal.SIGINT)  # lands while the file is being written
        return real_write(path, obj)

    monkeypatch.setattr(train_mod, "_train_epoch", epoch)
    monkeypatch.setattr(atomic_files, "atomic_write_json", write)
    write_config(tmp_path / "c.yaml", {"train": {"epochs": 4}})
    res = cli("train", "--config", "c.yaml", "--quiet")
    assert late, "the test did not signal during the final writes"
    assert res.code == 130, res
    s = summary(only_run(tmp_path / "runs"))
    assert s["status"] == "interrupted" and s["finished_at"] is not None


# --- resume: exactly the run that was never interrupted ---------------------------------------

# 60 short epochs (tens of ms each): a signal sent after epoch 2 always lands mid-run.
RESUMABLE = {
    # dropout draws from the global RNG; a warm-up + step schedule; a validation split.
    "dropout-adam-step-val": {
        "data": {"synthetic_train_size": 600, "synthetic_test_size": 100, "val_split": 0.2},
        "model": {"hidden": [24, 16], "dropout": 0.3},
        "optimizer": {"name": "adam", "lr": 0.003},
        "scheduler": {"name": "step", "step_size": 3, "gamma": 0.7, "warmup_epochs": 2},
        "train": {"epochs": 60, "batch_size": 20},
    },
    # momentum buffers, batch norm running statistics, a cosine schedule.
    "batchnorm-sgd-cosine": {
        "data": {"synthetic_train_size": 600, "synthetic_test_size": 100},
        "model": {"hidden": [24], "norm": "batchnorm", "dropout": 0.1},
        "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True},
        "scheduler": {"name": "cosine", "eta_min": 0.001},
        "train": {"epochs": 60, "batch_size": 20},
    },
}


@pytest.fixture(scope="module")
def reference_runs(tmp_path_factory) -> dict[str, Path]:
    """Each RESUMABLE config run once, uninterrupted, as real processes (in parallel)."""
    root = tmp_path_factory.mktemp("reference")
    procs = {}
    for name, changes in RESUMABLE.items():
        write_config(root / f"{name}.yaml", changes)
        procs[name] = start_training(root / f"{name}.yaml", root, "--runs-dir", f"runs-{name}")
    out = {}
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stdout + stderr
        out[name] = only_run(root / f"runs-{name}")
    return out


def _assert_same_as_reference(run: Path, ref: Path) -> None:
    got, want = metrics(run), metrics(ref)
    assert [r["epoch"] for r in got] == list(range(1, len(want) + 1))  # no epoch twice, none missing
    assert without_seconds(got) == without_seconds(want)  # exactly: losses, accuracies, lr
    assert_same_weights(run / "model.pt", ref / "model.pt")
    s = summary(run)
    assert s["status"] == "completed" and s["epochs_done"] == len(want)
    assert without_seconds([s["final"]]) == without_seconds([summary(ref)["final"]])
    assert s["best"] == summary(ref)["best"]


@pytest.mark.parametrize(
    "name,sig",
    [
        ("dropout-adam-step-val", signal.SIGINT),
        ("batchnorm-sgd-cosine", signal.SIGTERM),
    ],
)
def test_interrupted_and_resumed_equals_uninterrupted(tmp_path, reference_runs, name, sig):
    write_config(tmp_path / "c.yaml", RESUMABLE[name])
    proc = start_training(tmp_path / "c.yaml", tmp_path)
    run = wait_for_epochs(tmp_path / "runs", proc, epochs=2)
    code, out, err = interrupt(proc, sig)
    assert code == 130, (out, err)
    done = len(metrics(run))
    assert summary(run)["status"] == "interrupted" and 2 <= done < RESUMABLE[name]["train"]["epochs"]

    res = cli_subprocess("resume", run, "--quiet", cwd=tmp_path, timeout=300)
    assert res.code == 0, res
    assert "Traceback" not in res.output
    assert run_folders(tmp_path / "runs") == [run]  # continued in place, no new folder
    _assert_same_as_reference(run, reference_runs[name])
    s = summary(run)
    assert s["resumed_at_epoch"] == done + 1
    assert s["started_at"] <= s["finished_at"]


def test_resume_twice_and_drop_lines_logged_after_the_checkpoint(tmp_path, reference_runs):
    """Interrupted twice; before the second resume metrics.jsonl also holds a line past the
    checkpoint (a process killed between the two writes): it is dropped, never doubled."""
    name = "dropout-adam-step-val"
    write_config(tmp_path / "c.yaml", RESUMABLE[name])
    proc = start_training(tmp_path / "c.yaml", tmp_path)
    run = wait_for_epochs(tmp_path / "runs", proc, epochs=1)
    assert interrupt(proc)[0] == 130

    proc = start("train", "--resume", run, "--quiet", cwd=tmp_path)  # and interrupt that too
    wait_for_epochs(tmp_path / "runs", proc, epochs=len(metrics(run)) + 2)
    assert interrupt(proc)[0] == 130
    history = metrics(run)
    ckpt_epoch = torch.load(run / "checkpoint.pt", weights_only=True)["epoch"]
    assert ckpt_epoch == len(history)
    with open(run / "metrics.jsonl", "a", encoding="utf-8") as f:  # a stray line past the checkpoint
        f.write(json.dumps({**history[-1], "epoch": ckpt_epoch + 1, "test_acc": -1.0}) + "\n")

    res = cli_subprocess("resume", run, "--quiet", cwd=tmp_path, timeout=300)
    assert res.code == 0, res
    _assert_same_as_reference(run, reference_runs[name])


# --- SIGKILL: a run that cannot write its last summary ------------------------------------------


def test_sigkill_leaves_running_summary_that_readers_see_as_failed(tmp_path, reference_runs):
    name = "batchnorm-sgd-cosine"
    write_config(tmp_path / "c.yaml", RESUMABLE[name])
    proc = start_training(tmp_path / "c.yaml", tmp_path)
    run = wait_for_epochs(tmp_path / "runs", proc, epochs=2)
    alive = runs.load_run(run)
    assert alive.status == "running" and not alive.process_gone  # alive: really running

    proc.kill()
    proc.wait()  # reaped, as the user's shell does
    s = summary(run)  # valid JSON although the process died at an arbitrary point
    assert s["status"] == "running" and s["pid"] == proc.pid
    history = metrics(run)  # every line whole: appended and flushed per epoch
    assert len(history) >= 2

    record = runs.load_run(run)
    assert record.process_gone and record.status == "failed"
    assert any("is gone" in p and "mlp-lab resume" in p for p in record.problems)
    shown = cli("compare", run, "--format", "json")
    assert shown.code == 0, shown
    assert "failed" in shown.stdout and "is gone" in shown.stderr

    # A kill between writing a temporary and renaming it leaves the temporary (as here,
    # by chance); resume removes such leftovers.
    (run / ".checkpoint.pt.k1ll3d.tmp").write_bytes(b"half a checkpoint")
    res = cli_subprocess("resume", run, "--quiet", cwd=tmp_path, timeout=300)
    assert res.code == 0, res
    _assert_same_as_reference(run, reference_runs[name])
    assert no_temp_files(run) == []


def test_running_summary_from_another_host_is_not_declared_dead(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    proc = subprocess.Popen(["true"])
    proc.wait()
    dead_pid = proc.pid
    (run / "summary.json").write_text(json.dumps({"status": "running", "pid": dead_pid, "host": "elsewhere.invalid"}))
    assert runs.load_run(run).status == "running"  # cannot tell from here: not declared dead
    (run / "summary.json").write_text(json.dumps({"status": "running", "pid": dead_pid}))
    assert runs.load_run(run).status == "failed"
    (run / "summary.json").write_text(json.dumps({"status": "running"}))  # no pid: cannot tell
    assert runs.load_run(run).status == "running"


# --- files that can be trusted -------------------------------------------------------------------


def _fail_fsync(monkeypatch):
    def fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic_files.os, "fsync", fsync)


@pytest.mark.parametrize(
    "writer,name,old,new",
    [
        (atomic_files.atomic_write_json, "summary.json", {"status": "running"}, {"status": "completed"}),
        (atomic_files.atomic_write_text, "config.yaml", "model: {hidden: [8]}\n", "model: {hidden: [16]}\n"),
        (save_torch, "checkpoint.pt", {"epoch": 1}, {"epoch": 2}),
    ],
    ids=["summary", "config", "checkpoint"],
)
def test_failed_write_keeps_the_previous_file_and_no_temp(tmp_path, monkeypatch, writer, name, old, new):
    path = tmp_path / name
    writer(path, old)
    before = path.read_bytes()
    _fail_fsync(monkeypatch)
    with pytest.raises(errors.DiskFull, match=f"no space left on device writing {path}"):
        writer(path, new)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no temporary file left


def test_interrupted_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "summary.json"
    atomic_files.atomic_write_json(path, {"status": "running"})

    def ctrl_c(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic_files.os, "fsync", ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        atomic_files.atomic_write_json(path, {"status": "completed"})
    assert json.loads(path.read_text()) == {"status": "running"}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_unserialisable_summary_never_touches_the_file(tmp_path):
    path = tmp_path / "summary.json"
    atomic_files.atomic_write_json(path, {"status": "running"})
    with pytest.raises(ValueError):
        atomic_files.atomic_write_json(path, {"final": {"test_loss": float("nan")}})  # not valid JSON
    assert json.loads(path.read_text()) == {"status": "running"}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_checkpoint_write_failing_mid_run_keeps_the_last_good_one(tmp_path, monkeypatch):
    real = atomic_files.atomic_write
    checkpoints = []

    def flaky(path, write):
        if Path(path).name == "checkpoint.pt":
            checkpoints.append(1)
            if len(checkpoints) == 2:

                def half_then_full(f):  # the disk fills up halfway through the write
                    f.write(b"half a checkpoint")
                    raise OSError(28, "No space left on device")

                return real(path, half_then_full)
        return real(path, write)

    monkeypatch.setattr(atomic_files, "atomic_write", flaky)
    write_config(tmp_path / "c.yaml", {"train": {"epochs": 3}})
    res = cli("train", "--config", "c.yaml", "--quiet")
    assert res.code == 1, res
    run = only_run(tmp_path / "runs")
    s = summary(run)
    assert s["status"] == "failed" and f"no space left on device writing runs/{run.name}/checkpoint.pt" in s["error"]
    assert "mlp-lab resume" in s["message"] and "Traceback" not in res.stderr
    assert f"no space left on device writing runs/{run.name}/checkpoint.pt" in res.stderr
    assert torch.load(run / "checkpoint.pt", weights_only=True)["epoch"] == 1  # the last good one
    assert no_temp_files(run) == []


def test_metrics_line_is_on_disk_when_the_epoch_ends(tmp_path, monkeypatch):
    """Each finished epoch's line is flushed before the next epoch starts."""
    real = train_mod._train_epoch
    seen = []

    def epoch(*args, **kwargs):
        seen.append(len(metrics(only_run(tmp_path / "runs"))))
        return real(*args, **kwargs)

    monkeypatch.setattr(train_mod, "_train_epoch", epoch)
    write_config(tmp_path / "c.yaml", {"train": {"epochs": 3}})
    assert cli("train", "--config", "c.yaml", "--quiet").code == 0
    assert seen == [0, 1, 2]


def test_run_dir_names_never_collide_even_with_the_same_random_id(tmp_path, monkeypatch):
    """create_run_dir relies on mkdir failing for an existing folder: force collisions."""
    ids = iter(["aaaaaa"] * 8 + [f"{i:06x}" for i in range(100)])
    lock = threading.Lock()

    def token_hex(n):
        with lock:
            return next(ids)

    monkeypatch.setattr(secrets, "token_hex", token_hex)
    made, errors = [], []
    barrier = threading.Barrier(8)

    def make():
        barrier.wait()
        try:
            made.append(runs.create_run_dir(tmp_path / "runs", "same"))
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=make) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(set(made)) == 8 and all(p.is_dir() for p in made)


def test_eight_runs_started_at_once_into_one_runs_dir(tmp_path):
    write_config(
        tmp_path / "same.yaml",
        {
            "data": {"synthetic_train_size": 100, "synthetic_test_size": 20},
            "model": {"hidden": [8]},
            "train": {"epochs": 3},
        },
    )
    procs = [start_training(tmp_path / "same.yaml", tmp_path) for _ in range(8)]
    results = [(*p.communicate(timeout=300), p.returncode) for p in procs]
    for out, err, code in results:
        assert code == 0, out + err
        assert "Traceback" not in out + err
    folders = run_folders(tmp_path / "runs")
    assert len(folders) == 8
    printed = {
        line.split("run folder: ")[1].strip()
        for out, _, _ in results
        for line in out.splitlines()
        if line.startswith("run folder: ")
    }
    assert printed == {str(f.relative_to(tmp_path)) for f in folders}  # each process its own folder
    finals = []
    for folder in folders:
        s = summary(folder)
        assert s["status"] == "completed" and s["run_id"] == folder.name and s["epochs_done"] == 3
        history = metrics(folder)
        assert [r["epoch"] for r in history] == [1, 2, 3]
        assert s["final"] == history[-1]
        assert (folder / "model.pt").is_file() and (folder / "config.yaml").is_file()
        assert no_temp_files(folder) == []
        finals.append(without_seconds(history))
    assert all(f == finals[0] for f in finals)  # same config and seed: same numbers, none mixed up
