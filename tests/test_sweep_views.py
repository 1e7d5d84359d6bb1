"""What a sweep shows in a terminal: the live view's counts, ETA and workers, as drawn."""

from __future__ import annotations

import io

import pytest
import yaml
from rich.console import Console

from mlp_lab import sweeps
from mlp_lab.sweeps import load_sweep, views

from helpers import SWEEP_TINY, merge

TINY = merge(SWEEP_TINY, {"train": {"epochs": 4}})


def drawn(view: views.LiveView) -> str:
    out = Console(file=io.StringIO(), width=160, force_terminal=False)
    out.print(view.render())
    return out.file.getvalue()


def test_the_live_view_counts_runs_and_shows_each_worker_with_an_eta(tmp_path, monkeypatch):
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    (tmp_path / "s.yaml").write_text(
        yaml.safe_dump({"base": "tiny.yaml", "grid": {"model.activation": ["relu", "tanh"]}, "seeds": 2})
    )
    folder = sweeps.start_sweep(load_sweep(tmp_path / "s.yaml"), tmp_path / "runs").folder
    now = [1000.0]
    monkeypatch.setattr(views.time, "monotonic", lambda: now[0])
    view = views.LiveView(folder)
    assert "0 done, 0 failed, 4 left" in drawn(view) and "ETA -" in drawn(view)  # nothing to estimate from yet

    view.started(0, sweeps.Place(101))
    view.started(1, sweeps.Place(102, "node-a"))
    now[0] += 10
    view.epoch(0, 2)
    view.epoch(1, 1)
    text = drawn(view)
    # 3 of 16 epochs in 10 s: 13 more take 43 s
    assert "elapsed 0:10" in text and "ETA 0:43" in text
    assert (
        "relu (seed 0)  2/4 epochs  0:10  on pid 101" in text
        and "relu (seed 1)  1/4 epochs  0:10  on node-a pid 102" in text
    )

    printed = []
    monkeypatch.setattr(views, "_out", printed.append)
    entry = {**sweeps.load_manifest(folder).runs[0], "status": "failed", "reason": "process killed by SIGKILL"}
    view.ended(entry, 1, 4)
    text = drawn(view)
    assert "0 done, 1 failed, 3 left" in text and "pid 101" not in text and "pid 102" in text
    assert printed == [f"[1/4] failed - (cell {entry['cell']}, seed 0): process killed by SIGKILL"]


def test_a_resumed_sweep_counts_what_ended_before(tmp_path):
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({"base": "tiny.yaml", "seeds": 3}))
    manifest = sweeps.start_sweep(load_sweep(tmp_path / "s.yaml"), tmp_path / "runs")
    manifest.update(0, status="completed")
    manifest.update(1, status="interrupted")
    assert "1 done, 0 failed, 2 left" in drawn(views.LiveView(manifest.folder))


@pytest.mark.parametrize("hint", ["mlp-lab resume runs/x", "mlp-lab train --resume runs/x"], ids=["now", "older"])
def test_a_sweeps_lines_never_give_a_runs_own_resume_advice(hint):
    """A run's reason says how to resume that run (runs of older versions, the older spelling);
    the sweep's lines leave it out: the sweep's closing line says how the sweep goes on."""
    from mlp_lab.sweeps.views import without_run_hint

    assert (
        without_run_hint(f"interrupted by SIGINT during epoch 2; 1 finished epoch(s) kept; continue with: {hint}")
        == "interrupted by SIGINT during epoch 2; 1 finished epoch(s) kept"
    )
    assert (
        without_run_hint(
            "failed: no space left on device writing runs/x/checkpoint.pt; the last checkpoint is "
            f"intact: free some space, then {hint}"
        )
        == "failed: no space left on device writing runs/x/checkpoint.pt"
    )
    assert without_run_hint("failed: the resume of x went wrong") == "failed: the resume of x went wrong"


def test_a_tpe_search_is_counted_before_its_trials_are_asked_and_drawn_once_they_are(tmp_path, monkeypatch):
    from mlp_lab.sweeps.search_runner import ask_next, rebuild

    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    (tmp_path / "s.yaml").write_text(
        yaml.safe_dump(
            {
                "base": "tiny.yaml",
                "search": {"method": "tpe", "trials": 3, "space": {"optimizer.lr": {"log_uniform": [1.0e-3, 0.1]}}},
            }
        )
    )
    manifest = sweeps.start_sweep(load_sweep(tmp_path / "s.yaml"), tmp_path / "runs")
    assert manifest.runs == []  # TPE asks each trial when a place frees up
    view = views.LiveView(manifest.folder)
    assert "0 done, 0 failed, 3 left" in drawn(view) and view.work == 3 * TINY["train"]["epochs"]

    (index,) = ask_next(rebuild(manifest), manifest)  # the driver asks a trial and starts it
    view.started(index, sweeps.Place(101))
    view.epoch(index, 1)
    assert "trial000 (seed 0)  1/4 epochs" in drawn(view)  # a trial asked after the view began

    monkeypatch.setattr(views, "_out", lambda line: None)
    view.ended({**manifest.runs[index], "status": "pruned", "reason": "pruned by median after 1 epoch"}, 1, 3)
    assert "1 done, 0 failed, 2 left" in drawn(view)  # a pruned trial is done
