"""mlp-lab sweep --backend ray, for real, on one local Ray for the module (loopback only).

What it checks: the local backend's metrics, run folders the driver writes from what tasks
return, a worker killed mid-run retried to completion, an exception in a run failed and
not retried, Ctrl-C then resume, and the bad inputs of the Ray options.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # Ray binds to 127.0.0.1: never another address

ray = pytest.importorskip("ray")

from mlp_lab import sweeps  # noqa: E402
from mlp_lab.config import config_from_dict, dump_config  # noqa: E402
from mlp_lab.sweeps import load_manifest, load_sweep  # noqa: E402

from helpers import (  # noqa: E402
    SWEEP_TINY,
    assert_user_error,
    cli,
    cli_subprocess,
    merge,
    offline_env,
    start,
    without_seconds,
    write_yaml,
)

# Synthetic data, a small net: a second or two per run.
TINY = merge(SWEEP_TINY, {"train": {"epochs": 2}})
# Long enough (a few seconds) to be killed or stopped mid-run.
LONGER = {"train.epochs": 150, "data.synthetic_train_size": 1000}


@pytest.fixture(scope="module", autouse=True)
def local_ray(tmp_path_factory):
    """The module's Ray; yields the temp folder its tasks' scratch folders are made in."""
    scratch = tmp_path_factory.mktemp("task-temp")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        runtime_env={"env_vars": {"TMPDIR": str(scratch)}},
    )
    yield scratch
    ray.shutdown()


def new_sweep(tmp_path: Path, name: str = "s", **fields) -> Path:
    write_yaml(tmp_path / "tiny.yaml", TINY)
    plan = load_sweep(write_yaml(tmp_path / f"{name}.yaml", {"base": "tiny.yaml", **fields}))
    return sweeps.start_sweep(plan, tmp_path / name).folder


def metrics_by_run(folder: Path) -> dict[tuple[str, int], list[dict]]:
    out = {}
    for e in load_manifest(folder).runs:
        lines = (folder / e["folder"] / "metrics.jsonl").read_text().splitlines()
        out[(e["cell"], e["seed"])] = without_seconds([json.loads(x) for x in lines])
    return out


class Events(sweeps.Watch):
    def __init__(self):
        self.placed_at: list[tuple[int, sweeps.Place]] = []
        self.epochs: list[tuple[int, int]] = []

    def started(self, index, place):
        self.placed_at.append((index, place))

    def epoch(self, index, epoch):
        self.epochs.append((index, epoch))


def test_ray_gives_the_local_backends_metrics_and_run_folders(tmp_path):
    grid = {"model.activation": ["relu", "tanh"]}
    on_ray, on_local = new_sweep(tmp_path, "ray", grid=grid, seeds=2), new_sweep(tmp_path, "local", grid=grid, seeds=2)
    events = Events()
    outcome = sweeps.run_sweep(on_ray, threads=1, backend="ray", watch=events, jobs=None)
    assert outcome.counts == {"completed": 4} and not outcome.stopped
    assert sweeps.run_sweep(on_local, jobs=2, threads=1).counts == {"completed": 4}
    assert metrics_by_run(on_ray) == metrics_by_run(on_local)

    entry = load_manifest(on_ray).runs[0]
    run = on_ray / entry["folder"]
    assert {p.name for p in run.iterdir()} == {
        p.name for p in (on_local / load_manifest(on_local).runs[0]["folder"]).iterdir()
    }
    summary = json.loads((run / "summary.json").read_text())
    assert summary["run_id"] == entry["folder"] and summary["threads"] == 1 and summary["status"] == "completed"
    assert load_manifest(on_ray).data["workers"] == {"backend": "ray", "jobs": None, "threads": 1, "data_dir": None}
    # Every run told where it ran and its epochs, through the progress board.
    assert sorted(i for i, _ in events.placed_at) == [0, 1, 2, 3]
    assert all(place.pid != os.getpid() and place.node for _, place in events.placed_at)
    assert (0, 2) in events.epochs
    for e in load_manifest(on_ray).runs:  # a run's seconds run from its task's start, which came before its training
        duration = json.loads((on_ray / e["folder"] / "summary.json").read_text())["duration_s"]
        assert e["seconds"] + 0.1 >= duration, (e["seconds"], duration)  # 0.1: the start post's trip to the board
    assert json.loads(cli("compare", on_ray, "--format", "json").stdout)["rows"][0]["n"] == 2
    one_group = cli("compare", on_ray, "--filter", "model.activation=relu").stdout
    assert "2 runs (of 4 read) in 1 group of runs that differ only in their seed" in one_group


def test_a_run_starts_when_its_task_posted_not_when_the_driver_next_looked():
    from mlp_lab.sweeps.ray_backend import ProgressBoard, take

    board = ray.remote(num_cpus=0)(ProgressBoard).remote()
    assert ray.get(board.take.remote()) == []  # the board's process is up (in a sweep, long before a task's torch is)
    posted = time.time()
    ray.get(board.post.remote("started", 0, sweeps.Place(1)))
    arrived = time.time()  # the board has stamped the post by now
    # The driver's look at the board comes later (a short run may start and end in between):
    # the start is the post's stamp, not the time the driver looked.
    began, _ = take(ray, board)
    assert posted <= began[0] <= arrived


def test_a_worker_killed_mid_run_is_retried_and_the_run_completes(tmp_path, local_ray):
    folder = new_sweep(tmp_path, set=LONGER, seeds=2)
    killed = []

    class KillTheFirst(Events):
        def epoch(self, index, epoch):  # a run inside its epochs: SIGKILL its worker, once
            super().epoch(index, epoch)
            if not killed and epoch < 150:
                pid = [place.pid for i, place in self.placed_at if i == index][-1]
                os.kill(pid, signal.SIGKILL)
                killed.append((index, pid))

    events = KillTheFirst()
    outcome = sweeps.run_sweep(folder, threads=1, backend="ray", watch=events)
    assert outcome.counts == {"completed": 2}, load_manifest(folder).runs
    index, pid = killed[0]
    again = [place.pid for i, place in events.placed_at if i == index]
    assert len(again) == 2 and again[0] == pid != again[1]  # it ran again, in another worker
    # The killed attempt could not remove its scratch folder (a checkpoint in the node's temp
    # folder, one per killed attempt); the attempt after it did.
    assert list(local_ray.glob("mlp-lab-run-*")) == []
    # and it ended as a run that was never killed does
    straight = new_sweep(tmp_path, "straight", set=LONGER, seeds=2)
    sweeps.run_sweep(straight, jobs=1, threads=1)
    assert metrics_by_run(folder) == metrics_by_run(straight)


def test_an_exception_in_a_run_fails_it_without_a_retry(tmp_path):
    # A run continued from a corrupt checkpoint raises inside its task.
    folder = new_sweep(tmp_path, grid={"model.activation": ["relu", "tanh"]})
    manifest = load_manifest(folder)
    bad = folder / "tanh-corrupt"
    bad.mkdir()
    (bad / "config.yaml").write_text(dump_config(config_from_dict(manifest.runs[1]["config"])))
    (bad / "checkpoint.pt").write_bytes(b"not a checkpoint")
    manifest.update(1, status="interrupted", folder=bad.name)
    events = Events()
    outcome = sweeps.run_sweep(folder, threads=1, backend="ray", watch=events)
    assert outcome.counts == {"completed": 1, "failed": 1}
    entry = load_manifest(folder).runs[1]
    assert entry["status"] == "failed" and "checkpoint" in entry["reason"], entry
    assert [i for i, _ in events.placed_at].count(1) == 1  # not retried


def test_a_full_disk_stops_starting_tasks_as_on_the_local_backend(tmp_path, monkeypatch):
    from mlp_lab.errors import DiskFull
    from mlp_lab.sweeps import ray_backend

    folder = new_sweep(tmp_path, seeds=4)
    real = ray_backend._write_files

    def full_at_second(run_folder, result):  # the driver finds the disk full writing the second run's files
        if run_folder.name == load_manifest(folder).runs[1]["folder"]:
            raise DiskFull(f"no space left on device writing {run_folder / 'checkpoint.pt'}")
        real(run_folder, result)

    monkeypatch.setattr(ray_backend, "_write_files", full_at_second)
    outcome = sweeps.run_sweep(folder, jobs=1, threads=1, backend="ray")
    assert outcome.stopped and "no space left on device" in outcome.disk_full
    assert [e["status"] for e in load_manifest(folder).runs] == ["completed", "failed", "pending", "pending"]

    monkeypatch.setattr(ray_backend, "_write_files", real)  # space again: a resume trains what is left, once
    outcome = sweeps.run_sweep(folder, jobs=1, threads=1, backend="ray")
    assert not outcome.stopped and [e["status"] for e in load_manifest(folder).runs] == ["completed"] * 4


def _first_run_recorded(runs_dir) -> bool:
    """The first run's final summary is written and the manifest says it completed (the
    driver records a returned run in the manifest right after its files)."""
    if _finished_duration(runs_dir) is None:
        return False
    (folder,) = runs_dir.glob("s-*")
    return any(e["status"] == "completed" for e in load_manifest(folder).runs)


def _finished_duration(runs_dir):
    """The first completed run's duration, once its final summary is written: the driver writes a
    returned run's files in turn, model.pt before summary.json, over the "running" one it wrote first."""
    for path in runs_dir.glob("s-*/*/summary.json"):
        try:
            summary = json.loads(path.read_text())
        except (OSError, ValueError):  # replaced at this moment
            continue
        if summary.get("status") == "completed":
            return summary["duration_s"]
    return None


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm-in-background"])
def test_ctrl_c_stops_the_tasks_and_resume_ends_with_the_uninterrupted_metrics(tmp_path, how):
    write_yaml(tmp_path / "tiny.yaml", TINY)
    sfile = write_yaml(tmp_path / "s.yaml", {"base": "tiny.yaml", "set": LONGER, "seeds": 3})
    # ctrl-c: its own process group and its own local Ray, as from a terminal: Ctrl-C reaches
    # all of it. sigterm-in-background: started with SIGINT ignored, as a shell's background
    # job is (and its Ray workers with it), and stopped by a SIGTERM to the sweep alone.
    # One run at a time: once the first is back, the second is training and the third waits.
    # A task trains in a scratch folder under its TMPDIR (Ray's own files stay in /tmp: its
    # socket paths must stay short), so the test can see the second run's first checkpoint.
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    command = ["sweep", sfile, "--backend", "ray", "--jobs", "1", "--runs-dir", "stopped", "--quiet"]
    proc = start(
        *command,
        cwd=tmp_path,
        env=offline_env(TMPDIR=str(scratch), RAY_TMPDIR="/tmp"),
        start_new_session=True,
        preexec_fn=_ignore_sigint if how != "ctrl-c" else None,
    )
    deadline = time.monotonic() + 120
    # The first run is back (its scratch folder gone with it), and the second is inside its
    # epochs: it has written a checkpoint.
    while _finished_duration(tmp_path / "stopped") is None or not list(scratch.glob("mlp-lab-run-*/*/checkpoint.pt")):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)
    if how == "ctrl-c":
        os.killpg(proc.pid, signal.SIGINT)
    else:
        proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (out, err)
    (folder,) = (tmp_path / "stopped").iterdir()
    assert f"continue with: mlp-lab resume stopped/{folder.name}" in err
    entries = load_manifest(folder).runs
    assert [e["status"] for e in entries] == ["completed", "interrupted", "pending"], entries
    assert (folder / entries[1]["folder"] / "checkpoint.pt").exists()
    assert f"continue with: mlp-lab resume stopped/{folder.name}/{entries[1]['folder']}" in entries[1]["reason"]
    assert f"interrupted by {'SIGINT' if how == 'ctrl-c' else 'SIGTERM'}" in entries[1]["reason"]
    assert f"mlp-lab resume stopped/{folder.name}/" not in out  # the sweep's lines say how the sweep goes on

    r = cli_subprocess("resume", folder, "--quiet", cwd=tmp_path, timeout=300)
    assert r.code == 0, r
    assert [e["status"] for e in load_manifest(folder).runs] == ["completed"] * 3
    straight = new_sweep(tmp_path, "straight", set=LONGER, seeds=3)
    sweeps.run_sweep(straight, jobs=1, threads=1)
    assert metrics_by_run(folder) == metrics_by_run(straight)


def test_an_address_that_does_not_answer_is_exit_2_with_nothing_written(tmp_path):
    with socket.socket() as s:  # bound, never listening: nothing answers, and no one else takes the port
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        write_yaml(tmp_path / "tiny.yaml", TINY)
        t0 = time.monotonic()  # a process of its own, not joined to this module's Ray
        r = cli_subprocess(
            "sweep",
            "--config",
            "tiny.yaml",
            "--backend",
            "ray",
            "--address",
            f"127.0.0.1:{port}",
            "--runs-dir",
            "runs",
            cwd=tmp_path,
            timeout=60,
        )
        assert_user_error(r, f"--address 127.0.0.1:{port}", "no Ray cluster answers there")
        assert time.monotonic() - t0 < 30 and not (tmp_path / "runs").exists()
        r = cli_subprocess(
            "sweep",
            "--config",
            "tiny.yaml",
            "--backend",
            "ray",
            "--runs-dir",
            "runs",
            cwd=tmp_path,
            timeout=60,
            env=offline_env(RAY_ADDRESS=f"127.0.0.1:{port}"),
        )
        assert_user_error(r, f"RAY_ADDRESS=127.0.0.1:{port}", "no Ray cluster answers there")
        assert not (tmp_path / "runs").exists()
    assert_user_error(
        cli("sweep", "--config", tmp_path / "tiny.yaml", "--backend", "ray", "--address", "nowhere"),
        "--address nowhere",
        "expected HOST:PORT",
    )
    assert_user_error(
        cli("sweep", "--config", tmp_path / "tiny.yaml", "--address", "nowhere"),
        "--address nowhere",
        "goes with --backend ray",
    )


@pytest.mark.parametrize(
    "args, words",
    [
        (["--backend", "dask"], ["--backend: 'dask' is not allowed", "allowed: local, ray"]),
        (["--backend", "ray", "--threads", "64"], ["--threads 64", "largest node of the cluster has 2"]),
        (["--backend", "ray", "--set", "train.device=cuda"], ["train.device cuda", "no GPU"]),
    ],
)
def test_bad_ray_options_are_one_line_and_exit_2(tmp_path, args, words):
    write_yaml(tmp_path / "tiny.yaml", TINY)
    r = cli("sweep", "--config", tmp_path / "tiny.yaml", "--runs-dir", tmp_path / "runs", *args)
    assert_user_error(r, *words)
    assert not (tmp_path / "runs").exists()


def test_without_ray_installed_the_error_names_the_extra(tmp_path, monkeypatch):
    write_yaml(tmp_path / "tiny.yaml", TINY)
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    r = cli("sweep", "--config", tmp_path / "tiny.yaml", "--backend", "ray", "--runs-dir", tmp_path / "runs")
    assert_user_error(r, "--backend ray needs Ray", 'pip install -e ".[ray]"')
    assert not (tmp_path / "runs").exists()


def test_the_notebook_api_runs_a_sweep_on_the_ray_it_joined(tmp_path):
    import mlp_lab

    write_yaml(tmp_path / "tiny.yaml", TINY)
    sfile = write_yaml(tmp_path / "s.yaml", {"base": "tiny.yaml", "seeds": 2})
    made = mlp_lab.sweep(sfile, {"train.epochs": 1}, backend="ray", runs_dir=tmp_path / "runs")
    assert [(r.status, r.config["train"]["seed"]) for r in made] == [("completed", 0), ("completed", 1)]
    assert ray.is_initialized()  # the notebook's own Ray is left as it was


def test_ray_workers_take_sigint_even_when_the_sweep_was_started_ignoring_it(tmp_path):
    # ray.cancel interrupts a task through SIGINT; a worker that inherited SIGINT ignored (a
    # shell's background job) would fail the run instead. The sweep's workers restore it.
    code = (
        "import signal\nfrom mlp_lab.sweeps.ray_backend import ray_session\n"
        "def handler():\n    return signal.getsignal(signal.SIGINT) is signal.default_int_handler\n"
        "with ray_session(None) as ray:\n    print('restored:', ray.get(ray.remote(handler).remote()))\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=offline_env(),
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_ignore_sigint,
    )
    assert "restored: True" in r.stdout, r.stderr[-2000:]


def _descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (from /proc's parent links)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = set(), [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in out:
                out.add(c)
                todo.append(c)
    return out


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:200]
    except OSError:
        return "?"


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_sigkill_of_the_driver_ends_its_ray_tasks_and_resume_trains_every_run_once(tmp_path):
    write_yaml(tmp_path / "tiny.yaml", TINY)
    sfile = write_yaml(tmp_path / "s.yaml", {"base": "tiny.yaml", "set": LONGER, "seeds": 3})
    command = ["sweep", sfile, "--backend", "ray", "--jobs", "1", "--runs-dir", "killed", "--quiet"]
    proc = start(*command, cwd=tmp_path, start_new_session=True)
    deadline = time.monotonic() + 120
    while not _first_run_recorded(tmp_path / "killed"):  # the first run is back, the second trains
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)

    # Its local Ray's processes that train or schedule (the workers, the raylet, the GCS);
    # Ray's agents (dashboard, runtime env), which train nothing, wind down on their own time.
    def ray_processes() -> set[int]:
        return {p for p in _descendants(proc.pid) if "Agent" not in (_cmdline(p).split() or [""])[0]}

    # The second run's task is training (a Ray worker names the task it runs in its title).
    while not any("train_task" in _cmdline(p) for p in ray_processes()):
        assert proc.poll() is None and time.monotonic() < deadline, [_cmdline(p) for p in ray_processes()]
        time.sleep(0.02)
    below = ray_processes()
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    deadline = time.monotonic() + 20
    while any(_alive(p) for p in below):
        assert time.monotonic() < deadline, [_cmdline(p) for p in below if _alive(p)]
        time.sleep(0.2)
    (folder,) = (tmp_path / "killed").iterdir()
    done_before = {
        e["folder"]: (folder / e["folder"] / "summary.json").read_text()
        for e in load_manifest(folder).runs
        if e["status"] == "completed"
    }
    assert len(done_before) == 1

    r = cli_subprocess("resume", folder, "--quiet", cwd=tmp_path, timeout=300)
    assert r.code == 0, r
    after = load_manifest(folder).runs
    assert [e["status"] for e in after] == ["completed"] * 3
    for name, text in done_before.items():  # the finished run was not trained again
        assert (folder / name / "summary.json").read_text() == text
    assert sorted(p.name for p in folder.iterdir() if (p / "summary.json").exists()) == sorted(
        e["folder"] for e in after
    )
    straight = new_sweep(tmp_path, "straight", set=LONGER, seeds=3)
    sweeps.run_sweep(straight, jobs=1, threads=1)
    assert metrics_by_run(folder) == metrics_by_run(straight)


def test_a_search_on_ray_prunes_through_cancel_and_draws_the_local_trials(tmp_path):
    # Enough epochs that a hopeless run is still training when the pruner's word (a post,
    # the driver's poll, a cancel) reaches it, also on a loaded machine: with 6 it could
    # finish first and stay completed.
    EPOCHS = 15
    base = {
        **TINY,
        "data": {"dataset": "synthetic", "synthetic_train_size": 4000, "synthetic_test_size": 100},
        "model": {"hidden": [128, 128]},
        "optimizer": {"name": "sgd", "lr": 0.1},
        "train": {"epochs": EPOCHS, "batch_size": 50},
    }
    write_yaml(tmp_path / "base.yaml", base)
    doc = {
        "base": "base.yaml",
        "search": {
            "trials": 6,
            "space": {"optimizer.lr": {"choice": [1.0e-6, 0.1]}},
            "prune": {"rule": "median", "min_epochs": 1},
        },
    }
    plan = load_sweep(write_yaml(tmp_path / "s.yaml", doc))
    folder = sweeps.start_sweep(plan, tmp_path / "runs").folder
    outcome = sweeps.run_sweep(folder, jobs=1, threads=1, backend="ray")
    entries = load_manifest(folder).runs
    assert [e["varies"] for e in entries] == [r.varies for r in plan.runs]  # the trials a local search draws
    pruned = [e for e in entries if e["status"] == "pruned"]
    assert pruned and all(e["varies"]["optimizer.lr"] == 1e-6 for e in pruned), entries
    for e in pruned:  # stopped through cancel, with the epochs it finished and its files back
        lines = (folder / e["folder"] / "metrics.jsonl").read_text().splitlines()
        assert (
            1 <= len(lines) < EPOCHS
            and json.loads((folder / e["folder"] / "summary.json").read_text())["status"] == "pruned"
        )
    assert all(e["status"] == "completed" for e in entries if e["varies"]["optimizer.lr"] == 0.1)
    assert outcome.counts.get("pruned") == len(pruned) and (folder / "best.yaml").exists()
