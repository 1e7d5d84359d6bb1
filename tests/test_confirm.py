"""mlp-lab confirm: a search's top trials on fresh seeds, and whether its winner stays
ahead beyond noise (Holm-adjusted)."""

from __future__ import annotations

import json

import pytest
import yaml
from statsmodels.stats.multitest import multipletests
from test_search import finished_search  # noqa: F401 - the fixture

from mlp_lab.sweeps import load_manifest
from mlp_lab.sweeps.confirm import Confirmation, judge
from mlp_lab.sweeps.search_runner import trial_rows

from helpers import assert_user_error, cli
from test_compare import make_run


def _trials(*lrs: float) -> list[dict]:
    return [{"trial": i, "values": {"optimizer.lr": lr}, "metric": 0.9} for i, lr in enumerate(lrs)]


def _fresh_runs(root, finals_by_lr: dict[float, list[float]]) -> None:
    for lr, finals in finals_by_lr.items():
        for seed, acc in zip((7, 8, 9), finals):
            raw = {"optimizer": {"lr": lr}, "train": {"seed": seed}, "data": {"val_split": 0.1}}
            make_run(root, f"lr{lr}", raw, accs=[acc - 0.02, acc - 0.01], vals=[acc - 0.02, acc])


def _confirmation(*lrs: float) -> Confirmation:
    return Confirmation(file=None, trials=_trials(*lrs), seeds=[7, 8, 9], metric="val_acc", maximize=True)  # type: ignore[arg-type]


def test_a_winner_ahead_of_every_rival_beyond_noise_is_confirmed(tmp_path):
    _fresh_runs(tmp_path, {0.01: [0.970, 0.972, 0.971], 0.1: [0.950, 0.953, 0.951], 0.3: [0.930, 0.934, 0.931]})
    lines = judge(_confirmation(0.01, 0.1, 0.3), tmp_path)[1]
    assert lines[0].startswith("on fresh seeds, trial 0 reaches val_acc 97.10 ± 0.10%, n=3")
    assert sum(line.startswith("  behind it beyond noise: trial") for line in lines) == 2
    assert lines[-1] == "confirmed: trial 0 stays ahead of all 2 rivals beyond noise (Holm over 2)"


def test_a_winner_within_noise_of_a_rival_is_not_confirmed_and_the_p_values_are_holms(tmp_path):
    _fresh_runs(tmp_path, {0.01: [0.970, 0.960, 0.975], 0.02: [0.968, 0.962, 0.971], 0.3: [0.930, 0.934, 0.931]})
    lines = judge(_confirmation(0.01, 0.02, 0.3), tmp_path)[1]
    assert any(line.startswith("  within noise of it: trial 1") for line in lines)
    assert lines[-1].startswith("not confirmed: trial 0 cannot be told from 1 of its 2 rivals")
    # The p-values said are Holm's over the two comparisons, as compare computes them.
    doc = json.loads(cli("compare", tmp_path, "--baseline", "optimizer.lr=0.01", "--format", "json").stdout)
    raw = {row["optimizer.lr"]: row["p_value"] for row in doc["rows"] if row["p_value"] is not None}
    holm = dict(zip(raw, multipletests(list(raw.values()), method="holm")[1]))
    assert f"p_holm = {holm[0.02]:.2g}" in "\n".join(lines)


def test_a_rival_ahead_on_fresh_seeds_is_named(tmp_path):
    _fresh_runs(tmp_path, {0.01: [0.950, 0.953, 0.951], 0.1: [0.970, 0.972, 0.971]})
    lines = judge(_confirmation(0.01, 0.1), tmp_path)[1]
    assert lines[-1].startswith("not confirmed: a rival is ahead of trial 0 on fresh seeds")


def test_confirm_reruns_the_top_trials_on_fresh_seeds(finished_search):  # noqa: F811
    manifest = load_manifest(finished_search)
    searched = set(manifest.data["search"]["seeds"])
    top = sorted(trial_rows(manifest), key=lambda r: -r["metric"])[:2]
    r = cli(
        "confirm",
        finished_search,
        "--top",
        "2",
        "--seeds",
        "3",
        "--quiet",
        "--jobs",
        "2",
        "--runs-dir",
        finished_search.parent,
    )
    assert r.code == 0, r
    doc = yaml.safe_load((finished_search / "confirm.yaml").read_text())
    assert set(doc["seeds"]).isdisjoint(searched) and len(doc["seeds"]) == 3
    assert [{k: v for k, v in case.items() if k != "name"} for case in doc["cases"]] == [t["values"] for t in top]
    assert f"trial {top[0]['trial']}: " in r.stdout
    last = r.stdout.strip().splitlines()[-1]
    assert last.startswith(("confirmed: trial", "not confirmed: "))
    (folder,) = [p for p in finished_search.parent.iterdir() if "-confirm-" in p.name]
    seeds = {e["seed"] for e in load_manifest(folder).runs}
    assert seeds == set(doc["seeds"]) and len(load_manifest(folder).runs) == 6


@pytest.mark.parametrize(
    "args,words",
    [
        (["--top", "1"], "--top 1"),
        (["--seeds", "2"], "--seeds 2"),
        (["--jobs", "0"], "--jobs 0"),
        (["--threads", "0"], "--threads 0"),  # it ran every run, each failing in torch.set_num_threads
    ],
)
def test_confirm_settings_are_checked_before_anything_runs(tmp_path, args, words):
    assert_user_error(cli("confirm", tmp_path, *args), words)
    assert not any(tmp_path.iterdir())


def test_confirm_of_anything_but_a_search_folder_is_one_line(tmp_path):
    assert_user_error(cli("confirm", tmp_path / "nowhere"), "no such sweep folder")
