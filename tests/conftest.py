"""Shared test fixtures. Tests run on CPU, offline, in seconds each."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The genuine data sets, when this machine has them (CI's clone has ../shared beside it).
SHARED_DATA = Path(os.environ.get("MLP_LAB_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture
def shared_data() -> Path:
    if not (SHARED_DATA / "MNIST" / "raw").is_dir():
        pytest.skip(f"real data not found in {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    # A user's own MLP_LAB_DATA must never leak into a test's data directory lookup.
    monkeypatch.delenv("MLP_LAB_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
