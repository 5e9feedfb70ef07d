"""The paired non-inferiority test of a shadow stage: both models scored the same requests.

Hypotheses: D = challenger correct - champion correct on one request, theta = E[D];
H0: theta <= -delta against H1: theta > -delta (delta = the configured margin). Only the
discordant pairs carry information: with b = challenger_only and c = champion_only of n pairs,
theta_hat = (b - c) / n and Var(D) = p_disc - theta^2.

Why Tango's score statistic (Tango 1998; Nam 1997 is the same test): it standardises with the
variance restricted to H0 (the maximum-likelihood p_disc under theta = -delta, closed form), so it
stays well calibrated near the margin where the Wald statistic does not, and at delta = 0 it is
McNemar's. No maintained Python library has it (statsmodels only has McNemar), so it is written
here and tested against McNemar and against published intervals.

Why an exact fallback: with few discordant pairs the score statistic is far from normal. Below
:data:`EXACT_BELOW` discordant pairs the p-value is exact and unconditional: the chance, under the
least favourable null, of a Tango statistic at least as large as the one observed, maximised over
the nuisance p_disc within a 1 - gamma Clopper-Pearson bound, plus gamma (Berger & Boos 1994).
Unconditional rather than conditional on the discordant count: conditioning throws away that few
discordant pairs themselves bound |theta| <= p_disc, and a challenger that almost always agrees
with the champion would then never pass. The p-value is mapped to the z scale, Phi^-1(1 - p), and
compared with the same sequential boundary.

Information I = n / v with v the variance of D that the statistic standardises with when the
models are equally good: Tango's restricted variance (p_disc under theta = -delta by maximum
likelihood, less delta^2) of the table with the observed discordant count split evenly. Two
choices, each measured (bench/bench_paired_gates.py, power at p_disc 0.10):
- the restricted and not the plain p_disc_hat - theta_hat^2: the statistic is (theta_hat + delta)
  / sqrt(v_tilde / n), so at the design alternative its mean is delta sqrt(I) only on this scale
  (p_disc 0.10: 0.103 against 0.100), the drift the design plans;
- from the discordant count alone, not from the split: given the count the split is what carries
  theta, so the look times then say nothing about theta_hat. With the split in it, a low
  theta_hat means a low v_tilde and more information, looks come when the statistic is low, and
  futility stops no-worse challengers too often (power 0.76 against 0.80).
Under H0 (theta = -delta) v is slightly above the true p_disc - delta^2, so the information is
understated and the planned last look can only come late, never early (a last look forced by
spent traffic, :mod:`.engine`, comes when the traffic says). No discordant pair gives
v = delta (1 - delta), the least null variance: never infinite information.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import optimize, stats

from canary.experiment.gates.evidence import PairedOutcomes
from canary.experiment.gates.noninferiority import PrimaryResult

#: Discordant pairs below which the exact test replaces the normal approximation. Exact one-look
#: sizes at theta = -delta (delta 0.02; n 25..1600 pairs, p_disc 0.021..0.3, nominal levels 0.05,
#: 0.018, 0.005 as the design's boundaries use): the score test alone exceeds nominal by up to
#: 10% (n = 50, p_disc = 0.1, level 0.05); with the exact test below 10 pairs by 2.5%, below 20 by
#: 1.5%, below 30 by 1.2% (the rest is the score test's own at larger counts). 20 takes nearly all
#: the gain; bench/bench_paired_gates.py measures the sequential error rates with it.
EXACT_BELOW = 20
#: Berger & Boos' gamma as a share of alpha: 0.001 at alpha = 0.05, the value they suggest.
GAMMA_SHARE = 0.02
NUISANCE_GRID = 48  # points on [delta, upper bound of p_disc] over which the null is maximised

TANGO, EXACT = "tango_score", "exact_unconditional_berger_boos"


@dataclass(frozen=True)
class PairedResult:
    """The paired statistic at one look (large z favours the challenger)."""

    method: str
    n_pairs: int
    champion_only: int
    challenger_only: int
    discordant: int
    diff: float
    p_disc_hat: float
    variance_hat: float
    z: float
    p_value: float
    ci_low: float
    ci_high: float
    margin: float
    champion_mean: float
    challenger_mean: float

    @property
    def primary(self) -> PrimaryResult:
        """The same numbers in the unpaired engine's shape (one n: the pairs)."""
        return PrimaryResult(
            self.method, self.champion_mean, self.challenger_mean, self.diff, self.ci_low,
            self.ci_high, self.z, self.margin, self.n_pairs, self.n_pairs,
        )  # fmt: skip


def variance_floor(margin: float) -> float:
    """The least Var(D) of any pair distribution on the null boundary theta = -margin."""
    return margin * (1 - margin)


def paired_variance(discordant: np.ndarray, n: np.ndarray, margin: float) -> np.ndarray:
    """v: Tango's restricted Var(D) of the even split of the discordant count (module docstring);
    arrays broadcast. The floor only absorbs rounding: the restricted root is never below it."""
    n = np.maximum(np.asarray(n, dtype=float), 1.0)
    half = np.asarray(discordant, dtype=float) / 2
    restricted = 2 * tango_restricted_q(half, half, n, -margin) - margin * (1 + margin)
    return np.maximum(restricted, variance_floor(margin))


def paired_information(discordant: np.ndarray, n: np.ndarray, margin: float) -> np.ndarray:
    """Information n / v of theta_hat: the same scale as the design's maximum information."""
    return np.asarray(n, dtype=float) / paired_variance(discordant, n, margin)


def tango_restricted_q(b: np.ndarray, c: np.ndarray, n: np.ndarray, theta0: float) -> np.ndarray:
    """Maximum-likelihood P(champion only) under theta = theta0 (Tango 1998): the root
    of 2n q^2 + B q + C = 0 inside the parameter space."""
    b, c, n = (np.asarray(x, dtype=float) for x in (b, c, n))
    big_b = -b - c + (2 * n - b + c) * theta0
    big_c = -c * theta0 * (1 - theta0)
    root = np.sqrt(np.maximum(big_b**2 - 8 * n * big_c, 0.0))
    return (root - big_b) / (4 * n)


def tango_z(b: np.ndarray, c: np.ndarray, n: np.ndarray, theta0: float) -> np.ndarray:
    """Tango's score statistic for H0: theta = theta0, with b = challenger only, c = champion
    only; theta0 = 0 gives McNemar's (b - c) / sqrt(b + c)."""
    b, c, n = (np.asarray(x, dtype=float) for x in (b, c, n))
    var = n * (2 * tango_restricted_q(b, c, n, theta0) + theta0 * (1 - theta0))
    num = b - c - n * theta0
    with np.errstate(divide="ignore", invalid="ignore"):
        z = num / np.sqrt(np.maximum(var, 0.0))
    return np.where(var > 0, z, np.where(num == 0, 0.0, np.copysign(np.inf, num)))


def tango_interval(b: int, c: int, n: int, level: float) -> tuple[float, float]:
    """Tango's score interval for theta at confidence ``level``, by inverting the statistic."""
    q = float(stats.norm.isf((1 - level) / 2))
    est = (b - c) / n
    eps = 1e-9

    def score(theta0: float) -> float:
        return float(tango_z(b, c, n, theta0))

    low = -1.0 if est <= -1 + eps else optimize.brentq(lambda t: score(t) - q, -1 + eps, est)
    high = 1.0 if est >= 1 - eps else optimize.brentq(lambda t: score(t) + q, est, 1 - eps)
    return float(low), float(high)


def _first_reaching(z_obs: float, n: int, m_max: int, margin: float) -> np.ndarray:
    """For each discordant count m <= m_max, the smallest challenger-only count whose Tango
    statistic reaches z_obs (m + 1 when none does). The statistic increases with b at fixed m
    (tested), so the event {z >= z_obs} given m is one binomial upper tail."""
    m = np.arange(m_max + 1)
    b = m.copy()
    with np.errstate(invalid="ignore"):
        grid = tango_z(b[None, :], m[:, None] - b[None, :], n, -margin)
    reach = (grid >= z_obs - 1e-12) & (b[None, :] <= m[:, None])
    return np.where(reach.any(axis=1), reach.argmax(axis=1), m + 1)


@lru_cache(maxsize=65_536)  # the bench meets the same counts in many streams
def exact_p_value(b: int, c: int, n: int, margin: float, gamma: float) -> float:
    """Berger-Boos exact unconditional p-value of H0: theta <= -margin (see module docstring).

    The nuisance p_disc ranges over the null values (>= margin) inside the one-sided 1 - gamma
    Clopper-Pearson upper bound from the discordant count (m ~ Bin(n, p_disc)); if none is inside,
    only gamma is left. Under theta = -margin and p_disc, the statistic's null distribution is
    m ~ Bin(n, p_disc), then challenger-only ~ Bin(m, pi0)."""
    m = b + c
    upper = 1.0 if m == n else float(stats.beta.ppf(1 - gamma, m + 1, n - m))
    if upper < margin:
        return gamma
    z_obs = float(tango_z(b, c, n, -margin))
    m_max = int(min(n, stats.binom.isf(1e-12, n, upper) + 1))
    first = _first_reaching(z_obs, n, m_max, margin)
    m = np.arange(m_max + 1)
    p = np.linspace(margin, upper, NUISANCE_GRID)[:, None]  # from the edge: p_disc = delta
    # given m, challenger-only ~ Bin(m, pi0) with pi0 = (p_disc - margin) / (2 p_disc)
    tails = stats.binom.sf(first - 1, m, (p - margin) / (2 * p))
    worst = float(np.max(np.sum(stats.binom.pmf(m, n, p) * tails, axis=1)))
    return min(1.0, worst + gamma)


def on_exact_test(discordant: np.ndarray) -> np.ndarray:
    """Whether looks with these discordant counts take the exact test (module docstring)."""
    return np.asarray(discordant) < EXACT_BELOW


def paired_method(discordant: int) -> str:
    """Which statistic a look with this many discordant pairs takes."""
    return EXACT if on_exact_test(discordant) else TANGO


def paired_z(
    b: np.ndarray, c: np.ndarray, n: np.ndarray, margin: float, alpha: float
) -> np.ndarray:
    """The statistic the gate compares with its boundaries, for any number of looks at once:
    Tango's z; below :data:`EXACT_BELOW` discordant pairs (none included: its p-value is
    about (1 - delta)^n, evidence only when n is large) the exact p-value on the z scale,
    Phi^-1(1 - p).
    Vectorised so that the bench simulates the engine's own choice, not a copy of it."""
    shape = np.broadcast_shapes(*(np.shape(x) for x in (b, c, n)))
    b, c, n = (np.broadcast_to(x, shape).ravel().astype(int) for x in (b, c, n))
    z = np.asarray(tango_z(b, c, n, -margin), dtype=float)
    for i in np.flatnonzero(on_exact_test(b + c)):
        p = exact_p_value(int(b[i]), int(c[i]), int(n[i]), margin, GAMMA_SHARE * alpha)
        z[i] = stats.norm.isf(p)
    return z.reshape(shape)


def paired_statistic(paired: PairedOutcomes, margin: float, alpha: float) -> PairedResult | None:
    """The statistic at a look, or None with no pairs."""
    n, b, c = paired.n, paired.challenger_only, paired.champion_only
    if n == 0:
        return None
    z = float(paired_z(b, c, n, margin, alpha))
    low, high = tango_interval(b, c, n, 1 - 2 * alpha)
    return PairedResult(
        paired_method(b + c), n, c, b, b + c, paired.diff, paired.p_disc,
        float(paired_variance(b + c, n, margin)), z, float(stats.norm.sf(z)), low, high, margin,
        (paired.both_correct + c) / n, (paired.both_correct + b) / n,
    )  # fmt: skip
