"""Per-variant evaluation: prediction quality against labels, plus latency and error rates.

Why a module of its own: the offline check of a trained model, the report and the gates must all
compute accuracy / precision / recall / F1 / ROC AUC the same way, with scikit-learn, and must all
treat the awkward cases (no positives, no successful calls) the same honest way: a metric that is
undefined is ``None`` with a reason, never a made-up number.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

#: Score at or above which a prediction counts as "churn".
DEFAULT_THRESHOLD: Final[float] = 0.5

#: Columns a replay-results frame must have (one row per request sent).
REPLAY_COLUMNS: Final[tuple[str, ...]] = (
    "stage",
    "user_id",
    "inference_id",
    "variant",
    "target_variant",
    "propensity",
    "score",
    "label",
    "reward",
    "latency_ms",
    "status",
    "error_code",
    "timestamp",
)


@dataclass(frozen=True)
class ClassificationMetrics:
    """Quality of binary predictions; ``roc_auc`` is ``None`` when it is undefined (see reason)."""

    n: int
    positives: int
    threshold: float
    accuracy: float
    precision: float
    recall: float
    f1: float
    roc_auc: float | None
    roc_auc_reason: str | None
    tn: int
    fp: int
    fn: int
    tp: int

    def confusion(self) -> np.ndarray:
        """Confusion matrix in scikit-learn's layout: rows = true 0/1, columns = predicted 0/1."""
        return np.array([[self.tn, self.fp], [self.fn, self.tp]])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _as_binary_labels(labels: Sequence[int] | np.ndarray | pd.Series) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"labels must be one-dimensional, got shape {arr.shape}")
    if arr.size and not np.isin(arr, (0, 1)).all():
        bad = sorted({str(v) for v in arr[~np.isin(arr, (0, 1))]})[:5]
        raise ValueError(f"labels must be 0 or 1, found {', '.join(bad)}")
    return arr.astype(np.int64)


def _as_scores(scores: Sequence[float] | np.ndarray | pd.Series, n: int) -> np.ndarray:
    arr = np.asarray(scores, dtype=float)
    if arr.shape != (n,):
        raise ValueError(f"scores must have the same length as labels ({n}), got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("scores contain NaN or infinite values")
    if arr.size and (arr.min() < 0.0 or arr.max() > 1.0):
        raise ValueError("scores must be probabilities in [0, 1]")
    return arr


def classification_metrics(
    labels: Sequence[int] | np.ndarray | pd.Series,
    scores: Sequence[float] | np.ndarray | pd.Series,
    threshold: float = DEFAULT_THRESHOLD,
) -> ClassificationMetrics:
    """Accuracy, precision, recall, F1, ROC AUC and the confusion matrix, all via scikit-learn.

    Precision/recall/F1 use ``zero_division=0`` (sklearn's documented convention) so a variant that
    never predicts churn scores 0 rather than crashing; ROC AUC needs both classes, so with one
    class it is ``None`` and ``roc_auc_reason`` says why.
    """
    y = _as_binary_labels(labels)
    if y.size == 0:
        raise ValueError("labels is empty: nothing to evaluate")
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    s = _as_scores(scores, y.size)
    pred = (s >= threshold).astype(np.int64)
    tn, fp, fn, tp = (int(v) for v in confusion_matrix(y, pred, labels=[0, 1]).ravel())
    auc, reason = _roc_auc(y, s)
    return ClassificationMetrics(
        n=int(y.size),
        positives=int(y.sum()),
        threshold=float(threshold),
        accuracy=float(accuracy_score(y, pred)),
        precision=float(precision_score(y, pred, zero_division=0)),
        recall=float(recall_score(y, pred, zero_division=0)),
        f1=float(f1_score(y, pred, zero_division=0)),
        roc_auc=auc,
        roc_auc_reason=reason,
        tn=tn,
        fp=fp,
        fn=fn,
        tp=tp,
    )


def _roc_auc(y: np.ndarray, s: np.ndarray) -> tuple[float | None, str | None]:
    classes = np.unique(y)
    if classes.size < 2:
        return None, f"ROC AUC is undefined: every label is {int(classes[0])}"
    return float(roc_auc_score(y, s)), None
