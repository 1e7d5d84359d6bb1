"""Helpers for the tests that drive mlp-lab the way a user does: the CLI, exit codes,
stderr, files on disk. Tiny synthetic experiments only, so every run takes a second or two.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner

from mlp_lab.cli import app

REPO = Path(__file__).resolve().parents[1]
# The installed console script, as a user types it; `python -m mlp_lab` where there is none.
_SCRIPT = Path(sys.executable).parent / "mlp-lab"
MLP_LAB = [str(_SCRIPT)] if _SCRIPT.is_file() else [sys.executable, "-m", "mlp_lab"]

# Where the tests' runs train: the CPU, also where a GPU exists (exact resume equality is
# promised on CPU only); MLP_LAB_TEST_DEVICE=cuda runs the same tests on a GPU instead.
TEST_DEVICE = os.environ.get("MLP_LAB_TEST_DEVICE", "cpu")

# A tiny experiment on the synthetic set: a fraction of a second per epoch on one core.
TINY: dict[str, Any] = {
    "name": "tiny",
    "data": {"dataset": "synthetic", "synthetic_train_size": 200, "synthetic_test_size": 50},
    "model": {"hidden": [16], "init": "kaiming_normal"},
    "optimizer": {"name": "sgd", "lr": 0.05},
    "train": {"epochs": 2, "batch_size": 20, "device": TEST_DEVICE},
}

# The sweep tests' run: the schema's default init and optimizer, 300 + 100 images.
SWEEP_TINY: dict[str, Any] = {
    "name": "tiny",
    "data": {"dataset": "synthetic", "synthetic_train_size": 300, "synthetic_test_size": 100},
    "model": {"hidden": [16]},
    "train": {"epochs": 1, "batch_size": 50, "device": TEST_DEVICE},
}


def sweep_file(folder: Path, **fields: Any) -> Path:
    """``folder/s.yaml``: a sweep of ``tiny.yaml`` (SWEEP_TINY: the ``base`` fixture writes it) with ``fields``."""
    return write_yaml(folder / "s.yaml", {"base": "tiny.yaml", **fields})


_runner = CliRunner()


def merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes`` merged in section by section (a copy; base is untouched)."""
    out = json.loads(json.dumps(base))
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def write_yaml(path: Path, doc: dict[str, Any]) -> Path:
    """``doc`` as YAML at ``path`` (its folder made); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def write_config(path: Path, changes: dict[str, Any] | None = None, base: dict[str, Any] | None = None) -> Path:
    """Write TINY (or ``base``) with ``changes`` merged in as YAML; returns the path."""
    return write_yaml(path, merge(base or TINY, changes or {}))


def offline_env(**extra: str) -> dict[str, str]:
    """The environment for a subprocess: never downloads, never reads the user's data."""
    env = {k: v for k, v in os.environ.items() if k != "MLP_LAB_DATA"}
    # One intra-op thread: these models are tiny, and on a small shared machine torch's
    # worker threads spin-waiting for busy cores make a run several times slower (the
    # numbers are the same either way; every process in a test uses the same setting).
    env.update(MLP_LAB_OFFLINE="1", PYTHONUNBUFFERED="1", COLUMNS="200", OMP_NUM_THREADS="1", **extra)
    return env


class CliResult:
    def __init__(self, code: int, stdout: str, stderr: str, exception: BaseException | None = None) -> None:
        self.code, self.stdout, self.stderr, self.exception = code, stdout, stderr, exception

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def __repr__(self) -> str:
        return (
            f"CliResult(code={self.code}, stdout={self.stdout!r}, stderr={self.stderr!r}, exception={self.exception!r})"
        )


def cli(*args: str | Path) -> CliResult:
    """Run ``mlp-lab ARGS`` in this process (fast: torch is imported once), on one thread
    like the subprocesses (see offline_env), restoring the thread count afterwards."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        res = _runner.invoke(app, [str(a) for a in args], prog_name="mlp-lab")
    finally:
        torch.set_num_threads(threads)
    exc = res.exception if res.exception is not None and not isinstance(res.exception, SystemExit) else None
    return CliResult(res.exit_code, res.stdout, res.stderr, exc)


def cli_subprocess(*args: str | Path, cwd: Path, timeout: float = 120, env: dict[str, str] | None = None) -> CliResult:
    """Run ``mlp-lab ARGS`` as a real process, the way a user's shell does."""
    proc = subprocess.run(
        [*MLP_LAB, *[str(a) for a in args]],
        cwd=cwd,
        env=env or offline_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def assert_user_error(res: CliResult, *words: str) -> str:
    """Exit code 2, exactly one line on stderr starting with 'error:' and naming every
    word (case-insensitive), nothing on stdout, no traceback. Returns the line."""
    assert res.exception is None, f"exception escaped: {res!r}"
    assert "Traceback" not in res.output, res.output
    assert res.code == 2, res
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {lines!r}"
    line = lines[0]
    assert line.startswith("error: "), line
    for word in words:
        assert word.lower() in line.lower(), f"{word!r} not in {line!r}"
    return line


def run_folders(runs_dir: Path) -> list[Path]:
    runs_dir = Path(runs_dir)
    return sorted(p for p in runs_dir.iterdir() if p.is_dir()) if runs_dir.is_dir() else []


def only_run(runs_dir: Path) -> Path:
    folders = run_folders(runs_dir)
    assert len(folders) == 1, folders
    return folders[0]


def summary(run_dir: Path) -> dict[str, Any]:
    return json.loads((Path(run_dir) / "summary.json").read_text(encoding="utf-8"))


def metrics(run_dir: Path) -> list[dict[str, Any]]:
    """metrics.jsonl, every line parsed (a malformed line fails the test)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    assert text == "" or text.endswith("\n"), "metrics.jsonl ends in a partial line"
    return [json.loads(line) for line in text.splitlines()]


def without_seconds(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in rec.items() if k != "seconds"} for rec in history]


def start(*args: str | Path, cwd: Path, env: dict[str, str] | None = None, **popen: Any) -> subprocess.Popen:
    """``mlp-lab ARGS`` as a background process (stdout and stderr captured), offline.
    ``popen``: more of ``subprocess.Popen``'s options (``start_new_session=True`` gives it
    its own process group, as a terminal does: Ctrl-C reaches the sweep and its runs alike)."""
    return subprocess.Popen(
        [*MLP_LAB, *[str(a) for a in args]],
        cwd=cwd,
        env=env if env is not None else offline_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def start_training(config: Path, cwd: Path, *extra: str) -> subprocess.Popen:
    """``mlp-lab train --config CONFIG --quiet`` as a background process."""
    return start("train", "--config", config, "--quiet", *extra, cwd=cwd)


def wait_for(predicate, proc: subprocess.Popen | None = None, timeout: float = 120.0) -> None:
    """Wait until ``predicate()`` is true; fail if ``proc`` ends first or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"ended early (code {proc.returncode}): {proc.communicate()}")
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:g}s")


def wait_for_epochs(runs_dir: Path, proc: subprocess.Popen, epochs: int = 1, timeout: float = 120) -> Path:
    """Wait until the process's single run folder has ``epochs`` lines in metrics.jsonl."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        folders = run_folders(runs_dir)
        if folders:
            path = folders[0] / "metrics.jsonl"
            if path.exists() and path.read_text(encoding="utf-8").count("\n") >= epochs:
                return folders[0]
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"training ended (code {proc.returncode}) before {epochs} epoch(s): {out}{err}")
        time.sleep(0.02)
    proc.kill()
    raise AssertionError(f"no {epochs} finished epoch(s) within {timeout}s")


def interrupt(proc: subprocess.Popen, sig: int = signal.SIGINT, timeout: float = 60) -> tuple[int, str, str]:
    """Send ``sig`` and wait for the process to end; (exit code, stdout, stderr)."""
    proc.send_signal(sig)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(
            f"process did not stop within {timeout}s of {signal.Signals(sig).name}: {out}{err}"
        ) from None
    return proc.returncode, out, err
