"""The statistics behind run comparisons (pure Python, no scipy at run time).

- Student's t distribution (`t_cdf`, `t_ppf`) from the regularized incomplete beta function;
  the noncentral t (`nct_cdf`) by integrating over the chi distribution of the denominator.
- `paired_difference` (the t test on per-seed differences) and `welch_difference` (unequal
  variances, Welch-Satterthwaite degrees of freedom): a mean difference, its standard error, a
  two-sided confidence interval and p-value.
- `benjamini_hochberg`: step-up false-discovery-rate control over many tests.
- `t_test_power` / `seeds_needed`: the power of a two-sided paired or two-sample t test, and the
  smallest number of seeds per arm that reaches a power.

`tests/tui/orchestration/test_stats.py` checks each against scipy.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

_EPS = 1e-15


def _beta_cf(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c if abs(1.0 + aa / c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c if abs(1.0 + aa / c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_cf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_cf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with `df` degrees of freedom."""
    if math.isinf(t):
        return 1.0 if t > 0 else 0.0
    if t * t < df:  # near 0: P(|T| < |t|) = I_{t²/(df+t²)}(1/2, df/2) keeps its precision
        inner = 0.5 * betainc(0.5, df / 2.0, t * t / (df + t * t))
        return 0.5 + inner if t > 0 else 0.5 - inner
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def t_sf(t: float, df: float) -> float:
    """P(T > t), accurate in the far tail."""
    return t_cdf(-t, df)


def _invert(cdf: Callable[[float], float], p: float, lo: float = -1.0, hi: float = 1.0) -> float:
    """The x with cdf(x) = p for an increasing cdf, by bracketing and bisection."""
    while cdf(lo) > p:
        lo *= 2.0
    while cdf(hi) < p:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if cdf(mid) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, abs(mid)):
            break
    return 0.5 * (lo + hi)


def t_ppf(p: float, df: float) -> float:
    """The p-quantile of Student's t (0 < p < 1)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"a quantile needs 0 < p < 1, not {p}")
    return _invert(lambda x: t_cdf(x, df), p)


def norm_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def nct_cdf(t: float, df: float, nc: float, points: int = 4001) -> float:
    """P(T <= t) for the noncentral t, T = (Z + nc) / sqrt(V / df), V ~ chi-square(df).

    P(T <= t) = E[Phi(t S - nc)] with S = sqrt(V / df); the expectation is Simpson's rule over
    the density of S, which is finite and smooth at 0 for df >= 1.
    """
    k = df / 2.0
    log_norm = math.log(2.0) + k * math.log(k) - math.lgamma(k)
    top = 1.0 + 12.0 / math.sqrt(2.0 * df)  # S has mean ~1 and sd ~1/sqrt(2 df)
    n = points if points % 2 else points + 1
    h = top / (n - 1)
    total = 0.0
    for i in range(n):
        s = i * h
        if s == 0.0:
            density = math.exp(log_norm) if df == 1 else 0.0
        else:
            density = math.exp(log_norm + (df - 1.0) * math.log(s) - df * s * s / 2.0)
        weight = 1 if i in (0, n - 1) else (4 if i % 2 else 2)
        total += weight * density * norm_cdf(t * s - nc)
    return min(1.0, max(0.0, total * h / 3.0))


@dataclass(frozen=True)
class Difference:
    """b minus a: the mean difference, its standard error and a two-sided t interval."""

    method: str  # "paired t" or "Welch t"
    n_a: int
    n_b: int
    mean: float
    se: float | None  # None with fewer than two values in an arm (or pairs)
    df: float | None
    low: float | None
    high: float | None
    p: float | None  # two-sided, against no difference; None without a spread to test against
    confidence: float = 0.95

    @property
    def paired(self) -> bool:
        return self.method == "paired t"


def _mean(xs: Sequence[float]) -> float:
    return math.fsum(xs) / len(xs)


def _var(xs: Sequence[float]) -> float:
    m = _mean(xs)
    return math.fsum((x - m) ** 2 for x in xs) / (len(xs) - 1)


def _interval(
    method: str, n_a: int, n_b: int, mean: float, se: float, df: float, confidence: float
) -> Difference:
    if se == 0.0:  # every difference identical (recall moves in whole images): no test, not p = 0
        return Difference(method, n_a, n_b, mean, 0.0, df, mean, mean, None, confidence)
    half = t_ppf(0.5 + confidence / 2.0, df) * se
    p = min(1.0, 2.0 * t_sf(abs(mean) / se, df))
    return Difference(method, n_a, n_b, mean, se, df, mean - half, mean + half, p, confidence)


def paired_difference(
    a: Sequence[float], b: Sequence[float], confidence: float = 0.95
) -> Difference:
    """The paired t test on b[i] - a[i] (the pairs share a seed)."""
    if len(a) != len(b) or not a:
        raise ValueError(f"a paired test needs pairs: {len(a)} and {len(b)} values")
    diffs = [y - x for x, y in zip(a, b, strict=True)]
    n = len(diffs)
    mean = _mean(diffs)
    if n < 2:
        return Difference("paired t", n, n, mean, None, None, None, None, None, confidence)
    se = math.sqrt(_var(diffs) / n)
    return _interval("paired t", n, n, mean, se, n - 1, confidence)


def welch_difference(
    a: Sequence[float], b: Sequence[float], confidence: float = 0.95
) -> Difference:
    """Mean(b) - mean(a) for independent samples with unequal variances (Welch's t)."""
    if not a or not b:
        raise ValueError("each arm needs a value")
    mean = _mean(b) - _mean(a)
    if len(a) < 2 or len(b) < 2:
        return Difference("Welch t", len(a), len(b), mean, None, None, None, None, None, confidence)
    va, vb = _var(a) / len(a), _var(b) / len(b)
    se = math.sqrt(va + vb)
    if se == 0.0:
        df = float(len(a) + len(b) - 2)
    else:
        df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return _interval("Welch t", len(a), len(b), mean, se, df, confidence)


def benjamini_hochberg(pvalues: Sequence[float], q: float = 0.05) -> tuple[list[float], list[bool]]:
    """Benjamini-Hochberg step-up: the adjusted p-values (as scipy.stats.false_discovery_control)
    and which tests are discoveries at false-discovery rate `q`."""
    m = len(pvalues)
    if m == 0:
        return [], []
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [0.0] * m
    running = 1.0
    for rank in range(m, 0, -1):
        i = order[rank - 1]
        running = min(running, pvalues[i] * m / rank)
        adjusted[i] = running
    return adjusted, [p <= q for p in adjusted]


def t_test_power(
    effect: float, sd: float, n: int, alpha: float = 0.05, paired: bool = True
) -> float:
    """The power of a two-sided t test to detect a true difference `effect` with `n` seeds per arm.

    paired: `sd` is the spread of the per-seed differences; the test has n - 1 degrees of freedom.
    Unpaired: `sd` is the spread within each arm; 2n - 2 degrees of freedom.
    """
    if n < 2:
        return 0.0
    if sd <= 0.0:
        return 1.0 if effect != 0.0 else alpha
    if paired:
        df, nc = n - 1.0, effect / sd * math.sqrt(n)
    else:
        df, nc = 2.0 * n - 2.0, effect / sd * math.sqrt(n / 2.0)
    crit = t_ppf(1.0 - alpha / 2.0, df)
    return 1.0 - nct_cdf(crit, df, nc) + nct_cdf(-crit, df, nc)


def seeds_needed(
    effect: float,
    sd: float,
    power: float = 0.8,
    alpha: float = 0.05,
    paired: bool = True,
    most: int = 200,
) -> int | None:
    """The fewest seeds per arm (>= 2) whose t test reaches `power`; None beyond `most`."""
    for n in range(2, most + 1):
        if t_test_power(effect, sd, n, alpha, paired) >= power:
            return n
    return None
