"""The statistics of seed groups, in plain Python: no numpy, no scipy (``compare`` starts fast).

Runs that differ only in their seed are repetitions of one experiment. For a group this
module gives the mean, the sample standard deviation and a t-based 95% confidence
interval of the mean; for two groups the difference of their means with its interval and
a two-sided p-value, by Welch's t-test, or by the paired t-test on per-seed differences
when both groups ran the same seeds. tests/test_stats.py checks every number against
``scipy.stats`` to 1e-6.

Student's t distribution needs the regularised incomplete beta function; it is computed
with the continued fraction of Numerical Recipes (Press et al., 3rd ed., 6.4), which
converges in a few dozen terms for the degrees of freedom seeds give.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

CONFIDENCE = 0.95
MIN_N_FOR_INTERVAL = 3  # fewer runs: values are shown, no interval (it would be meaninglessly wide)


def mean(xs: Sequence[float]) -> float:
    return math.fsum(xs) / len(xs)


def sample_std(xs: Sequence[float]) -> float:
    """The sample standard deviation (n - 1 in the denominator); 0 for a single value."""
    if len(xs) < 2:
        return 0.0
    m = mean(xs)
    return math.sqrt(math.fsum((x - m) ** 2 for x in xs) / (len(xs) - 1))


# --- Student's t ----------------------------------------------------------------------


def _betacf(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, eps = 1e-300, 1e-15
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 1000):
        m2 = 2 * m
        for aa in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < eps:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's t with ``df`` degrees of freedom."""
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))
    return tail if t >= 0 else 1.0 - tail


def t_pdf(t: float, df: float) -> float:
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    return math.exp(log_c - (df + 1) / 2 * math.log1p(t * t / df))


def t_ppf(q: float, df: float) -> float:
    """The ``q`` quantile of Student's t (0 < q < 1), by Newton's method on the CDF."""
    if not 0.0 < q < 1.0:
        raise ValueError(f"t_ppf: q must be in (0, 1), got {q}")
    if q < 0.5:
        return -t_ppf(1.0 - q, df)
    p = 1.0 - q  # the upper tail to hit
    t = _normal_ppf(q)
    t = max(t, 1e-3) * (1.0 + 1.0 / max(df, 0.5))  # t's tails are heavier than the normal's
    for _ in range(100):
        step = (t_sf(t, df) - p) / t_pdf(t, df)
        t_new = t + step
        if t_new <= 0:
            t_new = t / 2
        if abs(t_new - t) <= 1e-12 * max(1.0, abs(t)):
            return t_new
        t = t_new
    return t


def _normal_ppf(q: float) -> float:
    """A starting point for t_ppf: the normal quantile (Abramowitz and Stegun 26.2.23, 4.5e-4)."""
    p = q if q < 0.5 else 1.0 - q
    r = math.sqrt(-2.0 * math.log(p))
    z = r - (2.515517 + 0.802853 * r + 0.010328 * r * r) / (1 + 1.432788 * r + 0.189269 * r * r + 0.001308 * r**3)
    return z if q >= 0.5 else -z


# --- one group, two groups ------------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    """A group's values: n, mean, sample std and (n >= MIN_N_FOR_INTERVAL) the 95% interval of the mean."""

    n: int
    mean: float
    std: float
    ci: tuple[float, float] | None


def summarize(xs: Sequence[float]) -> Summary:
    m, s = mean(xs), sample_std(xs)
    ci = None
    if len(xs) >= MIN_N_FOR_INTERVAL:
        half = t_ppf(0.5 + CONFIDENCE / 2, len(xs) - 1) * s / math.sqrt(len(xs))
        ci = (m - half, m + half)
    return Summary(len(xs), m, s, ci)


@dataclass(frozen=True)
class Difference:
    """mean(a) - mean(b) with its 95% interval and two-sided p-value, and the test used."""

    diff: float
    ci: tuple[float, float]
    p: float
    test: str  # "welch" or "paired"
    df: float
    t: float

    @property
    def within_noise(self) -> bool:
        """The interval contains 0: seeds alone could make a difference this size."""
        return self.ci[0] <= 0.0 <= self.ci[1]


def welch(a: Sequence[float], b: Sequence[float]) -> Difference:
    """Welch's t-test (unequal variances): Welch-Satterthwaite degrees of freedom."""
    va, vb = sample_std(a) ** 2 / len(a), sample_std(b) ** 2 / len(b)
    diff = mean(a) - mean(b)
    se = math.sqrt(va + vb)
    if se == 0.0:
        return _no_spread(diff, "welch", len(a) + len(b) - 2)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return _t_test(diff, se, df, "welch")


def paired(a: Sequence[float], b: Sequence[float]) -> Difference:
    """The paired t-test on the differences a[i] - b[i] (the same seed in both groups)."""
    if len(a) != len(b):
        raise ValueError(f"paired: {len(a)} and {len(b)} values; pairs need equal counts")
    d = [x - y for x, y in zip(a, b)]
    se = sample_std(d) / math.sqrt(len(d))
    if se == 0.0:
        return _no_spread(mean(d), "paired", len(d) - 1)
    return _t_test(mean(d), se, len(d) - 1, "paired")


def _t_test(diff: float, se: float, df: float, test: str) -> Difference:
    t = diff / se
    half = t_ppf(0.5 + CONFIDENCE / 2, df) * se
    return Difference(diff, (diff - half, diff + half), min(1.0, 2.0 * t_sf(abs(t), df)), test, df, t)


def _no_spread(diff: float, test: str, df: float) -> Difference:
    # Every repetition gave the same value (a dead network stuck at chance, say): no noise
    # to measure, so the difference is what it is.
    return Difference(diff, (diff, diff), 1.0 if diff == 0 else 0.0, test, df, math.inf if diff else 0.0)


def holm(ps: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of p-values for testing several hypotheses at once: the
    k-th smallest of m is multiplied by m - k + 1, kept monotone, capped at 1. Unlike
    Bonferroni it never rejects less, and it holds the family-wise error rate."""
    m = len(ps)
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(sorted(range(m), key=lambda j: ps[j])):
        running = max(running, min(1.0, (m - rank) * ps[i]))
        adjusted[i] = running
    return adjusted
