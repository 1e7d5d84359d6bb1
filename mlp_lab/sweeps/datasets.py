"""The data sets a sweep's runs read, decoded once before any run starts (a missing data
set is one error up front, not one in every run)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def data_key(cfg: Any, data_dir: Path | None) -> tuple[Any, ...]:
    """What decides the decoded data set a run reads (not its split or preprocessing)."""
    from mlp_lab.data import resolve_data_dir

    return (
        cfg.data.dataset,
        str(resolve_data_dir(data_dir, cfg.data).expanduser().absolute()),
        cfg.data.synthetic_train_size,
        cfg.data.synthetic_test_size,
    )


def decode_data(configs: list[Any], data_dir: Path | None) -> dict[tuple[Any, ...], Any]:
    """Each data set the runs use, decoded once (``data_key`` -> ``Decoded``): a missing data
    set is an error before any run starts, not in every run. The decoded cache this writes is
    what the local backend's runs read; the Ray backend sends these tensors to the cluster."""
    from mlp_lab.data import decode, resolve_data_dir

    sets: dict[tuple[Any, ...], Any] = {}
    for cfg in configs:
        key = data_key(cfg, data_dir)
        if key not in sets:
            sets[key] = decode(cfg.data, resolve_data_dir(data_dir, cfg.data))
    return sets
