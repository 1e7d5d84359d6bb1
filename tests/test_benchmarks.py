"""The benchmark scripts run end to end with tiny settings and print/write their results.

Functional smoke tests only: nothing here asserts a time (machines and their load differ).
"""

from __future__ import annotations

import importlib.util
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from mlp_lab.data import load_data
from mlp_lab.schema import DataConfig

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _script(name: str):
    # (benchmarks/ is on pytest's pythonpath, for the scripts' own `from _common import ...`)
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fake_cifar10_is_the_official_format(tmp_path):
    fake = _script("make_fake_cifar10")
    folder = fake.write_fake_cifar10(tmp_path, per_batch=7, seed=1)
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["batches.meta", "test_batch"] + [f"data_batch_{i}" for i in range(1, 6)]
    )
    # Python 2 style: loaded with encoding='bytes', keys and strings are bytes.
    with open(folder / "data_batch_3", "rb") as f:
        batch = pickle.load(f, encoding="bytes")
    assert set(batch) == {b"batch_label", b"labels", b"data", b"filenames"}
    assert batch[b"data"].dtype == np.uint8 and batch[b"data"].shape == (7, 3072)
    assert isinstance(batch[b"labels"], list) and all(0 <= v < 10 for v in batch[b"labels"])
    assert batch[b"batch_label"] == b"training batch 3 of 5" and batch[b"filenames"][0].endswith(b".png")
    with open(folder / "batches.meta", "rb") as f:
        meta = pickle.load(f, encoding="latin1")  # as torchvision reads it: str keys
    assert meta["label_names"][0] == "airplane"
    # mlp-lab's own (restricted) reader takes it, and so does torchvision's class.
    d = load_data(DataConfig(dataset="cifar10", preprocessing="none"), tmp_path)
    assert d.train_x.shape == (35, 3, 32, 32) and d.test_x.shape == (7, 3, 32, 32)
    assert torch.equal(d.train_x[14].flatten(), torch.from_numpy(batch[b"data"][0]))
    ds = _script("epoch_speed").torchvision_dataset("cifar10", tmp_path, real=False)
    image, label = ds[14]
    assert image.shape == (3, 32, 32) and label == batch[b"labels"][0]
    assert fake.has_cifar10(tmp_path) and not fake.has_cifar10(tmp_path / "nothing")


def test_epoch_speed_end_to_end(tmp_path, capsys):
    # An empty data dir: synthetic MNIST idx files and synthetic CIFAR-10 files are written.
    out = tmp_path / "speed.json"
    result = _script("epoch_speed").main(
        [
            "--data-dir",
            str(tmp_path / "no-data"),
            "--epochs",
            "1",
            "--repeats",
            "1",
            "--limit-train",
            "200",
            "--cifar-per-batch",
            "60",
            "--json",
            str(out),
        ]
    )
    printed = capsys.readouterr().out
    for row in ("a ", "b ", "b+f", "c ", "eval", "c+eval", "a/c", "c/b", "SYNTHETIC"):
        assert row in printed, row
    saved = json.loads(out.read_text())
    assert saved == json.loads(json.dumps(result))
    mnist, cifar = saved["results"]
    assert mnist["dataset"] == "mnist" and not mnist["real_data"] and mnist["model"].startswith("784-256-256-10")
    assert cifar["dataset"] == "cifar10" and cifar["model"].startswith("3072-")
    for r in mnist, cifar:
        assert r["train_images"] == 200
        assert {row["row"] for row in r["rows"]} == {"a", "b", "b+f", "c", "eval", "c+eval"}
        assert all(row["median_s"] > 0 and row["n"] >= 1 for row in r["rows"])
        assert set(r["ratios"]) >= {"a/c", "c/b", "eval/c"}
    assert torch.get_float32_matmul_precision() == "highest"


def test_epoch_speed_precision_rows(tmp_path, capsys):
    result = _script("epoch_speed").main(
        [
            "--data-dir",
            str(tmp_path),
            "--datasets",
            "mnist",
            "--epochs",
            "1",
            "--repeats",
            "1",
            "--limit-train",
            "100",
            "--precision",
            "fp32,tf32,bf16",
            "--skip-tutorial",
            "--skip-run",
        ]
    )
    rows = {r["row"] for r in result["results"][0]["rows"]}
    assert rows == {"b", "b+f", "c", "c tf32", "c bf16", "eval"}
    assert "c bf16" in capsys.readouterr().out


@pytest.mark.skipif(not Path("/usr/bin/time").is_file(), reason="needs /usr/bin/time")
def test_memory_end_to_end(tmp_path, capsys):
    out = tmp_path / "memory.json"
    result = _script("memory").main(
        [
            "--data-dir",
            str(tmp_path / "no-data"),
            "--datasets",
            "cifar10",
            "--cifar-per-batch",
            "30",
            "--limit-train",
            "60",
            "--no-baseline",
            "--json",
            str(out),
        ]
    )
    printed = capsys.readouterr().out
    assert "cifar10 cold" in printed and "cifar10 cached" in printed and "max RSS" in printed
    rows = json.loads(out.read_text())["rows"]
    assert [r["row"] for r in rows] == ["cifar10 cold", "cifar10 cached"] == [r["row"] for r in result["rows"]]
    assert all(r["max_rss_mb"] > 50 and r["exit_code"] == 0 and r["limit_mb"] == 1200 for r in rows)


def test_startup_end_to_end(tmp_path, capsys):
    from fakedata import make_idx_dataset  # a small MNIST in the real idx format

    out = tmp_path / "startup.json"
    data = tmp_path / "data"
    make_idx_dataset(data, n_train=50, n_test=10)
    cache_home = os.environ.get("XDG_CACHE_HOME")
    result = _script("startup").main(
        ["--data-dir", str(data), "--runs", "1", "--cifar-per-batch", "20", "--json", str(out)]
    )
    assert os.environ.get("XDG_CACHE_HOME") == cache_home  # not its deleted temp folder, for the tests after
    printed = capsys.readouterr().out
    assert "mlp-lab --help" in printed and "decoded-data cache" in printed
    saved = json.loads(out.read_text())
    assert saved["cli"]["imports_torch"] == {
        "mlp-lab --help": False,
        "mlp-lab train --help": False,
        "mlp-lab compare DIR": False,
    }
    assert {r["row"] for r in saved["cli"]["rows"]} >= {"mlp-lab --help", "mlp-lab compare DIR", "import torch"}
    cache = {r["dataset"]: r for r in result["cache"]["rows"]}
    assert set(cache) == {"mnist", "cifar10"} and cache["mnist"]["train_images"] == 50
    assert all(r["first_load_s"] > 0 and r["cached_median_s"] > 0 and r["cache_mb"] > 0 for r in cache.values())
    train = {r["row"]: r for r in saved["train"]["rows"]}
    assert set(train) == {"import torch, torch._dynamo", "mlp-lab train", "... ordinary exit"}
    run = train["mlp-lab train"]
    assert run["training_s"] > 0 and run["ratio"] == pytest.approx(run["median_s"] / run["training_s"])
    assert "a lecture run (init_relu_he, real MNIST)" in printed


def test_sweep_speed_runs_and_writes_its_table(tmp_path, capsys):
    bench = _script("sweep_speed")
    out = tmp_path / "sweep.json"
    summary = bench.main(
        [
            "--runs",
            "2",
            "--epochs",
            "1",
            "--limit-train",
            "200",
            "--dataset",
            "synthetic",
            "--skip-ray",
            "--train-threads",
            "1",
            "--shapes",
            "1x1",
            "--data-dir",
            str(tmp_path),
            "--json",
            str(out),
        ]
    )
    text = capsys.readouterr().out
    assert "| train x 2, 1 thread |" in text and "| sweep 1 x 1" in text
    assert json.loads(out.read_text())["runs"] == 2
    sweeps = [r for r in summary["rows"] if r.get("backend") == "local"]
    assert sweeps and all(r["seconds_per_run"] > 0 for r in sweeps)


def test_check_speed_runs_and_writes_its_table(tmp_path, capsys):
    from helpers import write_config

    write_config(tmp_path / "c.yaml", {"train": {"device": "cpu"}})
    out = tmp_path / "check.json"
    result = _script("check_speed").main(["--configs", str(tmp_path / "c.yaml"), "--repeat", "1", "--json", str(out)])
    assert "| mlp-lab check (CLI, wall s)" in capsys.readouterr().out
    (row,) = json.loads(out.read_text())["rows"]
    assert row["exit_code"] in (0, 1) and row["cli_s"] > row["library_s"] > 0 and result["rows"] == [row]


def test_search_speed_runs_its_three_searches_and_a_grid_of_as_many_runs(tmp_path, capsys):
    from fakedata import make_idx_dataset

    data = tmp_path / "data"
    make_idx_dataset(data, n_train=200, n_test=20)
    out = tmp_path / "search.json"
    result = _script("search_speed").main(
        ["--data-dir", str(data), "--trials", "2", "--epochs", "2", "--jobs", "1", "--json", str(out)]
    )
    assert "| random + successive halving |" in capsys.readouterr().out
    rows = json.loads(out.read_text())["rows"]
    assert [r["variant"] for r in rows] == [r["variant"] for r in result["rows"]] and len(rows) == 4
    assert all(0 < r["epochs"] <= r["planned"] == 4 for r in rows)
    grid = rows[-1]
    assert grid["variant"] == "grid, no pruning" and grid["distinct_lrs"] == 2 and grid["pruned"] == 0
    assert _script("search_speed").grid_shape(24) == (6, 4)


def test_diagnostics_overhead_prints_off_on_and_the_probe_floor(tmp_path, capsys):
    _script("diagnostics_overhead").main(
        [
            "--train-size",
            "300",
            "--nets",
            "16x2",
            "--repeat",
            "1",
            "--epochs",
            "1",
            "--per-epoch",
            "2",
            "--threads",
            "1",
        ]
    )
    printed = capsys.readouterr().out
    assert "synthetic" in printed.lower() and "floor (probe forwards)" in printed
    (wall,) = [line for line in printed.splitlines() if line.strip().startswith("16x2 | wall")]
    assert wall.rstrip().endswith("%") and wall.count("%") == 5
    # the time inside the diagnostics, by part: the parts add up to the total
    parts = {
        line.split("|")[0].strip(): float(line.split("|")[1])
        for line in printed.splitlines()
        if line.count("|") == 2 and line.rstrip().endswith("%") and "part" not in line
    }
    assert list(parts)[-1] == "total inside" and parts["total inside"] > 0
    assert {"recorded steps", "writes", "other"} <= set(parts)
    assert sum(v for k, v in parts.items() if k != "total inside") == pytest.approx(parts["total inside"], abs=0.3)


def test_time_inside_adds_each_methods_seconds_and_puts_the_class_back():
    bench = _script("diagnostics_overhead")

    class Watched:
        def work(self, n):
            return sum(range(n))

    original = Watched.__dict__["work"]
    totals: dict[str, float] = {}
    with bench.time_inside(Watched, ["work"], totals):
        assert Watched().work(10) == 45 and Watched().work(1000) == 499500
    assert totals["work"] > 0 and Watched.__dict__["work"] is original
    parts = bench.inside_parts({"__init__": 1.0, "_probe": 0.6, "_write_probe": 0.1, "_after_step": 0.5})
    assert parts == pytest.approx(
        {"probes": 0.6, "recorded steps": 0.5, "writes": 0.1, "other": 0.3, "total inside": 1.5}
    )


def test_lecture_speed_scaling_table_runs_end_to_end(tmp_path, capsys):
    """The scaling rows' drivers print the bytes they wrote after the command's own output."""
    result = _script("lecture_speed").main(
        ["--skip-lecture", "--sizes", "3", "--trials", "2", "--jobs", "1", "--json", str(tmp_path / "l.json")]
    )
    rows = result["scaling"]
    assert len(rows) == 2 and all(r["wall_s"] > 0 and r["driver_bytes_per_run"] > 0 for r in rows)
    assert "driver bytes/run" in capsys.readouterr().out
    assert json.loads((tmp_path / "l.json").read_text())["scaling"] == rows
