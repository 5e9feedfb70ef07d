"""Inverse-propensity-weighted (IPW) estimates of each variant's mean reward.

Why: when traffic is allocated adaptively (a bandit) or unevenly (25/75 weights), the plain mean of
the rewards a variant happened to receive is not what the gate wants. The gate wants "the mean
reward if *every* request had been served by this variant". Weighting each observed reward by
1/propensity (the probability with which that request's variant was chosen *at the time*) recovers
it:

* Horvitz–Thompson (HT): ``mean_hat = (1/n) * sum_i 1[A_i = a] * R_i / p_i``. Exactly unbiased even
  under adaptive designs, because each term has conditional expectation ``mu_a`` given the past
  (a martingale-difference argument); needs every ``p_i > 0`` for the arm that could be chosen.
* Hájek (self-normalised): ``sum_i w_i R_i / sum_i w_i`` with ``w_i = 1[A_i = a] / p_i``. Slightly
  biased (a ratio), but usually far lower variance and bounded within the reward range.

Variances are sandwich (linearisation) estimates, optionally clustered: with sticky users the unit
that is randomised is the *user*, so requests of one user are not independent and the variance must
sum per user first. Intervals are normal (Wald) intervals; both are large-sample approximations.

Deterministic policies (UCB1 without exploration) give the unchosen arm propensity 0 and make the
estimate impossible (positivity). The allocation strategies mix in an exploration floor for that
reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

Method = Literal["horvitz_thompson", "hajek"]
METHODS: tuple[Method, ...] = ("horvitz_thompson", "hajek")


@dataclass(frozen=True)
class IpwEstimate:
    """One IPW estimate: an arm's mean reward, or a difference of two arms (``arm`` = "b-a")."""

    arm: str
    method: Method
    n_total: int
    n_arm: int
    mean: float
    se: float
    ci_low: float
    ci_high: float
    effective_n: float
    z: float
    p_value: float


def _validated(
    arms: object, rewards: object, propensities: object, clusters: object | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Arrays of equal length, finite rewards, propensities in (0, 1]; cluster codes 0..G-1."""
    a = np.asarray(arms, dtype=object)
    r = np.asarray(rewards, dtype=float)
    p = np.asarray(propensities, dtype=float)
    if not (len(a) == len(r) == len(p)):
        raise ValueError(
            "arms, rewards and propensities must have equal length, "
            f"got {len(a)}, {len(r)}, {len(p)}"
        )
    if len(a) == 0:
        raise ValueError("arms: no observations to estimate from")
    if not np.all(np.isfinite(r)):
        raise ValueError("rewards: must all be finite (drop or score failed requests first)")
    if not np.all((p > 0) & (p <= 1)):
        bad = p[~((p > 0) & (p <= 1))][0]
        raise ValueError(f"propensities: must lie in (0, 1], found {bad!r}")
    if clusters is None:
        codes = np.arange(len(a))
    else:
        c = np.asarray(clusters, dtype=object)
        if len(c) != len(a):
            raise ValueError(f"clusters: length {len(c)} differs from arms length {len(a)}")
        codes = pd.factorize(pd.Series(c))[0]
    return a, r, p, codes


def _cluster_variance(terms: np.ndarray, codes: np.ndarray, center: bool) -> float:
    """Variance of a sum of per-unit terms; clusters are independent draws (G/(G-1) scaled)."""
    sums = np.bincount(codes, weights=terms)
    g = len(sums)
    if g < 2:
        return float("nan")
    dev = sums - sums.mean() if center else sums
    return float(g / (g - 1) * np.sum(dev**2))


def _finish(
    arm: str,
    method: Method,
    n_arm: int,
    n: int,
    mean: float,
    var: float,
    w: np.ndarray,
    alpha: float,
) -> IpwEstimate:
    """Attach the Wald interval, the z test against 0 and Kish's effective sample size."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha: must lie in (0, 1), got {alpha!r}")
    se = float(np.sqrt(var)) if np.isfinite(var) else float("nan")
    q = float(stats.norm.ppf(1 - alpha / 2))
    z = mean / se if se > 0 else float("nan")
    p_value = float(2 * stats.norm.sf(abs(z))) if np.isfinite(z) else float("nan")
    sw, sw2 = float(np.sum(w)), float(np.sum(w**2))
    eff = sw**2 / sw2 if sw2 > 0 else 0.0
    return IpwEstimate(
        arm, method, n, n_arm, float(mean), se, mean - q * se, mean + q * se, eff, z, p_value
    )


def _finish_arm(
    arm: str, method: Method, a: np.ndarray, p: np.ndarray, mean: float, var: float, alpha: float
) -> IpwEstimate:
    """:func:`_finish` for one arm's estimate: its weights are 1/p on the requests it served."""
    hit = a == arm
    w = np.where(hit, 1.0 / p, 0.0)
    return _finish(arm, method, int(np.sum(hit)), len(a), mean, var, w, alpha)


def _ht_terms(a: np.ndarray, r: np.ndarray, p: np.ndarray, arm: str) -> np.ndarray:
    hit = a == arm
    return np.where(hit, r / p, 0.0)


def _hajek_parts(
    a: np.ndarray, r: np.ndarray, p: np.ndarray, arm: str
) -> tuple[float, np.ndarray, float]:
    """Hájek mean, its linearised influence terms e_i / sum(w), and sum(w)."""
    w = np.where(a == arm, 1.0 / p, 0.0)
    sw = float(np.sum(w))
    if sw == 0:
        raise ValueError(f"arms: arm {arm!r} has no observations")
    mean = float(np.sum(w * r) / sw)
    return mean, w * (r - mean) / sw, sw


def horvitz_thompson(
    arms: object,
    rewards: object,
    propensities: object,
    arm: str,
    *,
    clusters: object | None = None,
    alpha: float = 0.05,
) -> IpwEstimate:
    """HT estimate of ``arm``'s mean reward over the whole population of requests (unbiased)."""
    a, r, p, codes = _validated(arms, rewards, propensities, clusters)
    x = _ht_terms(a, r, p, arm)
    var = _cluster_variance(x, codes, center=True) / len(a) ** 2
    return _finish_arm(arm, "horvitz_thompson", a, p, x.mean(), var, alpha)


def hajek(
    arms: object,
    rewards: object,
    propensities: object,
    arm: str,
    *,
    clusters: object | None = None,
    alpha: float = 0.05,
) -> IpwEstimate:
    """Self-normalised (Hájek) estimate of ``arm``'s mean reward, with linearised variance."""
    a, r, p, codes = _validated(arms, rewards, propensities, clusters)
    mean, infl, _ = _hajek_parts(a, r, p, arm)
    var = _cluster_variance(infl, codes, center=False)
    return _finish_arm(arm, "hajek", a, p, mean, var, alpha)


def ipw_difference(
    arms: object,
    rewards: object,
    propensities: object,
    treatment: str,
    control: str,
    *,
    method: Method = "hajek",
    clusters: object | None = None,
    alpha: float = 0.05,
) -> IpwEstimate:
    """Estimate ``mean(treatment) - mean(control)`` with a variance that keeps their covariance.

    Why a dedicated function: both arm estimates come from the same log, so they are correlated;
    subtracting two separately computed intervals would get the width wrong.
    """
    if method not in METHODS:
        raise ValueError(f"method: must be one of {METHODS}, got {method!r}")
    a, r, p, codes = _validated(arms, rewards, propensities, clusters)
    n = len(a)
    w = np.where((a == treatment) | (a == control), 1.0 / p, 0.0)
    if method == "horvitz_thompson":
        d = _ht_terms(a, r, p, treatment) - _ht_terms(a, r, p, control)
        var = _cluster_variance(d, codes, center=True) / n**2
        mean = float(d.mean())
    else:
        mt, et, _ = _hajek_parts(a, r, p, treatment)
        mc, ec, _ = _hajek_parts(a, r, p, control)
        var = _cluster_variance(et - ec, codes, center=False)
        mean = mt - mc
    n_pair = int(np.sum((a == treatment) | (a == control)))
    return _finish(f"{treatment}-{control}", method, n_pair, n, mean, var, w, alpha)
