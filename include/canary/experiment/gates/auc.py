"""ROC AUC of two variants compared with DeLong's test.

Why hand-written: scikit-learn gives the AUC but not its variance, and statsmodels/scipy have no
DeLong. This is DeLong, DeLong & Clarke-Pearson (1988) with the midrank algorithm of Sun & Xu
(2014). In a canary stage the two variants see different requests, so the samples are
independent and the variance of the difference is the sum of the two variances. In the shadow
stage both models score the same requests: the difference then has DeLong's covariance term
(:func:`compare_auc_paired`), which for models that mostly agree makes it far smaller; it is
checked against R's pROC (tests/unit/experiment/test_checks.py).
"""

from __future__ import annotations

from dataclasses import dataclass

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
    v10, v01 = _placements(s, y)
    variance = float(np.var(v10, ddof=1) / len(v10) + np.var(v01, ddof=1) / len(v01))
    return AucEstimate(float(v10.mean()), variance, len(v10), len(v01))


def _placements(s: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong's structural components: for each positive the share of negatives scored below it
    (ties one half), for each negative the share of positives scored above it. An answer
    without a usable score (NaN) ranks worst for its label, as the accuracy metric counts it
    wrong: below every negative when positive, above every positive when negative."""
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels: must be 0 or 1")
    s = np.where(np.isnan(s), np.where(y == 1, -np.inf, np.inf), s)
    pos, neg = s[y == 1], s[y == 0]
    m, n = len(pos), len(neg)
    if m < 2 or n < 2:
        raise ValueError(f"labels: need >= 2 positives and >= 2 negatives, got {m} and {n}")
    rank_all = stats.rankdata(np.concatenate([pos, neg]))
    rank_pos, rank_neg = stats.rankdata(pos), stats.rankdata(neg)
    v10 = (rank_all[:m] - rank_pos) / n
    v01 = 1.0 - (rank_all[m:] - rank_neg) / m
    return v10, v01


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


def compare_auc(
    champion: AucEstimate, challenger: AucEstimate, margin: float = 0.0
) -> AucComparison:
    """DeLong z test of H0: AUC_challenger - AUC_champion >= -margin against 'worse'."""
    se = float(np.sqrt(champion.variance + challenger.variance))
    return _comparison(champion.auc, challenger.auc, se, margin)


def compare_auc_paired(
    champion: np.ndarray, challenger: np.ndarray, labels: np.ndarray, margin: float = 0.0
) -> AucComparison:
    """The same test when both models scored the same requests (``labels`` theirs): the
    variance of the difference is Var_0 + Var_1 - 2 Cov from the placements' covariances."""
    y = np.asarray(labels)
    s0, s1 = np.asarray(champion, dtype=float), np.asarray(challenger, dtype=float)
    if not s0.shape == s1.shape == y.shape:
        raise ValueError(f"scores: shapes {s0.shape}, {s1.shape} differ from labels {y.shape}")
    (a10, a01), (b10, b01) = _placements(s0, y), _placements(s1, y)
    s10, s01 = np.cov(a10, b10), np.cov(a01, b01)  # 2x2, ddof 1
    contrast = np.array([-1.0, 1.0])
    variance = contrast @ s10 @ contrast / len(a10) + contrast @ s01 @ contrast / len(a01)
    return _comparison(float(a10.mean()), float(b10.mean()), float(np.sqrt(variance)), margin)


def _comparison(auc0: float, auc1: float, se: float, margin: float) -> AucComparison:
    diff = auc1 - auc0
    z = (diff + margin) / se if se > 0 else (np.inf if diff + margin >= 0 else -np.inf)
    return AucComparison(auc0, auc1, diff, se, float(z), float(stats.norm.cdf(z)), margin)
