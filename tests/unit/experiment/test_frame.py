"""Evidence from a replay-results DataFrame: counts, outcomes, adaptive allocation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from canary.experiment.gates import GateConfig, Verdict, evaluate, evidence_from_frame

VARIANTS = ("champ", "chall")


def _frame(n: int, seed: int, propensity=None) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    chall = rng.random(n) < (0.5 if propensity is None else propensity)
    label = rng.integers(0, 2, n)
    score = np.clip(label * 0.7 + rng.normal(0.15, 0.2, n), 0, 1)
    status = np.where(rng.random(n) < 0.01, 500, 200)
    prop = np.full(n, 0.5) if propensity is None else np.where(chall, propensity, 1 - propensity)
    return pd.DataFrame({
        "stage": 1, "user_id": rng.integers(0, 10**6, n),
        "inference_id": [f"i{i}" for i in range(n)],
        "variant": np.where(chall, "chall", "champ"),
        "target_variant": np.where(chall, "chall", "champ") if propensity is not None else None,
        "propensity": prop, "score": np.where(status == 200, score, np.nan),
        "label": label, "reward": (score >= 0.5) == label, "latency_ms": rng.gamma(4, 5, n),
        "status": status, "error_code": None,
        "timestamp": pd.date_range("2025-01-01", periods=n, freq="10ms", tz="UTC"),
    })  # fmt: skip


def test_counts_and_accuracy_from_the_frame() -> None:
    df = _frame(2000, 1)
    ev = evidence_from_frame(df, stage=1, weights=(50, 50), variants=VARIANTS, config=GateConfig())
    champ = df[df.variant == "champ"]
    ok = champ[champ.status == 200]
    assert ev.champion.requests == len(champ)
    assert ev.champion.errors_5xx == int((champ.status == 500).sum())
    assert ev.champion.outcomes.n == len(ok)
    assert ev.champion.outcomes.mean == pytest.approx(((ok.score >= 0.5) == (ok.label == 1)).mean())
    assert not ev.adaptive and ev.champion.latencies_ms is not None
    assert (ev.observed_at - ev.started_at).total_seconds() == pytest.approx(19.99)


def test_bandit_frame_is_adaptive_with_propensity_expectations() -> None:
    df = _frame(4000, 2, propensity=0.8)
    ev = evidence_from_frame(df, stage=1, weights=(50, 50), variants=VARIANTS, config=GateConfig())
    assert ev.adaptive
    assert ev.expected_shares == pytest.approx((0.2, 0.8), abs=1e-9)
    decision, _ = evaluate(ev, GateConfig(margin=0.05))
    assert decision.verdict is not Verdict.HALT  # 80/20 by propensity is not a mismatch
    assert decision.record["primary"]["method"] == "ipw_hajek"


def test_frame_errors_name_the_column() -> None:
    with pytest.raises(ValueError, match="status"):
        evidence_from_frame(pd.DataFrame({"stage": [1], "variant": ["champ"]}), stage=1,
                            weights=(50, 50), variants=VARIANTS, config=GateConfig())  # fmt: skip
    df = _frame(10, 3)
    df.loc[0, "variant"] = "ghost"
    with pytest.raises(ValueError, match="ghost"):
        evidence_from_frame(df, stage=1, weights=(50, 50), variants=VARIANTS, config=GateConfig())


def test_an_answer_that_is_no_number_counts_as_wrong_not_as_missing() -> None:
    """A challenger answering 200 with a body that is no number on a quarter of its requests
    (score NaN) is judged on every labelled answer: those are wrong. Left out, it would be
    judged only where it answered, and promoted at 90 % accuracy while a caller got nothing
    useful from one request in four."""
    df = _frame(4000, 4)
    df["status"], df["score"] = 200, np.where(df["label"] == 1, 0.9, 0.1)  # always right
    chall = np.flatnonzero(df["variant"] == "chall")
    df.loc[chall[: len(chall) // 4], "score"] = np.nan
    ev = evidence_from_frame(df, stage=1, weights=(50, 50), variants=VARIANTS, config=GateConfig())
    assert ev.challenger.outcomes.n == len(chall)
    assert ev.challenger.outcomes.mean == pytest.approx(1 - (len(chall) // 4) / len(chall))
    assert ev.champion.outcomes.mean == 1.0
    decision, _ = evaluate(ev, GateConfig(margin=0.05))
    assert decision.verdict is Verdict.ROLLBACK


@pytest.mark.parametrize(("metric", "worst"), [("accuracy", 0.0), ("brier", -1.0)])
def test_metric_outcomes_give_an_unusable_score_the_worst_outcome(metric, worst) -> None:
    from canary.experiment.rewards import metric_outcomes
    from canary.plan import Metric

    scores, labels = np.array([np.nan, np.nan, 0.9]), np.array([0, 1, 1])
    outcomes = metric_outcomes(Metric(metric), scores, labels, 0.5)
    assert list(outcomes[:2]) == [worst, worst] and outcomes[2] > worst


def test_an_unusable_score_ranks_worst_for_its_label_in_the_auc() -> None:
    from sklearn.metrics import roc_auc_score

    from canary.experiment.gates.auc import delong_auc

    labels = np.array([1, 1, 1, 0, 0, 0])
    scores = np.array([0.9, 0.8, np.nan, 0.2, 0.1, np.nan])
    worst = np.array([0.9, 0.8, -1.0, 0.2, 0.1, 2.0])  # NaN as the worst for its label
    assert delong_auc(scores, labels).auc == pytest.approx(roc_auc_score(labels, worst))
