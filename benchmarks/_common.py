"""What every benchmark script shares: where the data is, how busy the machine was,
and writing the JSON results."""

from __future__ import annotations

import json
import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def default_data_dir() -> Path:
    """$MLP_LAB_DATA, else ../shared/data beside the repo, else ./data."""
    env = os.environ.get("MLP_LAB_DATA", "").strip()
    if env:
        return Path(env)
    shared = REPO.parent / "shared" / "data"
    return shared if shared.is_dir() else Path("data")


def load_avg() -> list[float]:
    """The 1/5/15-minute load averages: timings taken above ~1 per core are noisy."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return []


def write_json(path: Path | None, results: dict) -> None:
    if path is not None:
        path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {path}")
