"""Numbers chosen on validation, never on test, with their noise said: compare's default
choice, the note when a choice is made on test, Holm's correction, and no test across
different networks."""

from __future__ import annotations

import json

import pytest
from statsmodels.stats.multitest import multipletests

from mlp_lab.results import build_comparison, stats

from test_compare import invoke, make_run


@pytest.fixture
def disagree(tmp_path):
    """Two runs where validation and test disagree: 'steady' is better on validation,
    'lucky' on test (its test maximum at epoch 2 is the kind of number test-selection buys)."""
    root = tmp_path / "runs"
    make_run(root, "steady", {"optimizer": {"lr": 0.001}}, accs=[0.95, 0.96, 0.965], vals=[0.95, 0.97, 0.968])
    make_run(root, "lucky", {"optimizer": {"lr": 0.0056}}, accs=[0.96, 0.975, 0.97], vals=[0.95, 0.955, 0.96])
    return root


def test_with_a_validation_split_compare_chooses_on_validation(disagree):
    comp = build_comparison([disagree])
    assert comp.sort == "val_acc" and comp.best_key == "val_acc"
    assert comp.best.params["name"] == "steady"
    assert comp.selection == ""
    # The epoch chosen on validation, and the test accuracy read there (not the last, not the max).
    assert comp.best.metrics["selected_epoch"] == 2
    assert comp.best.metrics["selected_test_acc"] == pytest.approx(0.96)


def test_validation_columns_come_before_test_and_the_test_maximum_is_no_headline(disagree):
    r = invoke("compare", str(disagree))
    assert r.exit_code == 0, r.output
    header = r.stdout.splitlines()[0].split()
    assert header.index("val_acc") < header.index("test_acc")
    assert header.index("selected_test_acc") < header.index("test_acc")
    assert "best_test_acc" not in header
    assert "best by val_acc: steady-" in r.stdout
    assert "chosen on test" not in r.stdout


def test_sorting_by_a_test_metric_still_works_and_says_it_selects_on_test(disagree):
    r = invoke("compare", str(disagree), "--sort", "test_acc")
    assert r.exit_code == 0, r.output
    assert "best by test_acc: lucky-" in r.stdout
    notes = [line for line in r.stdout.splitlines() if line.startswith("chosen on test:")]
    assert len(notes) == 1 and "--sort val_acc" in notes[0]
    doc = json.loads(invoke("compare", str(disagree), "--sort", "best_test_acc", "--format", "json").stdout)
    assert doc["selection"].startswith("chosen on test: sorting by best_test_acc")
    assert json.loads(invoke("compare", str(disagree), "--format", "json").stdout)["selection"] is None


# --- Holm ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ps",
    [[0.01, 0.04, 0.03, 0.005], [0.2, 0.2, 0.01], [0.5], [0.001, 0.9, 0.04, 0.04, 0.3], [0.6, 0.7, 0.04]],
)
def test_holm_matches_statsmodels(ps):
    expected = multipletests(ps, method="holm")[1]
    assert stats.holm(ps) == pytest.approx(list(expected))


def seeded(root, name, raw, finals):
    for seed, acc in zip((0, 1, 2), finals):
        make_run(root, f"{name}", {**raw, "train": {"seed": seed}}, accs=[acc - 0.01, acc])


def test_several_groups_against_one_baseline_get_holm_adjusted_p_values(tmp_path):
    root = tmp_path / "runs"
    seeded(root, "a", {"optimizer": {"lr": 0.1}}, [0.970, 0.972, 0.971])
    seeded(root, "b", {"optimizer": {"lr": 0.05}}, [0.960, 0.966, 0.961])
    seeded(root, "c", {"optimizer": {"lr": 0.02}}, [0.965, 0.973, 0.962])
    seeded(root, "d", {"optimizer": {"lr": 0.01}}, [0.940, 0.947, 0.942])
    doc = json.loads(invoke("compare", str(root), "--format", "json").stdout)
    tested = [row for row in doc["rows"] if row["p_value"] is not None]
    assert len(tested) == 3 and all(row["comparisons"] == 3 for row in tested)
    expected = multipletests([row["p_value"] for row in tested], method="holm")[1]
    assert [row["p_holm"] for row in tested] == pytest.approx(list(expected))
    assert "Holm's correction for 3 comparisons" in doc["verdict"]
    table = invoke("compare", str(root)).stdout
    assert "p_holm=" in table


def test_groups_on_other_networks_are_not_tested_against_each_other(tmp_path):
    """The lecture sweep's cells: an init on 8 layers is no contrast to an optimizer on 2."""
    root = tmp_path / "runs"
    seeded(root, "opt_rmsprop", {"model": {"hidden": [32, 32]}, "optimizer": {"name": "rmsprop"}}, [0.97, 0.972, 0.971])
    seeded(root, "opt_sgd", {"model": {"hidden": [32, 32]}, "optimizer": {"name": "sgd"}}, [0.95, 0.953, 0.951])
    seeded(root, "init_he", {"model": {"hidden": [32] * 4, "init": "kaiming_normal"}}, [0.968, 0.97, 0.969])
    seeded(root, "width", {"model": {"hidden": [64, 64]}, "optimizer": {"name": "rmsprop"}}, [0.96, 0.962, 0.961])
    comp = build_comparison([root])
    by_name = {r.params["name"]: comp.versus_of(r) for r in comp.rows}
    assert by_name["init_he"].reason == "other network" and by_name["init_he"].difference is None
    assert by_name["opt_sgd"].difference is not None
    # Layers as the only difference are a contrast of their own (a width sweep).
    assert by_name["width"].difference is not None
    assert by_name["opt_sgd"].comparisons == 2
    # The verdict sets the winner against its nearest rival on the same network, not init_he.
    doc = json.loads(invoke("compare", str(root), "--format", "json").stdout)
    assert "init_he" not in doc["verdict"] and doc["verdict"].startswith("opt_rmsprop")


def test_a_seed_groups_chosen_epoch_is_their_mean_to_one_decimal(tmp_path):
    # Validation peaks at epochs 2, 2 and 1 for the three seeds: the group's cell says @1.7.
    root = tmp_path / "runs"
    for seed, vals in enumerate([[0.90, 0.95, 0.94], [0.91, 0.96, 0.95], [0.95, 0.93, 0.94]]):
        make_run(root, "net", {"train": {"seed": seed}}, accs=[0.90, 0.95, 0.96], vals=vals)
    r = invoke("compare", str(root))
    assert r.exit_code == 0, r.output
    assert "@1.7" in r.stdout and "@1.66667" not in r.stdout
