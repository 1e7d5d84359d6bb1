"""The training loop, read top to bottom: data -> model -> optimizer -> epochs -> run folder.

Design choices, and why:
- The whole data set sits on the device as uint8 and batches are taken by indexing a
  random permutation. No DataLoader, no per-sample transforms: the usual tutorial loop
  spends most of its time there (see benchmarks/epoch_speed.py).
- Loss and accuracy are accumulated on the device and read once per epoch, so a CUDA
  run never waits on the host between steps.
- Every finished epoch is on disk before the next starts (metrics line, checkpoint,
  summary: ``RunWriter``), so an interrupted or diverged run keeps everything it finished.
- Diagnostics watch through hooks (``diagnostics.py``): the step below does not know them.
"""

from __future__ import annotations

import math
import re
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F

from mlp_lab import __version__, checkpoint, run_lock, runs
from mlp_lab.data import DataSplits
from mlp_lab.devices import autocast, matmul_precision, torch_threads
from mlp_lab.errors import DiskFull
from mlp_lab.model import build_model, count_params
from mlp_lab.optim import build_optimizer, build_scheduler, needs_closure
from mlp_lab.run_writer import RunWriter
from mlp_lab.schema import ExperimentConfig
from mlp_lab.selection import epochs_without_improvement, select_epoch
from mlp_lab.signals import Interrupted, StopFlag, stop_on_signals

# On CUDA, checking the loss for NaN costs a host sync: do it every this many steps.
CUDA_FINITE_CHECK_EVERY = 50


class Diverged(Exception):
    """The training loss became NaN or infinite."""


@dataclass
class RunResult:
    run_dir: Path
    status: str
    summary: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return {"completed": 0, "interrupted": 130}.get(self.status, 1)


# --- one epoch ------------------------------------------------------------------------


def _train_epoch(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    data: DataSplits,
    cfg: ExperimentConfig,
    device: torch.device,
    shuffle: torch.Generator,
    stop: StopFlag,
    on_step: Callable[[int, int], None] | None = None,
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

        logits, loss = train_step(model, optimizer, x, y, cfg, device, closure_step)
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


def train_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: ExperimentConfig,
    device: torch.device,
    closure_step: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step on the batch (x, y); its logits and loss from before the step.
    Training's loop and ``mlp-lab check`` both step through here."""
    if closure_step:
        # LBFGS re-evaluates the loss several times per step: give it a closure,
        # and keep the first evaluation's logits for the accuracy.
        first: dict[str, torch.Tensor] = {}

        def closure() -> torch.Tensor:
            optimizer.zero_grad(set_to_none=True)
            with autocast(cfg, device):
                out = model(x)
                loss = F.cross_entropy(out.float(), y)
            loss.backward()
            first.setdefault("logits", out.detach())
            first.setdefault("loss", loss.detach())
            return loss

        optimizer.step(closure)  # type: ignore[arg-type]  # (hinted as returning float; LBFGS takes the loss tensor)
        return first["logits"], first["loss"]
    with autocast(cfg, device):
        logits = model(x)
        loss = F.cross_entropy(logits.float(), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return logits, loss


@torch.inference_mode()
def evaluate(
    model: torch.nn.Module,
    x_all: torch.Tensor,
    y_all: torch.Tensor,
    data: DataSplits,
    cfg: ExperimentConfig,
    device: torch.device,
) -> tuple[float, float]:
    """Mean loss and accuracy in eval mode: batch norm uses its running statistics."""
    model.eval()
    n = x_all.shape[0]
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.long)
    for i in range(0, n, cfg.train.eval_batch_size):
        x = data.normalize(x_all[i : i + cfg.train.eval_batch_size])
        y = y_all[i : i + cfg.train.eval_batch_size]
        with autocast(cfg, device):
            logits = model(x)
        loss_sum += F.cross_entropy(logits.float(), y, reduction="sum").double()
        correct += (logits.argmax(dim=1) == y).sum()
    return (loss_sum / n).item(), correct.item() / n


# --- the experiment -------------------------------------------------------------------


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
    with torch_threads(cfg.train.threads), matmul_precision(cfg):
        return _run_experiment(cfg, Path(run_dir), data, device, progress, resume_from)


def _run_experiment(
    cfg: ExperimentConfig,
    run_dir: Path,
    data: DataSplits,
    device: torch.device,
    progress: Any,
    resume_from: Path | None,
) -> RunResult:
    torch.manual_seed(cfg.train.seed)  # model init and dropout
    shuffle = torch.Generator().manual_seed(cfg.train.seed)  # batch order, independent of dropout draws
    model = build_model(cfg.model, data.input_dim, data.num_classes).to(device)
    optimizer = build_optimizer(cfg.optimizer, model.parameters(), device)
    scheduler = build_scheduler(cfg.scheduler, optimizer, cfg.train.epochs)
    # (torch.compile of a Module is an OptimizedModule, a Module: torch's hints say only callable)
    forward = cast(torch.nn.Module, torch.compile(model)) if cfg.train.compile else model

    run = RunWriter(run_dir, cfg, _run_facts(model, data, device), progress)
    try:  # what fails before the run starts (a corrupt checkpoint, a full disk) is raised, the run let go
        start_epoch = 1
        if resume_from is not None:
            ckpt = checkpoint.restore(resume_from, model, optimizer, scheduler, shuffle, device, run_dir / runs.CONFIG)
            start_epoch = ckpt["epoch"] + 1
            run.resume(start_epoch, ckpt.get("summary") or {})
        diagnostics = _diagnostics(cfg, model, optimizer, data, run_dir, device, start_epoch)
        run.start()
    except BaseException:
        run_lock.release_run(run_dir)
        raise

    status, epoch = "completed", start_epoch - 1
    ending: dict[str, str] = {}
    with stop_on_signals() as stop:
        try:
            for epoch in range(start_epoch, cfg.train.epochs + 1):
                if progress is not None:
                    progress.start_epoch(epoch, cfg.train.epochs)
                record = _epoch(epoch, forward, optimizer, scheduler, data, cfg, device, shuffle, stop, progress)
                run.add_epoch(record)
                run.keep_if_selected(model.state_dict())  # best.pt, when this epoch is the one chosen
                if diagnostics is not None:
                    run.warn(diagnostics.end_epoch(epoch))
                if cfg.train.checkpoint:
                    run.save_checkpoint(checkpoint.capture(epoch, model, optimizer, scheduler, shuffle, device))
                run.write_summary()
                if progress is not None:
                    progress.end_epoch(record)
                ending = _stopped_early(cfg, run.history)
                if ending:
                    break
                stop.check()
        except (Exception, KeyboardInterrupt) as e:  # noqa: BLE001 - every ending is recorded
            status, ending = _ending(e, epoch, len(run.history), cfg, optimizer, run_dir)

        # Still under the signal handlers: a late Ctrl-C or SIGTERM cannot cut these short.
        stop.finishing = True
        status = _finish(run, diagnostics, status, ending, model.state_dict() if status == "completed" else None)
    return RunResult(run_dir=run_dir, status=status, summary=run.summary, history=run.history)


def _epoch(
    epoch: int,
    forward: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    data: DataSplits,
    cfg: ExperimentConfig,
    device: torch.device,
    shuffle: torch.Generator,
    stop: StopFlag,
    progress: Any,
) -> dict[str, Any]:
    """One epoch: its training steps, the scheduler's step, evaluation on test (and validation
    when there is a split); the epoch's line of metrics.jsonl."""
    t0 = time.perf_counter()
    lr = optimizer.param_groups[0]["lr"]  # the lr the epoch trained at, before the scheduler moves it
    on_step = progress.step if progress is not None else None
    train_loss, train_acc = _train_epoch(forward, optimizer, data, cfg, device, shuffle, stop, on_step=on_step)
    if scheduler is not None:
        scheduler.step()
    record = {"epoch": epoch, "train_loss": train_loss, "train_acc": train_acc}
    record["test_loss"], record["test_acc"] = evaluate(forward, data.test_x, data.test_y, data, cfg, device)
    if data.val_x is not None and data.val_y is not None:
        record["val_loss"], record["val_acc"] = evaluate(forward, data.val_x, data.val_y, data, cfg, device)
    record.update(lr=lr, seconds=round(time.perf_counter() - t0, 4))
    return record


def _finish(run: RunWriter, diagnostics: Any, status: str, ending: dict[str, str], model_state: Any) -> str:
    """The run's last writes; a disk that fills up during them makes the run failed, saying
    so, with its last checkpoint left as it was. Returns the final status."""
    try:
        if diagnostics is not None:
            run.warn(diagnostics.close())
        run.finish(status, model_state, **ending)
        return status
    except DiskFull as e:
        ending = _disk_full_ending(e, run.dir)
    try:
        run.finish("failed", None, **ending)  # a summary is small: it may still fit where model.pt did not
    except DiskFull:
        run.summary.update(status="failed", **ending)  # told to the caller; summary.json keeps its last state
        run_lock.release_run(run.dir)
    return "failed"


def _stopped_early(cfg: ExperimentConfig, history: list[dict[str, Any]]) -> dict[str, str]:
    """The ending of a run early stopping ends now (its message), or {} to go on. Read off
    the whole history, so a resumed run stops where an uninterrupted one would."""
    rule = cfg.train.early_stopping
    if rule is None or len(history) >= cfg.train.epochs:
        return {}
    if epochs_without_improvement(history, rule.metric, rule.min_delta) < rule.patience:
        return {}
    chosen = select_epoch(history, rule.metric) or history[-1]
    return {
        "message": f"stopped early after epoch {history[-1]['epoch']} of {cfg.train.epochs}: {rule.metric} "
        f"has not improved by more than {rule.min_delta:g} for {rule.patience} epoch{'s' if rule.patience != 1 else ''}; "
        f"the epoch chosen on validation is {chosen['epoch']} (its weights: best.pt)"
    }


def _disk_full_ending(e: DiskFull, run_dir: Path) -> dict[str, str]:
    return {
        "error": f"DiskFull: {e}",
        "message": f"failed: {e}; the last checkpoint is intact: free some space, then mlp-lab resume {run_dir}",
    }


def _run_facts(model: torch.nn.Module, data: DataSplits, device: torch.device) -> dict[str, Any]:
    """The summary's fixed entries: where and with what the run trains."""
    return {
        "device": str(device),
        "threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "mlp_lab_version": __version__,
        "param_count": count_params(model),
        "data": data.source,
        "preprocessing": data.preprocessing_stats(),
    }


def _diagnostics(
    cfg: ExperimentConfig,
    model: torch.nn.Sequential,
    optimizer: torch.optim.Optimizer,
    data: DataSplits,
    run_dir: Path,
    device: torch.device,
    start_epoch: int,
) -> Any:
    if not cfg.train.diagnostics:
        return None
    from mlp_lab.training_diagnostics import TrainingDiagnostics

    return TrainingDiagnostics(model, optimizer, cfg, data, run_dir / runs.DIAGNOSTICS, device, start_epoch)


def _ending(
    e: BaseException,
    epoch: int,
    epochs_kept: int,
    cfg: ExperimentConfig,
    optimizer: torch.optim.Optimizer,
    run_dir: Path,
) -> tuple[str, dict[str, str]]:
    """How a run that did not complete ended: its status, and the message (and error and
    traceback of a crash) for RunWriter.finish. Called inside the except block."""
    if isinstance(e, Diverged):
        advice = _divergence_advice(cfg, optimizer.param_groups[0]["lr"])
        return "diverged", {"message": f"diverged in epoch {epoch}: {e}; try: {advice}"}
    if isinstance(e, DiskFull):
        return "failed", _disk_full_ending(e, run_dir)
    if isinstance(e, (Interrupted, KeyboardInterrupt)):
        name = str(e) or "SIGINT"
        return "interrupted", {
            "message": f"interrupted by {name} during epoch {epoch}; {epochs_kept} finished epoch(s) "
            f"kept; continue with: mlp-lab resume {run_dir}"
        }
    if isinstance(e, MemoryError | torch.cuda.OutOfMemoryError):
        # CUDA's message runs to several sentences of allocator advice: keep what it tried.
        tried = re.search(r"Tried to allocate [\d.]+ \w+", str(e))
        return "failed", {
            "error": f"{e.__class__.__name__}: {tried.group(0) if tried else 'out of memory'}",
            "message": f"failed in epoch {epoch}: out of memory on {cfg.train.device}"
            f"{' (' + tried.group(0).lower() + ')' if tried else ''}; lower train.batch_size "
            f"(now {cfg.train.batch_size}) or use fewer or smaller hidden layers",
        }
    error = f"{e.__class__.__name__}: {e}"
    return "failed", {
        "error": error,
        "crash_log": traceback.format_exc(),
        "message": f"failed in epoch {epoch}: {error} (traceback in {run_dir / 'error.log'})",
    }


def _divergence_advice(cfg: ExperimentConfig, lr: float | None = None) -> str:
    tips = [f"lower optimizer.lr (now {cfg.optimizer.lr:g})"]
    if lr is not None and cfg.scheduler.name != "none" and not math.isclose(lr, cfg.optimizer.lr):
        tips[0] += f"; scheduler {cfg.scheduler.name} had taken the lr to {lr:g}, check its settings"
    if cfg.model.init in ("normal", "uniform", "constant") and cfg.model.hidden:
        tips.append("use a scaled init (model.init: xavier_normal or kaiming_normal)")
    if cfg.model.norm == "none" and cfg.model.hidden:
        tips.append("add model.norm: batchnorm")
    return "; ".join(tips)
