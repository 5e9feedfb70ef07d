"""The primary statistic: is the challenger's quality no worse than the champion's minus delta?

Why several estimators behind one result type: the hypothesis is always H0: mu_1 - mu_0 <= -delta,
but the right estimate of the difference depends on the stage. Concurrent 0/1 outcomes use the
Farrington-Manning score test (statsmodels; Agresti-Caffo CI: closed form, good coverage,
and unlike the inverted score CI it never fails at 0% or 100%), real-valued rewards a Welch z,
adaptive allocation the Hajek IPW difference (canary.experiment.propensity), and a 0/100 stage the
champion's carried estimate (0/1 outcomes: the score test against its pooled counts; else its
variance is added to the challenger's: independent samples).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
from scipy import stats
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    score_test_proportions_2indep,
    test_proportions_2indep,
)

from canary.experiment.gates.evidence import (
    StageEvidence,
    is_binary,
    smoothed_bernoulli_variance,
)
from canary.experiment.propensity import ipw_difference


@dataclass(frozen=True)
class PrimaryResult:
    """Estimates and the non-inferiority z (large z favours the challenger)."""

    method: str
    champion_mean: float
    challenger_mean: float
    diff: float
    ci_low: float
    ci_high: float
    z: float
    margin: float
    n_champion: int
    n_challenger: int

    def to_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


@lru_cache(maxsize=256)
def score_planning_variance(rate: float, margin: float, alpha: float, power: float) -> float:
    """The per-request variance that sizes the Farrington-Manning score test to ``power`` at a
    50/50 split when both models are right at ``rate``.

    Why not p(1 - p): the score statistic standardises with the variance restricted to the null
    (p1 - p0 = -margin), which near 0 or 1 exceeds p(1 - p) (rate 0.97, margin 0.02: by 9.7 %),
    so a test sized with p(1 - p) falls short of its power (0.78 there; 0.6 at rate 0.99).
    Farrington & Manning (1990) size it with n = (z_a sqrt(2 v0) + z_b sqrt(2 v1))^2 / margin^2,
    v0 the mean restricted variance (statsmodels' constrained estimates at the planning rates),
    v1 = p(1 - p); written as one variance, ((z_a sqrt(v0) + z_b sqrt(v1)) / (z_a + z_b))^2, it
    keeps the design's single information scale. Away from 0 and 1 it is p(1 - p) to 0.1 %."""
    null = score_test_proportions_2indep(
        rate, 1.0, rate, 1.0, value=-margin, compare="diff", correction=False
    )
    v0 = (null.prop1_null * (1 - null.prop1_null) + null.prop2_null * (1 - null.prop2_null)) / 2
    z_a, z_b = stats.norm.isf(alpha), stats.norm.isf(1 - power)
    return float(((z_a * math.sqrt(v0) + z_b * math.sqrt(rate * (1 - rate))) / (z_a + z_b)) ** 2)


def primary_statistic(evidence: StageEvidence, margin: float, alpha: float) -> PrimaryResult | None:
    """The statistic for this stage, or None when there is not yet enough data to compute one.

    The CI is two-sided at 1 - 2 alpha, so its lower end is the one-sided alpha bound that a
    fixed-horizon non-inferiority test would compare with -margin."""
    c0, c1 = evidence.champion.outcomes, evidence.challenger.outcomes
    if c1.n < 2 or (evidence.carried is None and c0.n < 2):
        return None
    if evidence.carried is not None and evidence.shares[0] == 0:
        return _carried(evidence, margin, alpha)
    if evidence.adaptive:
        return _ipw(evidence, margin, alpha)
    if c0.binary and c1.binary:
        return _score(evidence, margin, alpha)
    return _welch(evidence, margin, alpha)


def _score(ev: StageEvidence, margin: float, alpha: float) -> PrimaryResult:
    c0, c1 = ev.champion.outcomes, ev.challenger.outcomes
    counts = (round(c0.total), c0.n, round(c1.total), c1.n)
    return _score_of_counts("farrington_manning_score", *counts, margin, alpha)


def _score_of_counts(
    method: str, k0: int, n0: int, k1: int, n1: int, margin: float, alpha: float
) -> PrimaryResult:
    """The Farrington-Manning score test of k1 of n1 against k0 of n0. Why the score test for 0/1
    outcomes: it standardises with the variance restricted to the null; a Wald z standardises
    with the observed one, which is small exactly when the challenger did well by chance near 0
    or 1, and so promotes too often there."""
    low, high = confint_proportions_2indep(k1, n1, k0, n0, method="agresti-caffo", alpha=2 * alpha)
    m0, m1 = k0 / n0, k1 / n1
    z = score_z(k0, n0, k1, n1, margin)
    return PrimaryResult(method, m0, m1, m1 - m0, float(low), float(high), z, margin, n0, n1)


def score_z(k0: int, n0: int, k1: int, n1: int, margin: float) -> float:
    """The Farrington-Manning score z of k1 of n1 against k0 of n0 (H0: p1 - p0 <= -margin).
    statsmodels also computes an odds ratio it does not need, which divides by zero when a
    variant is always right: that warning is silenced, the statistic is not affected."""
    with np.errstate(divide="ignore", invalid="ignore"):
        test = test_proportions_2indep(
            k1, n1, k0, n0, value=-margin, method="score", compare="diff", alternative="larger"
        )
    z = float(test.statistic)
    if not math.isfinite(z):  # degenerate (all successes): the score variance is zero
        z = math.inf if k1 / n1 - k0 / n0 > -margin else -math.inf
    return z


def _welch(ev: StageEvidence, margin: float, alpha: float) -> PrimaryResult | None:
    c0, c1 = ev.champion.outcomes, ev.challenger.outcomes
    se = math.sqrt(c0.variance / c0.n + c1.variance / c1.n)
    return _from_se("welch_z", c0.mean, c1.mean, se, margin, alpha, c0.n, c1.n)


def _carried(ev: StageEvidence, margin: float, alpha: float) -> PrimaryResult | None:
    """The challenger against the champion's estimate from earlier stages: for 0/1 outcomes the
    score test (the carried estimate pools the champion's outcomes: a binomial sample of its
    own), else a Wald z with the carried mean's variance added."""
    c1, carried = ev.challenger.outcomes, ev.carried
    assert carried is not None
    if carried.binary and c1.binary:
        counts = (round(carried.mean * carried.n), carried.n, round(c1.total), c1.n)
        return _score_of_counts("carried_champion_score", *counts, margin, alpha)
    se = math.sqrt(c1.variance / c1.n + carried.variance)
    return _from_se("carried_champion_z", carried.mean, c1.mean, se, margin, alpha, carried.n, c1.n)


def _ipw(ev: StageEvidence, margin: float, alpha: float) -> PrimaryResult | None:
    champ, chall = ev.champion, ev.challenger
    if champ.values is None or chall.values is None:
        raise ValueError("values: adaptive evidence needs per-request values and propensities")
    arms = np.array([champ.name] * len(champ.values) + [chall.name] * len(chall.values))
    est = ipw_difference(
        arms,
        np.concatenate([champ.values, chall.values]),
        np.concatenate([champ.propensities, chall.propensities]),
        chall.name,
        champ.name,
        method="hajek",
        alpha=2 * alpha,
    )
    m0 = _hajek_mean(champ.values, champ.propensities)
    se = max(est.se, _bernoulli_floor(champ.values, chall.values))
    return _from_se(
        "ipw_hajek", m0, m0 + est.mean, se, margin, alpha, len(champ.values), len(chall.values)
    )


def _bernoulli_floor(*arms: np.ndarray) -> float:
    """For 0/1 outcomes, the least standard error the IPW difference is given: each arm's as a
    binomial with :func:`smoothed_bernoulli_variance`. The observed spread is small exactly
    when an arm did well by chance near 0 or 1, and zero when every outcome agrees; it then
    would promote (or roll back) on no measured spread at all."""
    if not all(is_binary(arm) for arm in arms):
        return 0.0
    return math.sqrt(
        sum(smoothed_bernoulli_variance(arm.sum(), len(arm)) / len(arm) for arm in arms)
    )


def _hajek_mean(values: np.ndarray, propensities: np.ndarray) -> float:
    w = 1.0 / np.asarray(propensities, dtype=float)
    return float(np.sum(w * values) / np.sum(w))


def _from_se(
    method: str, m0: float, m1: float, se: float, margin: float, alpha: float, n0: int, n1: int
) -> PrimaryResult | None:
    """A z from an observed standard error, or None while that error is zero: z would be
    infinite and decide at any boundary on no measured spread. For 0/1 outcomes it never is
    (:func:`_bernoulli_floor`); constant rewards of another kind give no statistic, and the
    stage's deadline ends it."""
    if not se > 0:
        return None
    diff = m1 - m0
    q = float(stats.norm.isf(alpha))
    z = (diff + margin) / se
    return PrimaryResult(method, m0, m1, diff, diff - q * se, diff + q * se, z, margin, n0, n1)
