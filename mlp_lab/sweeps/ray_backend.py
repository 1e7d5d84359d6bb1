"""The Ray backend: each run a Ray task, on a local Ray or a cluster (``--backend ray``).

How it fits Ray, and why:
- One plain function, ``train_task``, is the task: ``num_cpus`` = the run's torch threads
  (and a GPU when its config trains on CUDA), so Ray's scheduler decides how many run at
  once on each node. torch's thread count is set inside the task.
- Each data set the sweep uses is decoded once here and put in the object store once
  (``ray.put``): worker machines need no data files, and a run builds its splits from the
  shared tensors exactly as ``load_data`` does from files.
- The task trains into a scratch folder on its worker with the same code ``mlp-lab train``
  runs (``run_experiment``), and returns the folder's files; the driver writes them into
  the run folder. No shared file system is needed, and the run folder is the one train
  writes, byte for byte, because the same writer made it.
- A worker process or node that dies: Ray runs the task again (``max_retries``), from the
  start or from the checkpoint the driver sent with it. A Python exception inside a run is
  not retried (``retry_exceptions=False``): training records it and the run is failed.
- Ctrl-C or SIGTERM: ``ray.cancel`` (not forced) raises SIGINT in each running task,
  which training's own stop flag turns into an ``interrupted`` ending at the next step,
  checkpoint included; the task returns that folder and ``--resume`` continues it.
- A full disk where the driver writes: no new task starts, the running ones end, the
  sweep says so. The loop itself is the scheduler's (``scheduler.drive``), the same as the
  local backend's; ``RayBackend`` is its adapter.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

from mlp_lab import atomic_files, runs
from mlp_lab.errors import ConfigError, DiskFull, RunError
from mlp_lab.run_lock import lock_held
from mlp_lab.sweeps.datasets import data_key, decode_data
from mlp_lab.sweeps.folder import Manifest, prepare_run, run_ending
from mlp_lab.sweeps.plan import Outcome, Plan, to_do
from mlp_lab.sweeps.scheduler import Backend, Ended, Epoch, Event, Started, drive
from mlp_lab.sweeps.watch import Place, Watch

RETRIES = 3  # attempts after a worker process or node died
# A task's scratch folder in its node's temp folder, and the lock its task holds in it.
SCRATCH_PREFIX = "mlp-lab-run-"
SCRATCH_LOCK = ".task.lock"
CONNECT_TIMEOUT_S = 10.0  # how long an address may take to accept a connection
INSTALL = 'pip install -e ".[ray]"'


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError(
            f"--backend ray needs Ray, which is not installed here: {INSTALL} "
            "(or pip install 'ray[default]'); or use --backend local"
        ) from None
    return ray


@contextmanager
def ray_session(address: str | None) -> Iterator[Any]:
    """Inside the block, this process is connected to the Ray cluster at ``address`` (else
    $RAY_ADDRESS), or to a local Ray started for the block when neither is set (and stopped
    after it). Already connected (a notebook's ray.init, an outer block): used as it is."""
    import logging

    ray = import_ray()
    label = f"--address {address}" if address else f"RAY_ADDRESS={os.environ.get('RAY_ADDRESS')}"
    address = address or os.environ.get("RAY_ADDRESS") or None
    where = _host_port(address, label) if address is not None else None
    if ray.is_initialized():
        yield ray
        return
    options = {
        "logging_level": logging.ERROR,
        "log_to_driver": False,
        "runtime_env": {"worker_process_setup_hook": _worker_setup},
    }
    if address is None:
        ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, **options)
    else:
        if where is not None:
            _check_answers(*where, label)
        try:
            ray.init(address=address, **options)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise ConfigError(f"{label}: could not join a Ray cluster there ({str(e).splitlines()[0]})") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def _host_port(address: str, label: str) -> tuple[str, int] | None:
    """(host, port) of HOST:PORT or ray://HOST:PORT; None for auto and local, which Ray
    resolves on this machine itself."""
    if address in ("auto", "local"):
        return None
    host, _, port = address.split("://")[-1].rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(
            f"{label}: expected HOST:PORT (the head node's GCS, e.g. 127.0.0.1:6379), ray://HOST:PORT, or auto"
        )
    return host, int(port)


def _check_answers(host: str, port: int, label: str) -> None:
    """Fail within seconds, not minutes, when nothing listens at host:port: ray.init would
    keep retrying for a long time."""
    try:  # one try: a refused connection is final, and an unreachable host times out
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as e:
        raise ConfigError(f"{label}: no Ray cluster answers there ({e.strerror or e})") from None


def check_cluster(configs: list[Any], threads: int) -> None:
    """Refuse, before anything runs, runs that no node of the cluster could take: Ray would
    keep such a task pending for ever."""
    import ray

    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    most_cpus = max((n.get("CPU", 0) for n in nodes), default=0)
    if threads > most_cpus:
        raise ConfigError(
            f"--threads {threads}: each run asks Ray for that many CPUs, but the largest node of the "
            f"cluster has {most_cpus:g}; use --threads {max(1, int(most_cpus))} or less"
        )
    cuda = sorted({c.train.device for c in configs if c.train.device.startswith("cuda")})
    if cuda and not any(n.get("GPU", 0) >= 1 for n in nodes):
        raise ConfigError(f"train.device {cuda[0]}: the Ray cluster has no GPU; use train.device auto or cpu")


class ProgressBoard:
    """A Ray actor on the driver's node where tasks post where they run and their epochs;
    the driver reads it for the progress view. Each post is stamped when it arrives, by the
    driver's node's clock: a run's time starts when its task did, not when the driver's
    next poll heard of it (a short run may start and end between two polls)."""

    def __init__(self) -> None:
        self.news: list[tuple[str, int, Any, float]] = []

    def post(self, kind: str, index: int, value: Any) -> None:
        self.news.append((kind, index, value, time.time()))

    def take(self) -> list[tuple[str, int, Any, float]]:
        news, self.news = self.news, []
        return news


def _worker_setup() -> None:
    """Run in each of the sweep's Ray worker processes before any task. ``ray.cancel``
    interrupts a task through the process's SIGINT handler; a worker that inherited SIGINT
    ignored (a sweep started as a shell's background job passes that on) would fail the run
    with ``TypeError: 'Handlers' object is not callable`` instead."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


class _TaskSignals:
    """The task's SIGINT handler (``ray.cancel`` interrupts a task with SIGINT, and so does a
    terminal's Ctrl-C): before training starts it stops the task; during training,
    training's own stop flag has SIGINT (the run ends interrupted, with its checkpoint); once
    training has ended it is ignored, so the finished run's files still come back."""

    def __init__(self) -> None:
        self.trained = False

    def __call__(self, signum: int, frame: Any) -> None:
        if not self.trained:
            raise KeyboardInterrupt


class _Posting:
    """The ``progress`` object training calls, inside a task: posts finished epochs."""

    def __init__(self, board: Any, index: int) -> None:
        self.board, self.index = board, index

    def start_epoch(self, epoch: int, epochs: int) -> None:
        pass

    def step(self, done: int, total: int) -> None:
        pass

    def end_epoch(self, record: dict[str, Any]) -> None:
        self.board.post.remote("epoch", self.index, record)  # the metrics: a search's pruner reads them

    def warn(self, message: str) -> None:
        pass  # warnings are in the run's summary


def train_task(
    index: int, name: str, config: dict[str, Any], decoded: Any, threads: int, files: dict[str, bytes], board: Any
) -> dict[str, Any]:
    """One sweep run, inside a Ray task: train into a scratch folder called ``name`` (the
    run folder's name: it is the run's id) and return the folder's files. ``files`` are the
    run folder's when it continues from its checkpoint, else none."""
    import ray
    import torch

    from mlp_lab.config import config_from_dict, dump_config
    from mlp_lab.data import make_splits
    from mlp_lab.devices import resolve_device
    from mlp_lab.training import run_experiment

    torch.set_num_threads(threads)
    place = Place(os.getpid(), socket.gethostname(), ray.get_runtime_context().get_node_id())
    board.post.remote("started", index, place)
    cfg = config_from_dict(config)
    handler = _TaskSignals()
    previous = signal.signal(signal.SIGINT, handler)
    try:
        with scratch_folder() as tmp:
            run_dir = tmp / name
            run_dir.mkdir()
            for file, content in files.items():
                (run_dir / file).write_bytes(content)
            if runs.CONFIG not in files:
                (run_dir / runs.CONFIG).write_text(dump_config(cfg), encoding="utf-8")
            resume = run_dir / runs.CHECKPOINT if runs.CHECKPOINT in files else None
            device = resolve_device(cfg.train.device)
            data = make_splits(decoded, cfg.data, device, seed=cfg.train.seed)
            run_experiment(cfg, run_dir, data, device, progress=_Posting(board, index), resume_from=resume)
            handler.trained = True
            return {
                "files": {p.name: p.read_bytes() for p in sorted(run_dir.iterdir()) if p.is_file()},
                "scratch": str(run_dir),
            }
    finally:
        signal.signal(signal.SIGINT, previous)


@contextmanager
def scratch_folder() -> Iterator[Path]:
    """A task's scratch folder, removed as the task ends. A task whose worker was killed
    (SIGKILL, out of memory, its node taken away) cannot remove its own, and left a run's
    checkpoint in the node's temp folder for each attempt: the task holds a lock in it for
    as long as it lives, and each task removes the folders whose lock nobody holds."""
    temp = Path(tempfile.gettempdir())
    for lock in temp.glob(f"{SCRATCH_PREFIX}*/{SCRATCH_LOCK}"):
        if lock_held(lock) is False:
            shutil.rmtree(lock.parent, ignore_errors=True)  # (another task may be removing it too)
    with tempfile.TemporaryDirectory(prefix=SCRATCH_PREFIX) as tmp:
        # The lock is taken before the file has its name, so no one sees it free while we live.
        fd, name = tempfile.mkstemp(dir=tmp)
        with os.fdopen(fd, "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            os.replace(name, Path(tmp) / SCRATCH_LOCK)
            yield Path(tmp)


def run_ray(
    manifest: Manifest,
    jobs: int | None,
    threads: int,
    data_dir: Path | None,
    address: str | None = None,
    watch: Watch | None = None,
    plan: Plan | None = None,
    base: Any = None,
) -> Outcome:
    """Run every run of ``manifest`` still to do (and those ``plan`` adds) as Ray tasks (at
    most ``jobs`` submitted at once; None: all, and the cluster's CPUs decide; a plan that
    adds runs: the cluster's CPUs over ``threads``), telling ``watch`` as they go. ``base``:
    a config standing for runs not planned yet (a search's), for the data and the cluster check."""
    from mlp_lab.config import config_from_dict

    plan = plan or Plan()
    with ray_session(address) as ray:
        configs = {i: config_from_dict(manifest.runs[i]["config"]) for i in to_do(manifest)}
        known = [*configs.values(), *([base] if base is not None else [])]
        check_cluster(known, threads)
        if plan.asks and jobs is None:  # asking every trial at once would leave a TPE search nothing to learn from
            jobs = max(1, int(ray.cluster_resources().get("CPU", 1) // threads))
        submit, board = tasks(ray, known, threads, data_dir)
        backend: Backend = RayBackend(ray, manifest, submit, board)  # (mypy checks it keeps the protocol)
        return drive(manifest, backend, jobs, watch, plan)


class RayBackend:
    """The scheduler's backend for runs as Ray tasks: a task is submitted when a place is
    free; the progress board brings its start and epochs; its result, once ready, is written
    into the run folder by the driver. Stopping a run (or all) is ``ray.cancel``, which the
    task's training turns into an interrupted ending with its checkpoint."""

    def __init__(self, ray: Any, manifest: Manifest, submit: Any, board: Any) -> None:
        self.ray, self.manifest, self.submit, self.board = ray, manifest, submit, board
        self.in_flight: dict[Any, tuple[int, Path, float]] = {}
        self.began: dict[int, float] = {}  # when each run's task began training: its time excludes Ray's queue
        self.cancelled = False
        self.stopped_by: int | None = None  # the signal that stopped the sweep, passed on as SIGINT

    def start(self, index: int) -> None:
        from mlp_lab.config import config_from_dict

        ref = self.submit(
            self.manifest, index, config_from_dict(self.manifest.runs[index]["config"])
        )  # names its folder
        self.in_flight[ref] = (index, self.manifest.folder / self.manifest.runs[index]["folder"], time.time())

    def busy(self) -> int:
        return len(self.in_flight)

    def wait(self, timeout: float) -> list[Event]:
        flying = list(self.in_flight)
        ready = self.ray.wait(flying, num_returns=len(flying), timeout=timeout)[0] if flying else []
        began, events = take(self.ray, self.board)
        self.began.update(began)
        for ref in ready:
            index, folder, t0 = self.in_flight.pop(ref)
            events.append(Ended(index, partial(self._record, index, folder, ref, t0)))
        return events

    def _record(self, index: int, folder: Path, ref: Any, t0: float) -> dict[str, Any]:
        try:
            return record(self.ray, self.manifest, index, folder, ref, self.began.pop(index, t0), self.stopped_by)
        except DiskFull as e:  # what it returned could not be written: it failed (a resume settles from the folder)
            if self.manifest.runs[index]["status"] == "running":
                _try_update(self.manifest, index, status="failed", reason=str(e))
            raise

    def stop(self, index: int) -> None:
        ref = next((r for r, v in self.in_flight.items() if v[0] == index), None)
        if ref is not None:
            self.ray.cancel(ref, force=False)

    def interrupt(self, signum: int) -> None:
        self.stopped_by = signum  # a SIGTERM'd run says so, though the task saw SIGINT
        if not self.cancelled:  # SIGINT inside each task: it ends interrupted, with its checkpoint
            for ref in self.in_flight:
                self.ray.cancel(ref, force=False)
            self.cancelled = True

    def drain(self) -> None:
        for ref in list(self.in_flight):
            index, folder, t0 = self.in_flight.pop(ref)
            self._record(index, folder, ref, t0)


def _try_update(manifest: Manifest, index: int, **fields: Any) -> None:
    """Record in the manifest, on disk if it still fits (else a resume settles it from the folder)."""
    try:
        manifest.update(index, **fields)
    except DiskFull:
        pass


def tasks(ray: Any, configs: list[Any], threads: int, data_dir: Path | None) -> tuple[Any, Any]:
    """(``submit(manifest, index, config) -> ref``, the progress board) for these runs' data."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    # Decode once here, put once in the object store: every task reads the same tensors.
    decoded = {key: ray.put(d) for key, d in decode_data(configs, data_dir).items()}
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    board = ray.remote(num_cpus=0)(ProgressBoard).options(scheduling_strategy=here).remote()
    has_gpus = ray.cluster_resources().get("GPU", 0) > 0
    # Ray retries a task whose worker or node died; an exception is the run's own failure.
    task = ray.remote(max_retries=RETRIES, retry_exceptions=False)(train_task)

    def submit(manifest: Manifest, index: int, cfg: Any) -> Any:
        folder, resume = prepare_run(manifest, index)
        files = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} if resume else {}
        gpus = 1 if cfg.train.device.startswith("cuda") or (cfg.train.device == "auto" and has_gpus) else 0
        return task.options(num_cpus=threads, num_gpus=gpus).remote(
            index,
            folder.name,
            manifest.runs[index]["config"],
            decoded[data_key(cfg, data_dir)],
            threads,
            files,
            board,
        )

    return submit, board


def take(ray: Any, board: Any) -> tuple[dict[int, float], list[Event]]:
    """What the tasks posted since the last look: when each run that started did (the
    post's stamp, not this look's), and the events, in the order posted."""
    began: dict[int, float] = {}
    events: list[Event] = []
    for kind, index, value, at in ray.get(board.take.remote()):
        if kind == "started":
            events.append(Started(index, value))
            began[index] = at
        else:
            events.append(Epoch(index, value["epoch"], value))
    return began, events


def record(
    ray: Any, manifest: Manifest, index: int, folder: Path, ref: Any, t0: float, stopped_by: int | None = None
) -> dict[str, Any]:
    """Write what the task returned into the run folder; record the run's ending. A run the
    sweep cancelled because it was sent SIGTERM says so (ray.cancel reaches it as SIGINT)."""
    status: str | None
    reason: str | None = None
    try:
        result = ray.get(ref)
    except ray.exceptions.TaskCancelledError:
        status, reason = "interrupted", "stopped before it started"
    except ray.exceptions.RayTaskError as e:  # raised before training began: not retried
        cause = e.cause if getattr(e, "cause", None) is not None else e
        status, reason = "failed", f"{cause.__class__.__name__}: {str(cause).strip().splitlines()[-1]}"
    except ray.exceptions.RayError as e:  # the worker or node died once more than RETRIES allow
        status, reason = "failed", f"{e.__class__.__name__}: {str(e).strip().splitlines()[0]}"
    else:
        if stopped_by == signal.SIGTERM:
            result["files"] = {
                name: data.replace(b"interrupted by SIGINT", b"interrupted by SIGTERM")
                if name == runs.SUMMARY
                else data
                for name, data in result["files"].items()
            }
        _write_files(folder, result)
        status, reason = run_ending(folder)
        if status is None:
            raise RunError(f"{folder}: the task returned no summary")  # training always writes one
    entry = {"status": status, "reason": reason, "seconds": round(time.time() - t0, 2), "folder": folder.name}
    manifest.update(index, **entry)
    return manifest.runs[index]


def _write_files(folder: Path, result: dict[str, Any]) -> None:
    """The task's run folder, here: where its messages name the scratch folder it trained
    in (how to resume, where the traceback is), they name this one."""
    scratch = result["scratch"]
    for name, data in result["files"].items():
        if name in (runs.SUMMARY, "error.log"):
            data = data.replace(scratch.encode(), str(folder).encode())
        atomic_files.atomic_write_bytes(folder / name, data)
