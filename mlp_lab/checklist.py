"""``mlp-lab check``: the lecture's "babysitting" checklist, run in seconds before a long run.

1. The loss at initialisation is about ln(C) (2.30 for ten classes): a net that starts far
   above it has an init too large for its depth.
2. Regularisation (weight decay, dropout) raises that loss.
3. The net can overfit a tiny subset (20 images) to 100% training accuracy; when it cannot,
   ``inspect``'s statistics say why (the signal vanished, units saturated or dead).
4. A learning-rate range test (Smith 2015): one short pass with the learning rate growing
   exponentially, the smoothed loss recorded until it blows up. The suggestion is the lr of
   the lowest smoothed loss divided by 10, the rule of fastai's original ``lr_find``: the
   steepest-descent point of so short and noisy a curve moves from one seed to the next,
   the minimum barely does, and a tenth of it sits on the falling slope, safely below
   where the loss turns.
5. The update-to-weight ratio per layer after a few steps at the config's lr: about 1e-3 is
   healthy; much lower, the lr is too low; much higher, too high.

Every model and optimizer built here is thrown away: the check writes nothing but the
optional plot. Thresholds live in ``diagnostics.py`` beside training's own.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from mlp_lab import diagnostics as dg
from mlp_lab.check_result import Check, CheckResult
from mlp_lab.choices import ACTIVATIONS
from mlp_lab.data import load_data, resolve_data_dir
from mlp_lab.devices import resolve_device
from mlp_lab.errors import ConfigError
from mlp_lab.inspection import inspect_batch
from mlp_lab.memory import check_fits
from mlp_lab.model import build_model
from mlp_lab.optim import build_optimizer, needs_closure
from mlp_lab.schema import ExperimentConfig
from mlp_lab.training import train_step

INIT_BATCH = 1000  # training samples the loss at init is measured on
OVERFIT_STEPS = 300  # full-batch steps the tiny subset gets
OVERFIT_LOSS = 0.05  # "near 0"
RANGE_CHECK = "learning-rate range"  # the range test's line
RANGE_STEPS = 150
RANGE_LR = (1e-7, 10.0)
RANGE_SMOOTHING = 0.9  # exponential moving average of the loss, bias-corrected
RANGE_BLOWUP = 4.0  # stop once the smoothed loss is this many times its minimum
RANGE_FALL = 0.1  # the loss "falls" once it is this share of the way from its start to its minimum
RANGE_START = 10  # the curve's start is the median of its first points: one noisy batch is no start
# A loss that falls by less than this share of its start at any lr is no range: the network
# cannot learn (zero weights, a vanished signal), and no lr would fix it.
RANGE_MIN_FALL = 0.05
# The smoothing (about 10 steps) makes the curve answer to the lr of ~10 steps before, about
# 3x lower: an lr within that factor below where the curve falls is not called too low.
RANGE_LAG = 3.0
# An lr more than this factor below the range's start (past the lag) does not move the loss
# at all: the run it configures will not train, which fails the check (nearer, a warning).
RANGE_FAR_BELOW = 10.0
UPDATE_STEPS = 20


def run_check(cfg: ExperimentConfig, data_dir: Path | None = None, tiny: int = 20) -> CheckResult:
    """The whole checklist for ``cfg`` on its data and device."""
    if tiny < 1:
        raise ConfigError(f"--tiny {tiny}: the overfitting subset needs at least 1 image")
    device = resolve_device(cfg.train.device)
    check_fits(cfg, device)
    data = load_data(cfg.data, resolve_data_dir(data_dir, cfg.data), device, seed=cfg.train.seed)
    x = data.normalize(data.train_x[: max(INIT_BATCH, tiny)])
    y = data.train_y[: max(INIT_BATCH, tiny)]
    classes = data.num_classes
    result = CheckResult(config=cfg.name, device=str(device), checks=[], config_lr=cfg.optimizer.lr)
    plain = _without_regularisation(cfg)
    result.checks.append(_loss_at_init(plain, x, y, classes, device))
    result.checks.append(_regularisation(cfg, plain, x, y, classes, device))
    lr_check = _range_test(cfg, data, device, result)  # first: a failed overfit is read against its range
    result.checks.append(_overfit(plain, x[:tiny], y[:tiny], classes, device, result))
    result.checks.append(lr_check)
    result.checks.append(_update_ratio(cfg, data, device, result))
    return result


# --- the checks ---------------------------------------------------------------------------


def _loss_at_init(cfg: ExperimentConfig, x: torch.Tensor, y: torch.Tensor, classes: int, device: Any) -> Check:
    model = _model(cfg, x.shape[1], classes, device)
    with torch.no_grad():
        logits = model(x)
        loss = float(F.cross_entropy(logits.float(), y))
        logit_std = float(logits.float().std())
    expected = math.log(classes)
    numbers = {"loss": loss, "expected": expected, "logit_std": logit_std}
    measured, want = f"{loss:.3g}", f"about ln {classes} = {expected:.2f}"
    if not math.isfinite(loss) or loss > 2 * expected:
        cause = (
            f"the logits start with std {logit_std:.3g} (a net at init should be unsure: std about 1 or less), "
            f"so the init is too large for this depth"
        )
        return Check("loss at init", "fail", measured, want, f"{cause}; use {_scaled_init(cfg)}", numbers)
    if abs(loss - expected) > 0.25 * expected:
        return Check(
            "loss at init",
            "warn",
            measured,
            want,
            f"the logits start with std {logit_std:.3g}; check model.init ({cfg.model.init})",
            numbers,
        )
    return Check("loss at init", "pass", measured, want, numbers=numbers)


def _regularisation(
    cfg: ExperimentConfig, plain: ExperimentConfig, x: torch.Tensor, y: torch.Tensor, classes: int, device: Any
) -> Check:
    decay = float(getattr(cfg.optimizer, "weight_decay", 0.0) or 0.0)
    if decay == 0 and cfg.model.dropout == 0:
        return Check(
            "regularisation raises the loss",
            "skip",
            "-",
            "loss with it above loss without",
            "the config has no weight decay or dropout",
        )
    without = _model(plain, x.shape[1], classes, device)
    with_reg = _model(cfg, x.shape[1], classes, device)  # same seed: the same weights
    with torch.no_grad():
        base = float(F.cross_entropy(without(x).float(), y))
        with_reg.train()  # dropout on, as in training
        penalty = 0.5 * decay * sum(float(p.pow(2).sum()) for p in with_reg.parameters())
        regular = float(F.cross_entropy(with_reg(x).float(), y)) + penalty
    numbers = {"loss_without": base, "loss_with": regular, "weight_decay": decay, "dropout": cfg.model.dropout}
    measured, want = f"{regular:.4g} vs {base:.4g}", "higher with regularisation"
    if regular > base:
        return Check("regularisation raises the loss", "pass", measured, want, numbers=numbers)
    return Check(
        "regularisation raises the loss",
        "warn",
        measured,
        want,
        "regularisation did not raise the loss at init: is it too weak to matter?",
        numbers,
    )


def _overfit(
    cfg: ExperimentConfig, x: torch.Tensor, y: torch.Tensor, classes: int, device: Any, result: CheckResult
) -> Check:
    model = _model(cfg, x.shape[1], classes, device)
    optimizer = build_optimizer(cfg.optimizer, model.parameters(), device)
    loss, acc, steps = float("nan"), 0.0, 0
    for steps in range(1, OVERFIT_STEPS + 1):  # noqa: B007 - the steps taken are reported after the loop
        loss, acc = _step(cfg, model, optimizer, x, y)
        if not math.isfinite(loss) or (acc == 1.0 and loss < OVERFIT_LOSS):
            break
    numbers: dict[str, Any] = {"images": len(y), "steps": steps, "loss": loss, "train_acc": acc}
    measured = f"{100 * acc:.0f}% train accuracy, loss {loss:.3g} after {steps} steps on {len(y)} images"
    want = f"100% and loss below {OVERFIT_LOSS} within {OVERFIT_STEPS} steps"
    if acc == 1.0 and loss < OVERFIT_LOSS:
        return Check("overfit a tiny subset", "pass", measured, want, numbers=numbers)
    if acc == 1.0:
        return Check(
            "overfit a tiny subset",
            "warn",
            measured,
            want,
            f"it fits the labels but the loss stays at {loss:.3g}: raise optimizer.lr",
            numbers,
        )
    why = _why_it_cannot_learn(cfg, x, y, loss, result)
    numbers["reasons"] = why
    return Check("overfit a tiny subset", "fail", measured, want, "; ".join(why), numbers)


def _why_it_cannot_learn(
    cfg: ExperimentConfig, x: torch.Tensor, y: torch.Tensor, loss: float, result: CheckResult
) -> list[str]:
    """What inspect sees in the untrained network, each finding with what to change; else
    where the config's lr sits against the range test's."""
    reasons = []
    if not math.isfinite(loss):
        reasons.append(f"the loss became {loss}")
    if cfg.model.hidden:
        for text in inspect_batch(cfg, x.cpu(), y.cpu(), "the tiny subset").warnings:
            reasons.append(text if "use " in text else f"{text}; try {_fix_for(text, cfg)}")
    lr, span = cfg.optimizer.lr, result.lr_range
    if span is not None and lr > span[1]:
        reasons.append(
            f"optimizer.lr {lr:g} is above where the loss is lowest ({span[1]:.1e}): "
            f"use --set optimizer.lr={result.suggested_lr:.2g}"
        )
    elif span is not None and lr < span[0] / RANGE_LAG:
        reasons.append(
            f"optimizer.lr {lr:g} is below where the loss starts to fall ({span[0]:.1e}): "
            f"use --set optimizer.lr={result.suggested_lr:.2g}"
        )
    elif not reasons:
        reasons.append(f"nothing in the network looks wrong at init: raise optimizer.lr (now {lr:g}) or train longer")
    return reasons


def _fix_for(finding: str, cfg: ExperimentConfig) -> str:
    if cfg.model.init in ("zeros", "constant"):
        return f"{_scaled_init(cfg)} (weights that start equal learn alike, or not at all)"
    if "vanish" in finding or "died out" in finding:
        return f"{_scaled_init(cfg)} or model.norm: batchnorm"
    if "saturat" in finding:
        return f"a smaller init ({_scaled_init(cfg)}) or model.norm: batchnorm"
    if "dead" in finding:
        return "model.init: kaiming_normal, a lower optimizer.lr, or model.activation: leaky_relu"
    return f"{_scaled_init(cfg)}, model.norm: batchnorm, or another optimizer.lr"


def _range_test(cfg: ExperimentConfig, data: Any, device: Any, result: CheckResult) -> Check:
    name = RANGE_CHECK
    if cfg.optimizer.name in ("lbfgs", "rprop"):
        return Check(name, "skip", "-", "-", f"{cfg.optimizer.name} sets its own step sizes: no range test")
    lrs, losses, blew_up = _range_curve(_without_regularisation(cfg), data, device)
    result.curve = {"lr": lrs, "loss": losses}
    if len(losses) < 10:
        return Check(
            name,
            "fail",
            "the loss blew up at once",
            "a range where the loss falls",
            f"even {lrs[-1]:.1e} diverges: check model.init",
            {"lr": lrs, "loss": losses},
        )
    best = min(range(len(losses)), key=losses.__getitem__)
    start, low = sorted(losses[:RANGE_START])[min(RANGE_START, len(losses)) // 2], losses[best]
    if start - low < RANGE_MIN_FALL * start:
        return Check(
            name,
            "fail",
            f"the loss hardly falls at any lr: from {start:.4g} to {low:.4g} at best",
            "a range where the loss falls",
            "no learning rate trains this network: the cause is elsewhere (see the other checks); no lr suggested",
            {"lr": lrs, "loss": losses, "start": start, "lowest": low},
        )
    # Where the loss falls for good: after the last point still near the start (a single
    # noisy dip early on is not the fall).
    near_start = [i for i in range(best) if losses[i] >= start - RANGE_FALL * (start - low)]
    falls = near_start[-1] + 1 if near_start else 0
    # The range starts where the loss falls, or at the suggestion when that is lower (a loss
    # that hardly falls at all): the suggestion always lies inside it.
    top, blowup = lrs[best], lrs[-1] if blew_up else None
    lo = min(lrs[falls], top / 10)
    result.suggested_lr, result.lr_range = top / 10, (lo, top)
    return _lr_in_range(cfg.optimizer.lr, lo, top, blowup, lrs[-1])


def _lr_in_range(lr: float, lo: float, top: float, blowup: float | None, last: float) -> Check:
    """The range test's line: the config's lr against the range (``lo`` to ``top``, the lowest
    loss) and where the loss blew up (``blowup``; None when it never did, up to ``last``)."""
    name = RANGE_CHECK
    numbers = {"suggested_lr": top / 10, "range": [lo, top], "blows_up_at": blowup, "rule": "lowest loss / 10"}
    measured = f"the loss falls from lr {lo:.1e}, lowest at lr {top:.1e}" + (
        f", blows up by lr {blowup:.1e}" if blowup else f", up to lr {last:.0e} without blowing up"
    )
    want = f"optimizer.lr inside the range; suggested --set optimizer.lr={top / 10:.2g}"
    use = f"use --set optimizer.lr={top / 10:.2g}"
    if blowup is not None and lr >= blowup:
        advice = f"your lr {lr:g} is too high: the loss blows up above lr {blowup:.1e}; {use}"
        return Check(name, "fail", measured, want, advice, numbers)
    if lr > top:
        advice = f"your lr {lr:g} is too high: past the lowest loss (lr {top:.1e}) the loss turns up; {use}"
        return Check(name, "warn", measured, want, advice, numbers)
    if lr < lo / RANGE_LAG:
        verdict = "fail" if lr < lo / (RANGE_LAG * RANGE_FAR_BELOW) else "warn"
        advice = f"your lr {lr:g} is too low: the loss barely moves below lr {lo:.1e}; {use}"
        return Check(name, verdict, measured, want, advice, numbers)
    return Check(name, "pass", measured + f"; your lr {lr:g} is inside the range", want, numbers=numbers)


def _range_curve(cfg: ExperimentConfig, data: Any, device: Any) -> tuple[list[float], list[float], bool]:
    """(lrs, smoothed losses, whether it blew up) of one pass with the lr growing from
    RANGE_LR[0] to RANGE_LR[1], stopped once the loss blows up."""
    model = _model(cfg, data.input_dim, data.num_classes, device)
    optimizer = build_optimizer(cfg.optimizer, model.parameters(), device)
    batches = _random_batches(cfg, data)
    factor = (RANGE_LR[1] / RANGE_LR[0]) ** (1 / (RANGE_STEPS - 1))
    lrs: list[float] = []
    losses: list[float] = []
    avg, low = 0.0, math.inf
    for step in range(RANGE_STEPS):
        lr = RANGE_LR[0] * factor**step
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss, _ = _step(cfg, model, optimizer, *next(batches))
        if not math.isfinite(loss):
            return lrs, losses, True
        avg = RANGE_SMOOTHING * avg + (1 - RANGE_SMOOTHING) * loss
        smooth = avg / (1 - RANGE_SMOOTHING ** (step + 1))
        lrs.append(lr)
        losses.append(smooth)
        low = min(low, smooth)
        if smooth > RANGE_BLOWUP * low:
            return lrs, losses, True
    return lrs, losses, False


def _init_cause(cfg: ExperimentConfig, result: CheckResult) -> str:
    """The init, when the checks so far say it is what is wrong: weights that start equal
    (zeros, constant) get equal updates or none; a loss at init far above ln C means an init
    too large for the depth. Else ''."""
    if cfg.model.hidden and cfg.model.init in ("zeros", "constant"):
        return (
            f"weights that start equal (model.init: {cfg.model.init}) get equal updates or none, so no lr "
            f"helps; use {_scaled_init(cfg)}"
        )
    at_init = next((c for c in result.checks if c.name == "loss at init"), None)
    if at_init is not None and at_init.verdict == "fail":
        return f"the init is too large for this depth (see loss at init), not the lr; use {_scaled_init(cfg)}"
    return ""


def _update_ratio(cfg: ExperimentConfig, data: Any, device: Any, result: CheckResult) -> Check:
    name = "update / weight ratio"
    model = _model(cfg, data.input_dim, data.num_classes, device)
    optimizer = build_optimizer(cfg.optimizer, model.parameters(), device)
    weights = [m.weight for m in model if isinstance(m, torch.nn.Linear)]
    batches = _random_batches(cfg, data)
    ratios: list[float] = []
    for _ in range(UPDATE_STEPS):
        before = [w.detach().clone() for w in weights]
        _step(cfg, model, optimizer, *next(batches))
        ratios = [float((w.detach() - b).norm() / b.norm().clamp_min(1e-12)) for w, b in zip(weights, before)]
    numbers = {"ratios": ratios, "healthy": dg.UPDATE_RATIO_HEALTHY, "band": list(dg.UPDATE_RATIO_BAND)}
    measured = "per layer " + ", ".join(f"{r:.1e}" for r in ratios)
    want = (
        f"about {dg.UPDATE_RATIO_HEALTHY:.0e} (between {dg.UPDATE_RATIO_BAND[0]:.0e} and {dg.UPDATE_RATIO_BAND[1]:.0e})"
    )
    low, high = dg.UPDATE_RATIO_BAND
    big = [i + 1 for i, r in enumerate(ratios) if not math.isfinite(r) or r > high]
    small = [i + 1 for i, r in enumerate(ratios) if r < low]
    cause = _init_cause(cfg, result)
    if (big or small) and cause:
        return Check(name, "warn", measured, want, cause, numbers)
    if big:
        return Check(
            name,
            "warn",
            measured,
            want,
            f"steps are large for the weights of layer {_layers(big)}: lower optimizer.lr (now {cfg.optimizer.lr:g})",
            numbers,
        )
    if small:
        why = "raise optimizer.lr" if len(small) == len(ratios) else "their gradients vanish before them (see inspect)"
        return Check(
            name,
            "warn",
            measured,
            want,
            f"the weights of layer {_layers(small)} barely move: {why} (lr now {cfg.optimizer.lr:g})",
            numbers,
        )
    return Check(name, "pass", measured, want, numbers=numbers)


def _layers(numbers: list[int]) -> str:
    return ", ".join(map(str, numbers)) if len(numbers) <= 4 else f"{numbers[0]}-{numbers[-1]} ({len(numbers)} layers)"


# --- shared pieces ------------------------------------------------------------------------


def _without_regularisation(cfg: ExperimentConfig) -> ExperimentConfig:
    plain = cfg.model_copy(deep=True)
    plain.model.dropout = 0.0
    if hasattr(plain.optimizer, "weight_decay"):
        plain.optimizer.weight_decay = 0.0
    return plain


def _model(cfg: ExperimentConfig, width: int, classes: int, device: Any) -> torch.nn.Sequential:
    """The network training starts from (same seed, same init), in train mode."""
    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg.model, width, classes).to(device)
    model.train()
    return model


def _random_batches(cfg: ExperimentConfig, data: Any) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Training batches of the config's size, drawn with replacement from a generator seeded
    with its seed (the same batches on every call): (x normalised, y), endlessly."""
    g = torch.Generator().manual_seed(cfg.train.seed)
    n, bs = int(data.train_y.shape[0]), cfg.train.batch_size
    while True:
        idx = torch.randint(0, n, (min(bs, n),), generator=g).to(data.train_x.device)
        yield data.normalize(data.train_x[idx]), data.train_y[idx]


def _step(
    cfg: ExperimentConfig, model: torch.nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor
) -> tuple[float, float]:
    """One step of training's own (``training.train_step``); the batch's loss and accuracy before it."""
    device = next(model.parameters()).device
    logits, loss = train_step(model, optimizer, x, y, cfg, device, needs_closure(optimizer))
    return float(loss.detach()), float((logits.argmax(1) == y).float().mean())


def _scaled_init(cfg: ExperimentConfig) -> str:
    relu_like = ACTIVATIONS[cfg.model.activation].family != "saturating"
    return "model.init: kaiming_normal" if relu_like else "model.init: xavier_normal"
