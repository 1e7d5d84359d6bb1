"""The CUDA path: data on the device, each precision, torch.compile, checkpoints that cross
between CUDA and CPU, the memory check against the device, and an out-of-memory run.
Skipped where no CUDA device exists (CI, the 2-core machine); run on a GPU machine with
``python -m pytest -m cuda``."""

from __future__ import annotations

import math
import shutil

import pytest
import torch

from mlp_lab.config import config_from_dict
from mlp_lab.data import load_data
from mlp_lab.errors import ConfigError
from mlp_lab.memory import available_bytes, check_fits
from mlp_lab.training import run_experiment

from helpers import TINY, cli, merge, metrics, only_run, summary, write_config

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here"),
]

CUDA = {"train": {"device": "cuda"}}


def tiny(changes):
    return config_from_dict(merge(TINY, changes))


def _train(tmp_path, changes, *extra):
    config = write_config(tmp_path / "c.yaml", {**CUDA, **changes} if changes else CUDA)
    res = cli("train", "--config", config, "--quiet", "--runs-dir", tmp_path / "runs", *extra)
    return res, (only_run(tmp_path / "runs") if (tmp_path / "runs").is_dir() else None)


def test_auto_picks_cuda_and_the_data_lives_on_it(tmp_path):
    cfg = tiny({"train": {"device": "auto"}})
    data = load_data(cfg.data, tmp_path / "data", "cuda", seed=0)
    assert data.train_x.device.type == "cuda" and data.test_x.device.type == "cuda"
    res, run = _train(tmp_path, {"train": {"device": "auto"}})
    assert res.code == 0, res
    assert summary(run)["device"].startswith("cuda")


@pytest.mark.parametrize("precision", ["fp32", "tf32", "bf16"])
@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compile"])
def test_every_precision_trains_on_cuda(tmp_path, precision, compiled):
    # Adam on 1000 images: 78-88% test accuracy by the third epoch on CPU, fp32 and bf16 alike.
    res, run = _train(
        tmp_path,
        {
            "train": {"device": "cuda", "precision": precision, "compile": compiled, "epochs": 3},
            "data": {"synthetic_train_size": 1000},
            "model": {"hidden": [32]},
            "optimizer": {"name": "adam", "lr": 0.003},
        },
    )
    assert res.code == 0, res
    history = metrics(run)
    assert len(history) == 3
    assert all(math.isfinite(m["train_loss"]) for m in history)
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["test_acc"] > 0.5  # 10 classes: chance is 0.1


def _half_then_rest(tmp_path, first, second):
    """Train 1 epoch on ``first``, then resume the same run for a 2nd epoch on ``second``."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    one = tiny({"train": {"epochs": 1, "device": first}})
    data = load_data(one.data, tmp_path / "data", first, seed=0)
    assert run_experiment(one, run_dir, data, torch.device(first)).status == "completed"
    moved = tmp_path / "moved"
    shutil.copytree(run_dir, moved)
    cfg2 = tiny({"train": {"epochs": 2, "device": second}})
    data2 = load_data(cfg2.data, tmp_path / "data", second, seed=0)
    result = run_experiment(cfg2, moved, data2, torch.device(second), resume_from=moved / "checkpoint.pt")
    assert result.status == "completed", result.summary
    assert [m["epoch"] for m in metrics(moved)] == [1, 2]
    assert all(math.isfinite(m["train_loss"]) for m in metrics(moved))
    state = torch.load(moved / "model.pt", map_location="cpu", weights_only=True)
    assert all(torch.isfinite(t).all() for t in state.values() if t.is_floating_point())


def test_a_checkpoint_written_on_cuda_resumes_on_cpu(tmp_path):
    _half_then_rest(tmp_path, "cuda", "cpu")


def test_a_checkpoint_written_on_cpu_resumes_on_cuda(tmp_path):
    _half_then_rest(tmp_path, "cpu", "cuda")


def test_the_memory_check_measures_the_device():
    limit, where = available_bytes(torch.device("cuda"))
    assert limit == torch.cuda.get_device_properties(0).total_memory
    assert "cuda" in where
    too_big = tiny({"model": {"hidden": [200_000, 200_000, 200_000]}, "train": {"device": "cuda"}})
    with pytest.raises(ConfigError, match="does not fit"):
        check_fits(too_big, torch.device("cuda"))


def test_running_out_of_gpu_memory_fails_the_run_in_one_line(tmp_path):
    # A cap on this process's CUDA allocator stands for a smaller card: the estimate (against
    # the whole card) lets the run start, the model and data fit under the cap (~40 MB), and
    # the first batch's activations (4000 x 4096 floats, several times over) do not.
    torch.cuda.empty_cache()
    torch.cuda.set_per_process_memory_fraction(120 * 2**20 / torch.cuda.get_device_properties(0).total_memory)
    try:
        res, run = _train(
            tmp_path,
            {
                "model": {"hidden": [4096]},
                "data": {"synthetic_train_size": 4000, "synthetic_test_size": 1000},
                "train": {"device": "cuda", "batch_size": 4000, "epochs": 1},
            },
        )
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()
    assert "Traceback" not in res.output, res
    assert res.code != 0, res
    ended = summary(run)
    assert ended["status"] == "failed", ended
    assert "out of memory on cuda" in ended["message"] and "train.batch_size (now 4000)" in ended["message"]
    assert "\n" not in ended["message"]
