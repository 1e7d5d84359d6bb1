"""mlp-lab export tensorboard: the event files read back with TensorBoard's own reader."""

from __future__ import annotations

import json

import pytest

from mlp_lab import runs

from test_compare import invoke
from test_seed_groups import HE, HE_ACCS, XAVIER, XAVIER_ACCS, seeded

pytest.importorskip("tensorboard", reason="the [tensorboard] extra is not installed")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402
from tensorboard.plugins.hparams import plugin_data_pb2  # noqa: E402


@pytest.fixture
def exported(tmp_path):
    root = tmp_path / "runs"
    seeded(root, "he", HE, HE_ACCS[:3])
    seeded(root, "xavier", XAVIER, XAVIER_ACCS[:3])
    r = invoke("export", "tensorboard", str(root), "--logdir", str(tmp_path / "tb"))
    assert r.exit_code == 0, r.output
    assert "wrote 6 runs to" in r.stderr
    return tmp_path / "tb"


def _read(path):
    ea = EventAccumulator(str(path), size_guidance={"tensors": 0, "scalars": 0})
    ea.Reload()
    return ea


def test_runs_of_a_seed_group_share_a_folder_the_run_filter_can_select(exported):
    assert sorted(p.name for p in exported.iterdir()) == ["init=kaiming_normal", "init=xavier_normal"]
    assert sorted(p.name for p in (exported / "init=kaiming_normal").iterdir()) == ["seed0", "seed1", "seed2"]


def test_per_epoch_scalars_are_the_runs_metrics(exported):
    ea = _read(exported / "init=kaiming_normal" / "seed1")
    assert {"loss/train", "loss/test", "accuracy/train", "accuracy/test", "lr"} <= set(ea.Tags()["scalars"])
    assert [(e.step, round(e.value, 6)) for e in ea.Scalars("accuracy/test")] == \
        [(1, round(HE_ACCS[1] - 0.01, 6)), (2, round(HE_ACCS[1] - 0.005, 6)), (3, round(HE_ACCS[1], 6))]


def test_hyperparameters_and_final_metrics_reach_the_hparams_view(exported):
    ea = _read(exported / "init=xavier_normal" / "seed2")
    content = ea.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    assert start.hparams["model.init"].string_value == "xavier_normal"
    assert start.hparams["train.seed"].number_value == 2
    assert {"final/test_acc", "final/best_test_acc"} <= set(ea.Tags()["scalars"])
    assert ea.Scalars("final/test_acc")[0].value == pytest.approx(XAVIER_ACCS[2])


def test_diagnostics_per_layer_are_exported(tmp_path):
    from test_diagnostics import train

    _, run_dir = train(tmp_path, name="diag")
    r = invoke("export", "tensorboard", str(run_dir), "--logdir", str(tmp_path / "tb"))
    assert r.exit_code == 0, r.output
    (written,) = [p for p in (tmp_path / "tb").rglob("*") if p.is_dir() and any(p.glob("events.*"))]
    tags = set(_read(written).Tags()["scalars"])
    assert {"grad_norm/layer_1", "grad_norm/output", "update_ratio/layer_2", "dead/layer_1"} <= tags
    steps = [json.loads(line) for line in (run_dir / runs.DIAGNOSTICS).read_text().splitlines()]
    recorded = [r for r in steps if r["kind"] == "step"]
    assert len(_read(written).Scalars("grad_norm/layer_1")) == len(recorded)


def test_without_tensorboard_it_names_the_extra_to_install(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    seeded(tmp_path / "runs", "he", HE, HE_ACCS[:1])
    r = invoke("export", "tensorboard", str(tmp_path / "runs"), "--logdir", str(tmp_path / "tb"))
    assert r.exit_code == 2 and 'pip install -e ".[tensorboard]"' in r.stderr and len(r.stderr.splitlines()) == 1
    assert not (tmp_path / "tb").exists()
