"""``mlp-lab export tensorboard``: run folders as TensorBoard event files.

One TensorBoard run per mlp-lab run, at ``<logdir>/<group>/<seed>``: the runs of one seed
group share the ``<group>`` part of their name (the config fields that differ, as the
plots' legend says them), so TensorBoard's run filter selects a group with one regex.
Each holds the per-epoch scalars (``loss/*``, ``accuracy/*``, ``lr``), the diagnostics per
layer when the run has them (``grad_norm/layer_N``, ``update_ratio/layer_N`` per recorded
step; ``dead/layer_N`` or ``saturated/layer_N`` per epoch), and its hyper-parameters (the
fields that differ, and the seed) with its final metrics for the HParams view. The run
folders are only read. Writing needs the ``tensorboard`` package: the ``[tensorboard]`` extra.

Accuracies are in percent, as everywhere else in mlp-lab (tables, plots, reports).

``LiveTensorBoard`` writes the same events while runs train (``train --tensorboard DIR``,
``sweep --tensorboard DIR``): each epoch's scalars as it ends, flushed, so ``tensorboard
--logdir DIR`` shows a sweep as it goes; diagnostics and hyper-parameters once a run ends.
"""

from __future__ import annotations

import importlib.util
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mlp_lab.atomic_files import write_error
from mlp_lab.errors import MlpLabError
from mlp_lab.results import Comparison, build_comparison, plot_labels, runs_of

EXTRA = 'pip install -e ".[tensorboard]"'
_SCALARS = {
    "train_loss": "loss/train",
    "test_loss": "loss/test",
    "val_loss": "loss/val",
    "train_acc": "accuracy/train",
    "test_acc": "accuracy/test",
    "val_acc": "accuracy/val",
    "lr": "lr",
}
# The HParams view's metrics, validation first (what a choice is made on); best_test_acc, the
# test maximum over epochs, is chosen on test and kept only as the record of it.
_FINALS = ("val_acc", "selected_test_acc", "test_acc", "test_loss", "train_loss", "best_test_acc")
# fractions in the files, percent on screen
_PERCENT = ("train_acc", "test_acc", "val_acc", "best_test_acc", "selected_test_acc")


def export_tensorboard(paths: Iterable[str | Path], logdir: str | Path, **compare_options: Any) -> list[Path]:
    """Write every run under ``paths`` to ``logdir``; return the TensorBoard run folders written."""
    comp = build_comparison(list(paths), **compare_options)
    logdir = Path(logdir)
    writer_class = require_tensorboard(logdir)
    written = []
    for row, label in zip(comp.rows, plot_labels(comp)):
        for run in runs_of(row):
            target = logdir / _safe(label) / _safe(_seed_name(run))
            if target in written:  # two runs of one config and seed (a repeat): keep both
                target = target.with_name(f"{target.name}-{run.path.name[-6:]}")
            try:
                _write_run(writer_class, target, run, comp)
            except OSError as e:  # a read-only or full logdir: one line naming it
                raise write_error(e, Path(e.filename) if e.filename else target) from None
            written.append(target)
    return written


def require_tensorboard(logdir: Path) -> Any:
    """TensorBoard's writer class; an MlpLabError, before anything is written, when the
    tensorboard package is missing or ``logdir`` is no folder this process can write in
    (a file of that name, a read-only disk): said before any run starts, not at its first epoch."""
    writer_class = _summary_writer()
    logdir = Path(logdir)
    if logdir.exists() and not logdir.is_dir():
        raise MlpLabError(f"{logdir} is a file; TensorBoard's events need a folder there")
    try:
        logdir.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=logdir).close()
    except OSError as e:
        raise write_error(e, logdir) from None
    return writer_class


def _summary_writer() -> Any:
    if importlib.util.find_spec("tensorboard") is None:  # torch's writer needs it, and says so less clearly
        raise MlpLabError(f"export tensorboard needs the tensorboard package, which is not installed: {EXTRA}")
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter


def _seed_name(run: Any) -> str:
    seed = (run.params or {}).get("train.seed")
    return f"seed{seed}" if seed is not None else run.path.name


def _safe(name: str) -> str:
    """A label as one folder name: 'hidden=[256, 256], activation=relu' -> 'hidden=[256,256],activation=relu'."""
    return re.sub(r"[^A-Za-z0-9_.,=+\-\[\]{}]+", "_", name.replace(" ", "")).strip("_")[:120] or "run"


def _write_run(writer_class: Any, target: Path, run: Any, comp: Comparison) -> None:
    writer = writer_class(log_dir=str(target))
    try:
        for rec in run.history:
            add_epoch(writer, rec)
        hparams = {
            k: _hparam(run.params.get(k)) for k in [*comp.param_columns, "train.seed"] if run.params and k in run.params
        }
        add_ending(writer, run.path, run.status, hparams, run.metrics)
    finally:
        writer.close()


def add_epoch(writer: Any, rec: dict[str, Any]) -> None:
    """One metrics.jsonl line as the epoch's scalars."""
    epoch = rec.get("epoch")
    if not isinstance(epoch, int):
        return
    for key, tag in _SCALARS.items():
        if isinstance(rec.get(key), (int, float)):
            writer.add_scalar(tag, 100 * rec[key] if key in _PERCENT else rec[key], global_step=epoch)


def add_ending(writer: Any, run_dir: Path, status: str, hparams: dict[str, Any], metrics: dict[str, Any]) -> None:
    """What a run has once it ended: its diagnostics, hyper-parameters with final metrics, where it is."""
    from mlp_lab.diagnostic_plots import read_diagnostics

    _write_diagnostics(writer, read_diagnostics(run_dir))
    finals = {
        f"final/{k}": float(100 * v if k in _PERCENT else v)
        for k in _FINALS
        if isinstance(v := metrics.get(k), (int, float))
    }
    if hparams and finals:
        writer.add_hparams(hparams, finals, run_name=".")
    writer.add_text("run", f"{run_dir} ({status})", global_step=0)


# In each live TensorBoard run's folder: the run folder it holds (TensorBoard reads only the
# event files), so that a resumed run goes on in its own TensorBoard run, not in a second one.
OWNER = "mlp-lab-run.txt"


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


class LiveTensorBoard:
    """Event files written while runs train, one TensorBoard run per mlp-lab run at
    ``<logdir>/<run name>/seed<N>`` (a second run of the same name and seed gets its run
    id appended; a resumed run goes on in its own, its epochs from the resume on written
    anew). Call ``epoch`` as each epoch ends and ``end`` when the run has ended."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = Path(logdir)
        self.writer_class = require_tensorboard(self.logdir)
        self.writers: dict[Path, Any] = {}

    def _writer(self, run_dir: Path, config: dict[str, Any], first_epoch: int | None = None) -> Any:
        if run_dir not in self.writers:
            owner = f"{Path(run_dir).resolve()}\n"
            target, ours = self._target(run_dir, config, owner)
            try:  # this run's events before a resume: those of epochs from first_epoch on are written anew
                writer = self.writer_class(log_dir=str(target), purge_step=first_epoch if ours else None)
                (target / OWNER).write_text(owner, encoding="utf-8")
            except OSError as e:
                raise write_error(e, target) from None
            self.writers[run_dir] = writer
        return self.writers[run_dir]

    def _target(self, run_dir: Path, config: dict[str, Any], owner: str) -> tuple[Path, bool]:
        """The run's TensorBoard folder, and whether it holds this run's events from before a
        resume: ``<name>/seed<N>``; ``<name>/seed<N>-<run id>`` where another run of that name
        and seed wrote."""
        named = (
            self.logdir / _safe(str(config.get("name") or run_dir.name)) / f"seed{config.get('train', {}).get('seed')}"
        )
        for target in (named, named.with_name(f"{named.name}-{run_dir.name[-6:]}")):
            ours = _read_text(target / OWNER) == owner
            if not any(w.log_dir == str(target) for w in self.writers.values()) and (ours or not target.exists()):
                return target, ours
        return target, ours

    def epoch(self, run_dir: Path, config: dict[str, Any], record: dict[str, Any]) -> None:
        epoch = record.get("epoch")
        writer = self._writer(run_dir, config, epoch if isinstance(epoch, int) else None)
        add_epoch(writer, record)
        writer.flush()  # on disk now: tensorboard shows the epoch while the run goes on

    def end(
        self, run_dir: Path, config: dict[str, Any], status: str, metrics: dict[str, Any], varies: dict[str, Any]
    ) -> None:
        writer = self._writer(run_dir, config)
        seed = config.get("train", {}).get("seed")
        hparams = {k: _hparam(v) for k, v in {**varies, "train.seed": seed}.items() if v is not None}
        add_ending(writer, run_dir, status, hparams, metrics)
        writer.close()
        self.writers.pop(run_dir, None)

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()
        self.writers.clear()


def _write_diagnostics(writer: Any, records: list[dict[str, Any]]) -> None:
    for r in records:
        layers = [d for d in r.get("layers") or [] if isinstance(d, dict) and isinstance(d.get("layer"), int)]
        if r.get("kind") == "step" and all(isinstance(r.get(k), int) for k in ("epoch", "step", "steps")):
            step = (r["epoch"] - 1) * r["steps"] + r["step"]  # optimizer steps since the start
            for d in layers:
                name = "output" if d.get("output") else f"layer_{d['layer']}"
                for key in ("grad_norm", "update_ratio"):
                    if isinstance(d.get(key), (int, float)):
                        writer.add_scalar(f"{key}/{name}", d[key], global_step=step)
        elif r.get("kind") == "probe" and isinstance(r.get("epoch"), int):
            for d in layers:
                for key in ("dead", "saturated"):
                    if isinstance(d.get(key), (int, float)):
                        writer.add_scalar(f"{key}/layer_{d['layer']}", d[key], global_step=r["epoch"])


def _hparam(v: Any) -> Any:
    """HParams take numbers, strings and booleans; lists become their text."""
    if isinstance(v, (bool, int, float, str)):
        return v
    return str(v)
