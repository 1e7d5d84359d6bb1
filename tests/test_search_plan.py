"""mlp-lab sweep with a search section, before anything runs: the trials a random search
draws, the space, the metric and the command line's --search checked up front (one line,
exit 2, nothing written). No test here starts a process (conftest's PLANNING_MODULES), so
they run in the fast tier."""

from __future__ import annotations

import pytest
import yaml
from test_search import BASE, SPACE, search_file

from mlp_lab.sweeps import load_sweep

from helpers import assert_user_error, cli, write_yaml


def test_a_random_search_draws_the_same_trials_every_time_and_the_dry_run_lists_them(tmp_path):
    sfile = search_file(tmp_path, seed=7)
    first, again = load_sweep(sfile), load_sweep(sfile)
    assert [r.varies for r in first.runs] == [r.varies for r in again.runs]
    assert len(first.runs) == 4 and len({r.varies["optimizer.lr"] for r in first.runs}) == 4
    assert all(1e-4 <= r.varies["optimizer.lr"] <= 1.0 for r in first.runs)
    other = write_yaml(
        tmp_path / "s8.yaml", {**yaml.safe_load(sfile.read_text()), "search": {"trials": 4, "space": SPACE, "seed": 8}}
    )
    assert [r.varies for r in load_sweep(other).runs] != [r.varies for r in first.runs]
    r = cli("sweep", sfile, "--dry-run")
    assert r.code == 0, r
    assert "a random search of 4 trials x 1 seed on val_acc" in r.stdout
    assert f"{first.runs[0].varies['optimizer.lr']:.4g}" in r.stdout
    assert "holds out 10%" in r.stderr  # the base has no validation split
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "search,words",
    [
        ({"space": {"optimizer.lr": {"uniform": [1.0, 0.1]}}}, ["space optimizer.lr", "low must be below high"]),
        ({"space": {"optimizer.lr": {"uniform": [float("nan"), 1.0]}}}, ["space optimizer.lr", "must be finite"]),
        ({"space": {"optimizer.lr": {"log_uniform": [0, 1]}}}, ["space optimizer.lr", "log scale needs low > 0"]),
        ({"space": {"train.batch_size": {"int": [8.5, 64]}}}, ["space train.batch_size", "must be integers"]),
        ({"space": {"model.activation": {"choice": []}}}, ["space model.activation", "non-empty list"]),
        ({"space": {"optimizer.lr": {"normal": [0, 1]}}}, ["unknown distribution 'normal'", "log_uniform"]),
        ({"space": {"optimizer.lr": {"log_unifrom": [1e-4, 1]}}}, ["'log_unifrom' (did you mean 'log_uniform'?)"]),
        ({"space": {"optimizer.lr": [0.1, 0.01]}}, ["space", "optimizer.lr"]),
        (
            {"space": {"model.activation": {"choice": ["relu", "swish"]}}},
            ["model.activation", "'swish' is not allowed"],
        ),
        ({"space": {"model.dropout": {"uniform": [0.0, 1.0]}}}, ["model.dropout", "1"]),
        ({"space": {"model.activaton": {"choice": ["relu"]}}}, ["model.activaton", "did you mean"]),
        ({"metric": "test_acc"}, ["metric test_acc", "never on the test set"]),
        ({"metric": "val_f1"}, ["metric 'val_f1'", "val_acc, val_loss"]),
        ({"metric": "val_ac"}, ["metric 'val_ac' is not allowed (did you mean 'val_acc'?)"]),
        ({"method": "grid"}, ["method", "random"]),
    ],
    ids=[
        "low-high",
        "nan-bound",
        "log-zero",
        "int-bounds",
        "empty-choice",
        "kind",
        "kind-mistyped",
        "form",
        "bad-choice",
        "dropout-1",
        "unknown-key",
        "test-metric",
        "metric",
        "metric-mistyped",
        "method",
    ],
)
def test_a_bad_space_is_one_line_and_writes_nothing(tmp_path, search, words):
    sfile = search_file(tmp_path, **search)
    assert_user_error(cli("sweep", sfile), *words)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "extra,words",
    [
        ({"grid": {"model.init": ["default", "kaiming_normal"]}}, ["cannot go with grid or cases"]),
        (
            {"seeds": 2, "search": {"trials": 2, "space": SPACE, "prune": {"rule": "median"}}},
            ["prune median with 2 seeds"],
        ),
    ],
)
def test_search_with_a_grid_or_pruning_with_seeds_is_refused(tmp_path, extra, words):
    write_yaml(tmp_path / "base.yaml", BASE)
    doc = {"base": "base.yaml", "search": {"trials": 2, "space": SPACE}, **extra}
    assert_user_error(cli("sweep", write_yaml(tmp_path / "s.yaml", doc), "--dry-run"), *words)


def test_set_on_a_searched_key_is_refused(tmp_path):
    sfile = search_file(tmp_path)
    assert_user_error(
        cli("sweep", sfile, "--set", "optimizer.lr=0.1"), "the sweep varies optimizer.lr (its search space)"
    )


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--search", "optimizer.lr=log_uniform"], ["--search optimizer.lr=log_uniform", "kind:low:high"]),
        (["--search", "optimizer.lr=log_uniform:1e-4:0.1"], ["--search needs --trials"]),
        (["--method", "tpe"], ["--method", "--search"]),
        (["--trials", "4"], ["--trials", "--search"]),
        (["--search", "optimizer.lr=gaussian:0:1", "--trials", "3"], ["--search optimizer.lr:", "gaussian"]),
        (
            ["--search", "optimizer.lr=uniform:0:1", "--grid", "model.activation=relu,tanh", "--trials", "3"],
            ["--search and --grid", "--set"],
        ),
        # what a flag gives is named by the flag, not by the base config the sweep is named after
        (["--search", "optimizer.lr=log_uniform:0.1:1e-4", "--trials", "3"], ["--search optimizer.lr:", "low must"]),
        (["--search", "optimizer.lr=uniform:0:1", "--trials", "0"], ["--trials 0:", "greater than or equal to 1"]),
        (["--search", "optimizer.lr=uniform:0:1", "--trials", "3", "--method", "grid"], ["--method 'grid':", "tpe"]),
        (["--search", "optimizer.lr=uniform:0:1", "--trials", "3", "--prune", "asha"], ["--prune 'asha':", "median"]),
        (["--search", "optimizer.lr=uniform:0:1", "--trials", "3", "--seeds", "0"], ["--seeds 0:", "a count of 1"]),
        (["--seeds", "abc"], ["--seeds 'abc':", "a count of 1"]),
        (
            ["--search", "model.nope=uniform:0:1", "--trials", "3"],
            ["tiny.yaml: search space model.nope: unknown key 'nope'"],
        ),
    ],
)
def test_a_bad_command_line_search_is_one_line(tmp_path, args, words):
    write_yaml(tmp_path / "tiny.yaml", BASE)
    assert_user_error(cli("sweep", "--config", "tiny.yaml", *args, "--dry-run"), *words)
    assert not (tmp_path / "runs").exists()
