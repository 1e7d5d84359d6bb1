"""The one scheduler loop, driven in-process by a fake backend: the grid's runs and the
places, a plan that asks for runs and prunes, a signal, a full disk, resume. The real
backends (processes, Ray) keep their own tests for what needs real processes."""

from __future__ import annotations

import os
import signal

from mlp_lab.errors import DiskFull
from mlp_lab.sweeps import load_sweep
from mlp_lab.sweeps.folder import Manifest, create_sweep_folder, entry_of
from mlp_lab.sweeps.plan import Plan, PlannedRun
from mlp_lab.sweeps.scheduler import Ended, Epoch, Started, drive
from mlp_lab.sweeps.watch import Place, Watch

from helpers import SWEEP_TINY, write_yaml


def manifest(tmp_path, seeds: int = 5) -> Manifest:
    write_yaml(tmp_path / "base.yaml", SWEEP_TINY)
    write_yaml(tmp_path / "s.yaml", {"base": "base.yaml", "seeds": seeds})
    return create_sweep_folder(tmp_path / "runs", load_sweep(tmp_path / "s.yaml", []))


class FakeBackend:
    """Runs that take ``epochs`` ticks of ``wait`` each and end as ``endings`` says
    (default completed). Records what the loop asked of it."""

    def __init__(self, manifest: Manifest, epochs: int = 2, endings: dict[int, str] | None = None) -> None:
        self.manifest, self.epochs, self.endings = manifest, epochs, endings or {}
        self.running: dict[int, int] = {}  # index -> epochs done
        self.stopped: set[int] = set()
        self.signal: int | None = None
        self.starts: list[int] = []
        self.most_at_once = 0
        self.full_at: int | None = None  # the start that finds the disk full
        self.on_tick = lambda tick: None
        self.ticks = 0
        self._new: list[int] = []

    def start(self, index: int) -> None:
        if self.full_at is not None and len(self.starts) == self.full_at:
            raise DiskFull("no space left on device writing the run folder")
        self.starts.append(index)
        self.manifest.update(index, status="running")
        self.running[index] = 0
        self._new.append(index)
        self.most_at_once = max(self.most_at_once, len(self.running))

    def busy(self) -> int:
        return len(self.running)

    def wait(self, timeout: float):
        self.ticks += 1
        self.on_tick(self.ticks)
        events = [Started(i, Place(1000 + i)) for i in self._new]
        self._new = []
        for index in list(self.running):
            cut = index in self.stopped or self.signal is not None
            if not cut:
                self.running[index] += 1
                events.append(Epoch(index, self.running[index], {"epoch": self.running[index]}))
            if cut or self.running[index] >= self.epochs:
                status = "interrupted" if cut else self.endings.get(index, "completed")
                del self.running[index]
                events.append(Ended(index, lambda i=index, s=status: self._record(i, s)))
        return events

    def _record(self, index: int, status: str) -> dict:
        self.manifest.update(index, status=status)
        return self.manifest.runs[index]

    def stop(self, index: int) -> None:
        self.stopped.add(index)

    def interrupt(self, signum: int) -> None:
        self.signal = signum

    def drain(self) -> None:
        for index in list(self.running):
            self._record(index, "interrupted")
        self.running.clear()


class Heard(Watch):
    def __init__(self) -> None:
        self.events: list[tuple] = []

    def started(self, index, place):
        self.events.append(("started", index, place.pid))

    def epoch(self, index, epoch):
        self.events.append(("epoch", index, epoch))

    def ended(self, entry, finished, total):
        self.events.append(("ended", entry["index"], entry["status"], finished, total))


def test_a_grid_runs_every_run_at_most_jobs_at_once_and_the_watch_hears_it_all(tmp_path):
    m = manifest(tmp_path)
    backend, heard = FakeBackend(m), Heard()
    outcome = drive(m, backend, jobs=2, watch=heard)
    assert outcome.counts == {"completed": 5} and not outcome.stopped and outcome.disk_full is None
    assert backend.starts == [0, 1, 2, 3, 4] and backend.most_at_once == 2
    for index in range(5):
        mine = [e for e in heard.events if e[1] == index]
        assert mine == [("started", index, 1000 + index), ("epoch", index, 1), ("epoch", index, 2), mine[-1]]
        assert mine[-1][:3] == ("ended", index, "completed")
    assert [e[3] for e in heard.events if e[0] == "ended"] == [1, 2, 3, 4, 5]  # finished counts up to the total


def test_no_cap_starts_every_run_at_once(tmp_path):
    m = manifest(tmp_path)
    backend = FakeBackend(m)
    drive(m, backend, jobs=None)
    assert backend.most_at_once == 5


def test_resume_runs_only_what_did_not_end_for_good(tmp_path):
    m = manifest(tmp_path)
    m.update(0, status="completed")
    m.update(1, status="diverged")
    m.update(2, status="interrupted")
    heard = Heard()
    backend = FakeBackend(m)
    outcome = drive(m, backend, jobs=2, watch=heard)
    assert backend.starts == [2, 3, 4]
    assert outcome.counts == {"completed": 4, "diverged": 1}
    assert [e[3] for e in heard.events if e[0] == "ended"] == [3, 4, 5]  # counting the two done before


def test_a_signal_ends_the_running_runs_interrupted_and_starts_no_more(tmp_path):
    m = manifest(tmp_path)
    backend = FakeBackend(m, epochs=3)
    backend.on_tick = lambda tick: os.kill(os.getpid(), signal.SIGTERM) if tick == 2 else None
    outcome = drive(m, backend, jobs=2)
    assert outcome.stopped and backend.signal == signal.SIGTERM
    assert backend.starts == [0, 1]
    assert [r["status"] for r in m.runs] == ["interrupted", "interrupted", "pending", "pending", "pending"]


def test_a_full_disk_stops_new_runs_and_lets_the_running_end(tmp_path):
    m = manifest(tmp_path)
    backend = FakeBackend(m)
    backend.full_at = 3
    outcome = drive(m, backend, jobs=2)
    assert outcome.disk_full.startswith("no space left") and outcome.stopped
    assert backend.starts == [0, 1, 2]
    assert [r["status"] for r in m.runs] == ["completed", "completed", "completed", "pending", "pending"]


def test_a_run_that_failed_for_a_full_disk_stops_new_runs_too(tmp_path):
    m = manifest(tmp_path)
    backend = FakeBackend(m, endings={0: "failed"})
    real = backend._record

    def record(index, status):
        if status == "failed":
            m.update(index, reason="DiskFull: no space left on device writing x")
        return real(index, status)

    backend._record = record
    outcome = drive(m, backend, jobs=1)
    assert outcome.disk_full is not None and backend.starts == [0]


class PruneAndAsk(Plan):
    """A search-like plan: asks ``extra`` more runs one at a time, and stops run 0 after its first epoch."""

    asks = True

    def __init__(self, manifest: Manifest, extra: int) -> None:
        self.manifest, self.extra = manifest, extra
        self.ended_with: dict[int, bool] = {}
        self.closed = False

    def left(self) -> bool:
        return self.extra > 0

    def more(self) -> list[int]:
        self.extra -= 1
        template = self.manifest.runs[0]
        run = PlannedRun(index=len(self.manifest.runs), cell="added", seed=0, config=_config(template))
        self.manifest.add([entry_of(run)])
        return [run.index]

    def epoch(self, index, record=None):
        return index == 0 and record is not None and record["epoch"] == 1

    def ended(self, entry, stopped):
        self.ended_with[entry["index"]] = stopped
        return entry

    def close(self):
        self.closed = True


def _config(entry):
    from mlp_lab.config import config_from_dict

    return config_from_dict(entry["config"])


def test_a_plan_asks_new_runs_as_places_free_up_and_prunes(tmp_path):
    m = manifest(tmp_path, seeds=1)
    plan = PruneAndAsk(m, extra=3)
    backend = FakeBackend(m, epochs=3)
    outcome = drive(m, backend, jobs=2, plan=plan)
    assert backend.starts == [0, 1, 2, 3] and len(m.runs) == 4
    assert backend.stopped == {0} and plan.ended_with == {0: True, 1: False, 2: False, 3: False}
    assert m.runs[0]["status"] == "interrupted" and outcome.counts == {"interrupted": 1, "completed": 3}
    assert plan.closed


def test_a_second_ctrl_c_waits_for_the_runs_to_record_their_end(tmp_path):
    m = manifest(tmp_path)
    backend = FakeBackend(m, epochs=5)

    def twice(tick):
        if tick == 2:
            raise KeyboardInterrupt

    backend.on_tick = twice
    outcome = drive(m, backend, jobs=2)
    assert outcome.stopped
    assert [r["status"] for r in m.runs][:2] == ["interrupted", "interrupted"]
