"""mlp_lab.data: real on-disk formats written by the tests, errors, cache, preprocessing.

Every file here is written in the genuine format (big-endian idx headers, gzip,
protocol-2 CIFAR pickles with byte keys), so the loaders under test are the real ones.
Nothing touches the network: an autouse fixture replaces the download function.
"""

from __future__ import annotations

import gzip
import json
import os
import pickle
import stat
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from mlp_lab import data as data_mod
from mlp_lab.data import DataSplits, cifar, files, idx, load_data, resolve_data_dir
from mlp_lab.errors import DataError
from mlp_lab.schema import DataConfig

from fakedata import IDX_NAMES, Py2StylePickler, make_cifar, make_idx_dataset, write_cifar_batch, write_idx


@pytest.fixture(autouse=True)
def _offline_and_private_cache(monkeypatch, tmp_path):
    # (conftest stops every download; a test that wants one replaces its tripwire.)
    # The per-user fallback cache goes under tmp_path, never into the real home folder.
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)


def cfg(**kw) -> DataConfig:
    kw.setdefault("download", False)
    return DataConfig(**kw)


def one_line_error(excinfo) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg, msg
    return msg


# --- resolve_data_dir ----------------------------------------------------------------------


def test_resolve_data_dir_precedence(monkeypatch):
    c = cfg(data_dir="/from/config")
    monkeypatch.setenv("MLP_LAB_DATA", "/from/env")
    assert resolve_data_dir(Path("/from/flag"), c) == Path("/from/flag")
    assert resolve_data_dir(None, c) == Path("/from/env")
    monkeypatch.setenv("MLP_LAB_DATA", "")  # set but empty counts as unset
    assert resolve_data_dir(None, c) == Path("/from/config")
    monkeypatch.delenv("MLP_LAB_DATA")
    assert resolve_data_dir(None, c) == Path("/from/config")
    assert resolve_data_dir(None, cfg()) == Path("data")
    assert resolve_data_dir(None, cfg(data_dir="~/d")) == Path.home() / "d"


# --- MNIST / Fashion-MNIST -----------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "raw"])
def test_mnist_reads_idx_files(tmp_path, gz):
    arrays = make_idx_dataset(tmp_path / "d", gz=gz)
    d = load_data(cfg(preprocessing="none"), tmp_path / "d")
    assert d.train_x.dtype == torch.uint8 and d.train_x.shape == (60, 1, 28, 28)
    assert d.test_x.shape == (20, 1, 28, 28)
    assert d.train_y.dtype == torch.int64 and d.test_y.dtype == torch.int64
    np.testing.assert_array_equal(d.train_x[:, 0].numpy(), arrays["train_images"])
    np.testing.assert_array_equal(d.test_x[:, 0].numpy(), arrays["test_images"])
    np.testing.assert_array_equal(d.train_y.numpy(), arrays["train_labels"])
    np.testing.assert_array_equal(d.test_y.numpy(), arrays["test_labels"])
    assert torch.bincount(d.train_y, minlength=10).tolist() == [6] * 10
    assert d.num_classes == 10 and d.input_shape == (1, 28, 28) and d.input_dim == 784
    assert d.val_x is None and d.val_y is None
    assert d.source.startswith(f"MNIST from {tmp_path / 'd' / 'MNIST' / 'raw'}")


def test_mixed_gz_and_raw_files(tmp_path):
    arrays = make_idx_dataset(tmp_path, gz=True)
    raw = tmp_path / "MNIST/raw"
    # Uncompressed labels beside a gzip'd image file, as after a partial manual unpack.
    write_idx(raw / IDX_NAMES["train_labels"], arrays["train_labels"])
    (raw / (IDX_NAMES["train_labels"] + ".gz")).unlink()
    d = load_data(cfg(), tmp_path)
    np.testing.assert_array_equal(d.train_y.numpy(), arrays["train_labels"])


def test_fashion_mnist_layout(tmp_path):
    arrays = make_idx_dataset(tmp_path, folder="FashionMNIST/raw", gz=False, seed=3)
    d = load_data(cfg(dataset="fashion_mnist"), tmp_path)
    np.testing.assert_array_equal(d.train_x[:, 0].numpy(), arrays["train_images"])
    assert "Fashion-MNIST" in d.source
    # MNIST is a different folder: it is not silently read from FashionMNIST/raw.
    with pytest.raises(DataError, match="MNIST/raw"):
        load_data(cfg(dataset="mnist"), tmp_path)


# --- CIFAR-10 -------------------------------------------------------------------------------


def test_cifar10_reads_pickled_batches(tmp_path):
    ref = make_cifar(tmp_path)
    d = load_data(cfg(dataset="cifar10", preprocessing="none"), tmp_path)
    assert d.train_x.shape == (100, 3, 32, 32) and d.train_x.dtype == torch.uint8
    assert d.test_x.shape == (20, 3, 32, 32)
    assert d.train_y.tolist() == ref["train_y"].tolist()  # batches 1..5 in order
    assert d.test_y.tolist() == ref["test_y"].tolist()
    assert d.input_shape == (3, 32, 32) and d.input_dim == 3072
    # Each row is the red 32x32 plane, then green, then blue, each row-major.
    rows = ref["train_x"]
    for channel in range(3):
        plane = rows[:, channel * 1024 : (channel + 1) * 1024].reshape(-1, 32, 32)
        np.testing.assert_array_equal(d.train_x[:, channel].numpy(), plane)
    assert d.train_x[7, 1, 2, 5].item() == rows[7, 1024 + 2 * 32 + 5]
    assert "CIFAR-10" in d.source


def test_cifar10_pixel_planes_are_channels(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    # One image: red plane all 10, green 20, blue 30 with a marker pixel at (row 1, col 3).
    row = np.concatenate([np.full(1024, 10), np.full(1024, 20), np.full(1024, 30)]).astype(np.uint8)
    row[2048 + 1 * 32 + 3] = 255
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        write_cifar_batch(folder / name, row[None, :], [4])
    d = load_data(cfg(dataset="cifar10"), tmp_path)
    img = d.train_x[0]
    assert img[0].unique().tolist() == [10] and img[1].unique().tolist() == [20]
    assert img[2, 1, 3].item() == 255 and img[2, 0, 0].item() == 30
    assert d.train_y.tolist() == [4] * 5


def test_cifar10_python2_pickles_and_str_keys(tmp_path):
    # The official files: Python-2 pickles with 8-bit strings and numpy.core names.
    a = tmp_path / "a" / "cifar-10-batches-py"
    a.mkdir(parents=True)
    rows = np.arange(2 * 3072, dtype=np.int64).astype(np.uint8).reshape(2, 3072)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        write_cifar_batch(a / name, rows, [1, 9], pickler=Py2StylePickler)
    assert b"numpy.core.multiarray" in (a / "test_batch").read_bytes()
    d = load_data(cfg(dataset="cifar10"), tmp_path / "a")
    np.testing.assert_array_equal(d.test_x.reshape(2, -1).numpy(), rows)
    assert d.test_y.tolist() == [1, 9]
    # Batches re-pickled by Python 3 code often have str keys.
    ref = make_cifar(tmp_path / "b", per_batch=3, str_keys=True)
    d = load_data(cfg(dataset="cifar10"), tmp_path / "b")
    assert d.train_y.tolist() == ref["train_y"].tolist()


class _RunsCommand:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


class _Evals:
    def __reduce__(self):
        return (eval, ("__import__('os').system('touch pwned')",))


@pytest.mark.parametrize("payload", [_RunsCommand(), _Evals()], ids=["os.system", "eval"])
def test_malicious_pickle_is_rejected_without_running(tmp_path, payload):
    make_cifar(tmp_path, per_batch=2)
    target = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    rows = np.zeros((2, 3072), np.uint8)
    with open(target, "wb") as f:
        pickle.dump({b"data": rows, b"labels": [0, 1], b"x": payload}, f, protocol=2)
    with pytest.raises(DataError) as e:
        load_data(cfg(dataset="cifar10"), tmp_path)
    msg = one_line_error(e)
    assert "data_batch_3" in msg and "delete it" in msg
    assert not (tmp_path / "pwned").exists()


def _cifar_breakers():
    rows = np.zeros((2, 3072), np.uint8)
    good = {b"data": rows, b"labels": [0, 1]}
    return {
        "truncated": lambda p: p.write_bytes(pickle.dumps(good, protocol=2)[:100]),
        "not a pickle": lambda p: p.write_bytes(b"hello, I am not a pickle"),
        "not a dict": lambda p: p.write_bytes(pickle.dumps([rows, [0, 1]], protocol=2)),
        "no labels": lambda p: p.write_bytes(pickle.dumps({b"data": rows}, protocol=2)),
        "wrong shape": lambda p: p.write_bytes(
            pickle.dumps({b"data": np.zeros((2, 3000), np.uint8), b"labels": [0, 1]}, protocol=2)
        ),
        "wrong dtype": lambda p: p.write_bytes(
            pickle.dumps({b"data": rows.astype(np.float32), b"labels": [0, 1]}, protocol=2)
        ),
        "count mismatch": lambda p: p.write_bytes(pickle.dumps({b"data": rows, b"labels": [0, 1, 2]}, protocol=2)),
        "label 10": lambda p: p.write_bytes(pickle.dumps({b"data": rows, b"labels": [0, 10]}, protocol=2)),
        "label not int": lambda p: p.write_bytes(
            pickle.dumps({b"data": rows, b"labels": [b"cat", b"dog"]}, protocol=2)
        ),
    }


@pytest.mark.parametrize("kind", list(_cifar_breakers()))
def test_corrupt_cifar_batch(tmp_path, kind):
    make_cifar(tmp_path, per_batch=2)
    target = tmp_path / "cifar-10-batches-py" / "test_batch"
    _cifar_breakers()[kind](target)
    with pytest.raises(DataError) as e:
        load_data(cfg(dataset="cifar10"), tmp_path)
    msg = one_line_error(e)
    assert str(target) in msg and "delete it and download it again" in msg


# --- missing data and downloading ----------------------------------------------------------


def test_missing_data_with_download_off(tmp_path):
    with pytest.raises(DataError) as e:
        load_data(cfg(download=False), tmp_path / "nothing")
    msg = one_line_error(e)
    assert str(tmp_path / "nothing" / "MNIST" / "raw") in msg
    assert "train-images-idx3-ubyte" in msg and "t10k-labels-idx1-ubyte" in msg
    assert "--data-dir" in msg and "MLP_LAB_DATA" in msg and "torchvision" in msg
    assert "download is off" in msg


def test_a_data_directory_that_is_a_file_says_so_and_downloads_nothing(tmp_path, monkeypatch):
    # It tried to download into the file and reported "downloading it failed (NotADirectoryError ...)".
    monkeypatch.setattr(files, "download", lambda *a: pytest.fail("a download was tried"))
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError) as e:
        load_data(cfg(), tmp_path / "notes.txt")
    msg = one_line_error(e)
    assert msg.startswith(f"the data directory {tmp_path / 'notes.txt'} is a file; point --data-dir or MLP_LAB_DATA")
    assert "MNIST/raw/" in msg
    assert load_data(cfg(dataset="synthetic"), tmp_path / "notes.txt").train_x.shape[0] > 0  # needs no folder


def test_missing_only_some_files_names_those(tmp_path):
    make_idx_dataset(tmp_path)
    (tmp_path / "MNIST/raw" / (IDX_NAMES["test_labels"] + ".gz")).unlink()
    with pytest.raises(DataError) as e:
        load_data(cfg(), tmp_path)
    msg = one_line_error(e)
    assert "t10k-labels-idx1-ubyte" in msg and "train-images" not in msg.split("lacks")[1].split(";")[0]


@pytest.mark.parametrize(
    "dataset, folder",
    [("mnist", "MNIST/raw"), ("fashion_mnist", "FashionMNIST/raw"), ("cifar10", "cifar-10-batches-py")],
)
def test_failed_download_is_one_line(tmp_path, monkeypatch, dataset, folder):
    calls = []

    def offline(name, data_dir):
        calls.append((name, data_dir))
        raise RuntimeError("Error downloading x.gz:\nTried https://example/, got:\n<urlopen error [Errno -3]>\n")

    monkeypatch.setattr(files, "download", offline)
    with pytest.raises(DataError) as e:
        load_data(cfg(dataset=dataset, download=True), tmp_path)
    msg = one_line_error(e)
    assert calls == [(dataset, tmp_path)]
    assert str(tmp_path / folder) in msg and "urlopen error" in msg and "--data-dir" in msg


def test_successful_download_is_used(tmp_path, monkeypatch):
    def fake_download(name, data_dir):
        make_idx_dataset(data_dir, n_train=30)  # writes torchvision's layout like the real one

    monkeypatch.setattr(files, "download", fake_download)
    d = load_data(cfg(download=True), tmp_path)
    assert len(d.train_y) == 30


def test_download_that_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(files, "download", lambda name, data_dir: None)
    with pytest.raises(DataError) as e:
        load_data(cfg(download=True), tmp_path)
    assert "files are not there" in one_line_error(e)


def test_download_not_called_when_files_exist(tmp_path):
    make_idx_dataset(tmp_path)
    load_data(cfg(download=True), tmp_path)  # the autouse fixture's _download would fail


# --- corrupt idx files -----------------------------------------------------------------------


def _idx_breakers():
    imgs = np.zeros((60, 28, 28), np.uint8)

    def truncated_gzip(raw: Path):
        p = raw / (IDX_NAMES["train_images"] + ".gz")
        p.write_bytes(p.read_bytes()[:-200])
        return p

    def not_gzip(raw: Path):
        p = raw / (IDX_NAMES["train_images"] + ".gz")
        p.write_bytes(b"<html>404 not found</html>")
        return p

    def wrong_magic(raw: Path):
        return write_idx(raw / IDX_NAMES["train_images"], imgs, gz=True, magic=0x00000801)

    def short_file(raw: Path):
        p = raw / (IDX_NAMES["train_labels"] + ".gz")
        payload = struct.pack(">II", 0x801, 60) + bytes(50)  # header promises 60 labels
        p.write_bytes(gzip.compress(payload))
        return p

    def count_mismatch(raw: Path):
        return write_idx(raw / IDX_NAMES["train_labels"], np.zeros(59, np.uint8), gz=True)

    def label_out_of_range(raw: Path):
        labels = np.zeros(60, np.uint8)
        labels[17] = 12
        return write_idx(raw / IDX_NAMES["train_labels"], labels, gz=True)

    def wrong_image_size(raw: Path):
        return write_idx(raw / IDX_NAMES["train_images"], np.zeros((60, 32, 32), np.uint8), gz=True)

    def empty_file(raw: Path):
        p = raw / (IDX_NAMES["test_images"] + ".gz")
        p.write_bytes(gzip.compress(b""))
        return p

    return {
        f.__name__: f
        for f in (
            truncated_gzip,
            not_gzip,
            wrong_magic,
            short_file,
            count_mismatch,
            label_out_of_range,
            wrong_image_size,
            empty_file,
        )
    }


@pytest.mark.parametrize("kind", list(_idx_breakers()))
def test_corrupt_idx_file(tmp_path, kind):
    make_idx_dataset(tmp_path, gz=True)
    raw = tmp_path / "MNIST" / "raw"
    broken = _idx_breakers()[kind](raw)
    with pytest.raises(DataError) as e:
        load_data(cfg(), tmp_path)
    msg = one_line_error(e)
    assert broken.name in msg and "delete it and download it again" in msg
    expected = {
        "truncated_gzip": "gzip",
        "not_gzip": "gzip",
        "wrong_magic": "magic number",
        "short_file": "needs",
        "count_mismatch": "59 labels",
        "label_out_of_range": "label 12",
        "wrong_image_size": "32x32",
        "empty_file": "too short",
    }[kind]
    assert expected in msg


# --- preprocessing ---------------------------------------------------------------------------


def _numpy_train(d: DataSplits) -> np.ndarray:
    return d.train_x.numpy().astype(np.float64) / 255.0


def test_channel_mean_matches_numpy_and_ignores_test(tmp_path):
    ref = make_cifar(tmp_path)
    d = load_data(cfg(dataset="cifar10", preprocessing="channel_mean"), tmp_path)
    x = _numpy_train(d)
    expected = x.mean(axis=(0, 2, 3))
    assert d.mean.shape == (3, 1, 1) and d.mean.dtype == torch.float32
    np.testing.assert_allclose(d.mean.flatten().numpy(), expected, rtol=1e-6)
    assert torch.equal(d.std, torch.ones(3, 1, 1))
    test_mean = ref["test_x"].reshape(-1, 3, 1024).mean(axis=(0, 2)) / 255
    assert not np.allclose(test_mean, expected, atol=1e-4)  # different data, so "train only" is testable
    stats = d.preprocessing_stats()
    assert stats["kind"] == "channel_mean" and stats["computed_on"] == "train split (100 samples)"
    np.testing.assert_allclose(stats["mean"], expected, rtol=1e-6)
    np.testing.assert_allclose(stats["data_std"], x.transpose(1, 0, 2, 3).reshape(3, -1).std(axis=1), rtol=1e-9)
    json.dumps(stats)


def test_pixel_mean_is_the_mean_image(tmp_path):
    make_cifar(tmp_path)
    d = load_data(cfg(dataset="cifar10", preprocessing="pixel_mean"), tmp_path)
    expected = _numpy_train(d).mean(axis=0)
    assert d.mean.shape == (3, 32, 32)
    np.testing.assert_allclose(d.mean.numpy(), expected, rtol=1e-6)
    stats = d.preprocessing_stats()
    assert stats["mean_image_shape"] == [3, 32, 32]
    assert len(stats["mean"]) == 3 and len(stats["std"]) == 3  # a summary, not 3072 numbers
    np.testing.assert_allclose(stats["mean_image"]["max"], expected.reshape(3, -1).max(axis=1), rtol=1e-6)
    assert len(json.dumps(stats)) < 2000
    out = d.normalize(d.train_x)
    np.testing.assert_allclose(out.mean(dim=0).numpy(), 0, atol=1e-5)  # every pixel centred


def test_standardize_gives_zero_mean_unit_std_on_train(tmp_path):
    make_cifar(tmp_path, per_batch=40)
    d = load_data(cfg(dataset="cifar10", preprocessing="standardize"), tmp_path)
    out = d.normalize(d.train_x).view(-1, 3, 1024).double()
    np.testing.assert_allclose(out.mean(dim=(0, 2)).numpy(), 0, atol=1e-5)
    np.testing.assert_allclose(out.std(dim=(0, 2), unbiased=False).numpy(), 1, atol=1e-5)
    x = _numpy_train(d)
    np.testing.assert_allclose(d.std.flatten().numpy(), x.transpose(1, 0, 2, 3).reshape(3, -1).std(axis=1), rtol=1e-6)


def test_none_is_pixels_in_unit_range(tmp_path):
    make_idx_dataset(tmp_path)
    d = load_data(cfg(preprocessing="none"), tmp_path)
    assert torch.equal(d.mean, torch.zeros(1, 1, 1)) and torch.equal(d.std, torch.ones(1, 1, 1))
    out = d.normalize(d.test_x)
    torch.testing.assert_close(out, d.test_x.flatten(1).float() / 255)
    assert d.preprocessing_stats()["mean"] == [0.0]


@pytest.mark.parametrize("kind", ["none", "channel_mean", "pixel_mean", "standardize"])
def test_normalize_formula(tmp_path, kind):
    make_cifar(tmp_path, per_batch=6)
    d = load_data(cfg(dataset="cifar10", preprocessing=kind), tmp_path)
    batch = d.test_x[:5]
    out = d.normalize(batch)
    assert out.dtype == torch.float32 and out.shape == (5, 3072)
    expected = ((batch.double() / 255 - d.mean.double()) / d.std.double()).flatten(1).float()
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    assert batch.dtype == torch.uint8  # the stored data is not modified
    json.dumps(d.preprocessing_stats())


def test_val_split_is_deterministic_and_excluded_from_stats(tmp_path):
    make_idx_dataset(tmp_path, n_train=200)
    full = load_data(cfg(), tmp_path)
    d = load_data(cfg(val_split=0.25), tmp_path, seed=7)
    assert len(d.val_y) == 50 and len(d.train_y) == 150 and d.val_x.shape == (50, 1, 28, 28)
    # Train and val partition the training set.
    rows = lambda x: {bytes(r) for r in x.flatten(1).numpy()}  # noqa: E731
    assert rows(d.train_x) | rows(d.val_x) == rows(full.train_x)
    assert not rows(d.train_x) & rows(d.val_x)
    # Stats from the remaining training split only.
    np.testing.assert_allclose(d.mean.item(), _numpy_train(d).mean(), rtol=1e-6)
    assert abs(d.mean.item() - full.mean.item()) > 1e-6
    assert d.preprocessing_stats()["computed_on"] == "train split (150 samples)"
    # Same seed, same split; another seed, another split.
    again = load_data(cfg(val_split=0.25), tmp_path, seed=7)
    assert torch.equal(again.val_x, d.val_x) and torch.equal(again.train_y, d.train_y)
    other = load_data(cfg(val_split=0.25), tmp_path, seed=8)
    assert not torch.equal(other.val_x, d.val_x)


def test_limit_train_keeps_first_samples_then_splits(tmp_path):
    arrays = make_idx_dataset(tmp_path, n_train=100)
    d = load_data(cfg(limit_train=40), tmp_path)
    np.testing.assert_array_equal(d.train_x[:, 0].numpy(), arrays["train_images"][:40])
    assert len(d.test_y) == 20  # the test set is never limited
    d = load_data(cfg(limit_train=40, val_split=0.5), tmp_path)
    assert len(d.train_y) == 20 and len(d.val_y) == 20
    first40 = {bytes(r) for r in arrays["train_images"][:40].reshape(40, -1)}
    assert {bytes(r) for r in torch.cat([d.train_x, d.val_x]).flatten(1).numpy()} == first40
    d = load_data(cfg(limit_train=10_000), tmp_path)  # more than there is: all of it
    assert len(d.train_y) == 100


def test_val_split_leaving_nothing_is_an_error(tmp_path):
    make_idx_dataset(tmp_path)
    with pytest.raises(DataError) as e:
        load_data(cfg(limit_train=1, val_split=0.5), tmp_path)
    assert "val_split" in one_line_error(e)


# --- the decoded-data cache ------------------------------------------------------------------


def _fail(*args, **kwargs):
    raise AssertionError("raw files parsed although a valid cache exists")


def test_second_load_uses_cache(tmp_path, monkeypatch):
    arrays = make_idx_dataset(tmp_path / "d")
    first = load_data(cfg(), tmp_path / "d")
    assert not first.source.endswith("(cache)")
    cache = tmp_path / "d" / "mlp_lab_cache" / "mnist.pt"
    assert cache.is_file()
    assert [p.name for p in cache.parent.iterdir()] == ["mnist.pt"]  # no temp files left behind
    monkeypatch.setattr(idx, "read_idx", _fail)
    second = load_data(cfg(), tmp_path / "d")
    assert second.source.endswith("(cache)")
    np.testing.assert_array_equal(second.train_x[:, 0].numpy(), arrays["train_images"])
    assert torch.equal(second.test_y, first.test_y)


def test_cifar_cache(tmp_path, monkeypatch):
    make_cifar(tmp_path)
    first = load_data(cfg(dataset="cifar10"), tmp_path)
    monkeypatch.setattr(cifar, "read_cifar_batch", _fail)
    second = load_data(cfg(dataset="cifar10"), tmp_path)
    assert second.source.endswith("(cache)") and torch.equal(first.train_x, second.train_x)


def test_changed_raw_file_invalidates_cache(tmp_path):
    make_idx_dataset(tmp_path)
    load_data(cfg(), tmp_path)
    labels = (np.arange(60) * 7 % 10).astype(np.uint8)
    path = write_idx(tmp_path / "MNIST/raw" / IDX_NAMES["train_labels"], labels, gz=True)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))  # a clearly newer file
    d = load_data(cfg(), tmp_path)
    assert not d.source.endswith("(cache)")
    np.testing.assert_array_equal(d.train_y.numpy(), labels)
    assert load_data(cfg(), tmp_path).source.endswith("(cache)")  # and the new cache is used


@pytest.mark.parametrize("garbage", [b"", b"not a torch file", b"PK\x03\x04 truncated zip"])
def test_corrupt_cache_is_rebuilt(tmp_path, garbage):
    arrays = make_idx_dataset(tmp_path)
    load_data(cfg(), tmp_path)
    cache = tmp_path / "mlp_lab_cache" / "mnist.pt"
    cache.write_bytes(garbage)
    d = load_data(cfg(), tmp_path)
    np.testing.assert_array_equal(d.train_x[:, 0].numpy(), arrays["train_images"])
    assert load_data(cfg(), tmp_path).source.endswith("(cache)")


def test_cache_of_wrong_shape_is_ignored(tmp_path):
    make_idx_dataset(tmp_path)
    load_data(cfg(), tmp_path)
    cache = tmp_path / "mlp_lab_cache" / "mnist.pt"
    blob = torch.load(cache, weights_only=True)
    blob["train_y"] = blob["train_y"][:3]  # labels no longer match the images
    torch.save(blob, cache)
    d = load_data(cfg(), tmp_path)
    assert not d.source.endswith("(cache)") and len(d.train_y) == 60


def _make_read_only(root: Path) -> None:
    for p in [root, *root.rglob("*")]:
        p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def _make_writable(root: Path) -> None:
    for p in [root, *root.rglob("*")]:
        p.chmod(p.stat().st_mode | stat.S_IWUSR)


def test_read_only_data_dir_falls_back_to_user_cache(tmp_path, monkeypatch):
    make_idx_dataset(tmp_path / "ro")
    _make_read_only(tmp_path / "ro")
    try:
        first = load_data(cfg(), tmp_path / "ro")
        assert not (tmp_path / "ro" / "mlp_lab_cache").exists()  # the read-only folder is untouched
        caches = list((tmp_path / "home" / ".cache" / "mlp-lab").glob("*/mnist.pt"))
        assert len(caches) == 1
        monkeypatch.setattr(idx, "read_idx", _fail)
        second = load_data(cfg(), tmp_path / "ro")
        assert second.source.endswith("(cache)") and torch.equal(first.train_x, second.train_x)
    finally:
        _make_writable(tmp_path / "ro")


def test_no_writable_cache_anywhere_still_loads(tmp_path, monkeypatch):
    make_idx_dataset(tmp_path / "ro")
    _make_read_only(tmp_path / "ro")
    # A cache "folder" below a plain file can never be created, whoever runs the test.
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "a-file" / "cache"))
    try:
        for _ in range(2):
            d = load_data(cfg(), tmp_path / "ro")
            assert len(d.train_y) == 60 and not d.source.endswith("(cache)")
        assert not (tmp_path / "ro" / "mlp_lab_cache").exists()
    finally:
        _make_writable(tmp_path / "ro")


# --- synthetic and the registry --------------------------------------------------------------


def test_synthetic_is_deterministic_and_mnist_shaped(tmp_path):
    c = cfg(dataset="synthetic", synthetic_train_size=500, synthetic_test_size=200)
    a = load_data(c, tmp_path / "unused", seed=1)
    b = load_data(c, tmp_path / "unused", seed=2)  # the training seed does not change the data
    assert a.train_x.shape == (500, 1, 28, 28) and a.train_x.dtype == torch.uint8
    assert a.test_x.shape == (200, 1, 28, 28) and a.train_y.dtype == torch.int64
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y)
    assert torch.bincount(a.train_y, minlength=10).tolist() == [50] * 10
    assert a.source == "synthetic" and a.input_dim == 784
    bigger = load_data(cfg(dataset="synthetic", synthetic_train_size=800, synthetic_test_size=200), tmp_path)
    assert torch.equal(bigger.test_x, a.test_x)  # the test set does not depend on the training size
    assert not (tmp_path / "unused").exists()  # nothing written for generated data


def test_synthetic_is_learnable_but_not_trivial(tmp_path):
    d = load_data(cfg(dataset="synthetic", synthetic_train_size=2000, synthetic_test_size=500), tmp_path)
    x, y = d.normalize(d.train_x), d.train_y
    # Nearest class mean: a crude linear classifier; it must beat chance (10%) by far.
    centroids = torch.stack([x[y == k].mean(0) for k in range(10)])
    pred = torch.cdist(d.normalize(d.test_x), centroids).argmin(1)
    acc = (pred == d.test_y).float().mean().item()
    assert 0.5 < acc < 0.995, acc


def test_unknown_dataset_lists_known_ones(tmp_path):
    c = DataConfig.model_construct(**{**cfg().model_dump(), "dataset": "svhn"})
    with pytest.raises(DataError) as e:
        load_data(c, tmp_path)
    msg = one_line_error(e)
    assert "svhn" in msg and all(name in msg for name in ("mnist", "fashion_mnist", "cifar10", "synthetic"))
    assert set(data_mod.DATASETS) == {"mnist", "fashion_mnist", "cifar10", "synthetic"}


def test_device_argument(tmp_path):
    make_idx_dataset(tmp_path)
    d = load_data(cfg(val_split=0.1), tmp_path, device=torch.device("cpu"))
    for t in (d.train_x, d.train_y, d.val_x, d.val_y, d.test_x, d.test_y, d.mean, d.std):
        assert t.device.type == "cpu"


# --- the genuine MNIST -------------------------------------------------------------------------


@pytest.mark.integration
def test_real_mnist(shared_data, tmp_path, monkeypatch):
    d = load_data(cfg(), shared_data)
    assert d.train_x.shape == (60000, 1, 28, 28) and d.test_x.shape == (10000, 1, 28, 28)
    counts = torch.bincount(d.train_y, minlength=10)
    assert counts.sum() == 60000 and counts.min() > 5000 and counts.max() < 7000
    assert torch.bincount(d.test_y, minlength=10).min() > 800
    assert abs(d.mean.item() - 0.1307) < 1e-3
    assert abs(d.preprocessing_stats()["data_std"][0] - 0.3081) < 1e-3
    # A read-only shared folder (as ../shared is): the cache went to the per-user fallback.
    if not os.access(shared_data, os.W_OK):
        assert not (shared_data / "mlp_lab_cache").exists()
    monkeypatch.setattr(idx, "read_idx", _fail)
    again = load_data(cfg(preprocessing="standardize"), shared_data)
    assert again.source.endswith("(cache)") and torch.equal(again.test_y, d.test_y)
    assert abs(again.std.item() - 0.3081) < 1e-3
