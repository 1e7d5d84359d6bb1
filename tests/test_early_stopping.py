"""Keep the model you chose: the epoch chosen on validation (summary and best.pt), and
train.early_stopping, which ends a run completed, saying why, and resumes where it left."""

from __future__ import annotations

import pytest
import torch

from mlp_lab.config import config_from_dict
from mlp_lab.launch import train_experiment

from helpers import TINY, cli, merge, metrics, only_run, summary, without_seconds, write_config

# A small problem that overfits quickly: the validation loss turns within a few epochs.
VALIDATED = merge(
    TINY,
    {
        "data": {"synthetic_train_size": 200, "synthetic_test_size": 100, "val_split": 0.25},
        "model": {"hidden": [64]},
        "optimizer": {"lr": 0.5},
        "train": {"epochs": 30},
    },
)
STOPPING = merge(VALIDATED, {"train": {"early_stopping": {"metric": "val_loss", "patience": 2}}})


def train(raw, tmp_path, **kw):
    return train_experiment(config_from_dict(raw), runs_dir=tmp_path / "runs", **kw)


def test_the_epoch_chosen_on_validation_is_in_the_summary_and_its_weights_in_best_pt(tmp_path):
    raw = merge(VALIDATED, {"train": {"epochs": 8}})
    run = train(raw, tmp_path).run_dir
    history = metrics(run)
    s = summary(run)
    chosen = max(history, key=lambda r: (r["val_acc"], -r["epoch"]))  # the best val_acc, earliest of equals
    assert (s["selected_by"], s["selected_epoch"]) == ("val_acc", chosen["epoch"])
    assert s["selected_test_acc"] == chosen["test_acc"] and s["selected_val_acc"] == chosen["val_acc"]
    # best.pt holds that epoch's weights: the same run stopped there (CPU is deterministic).
    short = train(merge(raw, {"train": {"epochs": chosen["epoch"]}}), tmp_path / "short").run_dir
    best, ref = torch.load(run / "best.pt"), torch.load(short / "model.pt")
    assert best.keys() == ref.keys() and all(torch.equal(best[k], ref[k]) for k in best)


def test_without_a_validation_split_nothing_is_chosen_and_no_best_pt(tmp_path):
    run = train(TINY, tmp_path).run_dir
    s = summary(run)
    assert s["selected_epoch"] is None and s["selected_by"] is None and s["selected_test_acc"] is None
    assert not (run / "best.pt").exists() and (run / "model.pt").exists()


def _keras_stop_epoch(values: list[float], patience: int) -> int:
    """Keras' EarlyStopping(monitor='val_loss', patience) on these values: the epoch it stops after."""
    best, wait = float("inf"), 0
    for epoch, v in enumerate(values, 1):
        if v < best:
            best, wait = v, 0
        else:
            wait += 1
            if wait >= patience:
                return epoch
    return len(values)


def test_early_stopping_ends_the_run_completed_saying_why(tmp_path):
    result = train(STOPPING, tmp_path)
    history = metrics(result.run_dir)
    s = summary(result.run_dir)
    assert result.status == "completed" and result.exit_code == 0
    # The stop epoch is Keras' rule replayed on the full run's validation losses.
    full = metrics(train(VALIDATED, tmp_path / "full").run_dir)
    stop = _keras_stop_epoch([r["val_loss"] for r in full], patience=2)
    assert stop < 30 and len(history) == stop and s["epochs_done"] == stop and s["epochs_planned"] == 30
    assert without_seconds(history) == without_seconds(full[:stop])  # the same epochs, then no more
    chosen = min(history, key=lambda r: r["val_loss"])
    assert s["selected_by"] == "val_loss" and s["selected_epoch"] == chosen["epoch"]
    assert s["message"] == (
        f"stopped early after epoch {stop} of 30: val_loss has not improved by more than 0 for 2 epochs; "
        f"the epoch chosen on validation is {chosen['epoch']} (its weights: best.pt)"
    )
    assert (result.run_dir / "best.pt").exists() and (result.run_dir / "model.pt").exists()


def test_a_patience_of_one_epoch_is_said_in_the_singular(tmp_path):
    s = summary(train(merge(STOPPING, {"train": {"early_stopping": {"patience": 1}}}), tmp_path).run_dir)
    assert "has not improved by more than 0 for 1 epoch; the epoch chosen" in s["message"]


def test_min_delta_counts_only_real_improvements(tmp_path):
    loose = metrics(train(merge(STOPPING, {"train": {"early_stopping": {"min_delta": 0.05}}}), tmp_path).run_dir)
    strict = metrics(train(STOPPING, tmp_path / "b").run_dir)
    assert len(loose) <= len(strict)


class _CtrlCAt:
    """A progress display whose user presses Ctrl-C when epoch ``epoch`` starts."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def start_epoch(self, epoch, epochs):
        if epoch == self.epoch:
            raise KeyboardInterrupt

    def step(self, done, total):
        pass

    def end_epoch(self, record):
        pass

    def warn(self, message):
        pass


def test_an_interrupted_early_stopping_run_resumes_and_stops_where_it_would_have(tmp_path, monkeypatch):
    import mlp_lab.launch as launch

    ref = train(STOPPING, tmp_path / "ref")
    stop = len(metrics(ref.run_dir))
    assert stop >= 3
    real = launch.run_experiment
    monkeypatch.setattr(launch, "run_experiment", lambda *a, **kw: real(*a, **{**kw, "progress": _CtrlCAt(stop - 1)}))
    cut = train(STOPPING, tmp_path)
    assert cut.status == "interrupted" and len(metrics(cut.run_dir)) == stop - 2
    monkeypatch.setattr(launch, "run_experiment", real)
    resumed = train_experiment(config_from_dict(STOPPING), resume=cut.run_dir)
    assert resumed.status == "completed"
    assert without_seconds(metrics(cut.run_dir)) == without_seconds(metrics(ref.run_dir))
    assert summary(cut.run_dir)["message"] == summary(ref.run_dir)["message"]


def test_early_stopping_without_a_validation_split_is_one_line_and_exit_2(tmp_path):
    write_config(tmp_path / "c.yaml", merge(TINY, {"train": {"early_stopping": {"patience": 2}}}))
    res = cli("train", "--config", tmp_path / "c.yaml", "--runs-dir", tmp_path / "runs")
    assert res.code == 2 and res.stderr.count("\n") == 1
    assert "train.early_stopping watches the validation set" in res.stderr and "data.val_split" in res.stderr
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


@pytest.mark.parametrize("setting", ["train.early_stopping.patience=0", "train.early_stopping.metric=test_acc"])
def test_early_stopping_settings_are_checked(tmp_path, setting):
    write_config(tmp_path / "c.yaml", VALIDATED)
    res = cli("train", "--config", tmp_path / "c.yaml", "--set", setting, "--runs-dir", tmp_path / "runs")
    assert res.code == 2 and res.stderr.count("\n") == 1 and "train.early_stopping." in res.stderr


def test_train_prints_the_final_test_accuracy_and_the_epoch_chosen_on_validation(tmp_path):
    write_config(tmp_path / "c.yaml", merge(VALIDATED, {"train": {"epochs": 4}}))
    res = cli("train", "--config", tmp_path / "c.yaml", "--runs-dir", tmp_path / "runs")
    assert res.code == 0, res
    s = summary(only_run(tmp_path / "runs"))
    assert "final test acc" in res.stdout and "(best " not in res.stdout
    assert (
        f"chosen on validation (val_acc): epoch {s['selected_epoch']}, val acc {100 * s['selected_val_acc']:.2f}%, "
        f"test acc there {100 * s['selected_test_acc']:.2f}% (weights: best.pt)"
    ) in res.stdout


def test_sweeps_and_searches_stop_early_too(tmp_path):
    from mlp_lab.sweeps import load_manifest

    from helpers import cli_subprocess, write_yaml

    write_yaml(tmp_path / "base.yaml", STOPPING)
    write_yaml(
        tmp_path / "s.yaml",
        {
            "base": "base.yaml",
            "seeds": 2,
            "search": {"space": {"optimizer.lr": {"log_uniform": [0.3, 0.6]}}, "trials": 2},
        },
    )
    res = cli_subprocess("sweep", "s.yaml", "--quiet", "--jobs", "2", cwd=tmp_path, timeout=300)
    assert res.code == 0, res
    (folder,) = (tmp_path / "runs").iterdir()
    entries = load_manifest(folder).runs
    assert len(entries) == 4 and {e["status"] for e in entries} == {"completed"}
    stopped = [summary(folder / e["folder"]) for e in entries]
    assert all(s["message"].startswith("stopped early after epoch") for s in stopped if s["epochs_done"] < 30)
    assert any(s["epochs_done"] < 30 for s in stopped)
    assert all((folder / e["folder"] / "best.pt").exists() for e in entries)
