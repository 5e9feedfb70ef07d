"""Per-request rewards: how good one prediction was, as a number in [0, 1] a bandit can learn from.

Why a separate concept: the replay measures, the bandit learns, the gate judges; all three must
agree on what "good" means, and users must be able to change it (a business value per correct
churn call, a calibration score...) without touching the replay. A reward function takes the
model's score and the request's ground-truth label and returns a float in [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from canary.plan import Metric

RewardFn = Callable[[float, Any], float]


def _label_value(label: Any) -> float:
    """Labels arrive as ints, floats, bools or strings like "1"; name the problem if not binary."""
    try:
        value = float(label)
    except (TypeError, ValueError):
        raise ValueError(f"label: expected 0 or 1, got {label!r}") from None
    if value not in (0.0, 1.0):
        raise ValueError(f"label: expected 0 or 1, got {label!r}")
    return value


def correct_at(threshold: float = 0.5) -> RewardFn:
    """1 when ``score >= threshold`` agrees with the binary label, else 0 (the default reward)."""
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold: must lie in [0, 1], got {threshold!r}")

    def reward(score: float, label: Any) -> float:
        return float((score >= threshold) == (_label_value(label) == 1.0))

    reward.__name__ = f"correct_at_{threshold:g}"
    return reward


def correct(scores: np.ndarray, labels: np.ndarray, threshold: float) -> np.ndarray:
    """Per request, whether ``score >= threshold`` agrees with the 0/1 label: the accuracy
    metric's outcome, for arrays (the gate, telemetry and the shadow stage all judge by it).
    An answer without a usable score (NaN: a body that was no number) is wrong, never right
    by chance (NaN >= t is False, which "agrees" with every 0 label)."""
    scores = np.asarray(scores, dtype=float)
    agrees = (scores >= threshold) == (np.asarray(labels, dtype=float) == 1)
    return agrees & np.isfinite(scores)


#: The Brier outcome of an answer without a usable score: the worst a 0/1 label allows.
WORST_BRIER = -1.0


def metric_outcomes(
    metric: Metric, scores: np.ndarray, labels: np.ndarray, threshold: float
) -> np.ndarray:
    """Per request, what the gate judges from a score and its label: 1/0 for right/wrong
    (accuracy), minus the squared error (Brier). A reward is logged, not derived. An answer
    without a usable score gets the worst outcome: a model that answers garbage has not
    answered well, and leaving it out would judge it only where it did answer."""
    if metric is Metric.ACCURACY:
        return correct(scores, labels, threshold).astype(float)
    if metric is Metric.BRIER:
        scores = np.asarray(scores, dtype=float)
        squared = np.square(scores - np.asarray(labels, dtype=float))
        return np.where(np.isfinite(scores), -squared, WORST_BRIER)
    raise ValueError(f"metric: {metric.value!r} is not derived from scores and labels")


def brier_reward(score: float, label: Any) -> float:
    """``1 - (score - label)^2``: rewards calibration, not just the right side of 0.5."""
    return 1.0 - (float(score) - _label_value(label)) ** 2


def check_reward(value: float, name: str = "reward") -> float:
    """The bandit's Beta posterior needs rewards in [0, 1]; say so clearly when a plug-in errs."""
    if not isinstance(value, int | float) or math.isnan(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name}: reward functions must return a number in [0, 1], got {value!r}")
    return float(value)
