"""mlp-lab sweep before anything runs: expansion, run names, cell ids, the shorthand, dry
runs and bad input (one line, exit 2, nothing written). No test here starts a process
(conftest's PLANNING_MODULES: one that tries fails), so they run in the fast tier."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlp_lab.sweeps import cell_id, load_sweep

from helpers import SWEEP_TINY, assert_user_error, cli, merge, sweep_file, write_config, write_yaml

TINY = merge(SWEEP_TINY, {})  # a copy: a test may change its own


# --- expansion ------------------------------------------------------------------------


def test_grid_cases_and_seeds_multiply(tmp_path, base):
    s = load_sweep(
        sweep_file(
            tmp_path,
            grid={"model.activation": ["relu", "tanh"], "model.init": ["xavier_normal", "kaiming_normal"]},
            cases=[{"optimizer.name": "sgd", "optimizer.lr": 0.1}, {"optimizer.name": "adam"}],
            seeds=3,
        )
    )
    assert len(s.runs) == 2 * 2 * 2 * 3 and len(s.cells) == 8
    assert [r.seed for r in s.runs[:3]] == [0, 1, 2] and all(r.config.train.seed == r.seed for r in s.runs)
    first = s.runs[0]
    assert first.varies == {
        "model.activation": "relu",
        "model.init": "xavier_normal",
        "optimizer.name": "sgd",
        "optimizer.lr": 0.1,
    }
    assert first.config.optimizer.lr == 0.1 and first.config.name == "relu-xavier_normal-sgd-0.1"
    assert load_sweep(sweep_file(tmp_path, seeds=[0, 7, 42])).runs[2].seed == 42


def test_runs_are_named_by_their_values_as_compare_spells_them(tmp_path, base):
    grid = {"optimizer.lr": [1e6, 1e-5, 0.123456789], "model.hidden": [[8, 8]], "model.norm": ["none"]}
    names = [r.config.name for r in load_sweep(sweep_file(tmp_path, grid=grid)).runs]
    assert names == ["1e06-8_8-none", "1e-05-8_8-none", "0.123457-8_8-none"]  # compare's column: 1e+06, [8, 8]


def test_cell_ids_are_stable_and_ignore_seed_and_name(tmp_path, base):
    a = load_sweep(sweep_file(tmp_path, grid={"model.activation": ["relu", "tanh"]}, seeds=2))
    b = load_sweep(sweep_file(tmp_path, grid={"model.activation": ["tanh", "relu"]}, seeds=[5]))
    assert {r.cell for r in a.runs} == {r.cell for r in b.runs}
    assert a.runs[0].cell == a.runs[1].cell  # seeds 0 and 1 of one cell
    cfg = a.runs[0].config.model_copy(deep=True)
    cfg.name, cfg.train.seed = "other", 99
    assert cell_id(cfg) == a.runs[0].cell and len(a.runs[0].cell) == 8


def test_set_applies_to_every_run_and_the_cli_set_joins_it(tmp_path, base):
    s = load_sweep(
        sweep_file(tmp_path, set={"train.epochs": 3}, grid={"model.activation": ["relu", "tanh"]}),
        overrides=["optimizer.lr=0.05"],
    )
    assert {(r.config.train.epochs, r.config.optimizer.lr) for r in s.runs} == {(3, 0.05)}


def test_configs_and_globs_are_each_a_case(tmp_path, base):
    write_yaml(tmp_path / "tiny_b.yaml", {**TINY, "model": {"hidden": [8]}})
    s = load_sweep(write_yaml(tmp_path / "s.yaml", {"configs": ["tiny*.yaml"], "seeds": 1}))
    assert [r.varies for r in s.runs] == [{"config": "tiny.yaml"}, {"config": "tiny_b.yaml"}]
    assert [r.config.model.hidden for r in s.runs] == [[16], [8]]


def test_dry_run_prints_the_runs_and_writes_nothing(tmp_path, base, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = cli("sweep", sweep_file(tmp_path, grid={"model.activation": ["relu", "tanh"]}, seeds=2), "--dry-run")
    assert r.code == 0, r
    assert "4 runs: 2 cells x 2 seeds (dry run: nothing ran)" in r.stdout and "model.activation" in r.stdout
    assert not (tmp_path / "runs").exists()


def test_the_shorthand_is_the_sweep_file_it_stands_for(tmp_path, base, monkeypatch):
    monkeypatch.chdir(tmp_path)
    short = load_sweep_from_cli(
        [
            "--config",
            "tiny.yaml",
            "--grid",
            "model.activation=relu,tanh",
            "--grid",
            "model.hidden=[8],[16, 16]",
            "--seeds",
            "2",
            "--set",
            "train.epochs=3",
        ]
    )
    long = load_sweep(
        sweep_file(
            tmp_path,
            grid={"model.activation": ["relu", "tanh"], "model.hidden": [[8], [16, 16]]},
            seeds=2,
            set={"train.epochs": 3},
        )
    )
    assert [(r.cell, r.seed) for r in short.runs] == [(r.cell, r.seed) for r in long.runs] and len(short.runs) == 8
    assert short.name == "tiny" and short.runs[-1].config.model.hidden == [16, 16]
    r = cli("sweep", "--config", "tiny.yaml", "--grid", "optimizer.lr=1e-3,0.01", "--seeds", "[0, 7]", "--dry-run")
    assert r.code == 0, r
    assert "4 runs: 2 cells x 2 seeds" in r.stdout and "0.001" in r.stdout


def load_sweep_from_cli(args: list[str]):
    """The plan ``mlp-lab sweep ARGS`` makes, through the CLI's own parsing."""
    from mlp_lab.sweeps import console

    seen = []
    real = console._print_plan
    console._print_plan = seen.append
    try:
        assert cli("sweep", *args, "--dry-run").code == 0
    finally:
        console._print_plan = real
    return seen[0]


@pytest.mark.parametrize(
    "args, words",
    [
        (
            ["--config", "tiny.yaml", "--grid", "model.activation"],
            ["--grid 'model.activation'", "key.path=value1,value2"],
        ),
        (
            ["--config", "tiny.yaml", "--grid", "model.activaton=relu"],
            ["grid model.activaton", "did you mean 'activation'"],
        ),
        (
            ["--config", "tiny.yaml", "--grid", "model.activation=relu", "--grid", "model.activation=tanh"],
            ["given twice"],
        ),
        (["--config", "tiny.yaml", "--seeds", "0"], ["seeds", "1 or more"]),
        (["--config", "nope.yaml", "--seeds", "2"], ["nope.yaml"]),
        (["--seeds", "3"], ["--grid, --search and --seeds", "--config BASE.yaml"]),
        (["--config", "tiny.yaml", "--grid", "train.seed=0,1"], ["grid train.seed", "--seeds"]),
        (["--config", "tiny.yaml", "--seeds", "2", "--set", "train.seed=4"], ["--set train.seed", "--seeds"]),
        (["s.yaml", "--config", "tiny.yaml"], ["not both"]),
        ([], ["no sweep given"]),
    ],
)
def test_bad_shorthands_are_one_line_and_exit_2(tmp_path, base, monkeypatch, args, words):
    monkeypatch.chdir(tmp_path)
    sweep_file(tmp_path)
    assert_user_error(cli("sweep", *args), *words)
    assert not (tmp_path / "runs").exists()


# --- bad input: one line, exit 2, no sweep folder ---------------------------------------

BAD = [
    ({"grid": {"model.activaton": ["relu"]}}, ["grid model.activaton", "did you mean 'activation'"]),
    ({"set": {"train.epoch": 2}}, ["set train.epoch", "did you mean 'epochs'"]),
    ({"cases": [{"optimizr.lr": 0.1}]}, ["cases optimizr.lr", "did you mean 'optimizer'"]),
    ({"grid": {"model.activation": "relu"}}, ["grid.model.activation", "list"]),
    ({"grid": {"model.activation": []}}, ["grid model.activation", "empty list"]),
    ({"grid": {"model.activation": ["relu", "swish"]}}, ["cell model.activation=swish", "model.activation", "'swish'"]),
    ({"configs": ["tiny.yaml"]}, ["exactly one of base"]),
    ({"base": None}, ["exactly one of base"]),
    ({"seeds": 0}, ["seeds", "1 or more"]),
    ({"seeds": -2}, ["seeds", "1 or more"]),
    ({"seeds": 1.5}, ["seeds: 1.5", "a count of 1 or more, or a list"]),
    ({"seeds": "three"}, ["seeds: 'three'", "a count of 1 or more, or a list"]),
    ({"seeds": float("nan")}, ["seeds: nan", "a count of 1 or more, or a list"]),
    ({"grid": {"optimizer.lr": [0.1, float("inf")]}}, ["cell optimizer.lr=inf", "finite number"]),
    ({"seeds": [1, 2, 1]}, ["seeds", "repeats"]),
    ({"cases": {"optimizer.lr": 0.1}}, ["cases"]),
    ({"cases": [{"optimizer.lr": 0.001}, {"optimizer.lr": 1e-3}]}, ["come out identical"]),
    ({"gird": {"model.activation": ["relu"]}}, ["unknown key 'gird'", "did you mean 'grid'"]),
    # train.seed comes from seeds: anywhere else it would be overridden in silence
    ({"grid": {"train.seed": [0, 1]}}, ["grid train.seed", "sweep's seeds", "seeds: [0, 7, 42]"]),
    ({"set": {"train.seed": 5}}, ["set train.seed", "sweep's seeds"]),
    ({"set": {"train": {"seed": 5, "epochs": 1}}}, ["set train.seed", "sweep's seeds"]),
    ({"cases": [{"train.seed": 3}]}, ["cases train.seed", "sweep's seeds"]),
]


@pytest.mark.parametrize("fields, words", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_sweep_files_are_one_line_and_exit_2(tmp_path, base, monkeypatch, fields, words):
    monkeypatch.chdir(tmp_path)
    doc = {"base": "tiny.yaml", **fields}
    if doc.get("base") is None:
        doc.pop("base")
    assert_user_error(cli("sweep", write_yaml(tmp_path / "s.yaml", doc)), *words)
    assert not (tmp_path / "runs").exists()


def test_a_configs_own_seed_that_the_seeds_leave_out_is_a_note(tmp_path):
    write_yaml(tmp_path / "tiny.yaml", merge(TINY, {"train": {"seed": 7}}))
    r = cli("sweep", sweep_file(tmp_path), "--dry-run")
    assert r.code == 0 and "tiny.yaml sets train.seed 7" in r.stderr and "seeds: [7]" in r.stderr, r
    r = cli("sweep", sweep_file(tmp_path, seeds=[7, 8]), "--dry-run")
    assert r.code == 0 and "train.seed" not in r.stderr, r  # the seeds run it: nothing to say
    assert [run.seed for run in load_sweep(tmp_path / "s.yaml").runs] == [7, 8]


def test_a_glob_that_matches_nothing_is_an_error(tmp_path, base):
    assert_user_error(
        cli("sweep", write_yaml(tmp_path / "s.yaml", {"configs": ["nope_*.yaml"]})), "nope_*.yaml", "matches no file"
    )


def test_a_base_is_found_beside_the_sweep_file_never_in_the_current_folder(tmp_path, monkeypatch):
    """The same sweep file plans the same runs from any folder: a base.yaml that happens
    to be in the current folder does not stand in for a missing one beside the file."""
    monkeypatch.chdir(tmp_path)
    write_config(tmp_path / "tiny.yaml", {"optimizer": {"lr": 0.5}})  # another config, here
    write_yaml(tmp_path / "exp" / "s.yaml", {"base": "tiny.yaml", "seeds": 2})
    line = assert_user_error(cli("sweep", "exp/s.yaml", "--dry-run"), "exp/s.yaml: base: 'tiny.yaml'")
    assert "no such file beside the sweep file (exp/tiny.yaml)" in line
    assert line.endswith("for ./tiny.yaml, write its path from the sweep file's folder: base: ../tiny.yaml")
    write_yaml(tmp_path / "exp" / "s.yaml", {"base": "../tiny.yaml", "seeds": 2})  # as the line says
    assert {r.config.optimizer.lr for r in load_sweep(tmp_path / "exp" / "s.yaml").runs} == {0.5}


def test_a_missing_base_names_the_sweep_file_and_the_shipped_names_near_it(tmp_path):
    line = assert_user_error(cli("sweep", write_yaml(tmp_path / "s.yaml", {"base": "relu_adma"}), "--dry-run"))
    assert "s.yaml: base: 'relu_adma': no such file beside the sweep file" in line
    assert "no shipped config has that name; did you mean relu_adam" in line


@pytest.mark.parametrize(
    "args, words",
    [
        (["--jobs", "0"], ["--jobs 0", "1 or more"]),
        (["--threads", "0"], ["--threads 0", "1 or more"]),
        (["--backend", "Ray"], ["--backend: 'Ray' is not allowed (did you mean 'ray'?)", "allowed: local, ray"]),
    ],
)
def test_bad_options_are_one_line_and_exit_2(tmp_path, base, args, words):
    assert_user_error(cli("sweep", sweep_file(tmp_path), *args), *words)


def test_more_than_ten_thousand_runs_need_yes(tmp_path, base):
    assert_user_error(cli("sweep", sweep_file(tmp_path, seeds=10_001), "--dry-run"), "10,001 runs", "--yes")


def test_resume_of_a_folder_that_is_not_a_sweep(tmp_path):
    (tmp_path / "x").mkdir()
    assert_user_error(cli("sweep", "--resume", tmp_path / "x"), "not a sweep folder")


def _shipped_sweeps() -> list[Path]:
    from mlp_lab.shipped import list_shipped

    return sorted(s.path for s in list_shipped() if s.kind == "sweep")


@pytest.mark.parametrize("path", _shipped_sweeps(), ids=lambda p: p.name)
def test_every_shipped_sweep_file_expands(path):
    r = cli("sweep", path, "--dry-run")
    assert r.code == 0, r
    assert "(dry run: nothing ran)" in r.stdout
