"""What a sweep shows while it runs: a line per finished run (``LineView``: --quiet, or no
terminal), and in a terminal also a live view (``LiveView``) of runs done, failed and
left, an ETA, and what each worker is on."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import Any

from mlp_lab.sweeps.watch import Place, Watch


def _out(line: str) -> None:
    print(line, flush=True)


def finished_line(folder: Path, entry: dict[str, Any], finished: int, total: int) -> str:
    """'[3/12] completed relu-0001 (cell 1a2b3c4d, seed 2): val acc 97.12% in 8.1s' (test acc
    when the run has no validation split: a sweep steers by what it shows)."""
    from mlp_lab import runs

    text = (
        f"[{finished}/{total}] {entry['status']} {entry['folder'] or '-'} (cell {entry['cell']}, seed {entry['seed']})"
    )
    if entry["status"] == "completed" and entry["folder"]:
        final = (runs.load_run(folder / entry["folder"]).summary or {}).get("final") or {}
        held_out = "val" if final.get("val_acc") is not None else "test"
        if final.get(f"{held_out}_acc") is not None:
            text += f": {held_out} acc {100 * final[f'{held_out}_acc']:.2f}% in {entry.get('seconds', 0):.1f}s"
    if entry.get("reason"):
        text += f": {without_run_hint(entry['reason'])}"
    return text


def without_run_hint(reason: str) -> str:
    """A run's reason without its own "mlp-lab resume RUN" advice (after an interrupt, a full
    disk; "mlp-lab train --resume RUN" in folders of older versions): that is not how a
    sweep goes on; the sweep's closing line says `mlp-lab resume SWEEP`."""
    return "; ".join(part for part in reason.split("; ") if not _RUN_HINT.search(part))


_RUN_HINT = re.compile(r"mlp-lab (train --resume|resume) ")


class LineView(Watch):
    """One line per finished run, on standard output."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def __enter__(self) -> LineView:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass

    def ended(self, entry: dict[str, Any], finished: int, total: int) -> None:
        _out(finished_line(self.folder, entry, finished, total))


class RunEntries:
    """A sweep's manifest entries by run index, read again for a run not seen yet (a search
    adds each trial's runs to the manifest as it asks them) or when asked to be fresh."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.manifest: Any = None
        self.by_index: dict[int, dict[str, Any]] = {}
        self.reload()

    def reload(self) -> None:
        from mlp_lab.sweeps.folder import load_manifest

        self.manifest = load_manifest(self.folder)
        self.by_index = {e["index"]: e for e in self.manifest.runs}

    def get(self, index: int, fresh: bool = False) -> dict[str, Any]:
        if fresh or index not in self.by_index:
            self.reload()
        return self.by_index[index]


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


class LiveView(LineView):
    """The line per finished run, with a live panel under it that Rich redraws 4 times a
    second: counts, elapsed time, ETA, and one line per run in progress (where, epoch).

    The ETA counts epochs, not runs, since a sweep's runs may differ in epochs: the epochs
    still to train over the rate of epochs this session has trained so far.
    """

    def __init__(self, folder: Path, console: Any = None) -> None:
        from mlp_lab.sweeps.folder import DONE

        super().__init__(folder)
        self.entries = RunEntries(folder)
        entries = list(self.entries.by_index.values())
        later, per_run = _runs_to_ask(self.entries.manifest)
        self.counts = {"done": sum(e["status"] in DONE for e in entries), "failed": 0}
        self.left = len(entries) - self.counts["done"] + later
        self.work = sum(self._epochs(e) for e in entries if e["status"] not in DONE) + later * per_run
        self.worked = 0  # epochs of runs that ended this session
        self.on: dict[int, dict[str, Any]] = {}  # run index -> where, epoch, since
        self.t0 = time.monotonic()
        self.lock = threading.Lock()  # Rich redraws from its own thread
        self.console = console
        self.live: Any = None

    @staticmethod
    def _epochs(entry: dict[str, Any]) -> int:
        return int(entry["config"]["train"]["epochs"])

    def __enter__(self) -> LiveView:
        from rich.console import Console
        from rich.live import Live

        self.live = Live(
            get_renderable=self.render,
            console=self.console or Console(stderr=True),
            refresh_per_second=4,
            transient=True,
            redirect_stdout=True,
        )
        self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.live.__exit__(*exc)

    def started(self, index: int, place: Place) -> None:
        with self.lock:
            self.entries.get(index)  # a search's new trial: read here, not in the drawing thread
            self.on[index] = {
                "where": str(place),
                "epoch": self.on.get(index, {}).get("epoch", 0),
                "since": time.monotonic(),
            }

    def epoch(self, index: int, epoch: int) -> None:
        with self.lock:
            if index in self.on:
                self.on[index]["epoch"] = epoch

    def ended(self, entry: dict[str, Any], finished: int, total: int) -> None:
        from mlp_lab.sweeps.folder import DONE

        with self.lock:
            self.on.pop(entry["index"], None)
            self.left -= 1
            if entry["status"] in DONE:
                self.counts["done"] += 1
            elif entry["status"] == "failed":
                self.counts["failed"] += 1
            self.worked += self._epochs(entry)
        super().ended(entry, finished, total)  # printed above the panel

    def eta(self) -> float | None:
        """Seconds still to go, from the epochs trained per second so far; None before any."""
        done = self.worked + sum(r["epoch"] for r in self.on.values())
        elapsed = time.monotonic() - self.t0
        if done <= 0 or elapsed <= 0:
            return None
        return max(0.0, (self.work - done) * elapsed / done)

    def render(self) -> Any:
        from rich.table import Table

        with self.lock:
            eta = self.eta()
            head = (
                f"[bold]{self.counts['done']} done[/], [red]{self.counts['failed']} failed[/], {self.left} left"
                f"  elapsed {_clock(time.monotonic() - self.t0)}  ETA {_clock(eta) if eta is not None else '-'}"
            )
            table = Table.grid(padding=(0, 2))
            table.add_row(head)
            for index, r in sorted(self.on.items()):
                e = self.entries.by_index[index]
                table.add_row(
                    f"  {e['config']['name']} (seed {e['seed']})  {r['epoch']}/{self._epochs(e)} epochs"
                    f"  {_clock(time.monotonic() - r['since'])}  on {r['where']}"
                )
        return table


def _runs_to_ask(manifest: Any) -> tuple[int, int]:
    """(runs a search will still add to its manifest, the epochs each trains); (0, 0) for a grid."""
    if "search" not in manifest.data:
        return 0, 0
    from mlp_lab.sweeps.search_runner import planned_runs, trial_epochs

    return planned_runs(manifest) - len(manifest.runs), trial_epochs(manifest)


class TensorBoardView(Watch):
    """Another view, and TensorBoard events of each run's epochs as they end (read from
    the run folder's metrics.jsonl: the local backend's runs write it as they go; a Ray
    run's lines arrive when its task returns) and of its ending (``export.LiveTensorBoard``)."""

    def __init__(self, inner: Watch, folder: Path, logdir: Path) -> None:
        from mlp_lab.export import LiveTensorBoard

        self.inner, self.folder, self.live = inner, folder, LiveTensorBoard(logdir)
        self.entries = RunEntries(folder)
        self.written: dict[int, int] = {}  # run index -> metrics lines written

    def __enter__(self) -> TensorBoardView:
        self.inner.__enter__()  # type: ignore[attr-defined]
        return self

    def __exit__(self, *exc: Any) -> None:
        self.live.close()
        self.inner.__exit__(*exc)  # type: ignore[attr-defined]

    def started(self, index: int, place: Any) -> None:
        self.inner.started(index, place)
        self.entries.get(index, fresh=True)  # the folder it trains in is in the manifest now

    def epoch(self, index: int, epoch: int) -> None:
        self.inner.epoch(index, epoch)
        self._write_new_lines(self.entries.get(index))

    def ended(self, entry: dict[str, Any], finished: int, total: int) -> None:
        from mlp_lab.results.rows import read_row

        self.inner.ended(entry, finished, total)
        if entry.get("folder") and (self.folder / entry["folder"]).is_dir():
            self._write_new_lines(entry)
            row = read_row(self.folder / entry["folder"])
            self.live.end(
                self.folder / entry["folder"],
                entry["config"],
                entry["status"],
                row.metrics if row is not None else {},
                entry.get("varies") or {},
            )
        self.written.pop(entry["index"], None)

    def _write_new_lines(self, entry: dict[str, Any]) -> None:
        from mlp_lab import atomic_files, runs

        if not entry.get("folder"):
            return
        run_dir = self.folder / entry["folder"]
        if not (run_dir / runs.METRICS).is_file():
            return
        lines = atomic_files.read_jsonl(run_dir / runs.METRICS)[0]
        done = self.written.get(entry["index"], 0)
        for record in lines[done:]:
            self.live.epoch(run_dir, entry["config"], record)
        self.written[entry["index"]] = max(done, len(lines))
