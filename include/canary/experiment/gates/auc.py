"""ROC AUC of two independent samples compared with DeLong's test.

Why hand-written: scikit-learn gives the AUC but not its variance, and statsmodels/scipy have no
DeLong. This is DeLong, DeLong & Clarke-Pearson (1988) with the midrank algorithm of Sun & Xu
(2014); the two variants see different requests, so the samples are independent and the variance
of the difference is the sum of the two variances (no covariance term).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class AucEstimate:
    """AUC with DeLong's variance and the number of positives/negatives behind it."""

    auc: float
    variance: float
    positives: int
    negatives: int


def delong_auc(scores: np.ndarray, labels: np.ndarray) -> AucEstimate:
    """AUC (ties count one half) and DeLong's variance S10/m + S01/n."""
    s, y = np.asarray(scores, dtype=float), np.asarray(labels)
    if s.shape != y.shape:
        raise ValueError(f"labels: shape {y.shape} differs from scores {s.shape}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels: must be 0 or 1")
    pos, neg = s[y == 1], s[y == 0]
    m, n = len(pos), len(neg)
    if m < 2 or n < 2:
        raise ValueError(f"labels: need >= 2 positives and >= 2 negatives, got {m} and {n}")
    rank_all = stats.rankdata(np.concatenate([pos, neg]))
    rank_pos, rank_neg = stats.rankdata(pos), stats.rankdata(neg)
    v10 = (rank_all[:m] - rank_pos) / n  # share of negatives below each positive
    v01 = 1.0 - (rank_all[m:] - rank_neg) / m  # share of positives above each negative
    auc = float(v10.mean())
    variance = float(np.var(v10, ddof=1) / m + np.var(v01, ddof=1) / n)
    return AucEstimate(auc, variance, m, n)


@dataclass(frozen=True)
class AucComparison:
    """Challenger minus champion AUC, its standard error and the non-inferiority z statistic
    (z = (diff + margin) / se; small z means the challenger is worse than the margin allows)."""

    champion_auc: float
    challenger_auc: float
    diff: float
    se: float
    z: float
    p_worse: float
    margin: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def compare_auc(
    champion: AucEstimate, challenger: AucEstimate, margin: float = 0.0
) -> AucComparison:
    """DeLong z test of H0: AUC_challenger - AUC_champion >= -margin against 'worse'."""
    diff = challenger.auc - champion.auc
    se = float(np.sqrt(champion.variance + challenger.variance))
    z = (diff + margin) / se if se > 0 else (np.inf if diff + margin >= 0 else -np.inf)
    p_worse = float(stats.norm.cdf(z))
    return AucComparison(champion.auc, challenger.auc, diff, se, float(z), p_worse, margin)
