"""What `mlp-lab train` shows while it runs and when it ends."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

err_console = Console(stderr=True, soft_wrap=True)  # one line per message, even in logs


class TrainingProgress:
    """A Rich progress bar over epochs and batches with the live metrics.

    Disabled (quiet) when stderr is not a terminal or with --quiet; warnings still print.
    """

    def __init__(self, enabled: bool, run_name: str) -> None:
        self.enabled = enabled
        self.run_name = run_name
        self._progress: Progress | None = None
        self._epoch_task = TaskID(0)  # (used only once the bar exists)
        self._batch_task = TaskID(0)
        self._last = ""

    def __enter__(self) -> TrainingProgress:
        if self.enabled:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[info]}"),
                console=err_console,
                transient=True,
            )
            self._progress.__enter__()
            self._epoch_task = self._progress.add_task("epochs", total=None, info="")
            self._batch_task = self._progress.add_task("batches", total=None, info="")
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def start_epoch(self, epoch: int, epochs: int) -> None:
        if self._progress is not None:
            self._progress.update(self._epoch_task, total=epochs, completed=epoch - 1, info=self._last)
            self._progress.reset(self._batch_task, total=None, info="")

    def step(self, done: int, total: int) -> None:
        # Updating the bar every step costs more than a small step itself: every 10th.
        if self._progress is not None and (done % 10 == 0 or done == total):
            self._progress.update(self._batch_task, total=total, completed=done)

    def end_epoch(self, record: dict[str, Any]) -> None:
        # With a validation split the run is steered by it: show it, not the test set.
        held_out = "val" if record.get("val_acc") is not None else "test"
        self._last = (
            f"epoch {record['epoch']}: train loss {record['train_loss']:.4f}  "
            f"{held_out} acc {100 * record[f'{held_out}_acc']:.2f}%"
        )
        if self._progress is not None:
            self._progress.update(self._epoch_task, completed=record["epoch"], info=self._last)

    def warn(self, message: str) -> None:
        err_console.print(f"[yellow]warning:[/] {message}", highlight=False)


def print_result(result: Any, quiet: bool = False) -> None:
    """The closing lines: how the run ended, what it reached, where it is."""
    s = result.summary
    out = Console(file=sys.stdout, highlight=False, soft_wrap=True)
    final = s.get("final")
    status = result.status
    colour = {"completed": "green", "interrupted": "yellow"}.get(status, "red")
    line = f"[{colour}]{status}[/] {s['name']}: {s['epochs_done']}/{s['epochs_planned']} epochs in {s['duration_s']:.1f}s on {s['device']}"
    if final:
        line += f"; final test acc {100 * final['test_acc']:.2f}%, test loss {final['test_loss']:.4f}"
    out.print(line)
    if s.get("selected_epoch") is not None:
        by = s["selected_by"]
        chosen = s.get(f"selected_{by}")
        value = f"{100 * chosen:.2f}%" if by.endswith("acc") else f"{chosen:.4f}"
        out.print(
            f"chosen on validation ({by}): epoch {s['selected_epoch']}, {by.replace('_', ' ')} {value}, "
            f"test acc there {100 * s['selected_test_acc']:.2f}% (weights: best.pt)"
        )
    if s.get("message"):
        target = out if status == "completed" else err_console
        target.print(s["message"], highlight=False)
    if not quiet:
        for w in s.get("warnings", []):
            err_console.print(f"[yellow]warning:[/] {w}", highlight=False)
    out.print(f"run folder: {result.run_dir}")
