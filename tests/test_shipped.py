"""The design card's commands exactly as written, from an empty folder and from the built
wheel: shipped configs by name, `mlp-lab configs`, and the names that are neither."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fakedata import make_idx_dataset
from helpers import MLP_LAB, REPO, assert_user_error, cli, offline_env

QUICK = ["--set", "train.epochs=1", "--set", "train.device=cpu", "--quiet"]


@pytest.fixture
def mnist(tmp_path) -> Path:
    data = tmp_path / "data"
    make_idx_dataset(data, n_train=60, n_test=20)
    return data


def _run(cmd: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_the_cards_two_commands_from_an_empty_folder(tmp_path, mnist):
    empty = tmp_path / "empty"
    empty.mkdir()
    env = offline_env(MLP_LAB_DATA=str(mnist), PATH=f"{Path(MLP_LAB[0]).parent}:{os.environ['PATH']}")
    for _ in range(2):
        r = _run(f"mlp-lab train --config relu_adam.yaml {' '.join(QUICK)}", empty, env)
        assert r.returncode == 0, r.stderr
        assert "using the shipped config relu_adam" in r.stderr
    r = _run("mlp-lab compare runs/*", empty, env)
    assert r.returncode == 0, r.stderr
    assert "relu_adam" in r.stdout and "warning" not in r.stderr


@pytest.mark.parametrize("name", ["relu_adam", "relu_adam.yaml", "configs/relu_adam.yaml", "lecture/init_tanh_small"])
def test_a_shipped_config_by_any_of_its_names(tmp_path, name):
    r = cli("inspect", "--config", name, "--synthetic-input", "--batch", "50")
    assert r.code == 0, r
    assert f"using the shipped config {Path(name.removeprefix('configs/')).with_suffix('').as_posix()}" in r.stderr


def test_a_file_that_exists_wins_over_the_shipped_one(tmp_path):
    (tmp_path / "relu_adam.yaml").write_text("name: mine\nmodel: {hidden: [8]}\n", encoding="utf-8")
    r = cli("inspect", "--config", "relu_adam.yaml", "--synthetic-input", "--batch", "20")
    assert r.code == 0 and "shipped" not in r.stderr and "mine" in r.stdout, r


def test_a_name_that_is_neither_is_one_line_with_near_names():
    line = assert_user_error(
        cli("train", "--config", "relu_adma"),
        "config file not found: relu_adma",
        "did you mean relu_adam",
        "mlp-lab configs",
    )
    assert len(line) < 300
    assert_user_error(cli("sweep", "batchnrom", "--dry-run"), "sweep file not found", "sweeps/batchnorm")


def test_shipped_sweep_files_by_name_and_copied_out(tmp_path):
    r = cli("sweep", "batchnorm", "--dry-run")
    assert r.code == 0 and "using the shipped sweep sweeps/batchnorm" in r.stderr, r
    r = cli("configs", "--copy", "sweeps/batchnorm", "--to", "mine.yaml")
    assert r.code == 0 and (tmp_path / "mine.yaml").exists(), r
    r = cli("sweep", "mine.yaml", "--dry-run")  # its base (../relu_sgd.yaml) is found among the shipped configs
    assert r.code == 0 and "12 runs" in r.stdout, r
    assert_user_error(cli("configs", "--copy", "sweeps/batchnorm", "--to", "mine.yaml"), "exists already")


def test_the_lecture_suite_copied_out_as_a_folder_runs_with_more_seeds(tmp_path):
    r = cli("configs", "--copy", "lecture", "--to", "lecture5")
    assert r.code == 0 and r.stdout.strip() == "wrote lecture5", r
    assert {p.name for p in (tmp_path / "lecture5").iterdir()} == {p.name for p in (REPO / "configs/lecture").iterdir()}
    sweep = tmp_path / "lecture5" / "sweep.yaml"
    sweep.write_text(sweep.read_text().replace("seeds: 3", "seeds: 5"))
    r = cli("sweep", sweep, "--dry-run")
    assert r.code == 0 and "90 runs: 18 cells x 5 seeds" in r.stdout, r
    assert cli("configs", "--copy", "lecture", "--to", "lecture5").stdout == "wrote lecture5/lecture\n"  # as cp -r
    assert_user_error(cli("configs", "--copy", "lecture", "--to", "lecture5"), "lecture5/lecture exists already")
    # By its path in a checkout, and by name beside a folder of one's own called lecture:
    assert cli("configs", "--copy", REPO / "configs" / "lecture", "--to", "by-path").code == 0
    (tmp_path / "lecture").mkdir()
    assert cli("configs", "--copy", "lecture", "--to", "by-name").code == 0
    assert (tmp_path / "by-path" / "sweep.yaml").is_file() and (tmp_path / "by-name" / "sweep.yaml").is_file()


def test_a_sweep_file_copied_without_its_configs_says_what_it_left_behind(tmp_path):
    r = cli("configs", "--copy", "lecture/sweep", "--to", "lec.yaml")
    assert r.code == 0 and (tmp_path / "lec.yaml").exists(), r
    assert "note: lec.yaml reads its configs: beside it (act_sigmoid_deep.yaml, init_*.yaml" in r.stderr, r
    assert "mlp-lab configs --copy lecture --to DIR" in r.stderr
    r = cli("configs", "--copy", "sweeps/batchnorm", "--to", "mine.yaml")  # a base by name: nothing left behind
    assert r.code == 0 and r.stderr == "", r


def test_to_without_copy_is_an_error_not_ignored(tmp_path):
    assert_user_error(cli("configs", "--to", "x.yaml"), "--to x.yaml", "--copy")


def test_configs_lists_every_shipped_file_with_its_description():
    r = cli("configs")
    assert r.code == 0, r
    names = {p.relative_to(REPO / "configs").with_suffix("").as_posix() for p in (REPO / "configs").rglob("*.yaml")}
    listed = {line.split()[0] for line in r.stdout.splitlines() if line.startswith("  ")}
    assert listed == names
    line = next(x for x in r.stdout.splitlines() if x.strip().startswith("relu_adam "))
    assert "baseline" in line
    sweeps = r.stdout.split("sweep files")[1]
    assert "sweeps/batchnorm" in sweeps and "lecture/sweep" in sweeps and "relu_adam" not in sweeps


def test_the_built_wheel_carries_the_configs_and_trains_by_name(tmp_path, mnist):
    wheels, site, empty = tmp_path / "wheels", tmp_path / "site", tmp_path / "empty"
    empty.mkdir()
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(REPO)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = wheels.glob("mlp_lab-*.whl")
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr
    env = offline_env(PYTHONPATH=str(site), MLP_LAB_DATA=str(mnist))
    r = subprocess.run(
        [sys.executable, "-m", "mlp_lab", "train", "--config", "relu_adam.yaml", *QUICK],
        cwd=empty,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert f"using the shipped config relu_adam ({site / 'mlp_lab' / 'configs' / 'relu_adam.yaml'})" in r.stderr
    assert len(list((empty / "runs").iterdir())) == 1


# --- rough edges a new user hit ----------------------------------------------------------------


def test_piped_compare_and_show_have_no_trailing_spaces_and_unset_values_read_dash(tmp_path):
    from helpers import only_run, write_config

    write_config(tmp_path / "c.yaml", {"data": {"limit_train": 100}})
    assert cli("train", "--config", "c.yaml", "--quiet").code == 0
    env = offline_env()
    env.pop("COLUMNS", None)
    for args in (
        ["compare", "runs"],
        ["show", str(only_run(tmp_path / "runs"))],
        ["show", str(only_run(tmp_path / "runs")), "--all"],
    ):
        r = subprocess.run([*MLP_LAB, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        assert [line for line in r.stdout.splitlines() if line != line.rstrip()] == []
        assert "null" not in r.stdout


@pytest.mark.parametrize("command", [[], ["train"], ["sweep"], ["compare"], ["check"], ["export", "tensorboard"]])
def test_help_lists_flags_without_a_bool_type(command):
    # ours (--quiet, --reverse) and Typer's own (--help, --install-completion) alike
    r = cli(*command, "--help")
    assert r.code == 0 and "--help" in r.stdout
    flags = [
        line for line in r.stdout.splitlines() if any(f in line for f in ("--help", "--quiet", "--install-completion"))
    ]
    assert flags and not any("bool" in line for line in flags), flags


def test_words_for_one(tmp_path):
    (tmp_path / "s.yaml").write_text(f"base: {REPO / 'configs' / 'smoke.yaml'}\n", encoding="utf-8")
    assert "1 run: 1 cell x 1 seed (dry run" in cli("sweep", "s.yaml", "--dry-run").stdout


def test_a_finished_sweep_folder_keeps_no_lock_and_no_empty_logs(tmp_path):
    (tmp_path / "s.yaml").write_text(
        f"base: {REPO / 'configs' / 'smoke.yaml'}\nset: {{train.epochs: 1}}\n", encoding="utf-8"
    )
    r = cli("sweep", "s.yaml", "--quiet", "--jobs", "1")
    assert r.code == 0, r
    (folder,) = (tmp_path / "runs").iterdir()
    assert not (folder / ".sweep.lock").exists() and not (folder / ".logs").exists()


def test_a_failed_download_leaves_no_empty_data_folder(tmp_path, monkeypatch):
    from mlp_lab.data import files

    from helpers import write_config

    def no_network(dataset, data_dir):
        (Path(data_dir) / "MNIST" / "raw").mkdir(parents=True, exist_ok=True)  # as torchvision does first
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(files, "download", no_network)
    monkeypatch.delenv("MLP_LAB_OFFLINE", raising=False)
    write_config(tmp_path / "c.yaml", {"data": {"dataset": "mnist", "download": True}})
    assert_user_error(cli("train", "--config", "c.yaml", "--data-dir", "data"), "MNIST", "Error downloading")
    assert not (tmp_path / "data").exists()


def _complete(words: str, env_extra: dict | None = None) -> list[str]:
    env = offline_env(_MLP_LAB_COMPLETE="complete_bash", COMP_WORDS=words, COMP_CWORD=str(len(words.split()) - 1))
    r = subprocess.run(MLP_LAB, env=env, capture_output=True, text=True, timeout=60)
    return r.stdout.split()


def test_shell_completion_offers_config_names_and_key_paths():
    assert "relu_adam" in _complete("mlp-lab train --config relu_a")
    assert "lecture/init_tanh_small" in _complete("mlp-lab check --config lecture/init_t")
    keys = _complete("mlp-lab train --set optimizer.l")
    assert "optimizer.lr=" in keys and all(k.startswith("optimizer.l") for k in keys)
    assert "model.activation=" in _complete("mlp-lab sweep x.yaml --set model.act")
    assert "batchnorm" in _complete("mlp-lab sweep batch")
    assert "--install-completion" in cli("--help").stdout


def test_each_shipped_sweep_file_plans_the_same_runs_from_any_folder(tmp_path):
    """A shipped sweep file copied anywhere (mlp-lab configs --copy) finds the same base."""
    from mlp_lab.shipped import list_shipped
    from mlp_lab.sweeps import load_sweep

    for shipped in list_shipped():
        if shipped.kind != "sweep" or "base:" not in shipped.path.read_text():
            continue
        here = load_sweep(shipped.path, [])
        copy = tmp_path / shipped.path.name
        copy.write_text(shipped.path.read_text())
        there = load_sweep(copy, [])
        assert [(r.cell, r.seed) for r in there.runs] == [(r.cell, r.seed) for r in here.runs], shipped.name
        assert not any("not beside" in note for note in there.notes), shipped.name


def test_a_base_path_that_is_not_there_falls_back_to_the_shipped_config_with_a_note(tmp_path):
    from mlp_lab.sweeps import load_sweep

    (tmp_path / "s.yaml").write_text("base: ../relu_sgd.yaml\ngrid: {optimizer.lr: [0.01, 0.1]}\n")
    sweep = load_sweep(tmp_path / "s.yaml", [])
    assert any(
        note.startswith("base ../relu_sgd.yaml: not beside s.yaml; using the shipped config") for note in sweep.notes
    )
    assert {r.config.optimizer.name for r in sweep.runs} == {"sgd"}
