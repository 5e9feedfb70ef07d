"""Per-variant evaluation against scikit-learn and hand-computed values."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from canary.models import evaluation
from canary.models.evaluation import classification_metrics, evaluate_variants


def test_hand_computed_example() -> None:
    # threshold 0.5 -> predictions 1,1,0,0,1,0 against labels 1,0,1,0,1,0: TP=2 FP=1 FN=1 TN=2
    m = classification_metrics([1, 0, 1, 0, 1, 0], [0.9, 0.6, 0.4, 0.1, 0.8, 0.3])
    assert (m.tn, m.fp, m.fn, m.tp) == (2, 1, 1, 2)
    assert m.accuracy == pytest.approx(4 / 6)
    assert m.precision == pytest.approx(2 / 3)
    assert m.recall == pytest.approx(2 / 3)
    assert m.f1 == pytest.approx(2 / 3)
    # 9 positive/negative pairs; positive 0.4 loses to 0.6 only -> AUC 8/9
    assert m.roc_auc == pytest.approx(8 / 9)


def test_matches_sklearn_on_random_scores() -> None:
    rng = np.random.default_rng(11)
    y = rng.integers(0, 2, 500)
    s = np.clip(0.3 * y + rng.random(500) * 0.7, 0, 1)
    m = classification_metrics(y, s, threshold=0.45)
    pred = s >= 0.45
    assert m.accuracy == accuracy_score(y, pred)
    assert m.precision == precision_score(y, pred)
    assert m.recall == recall_score(y, pred)
    assert m.f1 == f1_score(y, pred)
    assert m.roc_auc == roc_auc_score(y, s)
    np.testing.assert_array_equal(m.confusion(), confusion_matrix(y, pred))


def test_single_class_has_no_auc_but_a_reason() -> None:
    m = classification_metrics([0, 0, 0], [0.1, 0.7, 0.2])
    assert m.roc_auc is None
    assert "every label is 0" in m.roc_auc_reason
    assert m.accuracy == pytest.approx(2 / 3)
    assert m.precision == 0.0 and m.recall == 0.0


@pytest.mark.parametrize(
    ("labels", "scores", "match"),
    [
        ([0, 2], [0.1, 0.2], "labels"),
        ([0, 1], [0.1], "length"),
        ([0, 1], [0.1, 1.5], r"\[0, 1\]"),
        ([], [], "empty"),
    ],
)
def test_bad_inputs_are_named(labels, scores, match) -> None:
    with pytest.raises(ValueError, match=match):
        classification_metrics(labels, scores)


def test_error_rates_from_counts() -> None:
    assert evaluation.error_rates(200, 4, 10) == (0.02, 0.05)
    assert evaluation.error_rates(0, 0, 0) == (None, None)
    with pytest.raises(ValueError, match="exceeds invocations"):
        evaluation.error_rates(3, 2, 2)
    with pytest.raises(ValueError, match="errors_4xx"):
        evaluation.error_rates(3, -1, 0)


def test_latency_percentiles_of_successes_only() -> None:
    status = [200] * 100 + [500]
    latency = [*range(1, 101), 10_000.0]
    ops = evaluation.operational_metrics(status, latency)
    assert ops.latency_p50_ms == pytest.approx(50.5)
    assert ops.latency_p99_ms == pytest.approx(99.01)
    assert (ops.requests, ops.ok, ops.errors_5xx, ops.errors_4xx) == (101, 100, 1, 0)


def _replay_frame() -> pd.DataFrame:
    """Champion: 4 ok requests, 2 right, AUC 3/4; Challenger: only label 0, one 5XX; one 400."""
    specs = {
        "Champion": ([1, 0, 1, 0], [0.9, 0.6, 0.4, 0.1], [200, 200, 200, 200], [10, 12, 11, 30]),
        "Challenger": ([0, 0, 0, 0], [0.2, 0.1, None, 0.7], [200, 200, 500, 200], [5, 6, 40, 7]),
    }
    rows = []
    start = pd.Timestamp("2026-01-01T00:00:00Z")
    for variant, (labels, scores, statuses, lat) in specs.items():
        for i, (y, s, st, ms) in enumerate(zip(labels, scores, statuses, lat, strict=True)):
            ok = st == 200
            rows.append(
                {
                    "stage": "50/50",
                    "user_id": f"u{i}",
                    "inference_id": f"{variant}-{i}",
                    "variant": variant,
                    "target_variant": None,
                    "propensity": 0.5,
                    "score": s,
                    "label": y,
                    "reward": float(ok and (s >= 0.5) == y),
                    "latency_ms": float(ms),
                    "status": st,
                    "error_code": None if ok else "ModelError",
                    "timestamp": start + pd.Timedelta(seconds=i),
                }
            )
    unknown = {"variant": None, "target_variant": "Ghost", "status": 400, "score": None}
    rows.append({**rows[0], **unknown, "error_code": "ValidationError"})
    return pd.DataFrame(rows)


def test_per_variant_table_and_json() -> None:
    report = evaluate_variants(_replay_frame())
    table = report.table()
    assert list(table.index) == ["Champion", "Challenger", "Ghost"]
    champ = table.loc["Champion"]
    assert champ["accuracy"] == pytest.approx(0.5)  # predictions 1,1,0,0 vs labels 1,0,1,0
    assert champ["roc_auc"] == pytest.approx(0.75)
    assert champ["latency_p50_ms"] == pytest.approx(11.5)
    chal = table.loc["Challenger"]
    assert chal["labelled"] == 3
    assert chal["rate_5xx"] == pytest.approx(0.25)
    assert pd.isna(chal["roc_auc"])  # NaN in the table, None in the JSON
    assert "every label is 0" in chal["note"]
    assert table.loc["Ghost", "rate_4xx"] == 1.0
    assert "no successful request" in table.loc["Ghost", "note"]
    assert (champ["unusable"], chal["unusable"]) == (0, 0)
    as_json = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert as_json["variants"]["Challenger"]["accuracy"] == pytest.approx(2 / 3)
    assert as_json["variants"]["Challenger"]["roc_auc"] is None


def test_stage_filter_and_missing_columns() -> None:
    frame = _replay_frame()
    assert evaluate_variants(frame, stage="25/75").variants == {}
    assert set(evaluate_variants(frame, stage="50/50").variants) == {
        "Champion",
        "Challenger",
        "Ghost",
    }
    with pytest.raises(ValueError, match="latency_ms"):
        evaluate_variants(frame.drop(columns=["latency_ms"]))


def test_a_labelled_answer_without_a_usable_score_is_counted_apart() -> None:
    """A 200 whose answer was no number (NaN) is outside the quality metrics, which take no
    NaN, and the table says how many there were: the gate counts each as wrong."""
    frame = _replay_frame()
    champion = frame.index[(frame["variant"] == "Champion") & (frame["status"] == 200)][0]
    frame.loc[champion, "score"] = float("nan")
    row = evaluate_variants(frame).table().loc["Champion"]
    assert row["unusable"] == 1
    assert (
        row["labelled"]
        == (
            (frame["variant"] == "Champion") & (frame["status"] == 200) & frame["score"].notna()
        ).sum()
    )
