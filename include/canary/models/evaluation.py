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

from canary.replay.records import RESULT_COLUMNS

#: Score at or above which a prediction counts as "churn".
DEFAULT_THRESHOLD: Final[float] = 0.5

#: Columns a replay-results frame has (one row per request sent): the replay's results contract,
#: defined once in ``canary.replay.records``.
REPLAY_COLUMNS: Final[tuple[str, ...]] = RESULT_COLUMNS


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


@dataclass(frozen=True)
class OperationalMetrics:
    """Request counts, error rates and latency percentiles of one variant.

    Latency percentiles are over successful requests only, like SageMaker's ``ModelLatency``
    (a fast 4XX would otherwise flatter a failing variant). Rates are ``None`` with no requests.
    """

    requests: int
    ok: int
    errors_4xx: int
    errors_5xx: int
    rate_4xx: float | None
    rate_5xx: float | None
    latency_p50_ms: float | None
    latency_p99_ms: float | None


def error_rates(
    invocations: int, errors_4xx: int, errors_5xx: int
) -> tuple[float | None, float | None]:
    """4XX and 5XX rates from counts (as CloudWatch reports them); ``None`` with no invocations."""
    for name, value in (
        ("invocations", invocations),
        ("errors_4xx", errors_4xx),
        ("errors_5xx", errors_5xx),
    ):
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
    if errors_4xx + errors_5xx > invocations:
        raise ValueError(
            f"errors_4xx + errors_5xx = {errors_4xx + errors_5xx} exceeds invocations {invocations}"
        )
    if invocations == 0:
        return None, None
    return errors_4xx / invocations, errors_5xx / invocations


def latency_percentiles(
    latency_ms: Sequence[float] | np.ndarray,
) -> tuple[float | None, float | None]:
    """p50 and p99 in milliseconds (linear interpolation); ``None`` when there is no sample."""
    arr = np.asarray(latency_ms, dtype=float)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return None, None
    p50, p99 = np.percentile(arr, [50, 99])
    return float(p50), float(p99)


def operational_metrics(status: Sequence[int], latency_ms: Sequence[float]) -> OperationalMetrics:
    """Counts and rates from per-request HTTP statuses; latency percentiles of the 200s."""
    codes = np.asarray(status, dtype=np.int64)
    lat = np.asarray(latency_ms, dtype=float)
    if codes.shape != lat.shape:
        raise ValueError(f"status and latency_ms differ in length: {codes.size} vs {lat.size}")
    n4 = int(((codes >= 400) & (codes < 500)).sum())
    n5 = int(((codes >= 500) & (codes < 600)).sum())
    rate_4xx, rate_5xx = error_rates(int(codes.size), n4, n5)
    p50, p99 = latency_percentiles(lat[codes == 200])
    return OperationalMetrics(
        requests=int(codes.size),
        ok=int((codes == 200).sum()),
        errors_4xx=n4,
        errors_5xx=n5,
        rate_4xx=rate_4xx,
        rate_5xx=rate_5xx,
        latency_p50_ms=p50,
        latency_p99_ms=p99,
    )


@dataclass(frozen=True)
class VariantEvaluation:
    """Everything we know about one variant; ``quality`` is ``None`` with no labelled successes."""

    variant: str
    operational: OperationalMetrics
    labelled: int
    mean_reward: float | None
    quality: ClassificationMetrics | None
    quality_reason: str | None
    # labelled successes whose answer was no usable score (garbage, NaN): outside the quality
    # metrics (scikit-learn takes no NaN), where the gate counts each as wrong
    unusable: int = 0

    def row(self) -> dict[str, Any]:
        """A flat row for the per-variant table (JSON-able: no NaN, ``None`` instead)."""
        q = self.quality
        quality = {
            "accuracy": q.accuracy if q else None,
            "precision": q.precision if q else None,
            "recall": q.recall if q else None,
            "f1": q.f1 if q else None,
            "roc_auc": q.roc_auc if q else None,
            "tn": q.tn if q else None,
            "fp": q.fp if q else None,
            "fn": q.fn if q else None,
            "tp": q.tp if q else None,
        }
        return {
            "variant": self.variant,
            **asdict(self.operational),
            "labelled": self.labelled,
            "unusable": self.unusable,
            "mean_reward": self.mean_reward,
            **quality,
            "note": self.quality_reason or (q.roc_auc_reason if q else None),
        }


#: Variant name used for requests the endpoint rejected before routing them anywhere.
UNROUTED: Final[str] = "(unrouted)"


def _check_replay_frame(results: pd.DataFrame) -> None:
    if not isinstance(results, pd.DataFrame):
        raise TypeError(f"results must be a pandas DataFrame, got {type(results).__name__}")
    needed = ("variant", "score", "label", "latency_ms", "status")
    missing = [c for c in needed if c not in results.columns]
    if missing:
        raise ValueError(f"replay results are missing columns: {', '.join(missing)}")
    if results["status"].isna().any():
        raise ValueError("column 'status' has missing values: every request has an HTTP status")


def _variant_names(results: pd.DataFrame) -> pd.Series:
    """Served variant; for rejected requests the targeted one; else ``UNROUTED``."""
    names = results["variant"]
    if "target_variant" in results.columns:
        names = names.fillna(results["target_variant"])
    return names.fillna(UNROUTED).astype(str)


def evaluate_variant(
    name: str, rows: pd.DataFrame, threshold: float = DEFAULT_THRESHOLD
) -> VariantEvaluation:
    """Evaluate one variant's replay rows (see :func:`evaluate_variants` for the columns)."""
    ops = operational_metrics(rows["status"].to_numpy(), rows["latency_ms"].to_numpy())
    answered = rows[(rows["status"] == 200) & rows["label"].notna()]
    ok = answered[answered["score"].notna()]
    quality, reason = None, None
    if len(ok):
        quality = classification_metrics(ok["label"].astype(int), ok["score"], threshold)
    else:
        reason = "no successful request with a label yet: quality metrics undefined"
    reward = rows["reward"].dropna() if "reward" in rows.columns else pd.Series(dtype=float)
    return VariantEvaluation(
        variant=name,
        operational=ops,
        labelled=len(ok),
        mean_reward=float(reward.mean()) if len(reward) else None,
        quality=quality,
        quality_reason=reason,
        unusable=len(answered) - len(ok),
    )


@dataclass(frozen=True)
class VariantReport:
    """Per-variant evaluation of a replay, as a table and as a JSON-able dict."""

    threshold: float
    stage: str | None
    variants: dict[str, VariantEvaluation]

    def table(self) -> pd.DataFrame:
        """One row per variant, indexed by variant name."""
        rows = [v.row() for v in self.variants.values()]
        return pd.DataFrame(rows).set_index("variant") if rows else pd.DataFrame()

    def to_dict(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "stage": self.stage,
            "variants": {name: v.row() for name, v in self.variants.items()},
        }


def evaluate_variants(
    results: pd.DataFrame,
    threshold: float = DEFAULT_THRESHOLD,
    stage: str | None = None,
) -> VariantReport:
    """Evaluate every variant in replay results (columns: ``RESULT_COLUMNS``).

    Uses ``variant``, ``status`` (HTTP int, 200 ok), ``score``, ``label`` (may be missing until
    ground truth arrives), ``latency_ms`` and, when present, ``reward``, ``target_variant`` and
    ``stage`` (pass ``stage`` to evaluate one stage only). Variants are in first-seen order.
    """
    _check_replay_frame(results)
    if stage is not None:
        if "stage" not in results.columns:
            raise ValueError("stage filter given but replay results have no 'stage' column")
        results = results[results["stage"].astype(str) == str(stage)]
    names = _variant_names(results)
    variants = {
        str(name): evaluate_variant(str(name), results[names == name], threshold)
        for name in names.unique()
    }
    return VariantReport(threshold=threshold, stage=stage, variants=variants)
