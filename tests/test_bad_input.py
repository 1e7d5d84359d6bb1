"""Bad input, as a user meets it: `mlp-lab ...` exits with code 2 and ONE line on stderr
that names the problem (file, key, value, what is allowed), never a traceback, and
leaves no run folder behind.

Most cases run the CLI in-process (typer's CliRunner: the real app, fast); a few run
the installed `mlp-lab` script as a subprocess to prove the same end to end. No test
touches the network: MLP_LAB_OFFLINE=1, and conftest replaces data.files.download by a tripwire.
"""

from __future__ import annotations

import gzip
import json
import os
import pickle
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from fakedata import IDX_NAMES, make_cifar, make_idx_dataset
from helpers import (
    TINY,
    assert_user_error,
    cli,
    cli_subprocess,
    merge,
    only_run,
    run_folders,
    summary,
    write_config,
)


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("MLP_LAB_OFFLINE", "1")  # (conftest's tripwire stops a download too)


def assert_no_run_left(root: Path) -> None:
    """No run folder at all, or only ones marked failed."""
    for folder in run_folders(root / "runs"):
        assert summary(folder)["status"] == "failed", f"run folder left behind: {folder}"


# --- the table: a config (or none), the arguments, the words the one line must hold ------


@dataclass
class Case:
    id: str
    args: list[str]
    words: tuple[str, ...]
    files: dict[str, str | bytes] = field(default_factory=dict)


def _yaml(changes: dict) -> str:
    import yaml

    return yaml.safe_dump(merge(TINY, changes), sort_keys=False)


def cfg_case(id: str, changes: dict, *words: str) -> Case:
    """A config file with one problem, trained as `train --config bad.yaml`."""
    return Case(id, ["train", "--config", "bad.yaml"], ("bad.yaml", *words), {"bad.yaml": _yaml(changes)})


def set_case(id: str, override: str, *words: str) -> Case:
    """A good config with one bad `--set`."""
    return Case(id, ["train", "--config", "good.yaml", "--set", override], words)


CASES = [
    # --- the file itself
    Case("missing-file", ["train", "--config", "nope.yaml"], ("config file not found", "nope.yaml")),
    Case("empty-file", ["train", "--config", "e.yaml"], ("e.yaml", "empty", "mapping"), {"e.yaml": ""}),
    Case("comments-only", ["train", "--config", "e.yaml"], ("e.yaml", "empty"), {"e.yaml": "# nothing yet\n"}),
    Case(
        "invalid-yaml",
        ["train", "--config", "b.yaml"],
        ("b.yaml", "invalid YAML", "line 3"),
        {"b.yaml": "model:\n  hidden: [64\ntrain: {}\n"},
    ),
    Case(
        "yaml-tab-indent",
        ["train", "--config", "b.yaml"],
        ("b.yaml", "invalid YAML", "line"),
        {"b.yaml": "model:\n\thidden: [64]\n"},
    ),
    Case("yaml-list", ["train", "--config", "l.yaml"], ("l.yaml", "mapping", "list"), {"l.yaml": "- model\n- train\n"}),
    Case("yaml-scalar", ["train", "--config", "s.yaml"], ("s.yaml", "mapping", "str"), {"s.yaml": "relu\n"}),
    Case("yaml-number", ["train", "--config", "s.yaml"], ("s.yaml", "mapping", "int"), {"s.yaml": "42\n"}),
    Case("config-is-directory", ["train", "--config", "."], ("directory",)),
    Case(
        "not-utf8",
        ["train", "--config", "bin.yaml"],
        ("bin.yaml", "cannot read", "UnicodeDecodeError"),
        {"bin.yaml": b"model: \xff\xfe\x00\n"},
    ),
    Case(
        "duplicate-key",
        ["train", "--config", "d.yaml"],
        ("d.yaml", "duplicate key 'epochs'", "line 3"),
        {"d.yaml": "train:\n  epochs: 5\n  epochs: 50\n"},
    ),
    Case("no-config-at-all", ["train"], ("no experiment given", "--config", "mlp-lab resume RUN_FOLDER")),
    # --- unknown keys, at every depth, with a did-you-mean
    cfg_case("unknown-top-key", {"modle": {"hidden": [8]}}, "unknown key 'modle'", "top level", "did you mean 'model'"),
    cfg_case(
        "unknown-data-key", {"data": {"datset": "mnist"}}, "unknown key 'datset'", "in data", "did you mean 'dataset'"
    ),
    cfg_case(
        "unknown-model-key",
        {"model": {"activaton": "tanh"}},
        "unknown key 'activaton'",
        "in model",
        "did you mean 'activation'",
    ),
    cfg_case(
        "unknown-optimizer-key",
        {"optimizer": {"momentun": 0.9}},
        "unknown key 'momentun'",
        "in optimizer",
        "did you mean 'momentum'",
    ),
    cfg_case(
        "unknown-scheduler-key",
        {"scheduler": {"name": "step", "step_sise": 3}},
        "unknown key 'step_sise'",
        "in scheduler",
        "did you mean 'step_size'",
    ),
    cfg_case("unknown-train-key", {"train": {"epoch": 3}}, "unknown key 'epoch'", "in train", "did you mean 'epochs'"),
    cfg_case(
        "key-of-another-optimizer",
        {"optimizer": {"name": "adam", "momentum": 0.9}},
        "unknown key 'momentum'",
        "sgd",
        "rmsprop",
        "optimizer.name",
    ),
    cfg_case(
        "scheduler-key-without-name",
        {"scheduler": {"step_size": 3}},
        "unknown key 'step_size'",
        "scheduler step",
        "scheduler.name",
    ),
    # --- wrong types
    cfg_case("section-not-mapping", {"model": "relu"}, "model", "must be a mapping", "'relu'"),
    cfg_case("lr-is-a-word", {"optimizer": {"lr": "fast"}}, "optimizer.lr", "'fast'", "number"),
    cfg_case("hidden-not-a-list", {"model": {"hidden": "wide"}}, "model.hidden", "'wide'", "list"),
    cfg_case("hidden-item-word", {"model": {"hidden": [8, "x"]}}, "model.hidden.1", "'x'", "integer"),
    cfg_case("epochs-fractional", {"train": {"epochs": 2.5}}, "train.epochs", "2.5", "integer"),
    cfg_case("epochs-boolean", {"train": {"epochs": True}}, "train.epochs", "'true'", "integer"),
    cfg_case("lr-boolean", {"optimizer": {"lr": False}}, "optimizer.lr", "'false'", "number"),
    cfg_case("name-not-a-string", {"name": 123}, "name", "123", "string"),
    cfg_case("betas-one-value", {"optimizer": {"name": "adam", "betas": [0.9]}}, "optimizer.betas"),
    cfg_case("nesterov-without-momentum", {"optimizer": {"nesterov": True}}, "nesterov", "momentum > 0"),
    cfg_case("rprop-etas-reversed", {"optimizer": {"name": "rprop", "etas": [1.2, 0.5]}}, "etas", "etaminus < 1"),
    # --- out of range
    cfg_case("lr-zero", {"optimizer": {"lr": 0}}, "optimizer.lr", "0", "greater than 0"),
    cfg_case("lr-negative", {"optimizer": {"lr": -0.1}}, "optimizer.lr", "-0.1", "greater than 0"),
    cfg_case("batch-size-zero", {"train": {"batch_size": 0}}, "train.batch_size", "0", "greater than or equal to 1"),
    cfg_case("layer-size-zero", {"model": {"hidden": [16, 0]}}, "model.hidden.1", "0", "greater than or equal to 1"),
    cfg_case("layer-size-negative", {"model": {"hidden": [-4]}}, "model.hidden.0", "-4", "greater than or equal to 1"),
    cfg_case("dropout-one", {"model": {"dropout": 1.0}}, "model.dropout", "1.0", "less than 1"),
    cfg_case("dropout-negative", {"model": {"dropout": -0.2}}, "model.dropout", "-0.2", "greater than or equal to 0"),
    cfg_case("epochs-zero", {"train": {"epochs": 0}}, "train.epochs", "0", "greater than or equal to 1"),
    cfg_case("val-split-one", {"data": {"val_split": 1.0}}, "data.val_split", "1.0", "less than 1"),
    cfg_case("val-split-above-one", {"data": {"val_split": 1.5}}, "data.val_split", "1.5", "less than 1"),
    cfg_case("weight-decay-negative", {"optimizer": {"weight_decay": -1}}, "optimizer.weight_decay", "-1"),
    # YAML's .inf and .nan are floats: never a run that trains on them, or a summary that cannot be written
    cfg_case("lr-infinite", {"optimizer": {"lr": float("inf")}}, "optimizer.lr", "inf", "finite number"),
    cfg_case("init-value-nan", {"model": {"init_value": float("nan")}}, "model.init_value", "nan", "finite number"),
    cfg_case("weight-decay-infinite", {"optimizer": {"weight_decay": float("inf")}}, "weight_decay", "finite number"),
    # --- unknown names for every choice
    cfg_case(
        "activation",
        {"model": {"activation": "relux"}},
        "model.activation",
        "'relux'",
        "did you mean 'relu'",
        "allowed:",
        "sigmoid",
        "tanh",
        "maxout",
    ),
    cfg_case(
        "init", {"model": {"init": "xavier"}}, "model.init", "'xavier'", "allowed:", "xavier_uniform", "kaiming_normal"
    ),
    cfg_case(
        "bias-init", {"model": {"bias_init": "ones"}}, "model.bias_init", "'ones'", "allowed:", "zeros", "constant"
    ),
    cfg_case("norm", {"model": {"norm": "batchnrom"}}, "model.norm", "did you mean 'batchnorm'", "layernorm"),
    # as the lecture slides spell them: the hint ignores case
    cfg_case(
        "activation-as-written", {"model": {"activation": "ReLU"}}, "'ReLU' is not allowed", "did you mean 'relu'"
    ),
    cfg_case("optimizer-in-capitals", {"optimizer": {"name": "ADAM"}}, "did you mean 'adam'"),
    cfg_case(
        "norm-position",
        {"model": {"norm_position": "middle"}},
        "model.norm_position",
        "'middle'",
        "before_activation",
        "after_activation",
    ),
    cfg_case("dataset", {"data": {"dataset": "mnits"}}, "data.dataset", "did you mean 'mnist'", "cifar10", "synthetic"),
    cfg_case(
        "preprocessing",
        {"data": {"preprocessing": "zca"}},
        "data.preprocessing",
        "'zca'",
        "channel_mean",
        "standardize",
    ),
    cfg_case(
        "optimizer",
        {"optimizer": {"name": "adamm"}},
        "optimizer.name",
        "unknown optimizer 'adamm'",
        "did you mean 'adam'",
        "sgd",
        "rprop",
    ),
    cfg_case(
        "scheduler",
        {"scheduler": {"name": "cosin"}},
        "scheduler.name",
        "unknown scheduler 'cosin'",
        "did you mean 'cosine'",
        "multistep",
    ),
    cfg_case("precision", {"train": {"precision": "fp16"}}, "train.precision", "'fp16'", "fp32", "bf16"),
    cfg_case("device", {"train": {"device": "tpu"}}, "train.device", "'tpu'", "not a device", "cpu", "cuda"),
    cfg_case(
        "sparse-adam",
        {"optimizer": {"name": "sparse_adam"}},
        "sparse_adam",
        "sparse gradients",
        "dense",
        "use adam or adamw",
    ),
    # --- run names that would leave the runs directory
    cfg_case("name-parent", {"name": "../escape"}, "name", "'../escape'", "path separators"),
    cfg_case("name-absolute", {"name": "/tmp/escape"}, "name", "'/tmp/escape'", "path separators"),
    cfg_case("name-nested", {"name": "a/b"}, "name", "'a/b'", "path separators"),
    cfg_case("name-dotdot", {"name": ".."}, "name", "'..'"),
    cfg_case("name-empty", {"name": ""}, "name", "''"),
    # --- --set
    set_case(
        "set-unknown-path",
        "model.activaton=tanh",
        "--set model.activaton",
        "unknown key 'activaton'",
        "did you mean 'activation'",
    ),
    set_case("set-unknown-section", "modle.hidden=[8]", "--set modle.hidden", "unknown key 'modle'", "top level"),
    set_case("set-no-equals", "optimizer.lr", "--set 'optimizer.lr'", "expected key.path=value"),
    set_case("set-no-key", "=0.1", "--set '=0.1'", "expected key.path=value"),
    set_case("set-empty-part", "model..hidden=[8]", "expected key.path=value"),
    set_case("set-unparsable", "model.hidden=[8, 16", "--set model.hidden", "cannot parse value", "[8, 16"),
    set_case("set-value-not-section", "optimizer.lr.x=1", "--set optimizer.lr.x", "'optimizer.lr' is a value"),
    set_case("set-bad-value", "train.batch_size=-5", "train.batch_size", "-5", "greater than or equal to 1"),
    set_case("set-infinite-lr", "optimizer.lr=inf", "optimizer.lr", "'inf'", "finite number"),
    set_case("set-overflowing-lr", "optimizer.lr=1e400", "optimizer.lr", "'1e400'", "finite number"),
    set_case("set-bad-choice", "model.activation=swish", "model.activation", "'swish'", "allowed:", "silu"),
    set_case("set-duplicate-key", "model={dropout: 0.1, dropout: 0.2}", "--set model", "cannot parse value"),
    # --- devices this machine does not have
    set_case("cuda-without-gpu", "train.device=cuda", "train.device", "'cuda'", "no CUDA device", "cpu"),
    set_case("cuda-index-without-gpu", "train.device=cuda:3", "train.device", "'cuda:3'", "cpu"),
    # --- runs directory that cannot be written (root ignores chmod: use a path under a file)
    Case(
        "runs-dir-under-a-file",
        ["train", "--config", "good.yaml", "--runs-dir", "afile/runs"],
        ("cannot create runs directory", "afile/runs", "not a directory"),
        {"afile": "I am a file\n"},
    ),
    Case(
        "runs-dir-is-a-file",
        ["train", "--config", "good.yaml", "--runs-dir", "afile"],
        ("runs directory afile is a file", "--runs-dir with a folder"),
        {"afile": "I am a file\n"},
    ),
    # --- mlp-lab resume without a folder it can continue
    Case(
        "resume-cmd-missing-folder", ["resume", "runs/nope"], ("runs/nope", "no such folder", "run folder or a sweep")
    ),
    Case(
        "resume-cmd-neither",
        ["resume", "notarun"],
        ("notarun", "neither a run folder", "nor a sweep folder", "nothing to resume"),
        {"notarun/readme.txt": "hello\n"},
    ),
    Case("resume-cmd-a-file", ["resume", "good.yaml"], ("good.yaml is a file", "mlp-lab train --config good.yaml")),
    Case(
        "resume-cmd-a-runs-file",
        ["resume", "somerun/checkpoint.pt"],
        ("somerun/checkpoint.pt is a file", "the folder it is in: mlp-lab resume somerun"),
        {"somerun/summary.json": "{}\n", "somerun/checkpoint.pt": "x"},
    ),
    Case(
        "resume-cmd-sweep-option-on-a-run",
        ["resume", "somerun", "--jobs", "2"],
        ("--jobs", "a sweep's option", "somerun is a run folder", "--data-dir"),
        {"somerun/summary.json": "{}\n"},
    ),
    Case(
        "resume-cmd-bad-jobs-on-a-sweep",
        ["resume", "asweep", "--jobs", "0"],
        ("--jobs 0", "1 or more"),
        {"asweep/manifest.json": "{}\n"},
    ),
    Case("refine-missing-folder", ["refine", "runs/nope"], ("runs/nope", "no such sweep folder")),
    # --- train --resume (the older spelling) without a usable run
    Case("resume-missing-folder", ["train", "--resume", "runs/nope"], ("run folder not found", "runs/nope")),
    Case(
        "resume-not-a-run",
        ["train", "--resume", "notarun"],
        ("notarun", "not a run folder", "config.yaml is missing"),
        {"notarun/readme.txt": "hello\n"},
    ),
    Case("resume-a-file", ["train", "--resume", "good.yaml"], ("run folder not found", "good.yaml")),
    Case(
        "resume-with-config",
        ["train", "--resume", "somerun", "--config", "good.yaml"],
        ("--resume", "no --config or --set"),
    ),
    Case(
        "resume-with-set",
        ["train", "--resume", "somerun", "--set", "train.epochs=3"],
        ("--resume", "no --config or --set"),
    ),
    # --- compare and show given things that are not runs
    Case("compare-nothing", ["compare"], ("no runs to compare", "runs", "no such file or folder")),
    Case("compare-a-file", ["compare", "good.yaml"], ("no runs to compare", "good.yaml", "not a run folder")),
    Case(
        "compare-empty-folder", ["compare", "empty"], ("no runs to compare", "empty", "holds none"), {"empty/.keep": ""}
    ),
    Case("show-a-file", ["show", "good.yaml"], ("good.yaml", "not a run folder")),
    Case("show-missing", ["show", "runs/nope"], ("runs/nope", "no such run folder")),
    Case("show-plain-folder", ["show", "plain"], ("plain", "not a run folder"), {"plain/notes.txt": "x\n"}),
    # --- the command line itself: what Typer would answer with its usage text and a box
    Case(
        "unknown-option",
        ["train", "--config", "good.yaml", "--epochs", "3"],
        ("mlp-lab train", "no such option", "--epochs", "see mlp-lab train --help"),
    ),
    Case("misspelt-option", ["train", "--config", "good.yaml", "--quite"], ("--quite", "did you mean --quiet?")),
    Case("unknown-command", ["trian"], ("no such command 'trian'", "did you mean 'train'", "see mlp-lab --help")),
    Case("unknown-subcommand", ["export", "tb"], ("mlp-lab export", "no such command 'tb'")),
    Case(
        "missing-option", ["export", "tensorboard", "runs"], ("mlp-lab export tensorboard", "missing option '--logdir'")
    ),
    Case("option-without-value", ["compare", "runs", "--sort"], ("mlp-lab compare", "'--sort' requires an argument")),
    Case(
        "option-not-a-number",
        ["sweep", "--config", "good.yaml", "--jobs", "two"],
        ("mlp-lab sweep", "'--jobs'", "integer"),
    ),
    Case("extra-argument", ["configs", "extra"], ("mlp-lab configs", "unexpected extra argument", "extra")),
    # --- paths no file system holds: a name over 255 bytes, a path over 4096
    Case("config-name-too-long", ["train", "--config", "c" * 300], ("file name too long", "300 bytes", "at most 255")),
    Case("check-name-too-long", ["check", "--config", "c" * 256], ("file name too long", "256 bytes")),
    Case(
        "output-name-too-long",
        ["configs", "--copy", "smoke", "--to", "o" * 300 + ".yaml"],
        ("file name too long", "305 bytes", "at most 255"),
    ),
    Case("show-name-too-long", ["show", "runs/" + "r" * 300], ("file name too long", "300 bytes"), {"runs/.keep": ""}),
    Case("path-too-long", ["show", "/".join(["p" * 200] * 25)], ("path too long", "5024 bytes", "at most 4096")),
    Case(
        "sweep-base-name-too-long",
        ["sweep", "s.yaml", "--dry-run"],
        ("file name too long", "305 bytes"),
        {"s.yaml": f"base: {'b' * 300}.yaml\nseeds: 2\n"},
    ),
]


def _write_files(root: Path, files: dict[str, str | bytes]) -> None:
    write_config(root / "good.yaml")
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_exit_2(case: Case, tmp_path):
    if case.id.startswith("cuda") and torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    _write_files(tmp_path, case.files)
    res = cli(*case.args)
    assert_user_error(res, *case.words)
    assert res.stdout == ""
    assert_no_run_left(tmp_path)


def test_the_table_covers_at_least_40_distinct_cases():
    assert len({c.id for c in CASES}) == len(CASES) >= 40


def test_a_good_config_passes(tmp_path):
    """The control: good.yaml, used by the --set cases above, trains."""
    _write_files(tmp_path, {})
    res = cli("train", "--config", "good.yaml", "--quiet")
    assert res.code == 0, res
    assert summary(only_run(tmp_path / "runs"))["status"] == "completed"


def test_every_error_counts_more_problems_on_the_same_line(tmp_path):
    write_config(tmp_path / "bad.yaml", {"optimizer": {"lr": -1}, "train": {"epochs": 0}, "model": {"dropout": 2}})
    line = assert_user_error(cli("train", "--config", "bad.yaml"), "bad.yaml", "and 2 more problems")
    assert "optimizer.lr" in line or "train.epochs" in line or "model.dropout" in line


# --- data: missing and corrupt files ---------------------------------------------------------


@pytest.mark.parametrize(
    "dataset,folder,title",
    [
        ("mnist", "MNIST/raw", "MNIST"),
        ("fashion_mnist", "FashionMNIST/raw", "Fashion-MNIST"),
        ("cifar10", "cifar-10-batches-py", "CIFAR-10"),
    ],
)
def test_data_dir_without_the_data_download_off(tmp_path, dataset, folder, title):
    write_config(tmp_path / "c.yaml", {"data": {"dataset": dataset}})
    (tmp_path / "nodata").mkdir()
    res = cli("train", "--config", "c.yaml", "--data-dir", "nodata", "--set", "data.download=false")
    assert_user_error(
        res, f"{title} not found", f"nodata/{folder}", "data.download: false", "--data-dir", "MLP_LAB_DATA"
    )
    assert_no_run_left(tmp_path)


def test_data_missing_and_offline_is_reported_without_trying_the_network(tmp_path):
    # data.download is true (the default), but MLP_LAB_OFFLINE=1 forbids it: the tripwire
    # installed by _offline() fails the test if a download is attempted.
    write_config(tmp_path / "c.yaml", {"data": {"dataset": "mnist"}})
    res = cli("train", "--config", "c.yaml", "--data-dir", "nodata")
    assert_user_error(res, "MNIST not found", "MLP_LAB_OFFLINE is set")
    assert_no_run_left(tmp_path)


def test_data_missing_offline_in_a_subprocess(tmp_path):
    """End to end, as a student runs it on a machine without network: one line, at once."""
    write_config(tmp_path / "c.yaml", {"data": {"dataset": "cifar10"}})
    res = cli_subprocess("train", "--config", "c.yaml", "--data-dir", "nodata", cwd=tmp_path, timeout=60)
    assert_user_error(res, "CIFAR-10 not found", "cifar-10-batches-py", "MLP_LAB_OFFLINE is set")
    assert_no_run_left(tmp_path)


def _mnist(tmp_path: Path) -> Path:
    make_idx_dataset(tmp_path / "data", gz=True)
    write_config(tmp_path / "c.yaml", {"data": {"dataset": "mnist", "download": False}})
    return tmp_path / "data" / "MNIST" / "raw"


def test_control_fake_mnist_trains(tmp_path):
    _mnist(tmp_path)
    res = cli("train", "--config", "c.yaml", "--data-dir", "data", "--quiet")
    assert res.code == 0, res


def test_truncated_gzip(tmp_path):
    raw = _mnist(tmp_path)
    path = raw / (IDX_NAMES["train_images"] + ".gz")
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    res = cli("train", "--config", "c.yaml", "--data-dir", "data")
    assert_user_error(res, path.name, "not a valid gzip file", "corrupt or incomplete", "download it again")
    assert_no_run_left(tmp_path)


def test_not_gzip_at_all(tmp_path):
    raw = _mnist(tmp_path)
    path = raw / (IDX_NAMES["test_labels"] + ".gz")
    path.write_bytes(b"<html>404 Not Found</html>")
    res = cli("train", "--config", "c.yaml", "--data-dir", "data")
    assert_user_error(res, path.name, "not a valid gzip file")
    assert_no_run_left(tmp_path)


def test_wrong_magic_number(tmp_path):
    raw = _mnist(tmp_path)
    path = raw / (IDX_NAMES["train_labels"] + ".gz")
    payload = bytearray(gzip.decompress(path.read_bytes()))
    payload[2] = 0x0D  # type byte: float instead of ubyte
    path.write_bytes(gzip.compress(bytes(payload)))
    res = cli("train", "--config", "c.yaml", "--data-dir", "data")
    assert_user_error(res, path.name, "wrong magic number", "0x00000d01", "expected 0x00000801")
    assert_no_run_left(tmp_path)


def test_idx_file_cut_short(tmp_path):
    raw = _mnist(tmp_path)
    path = raw / (IDX_NAMES["test_images"] + ".gz")
    payload = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(payload[:-100]))
    res = cli("train", "--config", "c.yaml", "--data-dir", "data")
    assert_user_error(res, path.name, "bytes but its header", "corrupt")
    assert_no_run_left(tmp_path)


def test_corrupt_cifar_batch(tmp_path):
    make_cifar(tmp_path / "data")
    batch = tmp_path / "data" / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:200])
    write_config(tmp_path / "c.yaml", {"data": {"dataset": "cifar10", "download": False}})
    res = cli("train", "--config", "c.yaml", "--data-dir", "data")
    assert_user_error(res, "data_batch_3")
    assert_no_run_left(tmp_path)


def test_val_split_leaving_no_training_data(tmp_path):
    write_config(tmp_path / "c.yaml", {"data": {"synthetic_train_size": 10, "val_split": 0.99}})
    res = cli("train", "--config", "c.yaml")
    assert_user_error(res, "data.val_split=0.99", "no training samples", "smaller val_split")
    assert_no_run_left(tmp_path)


def test_model_too_big_for_memory(tmp_path):
    # 784 x 2**40 float32 weights (3.5 PB) exceed any address space, whatever the
    # kernel's overcommit policy: the allocation fails at once, nothing is touched.
    write_config(tmp_path / "c.yaml", {"model": {"hidden": [2**40]}})
    res = cli("train", "--config", "c.yaml")
    assert_user_error(res, "model.hidden", "does not fit", "smaller hidden layers")
    assert run_folders(tmp_path / "runs") == []  # the folder made for it was removed again


# --- --resume of runs that cannot be resumed -------------------------------------------------


def _finished_run(tmp_path: Path, changes: dict | None = None) -> Path:
    write_config(tmp_path / "r.yaml", changes or {})
    res = cli("train", "--config", "r.yaml", "--quiet")
    assert res.code == 0, res
    return only_run(tmp_path / "runs")


def _as_interrupted(run: Path) -> None:
    s = summary(run)
    s["status"] = "interrupted"
    (run / "summary.json").write_text(json.dumps(s), encoding="utf-8")


def test_resume_without_checkpoint(tmp_path):
    run = _finished_run(tmp_path, {"train": {"checkpoint": False}})
    _as_interrupted(run)
    assert_user_error(cli("resume", run), "checkpoint.pt", "train.checkpoint: false")


def test_resume_with_deleted_checkpoint(tmp_path):
    run = _finished_run(tmp_path)
    _as_interrupted(run)
    (run / "checkpoint.pt").unlink()
    assert_user_error(cli("resume", run), str(run), "no checkpoint.pt")


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", None], ids=["empty", "garbage", "truncated"])
def test_resume_with_corrupt_checkpoint(tmp_path, content):
    run = _finished_run(tmp_path)
    _as_interrupted(run)
    ckpt = run / "checkpoint.pt"
    before = summary(run)
    ckpt.write_bytes(ckpt.read_bytes()[:300] if content is None else content)
    assert_user_error(cli("resume", run), "checkpoint.pt", "corrupt", "cannot be resumed")
    assert summary(run) == before  # the run folder is untouched


def test_resume_with_checkpoint_of_another_model(tmp_path):
    run = _finished_run(tmp_path)
    _as_interrupted(run)
    cfg = run / "config.yaml"
    cfg.write_text(cfg.read_text(encoding="utf-8").replace("- 16", "- 24"), encoding="utf-8")
    assert_user_error(cli("resume", run), "checkpoint.pt", "does not match", "config.yaml", "size mismatch")


def test_resume_with_corrupt_run_config(tmp_path):
    run = _finished_run(tmp_path)
    _as_interrupted(run)
    (run / "config.yaml").write_text("model: [unclosed\n", encoding="utf-8")
    assert_user_error(cli("resume", run), "config.yaml", "corrupt", "cannot be resumed")


def test_resume_with_invalid_run_config(tmp_path):
    run = _finished_run(tmp_path)
    _as_interrupted(run)
    cfg = run / "config.yaml"
    cfg.write_text(cfg.read_text(encoding="utf-8").replace("activation: relu", "activation: relux"), encoding="utf-8")
    assert_user_error(cli("resume", run), "config.yaml", "model.activation", "'relux'")


def test_resume_of_a_completed_run(tmp_path):
    run = _finished_run(tmp_path)
    before = (run / "model.pt").read_bytes()
    assert_user_error(cli("resume", run), "already completed", "nothing to resume")
    assert (run / "model.pt").read_bytes() == before


def test_resume_of_a_run_that_is_still_running(tmp_path):
    run = _finished_run(tmp_path)
    s = summary(run)
    s.update(status="running", pid=os.getpid())  # this very process: certainly alive
    (run / "summary.json").write_text(json.dumps(s), encoding="utf-8")
    assert_user_error(cli("resume", run), "still running", f"process {os.getpid()}")


# --- safety: configs and checkpoints are data, never code -----------------------------------


def test_yaml_python_tag_is_rejected_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"
    (tmp_path / "evil.yaml").write_text(f"name: !!python/object/apply:os.system ['touch {marker}']\n", encoding="utf-8")
    res = cli_subprocess("train", "--config", "evil.yaml", cwd=tmp_path)
    assert_user_error(res, "evil.yaml", "invalid YAML", "python/object/apply:os.system")
    assert not marker.exists()
    assert_no_run_left(tmp_path)


def test_yaml_python_tag_in_set_is_rejected(tmp_path):
    marker = tmp_path / "pwned"
    write_config(tmp_path / "good.yaml")
    res = cli("train", "--config", "good.yaml", "--set", f"name=!!python/object/apply:os.system ['touch {marker}']")
    assert_user_error(res, "--set name", "cannot parse value")
    assert not marker.exists()


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {Path.cwd() / 'pwned'}",))


def test_malicious_checkpoint_is_refused_and_nothing_runs(tmp_path):
    run = _finished_run(tmp_path)
    _as_interrupted(run)
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    ckpt["payload"] = _Evil()
    torch.save(ckpt, run / "checkpoint.pt")
    res = cli_subprocess("resume", run, cwd=tmp_path)
    # One line: torch's own warnings about the pickle must not leak onto stderr either.
    assert_user_error(res, "checkpoint.pt", "cannot be resumed", "could run as code", "refused")
    assert not (tmp_path / "pwned").exists()
    assert summary(run)["status"] == "interrupted"


def test_plain_pickle_checkpoint_is_refused(tmp_path):
    run = _finished_run(tmp_path)
    _as_interrupted(run)
    (run / "checkpoint.pt").write_bytes(pickle.dumps(_Evil()))
    res = cli_subprocess("resume", run, cwd=tmp_path)
    assert_user_error(res, "checkpoint.pt", "cannot be resumed", "refused")
    assert not (tmp_path / "pwned").exists()


# --- the same, end to end: real processes, no traceback -----------------------------------------


@pytest.mark.parametrize(
    "args,words",
    [
        (["train", "--config", "nope.yaml"], ["config file not found"]),
        (["train", "--config", "good.yaml", "--set", "optimizer.name=adamm"], ["did you mean 'adam'"]),
        (["train", "--config", "good.yaml", "--set", "train.device=cuda"], ["no CUDA device"]),
        (["train", "--config", "good.yaml", "--runs-dir", "good.yaml/runs"], ["cannot create runs directory"]),
        (["train", "--resume", "."], ["not a run folder"]),
        (["show", "good.yaml"], ["not a run folder"]),
        (["train", "--config", "good.yaml", "--epochs", "3"], ["no such option", "--epochs"]),
    ],
    ids=[
        "missing-file",
        "bad-choice",
        "cuda",
        "unwritable-runs-dir",
        "resume-non-run",
        "show-non-run",
        "unknown-option",
    ],
)
def test_subprocess_one_line_no_traceback(tmp_path, args, words):
    if "train.device=cuda" in args and torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    write_config(tmp_path / "good.yaml")
    res = cli_subprocess(*args, cwd=tmp_path)
    assert_user_error(res, *words)
    assert_no_run_left(tmp_path)


def test_ctrl_c_before_training_starts_is_not_a_traceback(tmp_path):
    """Ctrl-C while torch is still being imported: exit 130, one line, no folder."""
    write_config(tmp_path / "good.yaml")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, os, sys\n"
            "sys.argv = ['mlp-lab', 'train', '--config', 'good.yaml', '--quiet']\n"
            "import mlp_lab.data\n"  # after this import, raise Ctrl-C inside load_data
            "def boom(*a, **k):\n    os.kill(os.getpid(), signal.SIGINT)\n    import time; time.sleep(5)\n"
            "mlp_lab.data.DATASETS['synthetic'] = boom\n"
            "from mlp_lab.cli import main\nmain()\n",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)
    assert "Traceback" not in out + err
    assert err.strip() == "interrupted before training started"
    assert run_folders(tmp_path / "runs") == []


def test_subprocess_sigint_mid_training_is_not_a_user_error(tmp_path):
    """The counterpart: a signal during training is no error (exit 130, not 2)."""
    from helpers import interrupt, start_training, wait_for_epochs

    write_config(tmp_path / "slow.yaml", {"train": {"epochs": 200}})
    proc = start_training(tmp_path / "slow.yaml", tmp_path)
    run = wait_for_epochs(tmp_path / "runs", proc)
    code, out, err = interrupt(proc, signal.SIGINT)
    assert code == 130 and "Traceback" not in out + err
    assert summary(run)["status"] == "interrupted"
