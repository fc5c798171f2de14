"""tui.orchestration.stats against scipy (an independent implementation) and hand cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sp

from tui.orchestration import stats


@pytest.mark.parametrize("df", [1, 2, 3, 4.5, 9, 30, 200])
def test_t_cdf_and_quantile_match_scipy(df: float) -> None:
    for t in (-40.0, -6.0, -2.1, -0.3, 0.0, 0.7, 1.96, 4.0, 25.0):
        assert stats.t_cdf(t, df) == pytest.approx(sp.t.cdf(t, df), rel=1e-9, abs=1e-14)
    for p in (1e-6, 0.025, 0.3, 0.5, 0.9, 0.975, 0.999999):
        assert stats.t_ppf(p, df) == pytest.approx(sp.t.ppf(p, df), rel=1e-8, abs=1e-10)


def test_betainc_matches_scipy() -> None:
    from scipy.special import betainc

    for a, b, x in [(0.5, 0.5, 0.2), (2, 3, 0.7), (15, 0.5, 0.99), (100, 50, 0.6), (1, 1, 0.4)]:
        assert stats.betainc(a, b, x) == pytest.approx(betainc(a, b, x), rel=1e-10)


@pytest.mark.parametrize("df", [1, 2, 5, 19])
def test_noncentral_t_cdf_matches_scipy(df: int) -> None:
    for t in (-3.0, 0.0, 1.5, 2.8, 6.0):
        for nc in (0.0, 0.8, 2.5, 5.0):
            assert stats.nct_cdf(t, df, nc) == pytest.approx(sp.nct.cdf(t, df, nc), abs=2e-7)


def test_paired_difference_is_scipys_paired_t_test() -> None:
    a = [71.2, 70.4, 72.0, 70.9, 71.5]
    b = [72.0, 71.9, 72.3, 71.0, 72.6]
    d = stats.paired_difference(a, b)
    ref = sp.ttest_rel(b, a)
    ci = ref.confidence_interval(0.95)
    diffs = np.subtract(b, a)
    assert d.paired and d.df == 4
    assert d.mean == pytest.approx(diffs.mean())
    assert d.se == pytest.approx(diffs.std(ddof=1) / math.sqrt(5))
    assert d.p == pytest.approx(ref.pvalue, rel=1e-9)
    assert (d.low, d.high) == (pytest.approx(ci.low), pytest.approx(ci.high))


def test_paired_difference_by_hand() -> None:
    # differences 1, 2, 3: mean 2, sd 1, se 1/sqrt(3), t(2) 97.5 % quantile 4.302652729...
    d = stats.paired_difference([0, 0, 0], [1, 2, 3])
    assert d.mean == 2 and d.se == pytest.approx(1 / math.sqrt(3))
    assert d.high is not None
    assert d.high - d.mean == pytest.approx(4.302652729749464 / math.sqrt(3))


def test_welch_difference_is_scipys_welch_test() -> None:
    a = [61.0, 62.5, 60.2, 61.7]
    b = [63.1, 62.0, 64.4]
    d = stats.welch_difference(a, b)
    ref = sp.ttest_ind(b, a, equal_var=False)
    ci = ref.confidence_interval(0.95)
    assert not d.paired and d.df == pytest.approx(ref.df)
    assert d.p == pytest.approx(ref.pvalue, rel=1e-9)
    assert (d.low, d.high) == (pytest.approx(ci.low), pytest.approx(ci.high))


def test_degenerate_differences() -> None:
    one = stats.paired_difference([1.0], [2.0])
    assert one.mean == 1.0 and one.se is None and one.p is None and one.low is None
    same = stats.paired_difference([1.0, 2.0], [2.0, 3.0])  # every difference is 1
    assert same.se == 0.0 and same.p is None and same.low == same.high == 1.0
    assert stats.welch_difference([1.0], [2.0, 3.0]).se is None
    with pytest.raises(ValueError):
        stats.paired_difference([1.0, 2.0], [1.0])


def test_benjamini_hochberg_matches_scipy() -> None:
    rng = np.random.default_rng(0)
    p = np.concatenate([rng.uniform(0, 0.01, 8), rng.uniform(0, 1, 40)])
    adjusted, rejected = stats.benjamini_hochberg(list(p), q=0.05)
    assert adjusted == pytest.approx(list(sp.false_discovery_control(p)), rel=1e-12)
    assert rejected == [a <= 0.05 for a in adjusted]
    # by hand: m = 4, sorted p 0.01 0.02 0.03 0.5 -> 0.04 0.04 0.04 0.5
    adjusted, rejected = stats.benjamini_hochberg([0.03, 0.5, 0.01, 0.02], q=0.05)
    assert adjusted == pytest.approx([0.04, 0.5, 0.04, 0.04])
    assert rejected == [True, False, True, True]
    assert stats.benjamini_hochberg([]) == ([], [])


def test_power_matches_the_noncentral_t_and_a_simulation() -> None:
    # paired: df = n - 1, noncentrality effect / sd * sqrt(n)
    n, effect, sd = 6, 0.5, 0.4
    df, nc = n - 1, effect / sd * math.sqrt(n)
    crit = sp.t.ppf(0.975, df)
    ref = 1 - sp.nct.cdf(crit, df, nc) + sp.nct.cdf(-crit, df, nc)
    assert stats.t_test_power(effect, sd, n) == pytest.approx(ref, abs=1e-6)
    rng = np.random.default_rng(1)
    diffs = rng.normal(effect, sd, size=(40000, n))
    hits = sp.ttest_1samp(diffs, 0.0, axis=1).pvalue < 0.05
    assert stats.t_test_power(effect, sd, n) == pytest.approx(hits.mean(), abs=0.01)
    # unpaired, equal n: df = 2n - 2, noncentrality effect / sd * sqrt(n / 2)
    df, nc = 2 * n - 2, effect / sd * math.sqrt(n / 2)
    crit = sp.t.ppf(0.975, df)
    ref = 1 - sp.nct.cdf(crit, df, nc) + sp.nct.cdf(-crit, df, nc)
    assert stats.t_test_power(effect, sd, n, paired=False) == pytest.approx(ref, abs=1e-6)


def test_seeds_needed_is_the_first_n_with_enough_power() -> None:
    n = stats.seeds_needed(0.5, 0.4)
    assert n is not None
    assert stats.t_test_power(0.5, 0.4, n) >= 0.8 > stats.t_test_power(0.5, 0.4, n - 1)
    # large effects still need two seeds to have a spread at all
    assert stats.seeds_needed(10.0, 0.1) == 2
    assert stats.seeds_needed(0.001, 1.0, most=50) is None
