"""Inputs that cannot be a config, and machines that cannot hold the run: YAML bombs,
deep nesting, huge files and values, networks too big for memory, full disks and
read-only targets. Each is one line, exit 2 (or a failed run that says why), quickly,
with nothing half-written left behind."""

from __future__ import annotations

import errno
import json
import os
import resource
import subprocess
import time
from pathlib import Path

import pytest
import torch
import yaml

from mlp_lab import atomic_files
from mlp_lab.sweeps import load_manifest

from helpers import TINY, assert_user_error, cli, only_run, run_folders, summary, write_config


def _laughs(levels: int = 9) -> str:
    """'Billion laughs': each level an alias list of the one before, 9**levels strings."""
    lines = ["name: tiny", 'description: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        lines.append(f"x{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def _deep(depth: int = 600) -> str:
    return "[" * depth + "]" * depth


def _fast_and_small(fn) -> float:
    """Seconds ``fn`` took; fails if it grew this process by more than 50 MB."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    fn()
    took = time.perf_counter() - t0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50_000, "used more than 50 MB"
    return took


@pytest.mark.parametrize("make", ["config", "sweep", "set"])
def test_billion_laughs_is_refused_in_well_under_a_second(tmp_path, make):
    if make == "config":
        (tmp_path / "c.yaml").write_text(_laughs(), encoding="utf-8")
        args = ("train", "--config", "c.yaml")
    elif make == "sweep":
        write_config(tmp_path / "base.yaml")
        (tmp_path / "s.yaml").write_text(
            "base: base.yaml\nseeds: 1\nx0: &a0 [1,1,1,1,1,1,1,1,1]\n"
            + "\n".join(f"x{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9))
            + "\n",
            encoding="utf-8",
        )
        args = ("sweep", "s.yaml")
    else:
        write_config(tmp_path / "c.yaml")
        value = (
            "["
            + ", ".join(
                ["&a0 [1,1,1,1,1,1,1,1,1]"] + [f"&a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
            )
            + "]"
        )
        args = ("train", "--config", "c.yaml", "--set", f"description={value}")
    res = None

    def go():
        nonlocal res
        res = cli(*args)

    assert _fast_and_small(go) < 1.0
    line = assert_user_error(res, "expands to more than")
    assert len(line) < 300
    assert not (tmp_path / "runs").exists() or run_folders(tmp_path / "runs") == []


@pytest.mark.parametrize("where", ["config", "sweep", "set"])
def test_a_list_nested_600_deep_is_one_line(tmp_path, where):
    if where == "config":
        (tmp_path / "c.yaml").write_text(f"name: tiny\ndescription: {_deep()}\n", encoding="utf-8")
        args = ("train", "--config", "c.yaml")
    elif where == "sweep":
        write_config(tmp_path / "base.yaml")
        (tmp_path / "s.yaml").write_text(f"base: base.yaml\ngrid: {{model.hidden: {_deep()}}}\n", encoding="utf-8")
        args = ("sweep", "s.yaml")
    else:
        write_config(tmp_path / "c.yaml")
        args = ("train", "--config", "c.yaml", "--set", f"model.hidden={_deep()}")
    t0 = time.perf_counter()
    res = cli(*args)
    assert time.perf_counter() - t0 < 1.0
    assert_user_error(res, "nested more than 32 levels")


def test_aliases_for_small_repeats_still_work(tmp_path):
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(TINY) + "x: &h [16]\n", encoding="utf-8")
    text = (tmp_path / "c.yaml").read_text().replace("x: &h [16]\n", "")
    text = "sizes: &h [16]\n" + text  # an anchor at the top, used below
    (tmp_path / "c.yaml").write_text(text.replace("hidden:\n  - 16", "hidden: *h"), encoding="utf-8")
    res = cli("train", "--config", "c.yaml", "--quiet")
    # 'sizes' is not a config key: refused for that, not for the alias
    assert_user_error(res, "unknown key 'sizes'")


def test_a_huge_file_and_a_huge_set_value_are_refused(tmp_path):
    (tmp_path / "c.yaml").write_text("name: tiny\ndescription: " + "x" * (2 << 20) + "\n", encoding="utf-8")
    assert_user_error(cli("train", "--config", "c.yaml"), "c.yaml", "bytes", "at most")
    write_config(tmp_path / "ok.yaml")
    line = assert_user_error(
        cli("train", "--config", "ok.yaml", "--set", "description=" + "y" * 50_000), "--set description", "at most"
    )
    assert len(line) < 200


def test_every_quoted_value_is_shortened(tmp_path):
    write_config(tmp_path / "c.yaml", {"model": {"activation": "r" * 5000}})
    line = assert_user_error(cli("train", "--config", "c.yaml"), "model.activation", "allowed: sigmoid")
    assert len(line) < 300
    write_config(tmp_path / "d.yaml", {"model": {"hidden": [[1, 2]] * 3000}})
    line = assert_user_error(cli("train", "--config", "d.yaml"), "model.hidden")
    assert len(line) < 300


# --- a network too big for the machine ----------------------------------------------------


def test_two_million_layers_are_refused_with_the_estimate_and_no_folder(tmp_path):
    import mlp_lab
    from mlp_lab.errors import ConfigError

    cfg = dict(TINY, model={"hidden": [256] * 2_000_000})
    t0 = time.perf_counter()
    with pytest.raises(ConfigError) as e:
        mlp_lab.train(cfg, runs_dir=tmp_path / "runs")
    assert time.perf_counter() - t0 < 5
    msg = str(e.value)
    assert "2,000,000 hidden layers" in msg and "does not fit" in msg and "train.check_memory: false" in msg
    assert "GB" in msg and "TB" in msg  # the limit and the estimate
    assert not (tmp_path / "runs").exists() or run_folders(tmp_path / "runs") == []


def test_too_big_from_a_small_file_and_check_memory_false_lets_it_through(tmp_path):
    from mlp_lab.config import validate_config
    from mlp_lab.memory import check_fits, estimate

    write_config(tmp_path / "c.yaml", {"model": {"hidden": [200_000] * 200}})
    assert_user_error(cli("train", "--config", "c.yaml"), "200 hidden layers", "does not fit")
    assert run_folders(tmp_path / "runs") == [] if (tmp_path / "runs").exists() else True
    # the estimate is what the network holds: parameters counted as torch counts them
    from mlp_lab.model import build_model, count_params

    for model in (
        {"hidden": [32, 16]},
        {"hidden": [8], "activation": "maxout", "maxout_pieces": 3},
        {"hidden": [8, 8], "norm": "batchnorm", "activation": "prelu"},
    ):
        cfg = validate_config(dict(TINY, model=model))
        assert estimate(cfg).params == count_params(build_model(cfg.model, 784, 10))
    big = validate_config(dict(TINY, model={"hidden": [200_000] * 200}))
    with pytest.raises(Exception, match="does not fit"):
        check_fits(big)
    big.train.check_memory = False
    check_fits(big)  # forced: the user knows their machine


def test_a_batch_larger_than_the_training_set_is_estimated_as_the_set_it_trains_on():
    from mlp_lab.config import validate_config
    from mlp_lab.memory import check_fits, estimate

    # "full batch" said generously: one batch of the 1,000 images there are, not 10M of them
    # (the check refused it as needing 84 GB of activations).
    def cfg(batch: int) -> object:
        return validate_config({"data": {"dataset": "mnist", "limit_train": 1000}, "train": {"batch_size": batch}})

    assert estimate(cfg(10_000_000)).bytes == estimate(cfg(1000)).bytes < estimate(cfg(999)).bytes + 2**20
    check_fits(cfg(10_000_000))
    assert estimate(cfg(60_000)).parts["activations"] < 50 * 2**20


def test_a_sweep_with_a_cell_too_big_writes_nothing(tmp_path):
    write_config(tmp_path / "base.yaml")
    (tmp_path / "s.yaml").write_text("base: base.yaml\ngrid: {model.hidden: [[16], [300000, 300000, 300000]]}\n")
    assert_user_error(cli("sweep", "s.yaml"), "cell", "does not fit")
    assert not (tmp_path / "runs").exists() or list((tmp_path / "runs").iterdir()) == []


# --- a full disk, injected at the write layer ----------------------------------------------


def _fail_writes_of(monkeypatch, name: str, after: int = 0):
    """ENOSPC for every write of a file called ``name`` after its first ``after`` writes."""
    real_temp, real_append = atomic_files._open_temp, atomic_files._open_append
    count = {"n": 0}

    def full(path):
        if Path(path).name == name:
            count["n"] += 1
            if count["n"] > after:
                raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(atomic_files, "_open_temp", lambda path: (full(path), real_temp(path))[1])
    monkeypatch.setattr(atomic_files, "_open_append", lambda path: (full(path), real_append(path))[1])


@pytest.mark.parametrize(
    "name,after",
    [
        ("config.yaml", 0),
        ("metrics.jsonl", 1),
        ("checkpoint.pt", 1),
        ("model.pt", 0),
        ("summary.json", 2),
    ],
)
def test_a_full_disk_at_each_write_of_a_run_is_one_line_naming_the_file(tmp_path, monkeypatch, name, after):
    _fail_writes_of(monkeypatch, name, after)
    write_config(tmp_path / "c.yaml", {"train": {"epochs": 3}})
    res = cli("train", "--config", "c.yaml", "--quiet")
    assert "Traceback" not in res.output and res.exception is None, res
    assert res.code in (1, 2), res
    assert "no space left on device writing runs/" in res.stderr and name in res.stderr, res.stderr
    for run in run_folders(tmp_path / "runs"):
        assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]
        s = summary(run) if (run / "summary.json").exists() else None
        if s is not None and s["status"] != "running":
            assert s["status"] == "failed" and "no space left on device" in s["message"]
        if (run / "checkpoint.pt").exists():
            torch.load(run / "checkpoint.pt", weights_only=True)  # whole, never half written


def test_a_full_disk_while_making_the_sweep_folder_leaves_nothing(tmp_path, monkeypatch):
    write_config(tmp_path / "base.yaml")
    (tmp_path / "s.yaml").write_text("base: base.yaml\nseeds: 2\n")
    for name in ("sweep.yaml", "manifest.json"):
        with monkeypatch.context() as mp:
            _fail_writes_of(mp, name)
            assert_user_error(cli("sweep", "s.yaml", "--quiet"), "no space left on device", name)
        assert list((tmp_path / "runs").iterdir()) == []


# --- a real full disk and a read-only one (tmpfs; skipped where mounting is not allowed) ---


def _mount(path: Path, *options: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    ok = (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(path)], capture_output=True
        ).returncode
        == 0
    )
    return ok


@pytest.fixture
def small_disk(tmp_path):
    disk = tmp_path / "disk"
    if os.geteuid() != 0 or not _mount(disk, "size=3m"):
        pytest.skip("needs root and tmpfs to make a disk that fills")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], capture_output=True)


@pytest.fixture
def read_only(tmp_path):
    where = tmp_path / "ro"
    if os.geteuid() != 0 or not _mount(where, "size=1m", "ro"):
        pytest.skip("needs root and tmpfs to make a read-only folder")
    yield where
    subprocess.run(["umount", "-l", str(where)], capture_output=True)


def test_a_run_on_a_disk_that_fills_fails_saying_so(tmp_path, small_disk):
    # Adam's checkpoint of a 784-200-10 net is ~1.9 MB: the first fits the 3 MB disk, the
    # second (written beside it, then renamed over it) does not.
    write_config(
        tmp_path / "c.yaml",
        {"model": {"hidden": [200]}, "optimizer": {"name": "adam", "lr": 0.001}, "train": {"epochs": 6}},
    )
    res = cli("train", "--config", "c.yaml", "--quiet", "--runs-dir", small_disk)
    assert res.code in (1, 2) and "Traceback" not in res.output, res
    assert "no space left on device writing" in res.stderr, res.stderr
    run = only_run(small_disk)
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]
    epoch = torch.load(run / "checkpoint.pt", weights_only=True)["epoch"]
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]  # every line whole
    assert epoch >= 1 and len(lines) >= epoch
    s = summary(run)
    assert s["status"] == "failed" and "no space left on device" in s["message"], s


@pytest.mark.parametrize("command", ["export", "report", "compare", "train", "train-tensorboard", "sweep-tensorboard"])
def test_read_only_targets_are_one_line(tmp_path, read_only, command):
    write_config(tmp_path / "c.yaml", {"train": {"epochs": 1}})
    if command != "train":
        assert cli("train", "--config", "c.yaml", "--quiet").code == 0
    args = {
        "export": ("export", "tensorboard", "runs", "--logdir", read_only / "tb"),
        "report": ("report", "runs", "-o", read_only / "r.html"),
        "compare": ("compare", "runs", "--output", read_only / "c.csv"),
        "train": ("train", "--config", "c.yaml", "--runs-dir", read_only / "runs"),
        "train-tensorboard": ("train", "--config", "c.yaml", "--runs-dir", "fresh", "--tensorboard", read_only / "tb"),
        "sweep-tensorboard": ("sweep", "--config", "c.yaml", "--runs-dir", "fresh", "--tensorboard", read_only / "tb"),
    }[command]
    assert_user_error(cli(*args), "read-only")
    assert not (tmp_path / "fresh").exists()  # said before a run or a sweep folder was made


def test_a_sweep_on_a_disk_that_fills_stops_starting_runs_and_says_so(tmp_path, small_disk):
    write_config(
        tmp_path / "c.yaml",
        {"model": {"hidden": [200]}, "optimizer": {"name": "adam", "lr": 0.001}, "train": {"epochs": 4}},
    )
    (tmp_path / "s.yaml").write_text("base: c.yaml\nseeds: 4\n", encoding="utf-8")
    res = cli("sweep", "s.yaml", "--quiet", "--jobs", "1", "--threads", "1", "--runs-dir", small_disk)
    assert res.code == 1 and "Traceback" not in res.output, res
    assert "the disk is full" in res.stderr and f"mlp-lab resume {small_disk}" in res.stderr, res.stderr
    (folder,) = small_disk.iterdir()
    statuses = [e["status"] for e in load_manifest(folder).runs]  # (the journal, where the disk had no room for more)
    assert statuses[0] == "failed" and statuses.count("pending") >= 2, statuses  # it stopped starting runs
