"""What ``mlp-lab check`` found: a ``Check`` per line of the checklist, the ``CheckResult``
(with the range test's curve and suggested lr), and the checklist as text. Torch-free:
the checks themselves are in ``checklist.py``."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Check:
    """One line of the checklist."""

    name: str
    verdict: str  # pass, warn, fail, skip
    measured: str
    expected: str
    advice: str = ""
    numbers: dict[str, Any] = field(default_factory=dict)


@dataclass
class CheckResult:
    config: str
    device: str
    checks: list[Check]
    suggested_lr: float | None = None
    lr_range: tuple[float, float] | None = None
    curve: dict[str, list[float]] = field(default_factory=dict)  # lrs, losses (smoothed) of the range test
    config_lr: float | None = None

    @property
    def failed(self) -> bool:
        return any(c.verdict == "fail" for c in self.checks)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": self.config,
            "device": self.device,
            "passed": not self.failed,
            "suggested_lr": self.suggested_lr,
            "lr_range": list(self.lr_range) if self.lr_range else None,
            "config_lr": self.config_lr,
            "checks": [asdict(c) for c in self.checks],
            "range_test": self.curve,
        }


def suggestion_line(result: CheckResult) -> str:
    """The closing advice: an lr only when the lr is what to change. A network that cannot
    learn (its overfit check failing for a reason the lr does not fix) is sent to the cause."""
    overfit = next((c for c in result.checks if c.name == "overfit a tiny subset"), None)
    reasons = (overfit.numbers.get("reasons") or []) if overfit is not None and overfit.verdict == "fail" else []
    not_the_lr = [r for r in reasons if not r.startswith("optimizer.lr ")]
    if not_the_lr or result.suggested_lr is None:
        fixes = [re.split(r"\b(?:use|try) ", r, maxsplit=1)[1] for r in not_the_lr if re.search(r"\b(?:use|try) ", r)]
        fix = fixes[0].split("; ")[0] if fixes else "see the failed checks above"
        return f"suggested: fix the network before tuning an lr: {fix}; then check again"
    return (
        f"suggested: --set optimizer.lr={result.suggested_lr:.2g} (the lowest smoothed loss's lr / 10: a starting "
        "point from one short pass; any lr inside the range that passes is fine, and a search on validation "
        "(mlp-lab sweep --search) is what decides)"
    )


def check_lines(result: CheckResult) -> list[str]:
    """The checklist as text: a line per check, what to change under it, the suggestion."""
    width = max(len(c.name) for c in result.checks)
    lines = [f"check {result.config} on {result.device}"]
    for c in result.checks:
        lines.append(
            f"  {c.verdict.upper():<4}  {c.name:<{width}}  {c.measured}"
            + (f"  (expected: {c.expected})" if c.verdict != "skip" else "")
        )
        if c.advice:
            lines.append(f"        {'':<{width}}  -> {c.advice}")
    counts = {v: sum(c.verdict == v for c in result.checks) for v in ("fail", "warn")}
    lines.append(suggestion_line(result))
    lines.append(f"{counts['fail']} failed, {counts['warn']} warned of {len(result.checks)} checks")
    return lines
