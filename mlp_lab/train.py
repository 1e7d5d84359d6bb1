"""The training loop, read top to bottom: data -> model -> optimizer -> epochs -> run folder.

Design choices, and why:
- The whole data set sits on the device as uint8 and batches are taken by indexing a
  random permutation. No DataLoader, no per-sample transforms: the usual tutorial loop
  spends most of its time there (see benchmarks/epoch_speed.py).
- Loss and accuracy are accumulated on the device and read once per epoch, so a CUDA
  run never waits on the host between steps.
- Every finished epoch is on disk before the next starts (metrics line, checkpoint,
  summary), so an interrupted or diverged run keeps everything it finished.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import shutil
import signal
import socket
import sys
import time
import traceback
import warnings
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F

from mlp_lab import __version__, runs
from mlp_lab.config import config_from_dict, dump_config, load_config
from mlp_lab.schema import ExperimentConfig
from mlp_lab.data import DataSplits, load_data, resolve_data_dir
from mlp_lab.errors import ConfigError, MlpLabError, RunError
from mlp_lab.model import build_model, count_params
from mlp_lab.optim import build_optimizer, build_scheduler, needs_closure

# On CUDA, checking the loss for NaN costs a host sync: do it every this many steps.
CUDA_FINITE_CHECK_EVERY = 50


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived; the run stops at the next step boundary."""


class Diverged(Exception):
    """The training loss became NaN or infinite."""


@dataclass
class EpochResult:
    epoch: int
    train_loss: float
    train_acc: float
    test_loss: float
    test_acc: float
    lr: float
    seconds: float
    val_loss: float | None = None
    val_acc: float | None = None

    def as_record(self) -> dict[str, Any]:
        rec = {
            "epoch": self.epoch,
            "train_loss": self.train_loss,
            "train_acc": self.train_acc,
            "test_loss": self.test_loss,
            "test_acc": self.test_acc,
        }
        if self.val_loss is not None:
            rec["val_loss"] = self.val_loss
            rec["val_acc"] = self.val_acc
        rec["lr"] = self.lr
        rec["seconds"] = round(self.seconds, 4)
        return rec


@dataclass
class RunResult:
    run_dir: Path
    status: str
    summary: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return {"completed": 0, "interrupted": 130}.get(self.status, 1)


# --- devices, seeds, precision --------------------------------------------------------


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"train.device: {name!r} requested but no CUDA device is available here "
                f"(torch {torch.__version__}); use device: auto or cpu"
            )
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise ConfigError(f"train.device: {name!r} but only {torch.cuda.device_count()} CUDA device(s) exist")
    if name == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ConfigError("train.device: 'mps' requested but no MPS device is available here; use device: auto or cpu")
    return torch.device(name)


def _autocast(cfg: ExperimentConfig, device: torch.device):
    if cfg.train.precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return nullcontext()


def _set_matmul_precision(cfg: ExperimentConfig) -> None:
    # tf32 trades a few mantissa bits for Ampere+ tensor-core speed; "highest" is exact fp32.
    torch.set_float32_matmul_precision("high" if cfg.train.precision == "tf32" else "highest")


# --- signals --------------------------------------------------------------------------


class _StopFlag:
    """Turns SIGINT/SIGTERM into a flag checked between steps.

    Stopping at a step boundary (instead of raising inside whatever runs) means a
    signal can never land in the middle of writing a file. A second Ctrl-C stops at once.
    """

    def __init__(self) -> None:
        self.signal: int | None = None
        # Set once training has ended: from then on a signal is only noted, so a
        # second Ctrl-C cannot cut the final summary or model.pt short.
        self.finishing = False

    def __call__(self, signum: int, frame: Any) -> None:
        if self.signal is not None and signum == signal.SIGINT and not self.finishing:
            raise KeyboardInterrupt
        if self.signal is None:
            self.signal = signum

    def check(self) -> None:
        if self.signal is not None:
            raise Interrupted(signal.Signals(self.signal).name)


@contextmanager
def _stop_on_signals() -> Iterator[_StopFlag]:
    flag = _StopFlag()
    previous = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, flag)
    except ValueError:  # not the main thread (e.g. called from a worker): no handlers
        pass
    try:
        yield flag
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# --- one epoch ------------------------------------------------------------------------


def _train_epoch(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    data: DataSplits,
    cfg: ExperimentConfig,
    device: torch.device,
    shuffle: torch.Generator,
    stop: _StopFlag,
    on_step: Callable[[int, int], None] | None = None,
    diagnostics: Any = None,
) -> tuple[float, float]:
    """One pass over the training set. Returns (mean batch loss, accuracy)."""
    model.train()
    n = data.train_x.shape[0]
    bs = cfg.train.batch_size
    perm = torch.randperm(n, generator=shuffle).to(device)  # one host->device copy per epoch
    closure_step = needs_closure(optimizer)
    check_every = CUDA_FINITE_CHECK_EVERY if device.type == "cuda" else 1

    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    steps = math.ceil(n / bs)
    for step in range(steps):
        idx = perm[step * bs : (step + 1) * bs]
        # index_select, not train_x[idx]: the same rows, but a row-wise copy instead of
        # advanced indexing's per-element gather (CPU, 100 MNIST rows: 5 us vs 75 us, ~5% of
        # a step; see benchmarks/README.md).
        x = data.normalize(torch.index_select(data.train_x, 0, idx))
        y = torch.index_select(data.train_y, 0, idx)
        recording = diagnostics is not None and diagnostics.wants(step, steps)
        if recording:
            diagnostics.begin()

        if closure_step:
            # LBFGS re-evaluates the loss several times per step: give it a closure,
            # and keep the first evaluation's logits for the accuracy.
            first: dict[str, torch.Tensor] = {}

            def closure() -> torch.Tensor:
                optimizer.zero_grad(set_to_none=True)
                with _autocast(cfg, device):
                    out = model(x)
                    loss = F.cross_entropy(out.float(), y)
                loss.backward()
                first.setdefault("logits", out.detach())
                first.setdefault("loss", loss.detach())
                return loss

            optimizer.step(closure)
            logits, loss = first["logits"], first["loss"]
        else:
            with _autocast(cfg, device):
                logits = model(x)
                loss = F.cross_entropy(logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if recording:
                diagnostics.after_backward()
            optimizer.step()
        if recording:
            diagnostics.end()

        loss_sum += loss.detach()
        correct += (logits.argmax(dim=1) == y).sum()
        if (step + 1) % check_every == 0 and not torch.isfinite(loss_sum):
            raise Diverged(f"training loss became {loss.item()} at step {step + 1} of the epoch")
        stop.check()
        if on_step is not None:
            on_step(step + 1, steps)

    mean_loss = (loss_sum / steps).item()  # the one host sync of the epoch
    if not math.isfinite(mean_loss):
        raise Diverged(f"training loss became {mean_loss}")
    return mean_loss, correct.item() / n


@torch.inference_mode()
def evaluate(
    model: torch.nn.Module, x_all: torch.Tensor, y_all: torch.Tensor, data: DataSplits,
    cfg: ExperimentConfig, device: torch.device,
) -> tuple[float, float]:
    """Mean loss and accuracy in eval mode: batch norm uses its running statistics."""
    model.eval()
    n = x_all.shape[0]
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.long)
    for i in range(0, n, cfg.train.eval_batch_size):
        x = data.normalize(x_all[i : i + cfg.train.eval_batch_size])
        y = y_all[i : i + cfg.train.eval_batch_size]
        with _autocast(cfg, device):
            logits = model(x)
        loss_sum += F.cross_entropy(logits.float(), y, reduction="sum").double()
        correct += (logits.argmax(dim=1) == y).sum()
    return (loss_sum / n).item(), correct.item() / n


# --- checkpoints ----------------------------------------------------------------------


def _torch_save_atomic(path: Path, obj: Any) -> None:
    runs.atomic_write(path, lambda f: torch.save(obj, f))


def _load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        # weights_only: a checkpoint is data; loading one must never run code. Its
        # warnings (about pickle protocols, say) would break the one-line error.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise RunError(f"{path.parent} has no {path.name}: it finished no epoch, or ran with train.checkpoint: false") from None
    except pickle.UnpicklingError as e:
        if "weights_only" in str(e) or "Weights only" in str(e):
            raise RunError(
                f"{path} is corrupt or not an mlp-lab checkpoint and cannot be resumed: it holds Python objects "
                "that loading could run as code, so it is refused (UnpicklingError)"
            ) from None
        raise RunError(f"{path} is corrupt and cannot be resumed (UnpicklingError)") from None
    except Exception as e:  # noqa: BLE001 - any unpickling problem means the same to the user
        raise RunError(f"{path} is corrupt and cannot be resumed ({e.__class__.__name__})") from None
    if not isinstance(ckpt, dict):
        raise RunError(f"{path} is corrupt and cannot be resumed (it holds a {type(ckpt).__name__}, not a checkpoint)")
    return ckpt


# --- the experiment -------------------------------------------------------------------


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _best(history: list[dict[str, Any]]) -> dict[str, Any] | None:
    if not history:
        return None
    best = max(history, key=lambda r: r["test_acc"])  # first of equals: the earliest epoch
    out = {"test_acc": best["test_acc"], "epoch": best["epoch"]}
    if "val_acc" in best:
        best_val = max(history, key=lambda r: r["val_acc"])
        out.update(val_acc=best_val["val_acc"], val_epoch=best_val["epoch"])
    return out


def _divergence_advice(cfg: ExperimentConfig, lr: float | None = None) -> str:
    tips = [f"lower optimizer.lr (now {cfg.optimizer.lr:g})"]
    if lr is not None and cfg.scheduler.name != "none" and not math.isclose(lr, cfg.optimizer.lr):
        tips[0] += f"; scheduler {cfg.scheduler.name} had taken the lr to {lr:g}, check its settings"
    if cfg.model.init in ("normal", "uniform", "constant") and cfg.model.hidden:
        tips.append("use a scaled init (model.init: xavier_normal or kaiming_normal)")
    if cfg.model.norm == "none" and cfg.model.hidden:
        tips.append("add model.norm: batchnorm")
    return "; ".join(tips)


@contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    """Use ``n`` CPU threads inside the block (None: leave torch's choice), then restore."""
    previous = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def run_experiment(
    cfg: ExperimentConfig,
    run_dir: Path,
    data: DataSplits,
    device: torch.device,
    progress: Any = None,
    resume_from: Path | None = None,
) -> RunResult:
    """Train ``cfg`` into ``run_dir`` and return how it ended. Never raises for a run
    that started: divergence, interruption and crashes all end in a summary."""
    with _torch_threads(cfg.train.threads):
        return _run_experiment(cfg, Path(run_dir), data, device, progress, resume_from)


def _run_experiment(
    cfg: ExperimentConfig, run_dir: Path, data: DataSplits, device: torch.device,
    progress: Any, resume_from: Path | None,
) -> RunResult:
    started = time.time()
    _set_matmul_precision(cfg)
    torch.manual_seed(cfg.train.seed)  # model init and dropout
    shuffle = torch.Generator().manual_seed(cfg.train.seed)  # batch order, independent of dropout draws

    model = build_model(cfg.model, data.input_dim, data.num_classes).to(device)
    optimizer = build_optimizer(cfg.optimizer, model.parameters(), device)
    scheduler = build_scheduler(cfg.scheduler, optimizer, cfg.train.epochs)
    forward = torch.compile(model) if cfg.train.compile else model

    diagnostics = None
    if cfg.train.diagnostics:
        from mlp_lab.diagnostics import TrainingDiagnostics

        diagnostics = TrainingDiagnostics(model, cfg, data, run_dir / runs.DIAGNOSTICS, device)

    history: list[dict[str, Any]] = []
    start_epoch = 1
    summary: dict[str, Any] = {
        "name": cfg.name,
        "run_id": run_dir.name,
        "status": "running",
        "started_at": _now(),
        "finished_at": None,
        "duration_s": 0.0,
        "epochs_done": 0,
        "epochs_planned": cfg.train.epochs,
        "final": None,
        "best": None,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "mlp_lab_version": __version__,
        "param_count": count_params(model),
        "data": data.source,
        "preprocessing": data.preprocessing_stats(),
        "pid": os.getpid(),  # with host: lets readers tell a killed run from a running one
        "host": socket.gethostname(),
        "error": None,
        "message": None,
        "warnings": [],
    }
    if resume_from is not None:
        ckpt = _load_checkpoint(resume_from)
        try:
            model.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
            if scheduler is not None and ckpt.get("scheduler") is not None:
                scheduler.load_state_dict(ckpt["scheduler"])
            torch.set_rng_state(ckpt["rng_cpu"])
            shuffle.set_state(ckpt["rng_shuffle"])
            if device.type == "cuda" and ckpt.get("rng_cuda") is not None:
                torch.cuda.set_rng_state(ckpt["rng_cuda"], device)
            start_epoch = int(ckpt["epoch"]) + 1
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            detail = " ".join(str(e).split())[:160]
            raise RunError(
                f"{resume_from} does not match {run_dir / runs.CONFIG} (was the config edited?) and cannot be "
                f"resumed: {e.__class__.__name__}: {detail}"
            ) from None
        runs.remove_temp_files(run_dir)  # left by a process killed mid-write
        # Epochs logged after the checkpoint was written are redone: drop their lines.
        old = runs.read_jsonl(run_dir / runs.METRICS)[0] if (run_dir / runs.METRICS).exists() else []
        history = [r for r in old if r.get("epoch", 0) < start_epoch]
        runs.atomic_write_text(run_dir / runs.METRICS, "".join(json.dumps(r) + "\n" for r in history))
        prior = ckpt.get("summary") or {}
        summary.update(started_at=prior.get("started_at", summary["started_at"]), warnings=list(prior.get("warnings", [])))
        summary["resumed_at_epoch"] = start_epoch
        summary["prior_duration_s"] = float(prior.get("duration_s", 0.0))

    def elapsed() -> float:
        """Seconds this run has trained, across resumes."""
        return summary.get("prior_duration_s", 0.0) + time.time() - started

    def write_summary(**changes: Any) -> None:
        summary.update(changes)
        summary["epochs_done"] = len(history)
        summary["final"] = history[-1] if history else None
        summary["best"] = _best(history)
        summary["duration_s"] = round(elapsed(), 3)
        runs.atomic_write_json(run_dir / runs.SUMMARY, summary)

    def add_warnings(warnings: list[str]) -> None:
        for warning in warnings:
            if warning not in summary["warnings"]:
                summary["warnings"].append(warning)
                if progress is not None:
                    progress.warn(warning)

    runs.atomic_write_text(run_dir / runs.CONFIG, dump_config(cfg))
    write_summary()

    status = "completed"
    ending: dict[str, Any] = {}  # message (and error) of a run that did not complete
    crash_log: str | None = None
    epoch = start_epoch - 1
    with _stop_on_signals() as stop:
        try:
            for epoch in range(start_epoch, cfg.train.epochs + 1):
                t0 = time.perf_counter()
                lr = optimizer.param_groups[0]["lr"]
                if progress is not None:
                    progress.start_epoch(epoch, cfg.train.epochs)
                train_loss, train_acc = _train_epoch(
                    forward, optimizer, data, cfg, device, shuffle, stop,
                    on_step=progress.step if progress is not None else None, diagnostics=diagnostics,
                )
                if scheduler is not None:
                    scheduler.step()
                test_loss, test_acc = evaluate(forward, data.test_x, data.test_y, data, cfg, device)
                val_loss = val_acc = None
                if data.val_x is not None:
                    val_loss, val_acc = evaluate(forward, data.val_x, data.val_y, data, cfg, device)
                result = EpochResult(
                    epoch, train_loss, train_acc, test_loss, test_acc, lr,
                    time.perf_counter() - t0, val_loss, val_acc,
                )
                record = result.as_record()
                history.append(record)
                runs.append_jsonl(run_dir / runs.METRICS, record)
                if diagnostics is not None:
                    add_warnings(diagnostics.end_epoch(epoch))
                if cfg.train.checkpoint:
                    _torch_save_atomic(run_dir / runs.CHECKPOINT, {
                        "epoch": epoch,
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict() if scheduler is not None else None,
                        "rng_cpu": torch.get_rng_state(),
                        "rng_shuffle": shuffle.get_state(),
                        "rng_cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
                        "summary": {k: summary[k] for k in ("started_at", "warnings")} | {"duration_s": elapsed()},
                    })
                write_summary()
                if progress is not None:
                    progress.end_epoch(record)
                stop.check()
        except Diverged as e:
            status = "diverged"
            lr_now = optimizer.param_groups[0]["lr"]
            ending["message"] = f"diverged in epoch {epoch}: {e}; try: {_divergence_advice(cfg, lr_now)}"
        except (Interrupted, KeyboardInterrupt) as e:
            status = "interrupted"
            name = str(e) or "SIGINT"
            ending["message"] = (f"interrupted by {name} during epoch {epoch}; {len(history)} finished epoch(s) kept; "
                                 f"continue with: mlp-lab train --resume {run_dir}")
        except Exception as e:  # noqa: BLE001 - a crash must still leave an honest summary
            status = "failed"
            crash_log = traceback.format_exc()
            ending["error"] = f"{e.__class__.__name__}: {e}"
            ending["message"] = f"failed in epoch {epoch}: {ending['error']} (traceback in {run_dir / 'error.log'})"

        # Still under the signal handlers: a late Ctrl-C or SIGTERM cannot cut these short.
        stop.finishing = True
        if crash_log is not None:
            (run_dir / "error.log").write_text(crash_log, encoding="utf-8")
        if diagnostics is not None:
            add_warnings(diagnostics.close())
        if status == "completed":
            _torch_save_atomic(run_dir / runs.MODEL, model.state_dict())
        summary.pop("pid", None)
        summary.pop("host", None)
        write_summary(status=status, finished_at=_now(), **ending)
    return RunResult(run_dir=run_dir, status=status, summary=summary, history=history)


# --- entry point used by the CLI -----------------------------------------------------


def prepare(
    config_path: Path | None, overrides: list[str], resume: Path | None, diagnose: bool,
) -> tuple[ExperimentConfig, Path | None]:
    """Resolve the config (from a file, or from the run being resumed)."""
    if resume is not None:
        if config_path is not None or overrides:
            raise ConfigError("--resume continues a run exactly as configured; it takes no --config or --set")
        raw = runs.load_config_dict(resume)
        cfg = config_from_dict(raw, source=str(Path(resume) / runs.CONFIG))
        record = runs.load_run(Path(resume))
        if record.status == "running":
            raise RunError(
                f"{resume} is still running (process {record.summary.get('pid')}); stop it first "
                "(Ctrl-C or kill PID), then resume"
            )
        if record.status == "completed":
            raise RunError(f"{resume} already completed its {cfg.train.epochs} epochs; nothing to resume")
        if record.status == "diverged":
            raise RunError(
                f"{resume} diverged; resuming would repeat the same steps and diverge again: change the config "
                "(see the advice in its summary.json) and start a new run"
            )
        return cfg, Path(resume) / runs.CHECKPOINT
    if config_path is None:
        raise ConfigError("no experiment given: pass --config FILE.yaml (see configs/), or --resume RUN_FOLDER")
    cfg = load_config(config_path, overrides)
    if diagnose:
        cfg.train.diagnostics = True
    return cfg, None


def train_from_cli(
    config_path: Path | None, overrides: list[str], data_dir: Path | None, runs_dir: Path,
    resume: Path | None = None, diagnose: bool = False, quiet: bool = False,
) -> int:
    from mlp_lab.console import TrainingProgress, print_result

    cfg, checkpoint = prepare(config_path, overrides, resume, diagnose)
    if checkpoint is not None and not checkpoint.exists():
        _load_checkpoint(checkpoint)  # raises the explanatory RunError
    device = resolve_device(cfg.train.device)
    # Everything that can be wrong with the input is found before a run folder exists.
    data = load_data(cfg.data, resolve_data_dir(data_dir, cfg.data), device, seed=cfg.train.seed)
    run_dir = Path(resume) if resume is not None else runs.create_run_dir(runs_dir, cfg.name)
    show = not quiet and sys.stderr.isatty()
    try:
        with TrainingProgress(enabled=show, run_name=run_dir.name) as progress:
            result = run_experiment(cfg, run_dir, data, device, progress=progress, resume_from=checkpoint)
    except BaseException as e:
        # run_experiment raises only while setting up (model, optimizer, checkpoint),
        # before its first summary: a new folder holding nothing is removed again.
        if resume is None and not (run_dir / runs.SUMMARY).exists():
            shutil.rmtree(run_dir, ignore_errors=True)
        if isinstance(e, MlpLabError | KeyboardInterrupt):
            raise
        if isinstance(e, MemoryError | torch.OutOfMemoryError) or "can't allocate memory" in str(e):
            raise ConfigError(
                f"model.hidden {cfg.model.hidden}: the model does not fit in {device} memory "
                f"({e.__class__.__name__}); use fewer or smaller hidden layers"
            ) from None
        raise
    print_result(result, quiet=quiet)
    return result.exit_code
