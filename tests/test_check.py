"""mlp-lab check: the babysitting checklist, on synthetic data (every check, the output
formats, the plot, bad input) and on real MNIST (what the lecture says it must find)."""

from __future__ import annotations

import json
import math

import pytest

import mlp_lab
from mlp_lab.check_result import check_lines
from mlp_lab.checklist import RANGE_FAR_BELOW, RANGE_LAG

from helpers import REPO, assert_user_error, cli, write_config

SYNTH = {
    "name": "synth",
    "data": {"dataset": "synthetic", "synthetic_train_size": 1000, "synthetic_test_size": 100},
    "model": {"hidden": [32, 32], "init": "kaiming_normal"},
    "optimizer": {"name": "adam", "lr": 0.003},
    "train": {"batch_size": 50, "device": "cpu"},
}


def by_name(result) -> dict:
    return {c.name: c for c in result.checks}


def test_a_healthy_config_passes_every_check_and_writes_nothing(tmp_path):
    result = mlp_lab.check(SYNTH)
    checks = by_name(result)
    assert [c.verdict for c in result.checks] == ["pass", "skip", "pass", "pass", "pass"], [
        (c.name, c.verdict, c.measured, c.advice) for c in result.checks
    ]
    assert abs(checks["loss at init"].numbers["loss"] - math.log(10)) < 0.25
    assert checks["overfit a tiny subset"].numbers["train_acc"] == 1.0
    lo, hi = result.lr_range
    assert lo <= result.suggested_lr <= hi and lo / 3 <= 0.003 <= hi
    assert len(checks["update / weight ratio"].numbers["ratios"]) == 3
    assert list(tmp_path.iterdir()) == []  # nothing on disk


def test_a_large_init_fails_the_loss_at_init_and_names_the_cause():
    cfg = {**SYNTH, "model": {"hidden": [64, 64, 64], "init": "normal", "init_std": 1.0}}
    check = by_name(mlp_lab.check(cfg))["loss at init"]
    assert check.verdict == "fail" and check.numbers["loss"] > 10
    assert "init is too large" in check.advice and "model.init: kaiming_normal" in check.advice


def test_regularisation_raises_the_loss():
    result = mlp_lab.check(SYNTH, {"optimizer.weight_decay": 0.01, "model.dropout": 0.3})
    check = by_name(result)["regularisation raises the loss"]
    assert check.verdict == "pass" and check.numbers["loss_with"] > check.numbers["loss_without"]


def test_a_deep_tanh_net_with_a_small_init_cannot_overfit_and_the_reason_is_the_vanished_signal():
    cfg = {
        **SYNTH,
        "model": {"hidden": [32] * 8, "activation": "tanh", "init": "normal", "init_std": 0.01},
        "optimizer": {"name": "sgd", "lr": 0.1},
    }
    checks = by_name(mlp_lab.check(cfg))
    assert checks["loss at init"].verdict == "pass"
    overfit = checks["overfit a tiny subset"]
    assert overfit.verdict == "fail" and overfit.numbers["train_acc"] < 1.0
    assert "vanished" in overfit.advice and "xavier_normal" in overfit.advice


@pytest.mark.parametrize("lr,words", [(30.0, "too high"), (1e-6, "too low")])
def test_the_range_test_says_when_the_lr_is_too_high_or_too_low(lr, words):
    result = mlp_lab.check({**SYNTH, "optimizer": {"name": "sgd", "lr": lr}})
    check = by_name(result)["learning-rate range"]
    assert check.verdict in ("warn", "fail") and words in check.advice, check
    assert f"--set optimizer.lr={result.suggested_lr:.2g}" in check.advice
    # The numbers it quotes are learning rates, and say so (not losses).
    lo, top = check.numbers["range"]
    assert check.measured.startswith(f"the loss falls from lr {lo:.1e}, lowest at lr {top:.1e}"), check.measured
    ratio = by_name(result)["update / weight ratio"]
    assert ratio.verdict == "warn"


def test_cli_text_json_and_exit_codes(tmp_path):
    write_config(tmp_path / "ok.yaml", base=SYNTH)
    r = cli("check", "--config", "ok.yaml")
    assert r.code == 0, r
    assert r.stdout.splitlines()[0] == "check synth on cpu"
    assert "PASS  loss at init" in r.stdout and "suggested: --set optimizer.lr=" in r.stdout
    r = cli(
        "check", "--config", "ok.yaml", "--format", "json", "--set", "model.init=normal", "--set", "model.init_std=1"
    )
    assert r.code == 1, r  # a check failed: the loss at init
    data = json.loads(r.stdout)
    assert data["passed"] is False and isinstance(data["suggested_lr"], float) and data["config_lr"] == 0.003
    assert {c["name"] for c in data["checks"]} >= {"loss at init", "learning-rate range"}
    assert len(data["range_test"]["lr"]) == len(data["range_test"]["loss"]) > 10


def test_the_plot_is_written(tmp_path):
    write_config(tmp_path / "ok.yaml", base=SYNTH)
    r = cli("check", "--config", "ok.yaml", "--plot", tmp_path / "lr.png")
    assert r.code == 0, r
    assert (tmp_path / "lr.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["ok.yaml", "lr.png"] or sorted(
        p.name for p in tmp_path.iterdir()
    ) == ["lr.png", "ok.yaml"]


@pytest.mark.parametrize(
    "args,words",
    [
        (["--config", "missing.yaml"], ["config file not found", "missing.yaml"]),
        (["--config", "ok.yaml", "--set", "model.activaton=relu"], ["model.activaton", "did you mean"]),
        (["--config", "ok.yaml", "--format", "yaml"], ["--format", "text, json"]),
        (["--config", "ok.yaml", "--tiny", "0"], ["--tiny 0"]),
        (["--config", "ok.yaml", "--plot", "lr.txt"], ["--plot", ".png"]),
        (["--config", "mnist.yaml", "--data-dir", "empty"], ["MNIST"]),
    ],
    ids=["missing", "bad-set", "format", "tiny", "plot", "no-data"],
)
def test_bad_input_is_one_line_exit_2(tmp_path, args, words):
    write_config(tmp_path / "ok.yaml", base=SYNTH)
    write_config(tmp_path / "mnist.yaml", {"data": {"dataset": "mnist", "download": False}}, base=SYNTH)
    (tmp_path / "empty").mkdir()
    assert_user_error(cli("check", *args), *words)


# --- real MNIST: what the lecture says the check must find ---------------------------------


def test_relu_adam_passes_on_mnist(shared_data):
    result = mlp_lab.check(REPO / "configs" / "relu_adam.yaml", data_dir=shared_data)
    assert not result.failed and all(c.verdict in ("pass", "skip") for c in result.checks), [
        (c.name, c.verdict, c.advice) for c in result.checks
    ]
    assert 1e-4 <= result.suggested_lr <= 1e-2
    assert "your lr 0.001 is inside the range" in by_name(result)["learning-rate range"].measured


def test_a_large_init_fails_at_init_on_mnist(shared_data):
    result = mlp_lab.check(REPO / "configs" / "lecture" / "init_relu_large.yaml", data_dir=shared_data)
    assert by_name(result)["loss at init"].verdict == "fail"


def test_a_small_init_in_deep_tanh_cannot_overfit_on_mnist_because_the_signal_vanished(shared_data):
    checks = by_name(mlp_lab.check(REPO / "configs" / "lecture" / "init_tanh_small.yaml", data_dir=shared_data))
    assert checks["loss at init"].verdict == "pass"
    assert checks["overfit a tiny subset"].verdict == "fail" and "vanished" in checks["overfit a tiny subset"].advice


@pytest.mark.parametrize("lr,words", [(10, "too high"), (1e-6, "too low")])
def test_plain_sgd_lr_too_high_and_too_low_on_mnist(shared_data, lr, words):
    result = mlp_lab.check(REPO / "configs" / "relu_sgd.yaml", {"optimizer.lr": lr}, data_dir=shared_data)
    assert words in by_name(result)["learning-rate range"].advice


# --- advice that names the cause ------------------------------------------------------------


def _deep(init: str, activation: str = "relu", **model) -> dict:
    return {**SYNTH, "model": {"hidden": [32] * 6, "activation": activation, "init": init, **model}}


@pytest.mark.parametrize(
    "raw",
    [_deep("zeros"), _deep("normal", activation="tanh", init_std=0.01)],
    ids=["relu-zeros", "tanh-small"],
)
def test_a_network_that_cannot_learn_gets_no_lr_suggestion(raw):
    result = mlp_lab.check({**raw, "optimizer": {"name": "sgd", "lr": 0.1}})
    checks = by_name(result)
    assert checks["overfit a tiny subset"].verdict == "fail"
    assert checks["learning-rate range"].verdict == "fail"
    assert checks["learning-rate range"].measured.startswith("the loss hardly falls at any lr")
    assert result.suggested_lr is None and result.lr_range is None
    last = check_lines(result)[-2]
    assert last.startswith("suggested: fix the network before tuning an lr: ") and "optimizer.lr" not in last
    assert "init" in last


def test_zero_weights_are_blamed_on_the_init_not_the_lr():
    result = mlp_lab.check({**_deep("zeros"), "optimizer": {"name": "sgd", "lr": 0.1}})
    ratio = by_name(result)["update / weight ratio"]
    assert ratio.verdict == "warn"
    assert "model.init: zeros" in ratio.advice and "kaiming_normal" in ratio.advice
    assert "raise optimizer.lr" not in ratio.advice


def test_an_init_too_large_is_blamed_for_nan_updates_not_the_lr():
    result = mlp_lab.check({**_deep("normal", init_std=1.0), "optimizer": {"name": "sgd", "lr": 0.1}})
    assert by_name(result)["loss at init"].verdict == "fail"
    ratio = by_name(result)["update / weight ratio"]
    assert "init is too large" in ratio.advice and "lower optimizer.lr" not in ratio.advice
    assert "optimizer.lr=" not in check_lines(result)[-2]


def test_an_lr_far_too_low_fails_overfitting_and_the_range_test_alike():
    """The range's low end is where the loss falls for good, not the first noisy step: an lr
    the overfit check fails for is never inside the range."""
    result = mlp_lab.check({**SYNTH, "optimizer": {"name": "sgd", "lr": 1e-6}})
    checks = by_name(result)
    assert checks["overfit a tiny subset"].verdict == "fail"
    assert checks["learning-rate range"].verdict == "fail" and "too low" in checks["learning-rate range"].advice
    assert result.lr_range[0] > 1e-6 * RANGE_LAG * RANGE_FAR_BELOW
    last = check_lines(result)[-2]
    assert last.startswith(f"suggested: --set optimizer.lr={result.suggested_lr:.2g}") and "search" in last


def test_check_of_a_sweep_file_says_what_it_is_in_one_line(tmp_path):
    (tmp_path / "s.yaml").write_text("base: ../relu_adam.yaml\ngrid:\n  optimizer.lr: [0.001, 0.01]\n")
    res = cli("check", "--config", tmp_path / "s.yaml")
    assert res.code == 2 and res.stderr.count("\n") == 1
    assert "is a sweep file (it has 'base', 'grid')" in res.stderr and "mlp-lab sweep" in res.stderr
    assert "../relu_adam.yaml" in res.stderr


def test_an_lr_a_little_below_the_range_only_warns():
    """The range's curve does not depend on the configured lr: one a few times below its
    start (past the smoothing's lag) is a warning, one far below a failure."""
    lo = mlp_lab.check({**SYNTH, "optimizer": {"name": "sgd", "lr": 0.1}}).lr_range[0]
    near = mlp_lab.check({**SYNTH, "optimizer": {"name": "sgd", "lr": lo / (RANGE_LAG * 3)}})
    assert near.lr_range[0] == lo
    assert by_name(near)["learning-rate range"].verdict == "warn"
