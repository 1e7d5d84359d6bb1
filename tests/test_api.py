"""The notebook API: the same runs, comparisons and errors as the CLI, as Python objects."""

from __future__ import annotations

import subprocess
import sys

import pytest

import mlp_lab
from mlp_lab.errors import ConfigError

from test_compare import REPO, invoke

TINY = {
    "train.epochs": 1,
    "data.synthetic_train_size": 300,
    "data.synthetic_test_size": 100,
    "model.hidden": [16],
    "train.checkpoint": False,
}


@pytest.fixture(scope="module")
def seeded_runs(tmp_path_factory):
    """Two activations x two seeds, trained through the API the way a notebook would."""
    runs_dir = tmp_path_factory.mktemp("api") / "runs"
    made = [
        mlp_lab.train(
            REPO / "configs" / "smoke.yaml", {**TINY, "model.activation": act, "train.seed": seed}, runs_dir=runs_dir
        )
        for act in ("relu", "tanh")
        for seed in (0, 1)
    ]
    return runs_dir, made


def test_train_returns_the_run_folder_it_wrote(seeded_runs):
    runs_dir, made = seeded_runs
    run = made[0]
    assert run.status == "completed" and run.path.parent == runs_dir and run.path.is_dir()
    assert run.params["model.activation"] == "relu" and run.params["model.hidden"] == [16]
    assert run.config["train"]["epochs"] == 1 and run.final["epoch"] == 1 and 0 <= run.final["test_acc"] <= 1
    assert run.best == {"test_acc": run.final["test_acc"], "epoch": 1}


def test_a_run_shows_as_one_short_line_in_a_notebook(seeded_runs):
    _, made = seeded_runs
    run = made[0]
    shown = repr(run)
    assert shown == (
        f"Run(path={str(run.path)!r}, status='completed', epochs=1/1, test_acc={run.final['test_acc']:.4g})"
    )
    assert "optimizer" not in repr(made)  # a list of runs neither spells out their configs


def test_train_takes_a_dict_or_a_schema_object_and_set_style_overrides(tmp_path):
    from mlp_lab.config import config_from_dict

    raw = {
        "name": "from-dict",
        "data": {"dataset": "synthetic", "synthetic_train_size": 200, "synthetic_test_size": 50},
        "model": {"hidden": [8]},
        "train": {"epochs": 1, "checkpoint": False},
    }
    a = mlp_lab.train(raw, ["optimizer.lr=0.01"], runs_dir=tmp_path)
    b = mlp_lab.train(config_from_dict(raw), {"optimizer.lr": 0.01}, runs_dir=tmp_path)
    assert a.name.startswith("from-dict-") and a.params["optimizer.lr"] == b.params["optimizer.lr"] == 0.01
    assert a.metrics == [dict(m, seconds=a.metrics[0]["seconds"]) for m in b.metrics]  # same seed, same numbers


def test_user_errors_raise_the_clis_one_line_message(tmp_path):
    with pytest.raises(ConfigError, match=r"model.activation: 'swish' is not allowed") as e:
        mlp_lab.train(REPO / "configs" / "smoke.yaml", {"model.activation": "swish"}, runs_dir=tmp_path)
    assert "\n" not in str(e.value) and not tmp_path.exists() or not any(tmp_path.iterdir())


def test_overrides_as_one_string_or_none_are_what_a_notebook_means(tmp_path):
    smoke = REPO / "configs" / "smoke.yaml"
    one = mlp_lab.train(smoke, "train.epochs=1", runs_dir=tmp_path)  # one override, not 14 one-letter ones
    assert one.params["train.epochs"] == 1 and one.status == "completed"
    assert mlp_lab.check(smoke, None).checks  # no overrides
    with pytest.raises(TypeError, match="config: a YAML file's path, a dict or an ExperimentConfig, not int"):
        mlp_lab.train(42, runs_dir=tmp_path)


@pytest.mark.parametrize(
    "option, words", [({"jobs": 0}, "--jobs 0: must be 1 or more"), ({"threads": 0}, "--threads 0")]
)
def test_a_sweeps_bad_worker_counts_are_the_clis_errors_before_anything_is_written(tmp_path, option, words):
    # threads=0 started every run, each failing in torch.set_num_threads; jobs=0 divided by zero.
    (tmp_path / "s.yaml").write_text(f"base: {REPO / 'configs' / 'smoke.yaml'}\nseeds: 2\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=words):
        mlp_lab.sweep(tmp_path / "s.yaml", TINY, runs_dir=tmp_path / "runs", **option)
    assert not (tmp_path / "runs").exists()


def test_one_filter_or_group_field_may_be_a_string(seeded_runs):
    runs_dir, _ = seeded_runs
    one = mlp_lab.comparison(runs_dir, filters="model.activation=relu")  # it read 'm' as a filter
    assert [r.params["model.activation"] for r in one.rows] == ["relu"]
    by = mlp_lab.comparison(runs_dir, group_by="model.activation")
    assert sorted(g.n for g in by.rows) == [2, 2]


def test_load_runs_and_compare_give_what_the_cli_shows(seeded_runs):
    runs_dir, made = seeded_runs
    loaded = mlp_lab.load_runs(runs_dir)
    assert sorted(r.name for r in loaded) == sorted(r.name for r in made)
    for fmt in ("json", "csv", "markdown"):
        assert mlp_lab.compare(runs_dir, format=fmt) == invoke("compare", str(runs_dir), "--format", fmt).stdout
    comp = mlp_lab.comparison(runs_dir, baseline="model.activation=tanh")
    assert [g.n for g in comp.rows] == [2, 2] and comp.baseline.params["model.activation"] == "tanh"


def test_load_runs_warns_of_a_path_that_holds_no_run(seeded_runs, tmp_path):
    runs_dir, made = seeded_runs
    with pytest.warns(UserWarning, match="no such file or folder"):
        assert mlp_lab.load_runs(tmp_path / "runz") == []  # a typo is not silently no runs
    (tmp_path / "notes").mkdir()
    with pytest.warns(UserWarning, match="notes"):
        assert len(mlp_lab.load_runs(runs_dir, tmp_path / "notes")) == len(made)


def test_dataframes_of_runs_and_of_seed_groups(seeded_runs):
    pytest.importorskip("pandas", reason="DataFrames need pandas (pip install pandas)")
    runs_dir, made = seeded_runs
    df = mlp_lab.runs_frame(mlp_lab.load_runs(runs_dir))
    assert len(df) == 4 and {
        "run",
        "status",
        "model.activation",
        "train.seed",
        "final_test_acc",
        "best_test_acc",
    } <= set(df)
    assert df.groupby("model.activation")["final_test_acc"].count().to_dict() == {"relu": 2, "tanh": 2}
    groups = mlp_lab.groups_frame(mlp_lab.comparison(runs_dir))
    assert list(groups["n"]) == [2, 2] and "test_acc_std" in groups
    per_epoch = made[0].frame()
    assert list(per_epoch.index) == [1] and per_epoch.loc[1, "test_acc"] == made[0].final["test_acc"]


def test_import_mlp_lab_imports_no_torch():
    code = "import sys, mlp_lab; mlp_lab.load_runs; assert 'torch' not in sys.modules, 'torch'"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_sweep_runs_a_sweep_file_and_returns_its_runs(tmp_path):
    (tmp_path / "s.yaml").write_text(
        f"base: {REPO / 'configs' / 'smoke.yaml'}\ngrid: {{model.activation: [relu, tanh]}}\nseeds: 2\n",
        encoding="utf-8",
    )
    made = mlp_lab.sweep(tmp_path / "s.yaml", TINY, runs_dir=tmp_path / "runs", jobs=2, threads=1)
    assert [(r.params["model.activation"], r.params["train.seed"], r.status) for r in made] == [
        ("relu", 0, "completed"),
        ("relu", 1, "completed"),
        ("tanh", 0, "completed"),
        ("tanh", 1, "completed"),
    ]
    assert all(r.path.parent.parent == tmp_path / "runs" for r in made)  # one sweep folder
    assert [g.n for g in mlp_lab.comparison(made[0].path.parent).rows] == [2, 2]
