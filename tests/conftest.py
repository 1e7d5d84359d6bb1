"""Shared test fixtures and the test tiers. Tests run on CPU, offline.

Tiers: ``python -m pytest -m "not slow"`` is the edit-test loop (under a minute on two
cores); ``python -m pytest`` runs everything. A test is marked where its cost comes from,
here, not by hand: its module (Ray, real sweeps under signals, benchmarks), what it calls
(a real ``mlp-lab`` process, ``subprocess``, a sweep), or a fixture (real data). The modules
that test a sweep's plan and bad input only (``PLANNING_MODULES``) stay fast: a test there
that starts a process fails.
"""

from __future__ import annotations

import os
import types
from pathlib import Path

import pytest

from mlp_lab.data import files as data_files

import helpers

REPO = Path(__file__).resolve().parents[1]
# The genuine data sets, when this machine has them (CI's clone has ../shared beside it).
SHARED_DATA = Path(os.environ.get("MLP_LAB_SHARED_DATA", REPO.parent / "shared" / "data"))

# Modules whose tests start sweeps of real worker processes, Ray clusters or benchmarks.
SLOW_MODULES = {
    "test_sweep",
    "test_sweep_faults",
    "test_search",
    "test_sweep_ray",
    "test_sweep_ray_cluster",
    "test_benchmarks",
    "test_reliability",
}
# What makes a test slow wherever it stands, found in its code (and in the module's own
# helpers it calls): a real process (the CLI as a user's shell runs it, subprocess), or a
# sweep, whose every run is a worker process.
# docs/figures.py's run_block runs a page's commands (sweeps among them) as shell processes.
PROCESS_NAMES = {"subprocess", "Popen", "cli_subprocess", "start_training", "run_sweep", "sweep", "run_block"}
PROCESS_STARTERS = (helpers.start,)  # too common a word to go by name: by identity
# Modules whose tests stop before any run starts (a sweep's plan, dry runs, bad input): the word
# "sweep" in them is no sign of a process, and their own fixture fails a test that starts one.
PLANNING_MODULES = {"test_sweep_plan", "test_search_plan"}
# Environment variables (by prefix) a test must leave as it found them.
WATCHED_ENVIRONMENT = ("MLP_LAB_", "XDG_", "MLFLOW_", "RAY_", "TMP", "TEMP", "HOME", "COLUMNS", "CUDA_", "OMP_")
# Fixtures that bring real data: integration tests, and slow ones (decoding MNIST alone takes ~0.5 s).
REAL_DATA_FIXTURES = {"shared_data"}


def _names(code: types.CodeType) -> tuple[set[str], set[str]]:
    """The names (globals, attributes, imports) and string constants a function's code uses,
    its inner functions' and lambdas' too."""
    names, strings = set(code.co_names), {c for c in code.co_consts if isinstance(c, str)}
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            inner_names, inner_strings = _names(const)
            names |= inner_names
            strings |= inner_strings
    return names, strings


def _starts_processes(function: types.FunctionType, depth: int = 1, by_word: bool = True) -> bool:
    names, strings = _names(function.__code__)
    if names & PROCESS_NAMES or (by_word and "sweep" in strings):
        return True
    module_globals = function.__globals__
    if any(module_globals.get(name) is starter for name in names for starter in PROCESS_STARTERS):
        return True
    # One level into the test module's own helper functions (a `_run` that calls subprocess).
    return depth > 0 and any(
        _starts_processes(helper, depth - 1, by_word)
        for name in names
        if isinstance(helper := module_globals.get(name), types.FunctionType)
        and helper.__module__ == function.__module__
        and helper is not function
    )


def _fixture_functions(item: pytest.Item) -> list[types.FunctionType]:
    """The functions of the fixtures a test uses (a module fixture that runs a sweep)."""
    info = getattr(item, "_fixtureinfo", None)
    defs = getattr(info, "name2fixturedefs", {}) if info is not None else {}
    return [d[-1].func for d in defs.values() if d and isinstance(d[-1].func, types.FunctionType)]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if fixtures & REAL_DATA_FIXTURES:
            item.add_marker(pytest.mark.integration)
        function = getattr(item, "function", None)
        code = ([function] if function is not None else []) + _fixture_functions(item)
        if (
            item.module.__name__ in SLOW_MODULES
            or fixtures & REAL_DATA_FIXTURES
            or any(_starts_processes(f, by_word=item.module.__name__ not in PLANNING_MODULES) for f in code)
        ):
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def base(tmp_path) -> Path:
    """``tiny.yaml`` beside the test's sweep files (helpers.sweep_file): SWEEP_TINY's runs."""
    return helpers.write_yaml(tmp_path / "tiny.yaml", helpers.SWEEP_TINY)


@pytest.fixture
def shared_data() -> Path:
    if not (SHARED_DATA / "MNIST" / "raw").is_dir():
        pytest.skip(f"real data not found in {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    # A user's own MLP_LAB_DATA must never leak into a test's data directory lookup; nor
    # the shell's MLP_LAB_OFFLINE (the download tests fake a download), nor its COLUMNS
    # (the table tests read what a pipe gets: every column).
    for name in ("MLP_LAB_DATA", "MLP_LAB_OFFLINE", "COLUMNS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    # No test downloads: one that means to replaces this tripwire with its own fake.
    monkeypatch.setattr(data_files, "download", _no_download)


def _no_download(*args, **kwargs):
    raise AssertionError("a test tried to download a data set")


@pytest.fixture(autouse=True)
def _no_run_lock_left_held():
    # A run that ends, however (a crash, a failed resume, a full disk), lets go of its
    # folder's lock: a lock this process kept would make another process's resume wait.
    from mlp_lab import run_lock

    yield
    left, run_lock._held = dict(run_lock._held), {}
    for f in left.values():
        f.close()
    assert not left, f"run locks left held: {sorted(str(p) for p in left)}"


@pytest.fixture(autouse=True)
def _environment_left_as_found():
    # A test, or the library code it calls, that changes os.environ and leaves it so changes
    # every test after it (and a notebook's session): a cache home left pointing into a
    # deleted temp folder sent the test session's caches there; MLflow's request settings
    # stayed changed after an export. Watched: what mlp-lab, its tests and its tools read
    # (libraries that note their own settings in it, torch's compile cache say, are theirs).
    # monkeypatch's changes are undone before this looks.
    before = dict(os.environ)
    yield
    names = {k for k in before.keys() | os.environ.keys() if k.startswith(WATCHED_ENVIRONMENT)}
    changed = sorted(k for k in names if before.get(k) != os.environ.get(k))
    assert not changed, f"environment variables left changed: {changed}"


@pytest.fixture(autouse=True)
def _planning_starts_no_process(request, monkeypatch):
    # A PLANNING_MODULES test sits in the fast tier on its word that it starts no process: hold it to it.
    if request.module.__name__ not in PLANNING_MODULES:
        return

    def refuse(*args, **kwargs):
        raise AssertionError(f"{request.node.name} plans a sweep, yet started a process")

    # (by their dotted names: the tiers above read a name like Popen as a test that starts processes)
    for target in (
        "subprocess.Popen.__init__",
        "multiprocessing.process.BaseProcess.start",
        "multiprocessing.util.spawnv_passfds",
    ):
        monkeypatch.setattr(target, refuse)
