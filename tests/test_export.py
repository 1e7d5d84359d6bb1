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
    assert [(e.step, round(e.value, 4)) for e in ea.Scalars("accuracy/test")] == [
        (1, round(100 * (HE_ACCS[1] - 0.01), 4)),
        (2, round(100 * (HE_ACCS[1] - 0.005), 4)),
        (3, round(100 * HE_ACCS[1], 4)),
    ]


def test_hyperparameters_and_final_metrics_reach_the_hparams_view(exported):
    ea = _read(exported / "init=xavier_normal" / "seed2")
    content = ea.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    assert start.hparams["model.init"].string_value == "xavier_normal"
    assert start.hparams["train.seed"].number_value == 2
    assert {"final/test_acc", "final/best_test_acc"} <= set(ea.Tags()["scalars"])
    assert ea.Scalars("final/test_acc")[0].value == pytest.approx(100 * XAVIER_ACCS[2])  # percent, as everywhere


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


# --- live: train --tensorboard and sweep --tensorboard ------------------------------------------


def test_train_writes_tensorboard_events_as_it_trains(tmp_path):
    from helpers import cli, write_config

    write_config(tmp_path / "c.yaml", {"train": {"epochs": 3}})
    r = cli("train", "--config", "c.yaml", "--quiet", "--tensorboard", "tb")
    assert r.code == 0, r
    ea = _read(tmp_path / "tb" / "tiny" / "seed0")
    accs = [e.value for e in ea.Scalars("accuracy/test")]
    run = next((tmp_path / "runs").iterdir())
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert accs == pytest.approx([100 * rec["test_acc"] for rec in lines])  # percent, every epoch
    assert ea.Scalars("final/test_acc")[0].value == pytest.approx(100 * lines[-1]["test_acc"])


def test_a_resumed_run_goes_on_in_its_own_tensorboard_run(tmp_path):
    from mlp_lab.export import LiveTensorBoard

    config = {"name": "tiny", "train": {"seed": 0}}
    run, other = tmp_path / "runs" / "tiny-20261206-000000-aaaaaa", tmp_path / "runs" / "tiny-20261206-000001-bbbbbb"
    live = LiveTensorBoard(tmp_path / "tb")
    for epoch in (1, 2, 3):  # then the process is killed: no ending
        live.epoch(run, config, {"epoch": epoch, "test_acc": epoch / 10})
    live.close()
    live = LiveTensorBoard(tmp_path / "tb")  # the resume: from epoch 3 again (its checkpoint was of epoch 2)
    for epoch in (3, 4):
        live.epoch(run, config, {"epoch": epoch, "test_acc": epoch / 10 + 0.05})
    live.end(run, config, "completed", {"test_acc": 0.45}, varies={})
    live.epoch(other, config, {"epoch": 1, "test_acc": 0.5})  # another run of that name and seed
    live.close()
    assert sorted(p.name for p in (tmp_path / "tb" / "tiny").iterdir()) == ["seed0", "seed0-bbbbbb"]
    steps = [(e.step, round(e.value, 4)) for e in _read(tmp_path / "tb" / "tiny" / "seed0").Scalars("accuracy/test")]
    assert steps == [(1, 10.0), (2, 20.0), (3, 35.0), (4, 45.0)]  # epoch 3 once, as the resumed run wrote it
    assert [e.step for e in _read(tmp_path / "tb" / "tiny" / "seed0-bbbbbb").Scalars("accuracy/test")] == [1]


@pytest.mark.parametrize("command", ["train", "sweep"])
def test_a_tensorboard_folder_that_is_a_file_is_one_line_before_anything_runs(tmp_path, command):
    from helpers import assert_user_error, cli, write_config

    write_config(tmp_path / "c.yaml", {"train": {"epochs": 1}})
    (tmp_path / "s.yaml").write_text("base: c.yaml\nseeds: 2\n", encoding="utf-8")
    (tmp_path / "tb").write_text("notes\n", encoding="utf-8")
    args = ["train", "--config", "c.yaml"] if command == "train" else ["sweep", "s.yaml"]
    assert_user_error(cli(*args, "--quiet", "--tensorboard", "tb"), "tb is a file", "folder")
    assert not (tmp_path / "runs").exists()  # no run trained, no sweep folder left to resume
    assert (tmp_path / "tb").read_text(encoding="utf-8") == "notes\n"


def test_sweep_events_can_be_read_while_the_sweep_runs(tmp_path):
    import time

    from helpers import start, write_config

    write_config(tmp_path / "c.yaml", {"data": {"synthetic_train_size": 1000}, "train": {"epochs": 60}})
    (tmp_path / "s.yaml").write_text("base: c.yaml\nseeds: 2\n", encoding="utf-8")
    proc = start("sweep", "s.yaml", "--quiet", "--jobs", "1", "--tensorboard", "tb", cwd=tmp_path)
    seen_live = False
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        logs = list((tmp_path / "tb").glob("*/seed0/events.*"))
        if logs:
            accs = _read(logs[0].parent).Tags()["scalars"]
            if "accuracy/test" in accs and len(_read(logs[0].parent).Scalars("accuracy/test")) >= 1:
                seen_live = proc.poll() is None  # read after an epoch, before the sweep's end
                break
        time.sleep(0.2)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert seen_live
    for seed in (0, 1):
        ea = _read(tmp_path / "tb" / "tiny" / f"seed{seed}")
        assert len(ea.Scalars("accuracy/test")) == 60
        assert "final/test_acc" in ea.Tags()["scalars"]
