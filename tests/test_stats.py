"""compare's seed statistics against scipy.stats, the reference, to 1e-6."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from mlp_lab.results import stats

scipy_stats = pytest.importorskip("scipy.stats", reason="scipy is the reference for these numbers (pip install scipy)")

# Fixed data: accuracies of the kind seeds give (tight, a few repetitions) and wilder ones.
rng = random.Random(20261124)
SAMPLES = [
    [0.9754, 0.9766, 0.9790, 0.9792, 0.9798],
    [0.9721, 0.9735, 0.9702, 0.9760, 0.9744],
    [0.1135, 0.1135, 0.0980],
    [2.301, 2.299, 2.305, 2.310],
    [rng.gauss(0.9, 0.05) for _ in range(7)],
    [rng.gauss(0.5, 0.2) for _ in range(12)],
    [1.0, 2.0],
]
TOL = 1e-6


@pytest.mark.parametrize("xs", SAMPLES)
def test_mean_and_sample_std_match_numpy(xs):
    assert stats.mean(xs) == pytest.approx(float(np.mean(xs)), abs=TOL)
    assert stats.sample_std(xs) == pytest.approx(float(np.std(xs, ddof=1)), abs=TOL)


@pytest.mark.parametrize("df", [1, 2, 3, 4, 6.5, 9, 19, 49, 200])
@pytest.mark.parametrize("q", [0.5, 0.75, 0.9, 0.95, 0.975, 0.995, 0.9995, 0.025, 0.001])
def test_t_quantiles_match_scipy(q, df):
    assert stats.t_ppf(q, df) == pytest.approx(float(scipy_stats.t.ppf(q, df)), rel=TOL, abs=TOL)


@pytest.mark.parametrize("df", [1, 3, 7.3, 30])
@pytest.mark.parametrize("t", [-4.0, -0.5, 0.0, 0.3, 1.96, 5.0, 40.0])
def test_t_tail_matches_scipy(t, df):
    assert stats.t_sf(t, df) == pytest.approx(float(scipy_stats.t.sf(t, df)), abs=TOL)


@pytest.mark.parametrize("xs", [s for s in SAMPLES if len(s) >= stats.MIN_N_FOR_INTERVAL])
def test_confidence_interval_of_the_mean_matches_scipy(xs):
    s = stats.summarize(xs)
    lo, hi = scipy_stats.t.interval(0.95, len(xs) - 1, loc=np.mean(xs), scale=scipy_stats.sem(xs))
    assert s.n == len(xs) and s.ci == pytest.approx((lo, hi), abs=TOL)


def test_fewer_than_three_values_get_no_interval():
    assert stats.summarize([0.97, 0.98]).ci is None
    assert stats.summarize([0.97]).std == 0.0


PAIRS = [(SAMPLES[0], SAMPLES[1]), (SAMPLES[2], SAMPLES[3][:3]), (SAMPLES[4], SAMPLES[5]), (SAMPLES[1], SAMPLES[4][:5])]


@pytest.mark.parametrize("a, b", PAIRS)
def test_welch_matches_scipy(a, b):
    ours = stats.welch(a, b)
    ref = scipy_stats.ttest_ind(a, b, equal_var=False)
    ci = ref.confidence_interval(0.95)
    assert ours.test == "welch"
    assert ours.diff == pytest.approx(float(np.mean(a) - np.mean(b)), abs=TOL)
    assert ours.t == pytest.approx(float(ref.statistic), rel=TOL)
    assert ours.df == pytest.approx(float(ref.df), rel=TOL)
    assert ours.p == pytest.approx(float(ref.pvalue), abs=TOL)
    assert ours.ci == pytest.approx((float(ci.low), float(ci.high)), abs=TOL)


@pytest.mark.parametrize("a, b", [(SAMPLES[0], SAMPLES[1]), (SAMPLES[4], SAMPLES[5][:7]), (SAMPLES[3], SAMPLES[5][:4])])
def test_paired_matches_scipy(a, b):
    ours = stats.paired(a, b)
    ref = scipy_stats.ttest_rel(a, b)
    ci = ref.confidence_interval(0.95)
    assert ours.test == "paired" and ours.df == len(a) - 1
    assert ours.t == pytest.approx(float(ref.statistic), rel=TOL)
    assert ours.p == pytest.approx(float(ref.pvalue), abs=TOL)
    assert ours.ci == pytest.approx((float(ci.low), float(ci.high)), abs=TOL)


def test_an_interval_that_holds_zero_is_within_noise():
    assert stats.welch(SAMPLES[0], SAMPLES[0][::-1]).within_noise
    assert not stats.welch(SAMPLES[0], SAMPLES[3]).within_noise


def test_groups_without_any_spread_differ_exactly_or_not_at_all():
    same = stats.welch([0.1135] * 3, [0.1135] * 3)
    assert same.p == 1.0 and same.ci == (0.0, 0.0) and same.within_noise
    apart = stats.paired([0.1135] * 3, [0.0980] * 3)
    assert apart.p == 0.0 and not apart.within_noise and math.isclose(apart.diff, 0.0155)
