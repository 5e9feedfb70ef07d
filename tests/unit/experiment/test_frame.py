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
