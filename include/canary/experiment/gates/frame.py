"""Build a stage's evidence from a replay-results DataFrame.

Columns: stage, user_id, inference_id, variant, target_variant, propensity, score, label, reward,
latency_ms, status (HTTP int, 200 ok; for a ModelError the model container's own, as CloudWatch
counts it), error_code, timestamp. Why a builder here and not in the
replay: the gate owns what counts as an outcome (accuracy at a threshold, reward, Brier), so the
replay just logs and the gate interprets.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd

from canary.experiment.gates.config import GateConfig
from canary.experiment.gates.evidence import (
    CarriedEstimate,
    Outcomes,
    PairedOutcomes,
    StageEvidence,
    VariantEvidence,
    is_binary,
)
from canary.experiment.rewards import metric_outcomes
from canary.plan import Metric

REQUIRED = ("stage", "variant", "status")


def evidence_from_frame(
    frame: pd.DataFrame,
    *,
    stage: int,
    weights: tuple[float, float],
    variants: tuple[str, str],
    config: GateConfig,
    carried: CarriedEstimate | None = None,
    started_at: datetime | None = None,
    observed_at: datetime | None = None,
    paired: PairedOutcomes | None = None,
) -> StageEvidence:
    """Evidence of ``stage`` for (champion, challenger) = ``variants``.

    Allocation is treated as adaptive (IPW, propensity-based SRM) when ``target_variant`` is set
    and the logged propensities differ from the configured shares. ``paired`` is a shadow
    stage's agreement table (the rows hold the champion's answers only)."""
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise ValueError(f"{missing[0]}: column not found in replay frame")
    rows = frame[frame["stage"] == stage]
    served = _served_variant(rows)
    unknown = sorted(set(served.dropna()) - set(variants))
    if unknown:
        raise ValueError(f"variant: {unknown[0]!r} is neither of {variants}")
    adaptive = _is_adaptive(rows, weights, served, variants)
    evidence = [_variant(rows[served == v], v, config, adaptive) for v in variants]
    times = pd.to_datetime(rows["timestamp"], utc=True) if "timestamp" in rows else None
    start = started_at or (times.min().to_pydatetime() if times is not None and len(rows) else None)
    now = observed_at or (times.max().to_pydatetime() if times is not None and len(rows) else None)
    start = start or datetime.now(UTC)
    return StageEvidence(
        stage=stage,
        weights=weights,
        champion=evidence[0],
        challenger=evidence[1],
        started_at=start,
        observed_at=now or start,
        carried=carried,
        expected_shares=_propensity_shares(rows, served, variants) if adaptive else None,
        adaptive=adaptive,
        paired=paired,
    )


def _served_variant(rows: pd.DataFrame) -> pd.Series:
    """The variant that served (or was asked to serve) each request; errors may lack the header."""
    served = rows["variant"]
    if "target_variant" in rows:
        served = served.fillna(rows["target_variant"])
    return served


def _is_adaptive(
    rows: pd.DataFrame, weights: tuple[float, float], served: pd.Series, variants: tuple[str, str]
) -> bool:
    if "propensity" not in rows or "target_variant" not in rows:
        return False
    if rows["target_variant"].isna().all() or rows["propensity"].isna().any() or rows.empty:
        return False
    share = np.array(weights, dtype=float) / sum(weights)
    expected = np.where(served == variants[0], share[0], share[1])
    return not np.allclose(rows["propensity"].to_numpy(float), expected, atol=1e-6)


def _propensity_shares(
    rows: pd.DataFrame, served: pd.Series, variants: tuple[str, str]
) -> tuple[float, float]:
    """Expected share of each variant: sum over requests of P(assigned to it), from the logged
    propensity of the chosen arm (two arms: the other gets 1 - p)."""
    p = rows["propensity"].to_numpy(float)
    to_champion = np.where(served == variants[0], p, 1 - p).sum()
    return float(to_champion / len(p)), float(1 - to_champion / len(p))


def _variant(rows: pd.DataFrame, name: str, config: GateConfig, adaptive: bool) -> VariantEvidence:
    status = rows["status"].to_numpy(int)
    ok = rows[status == 200]
    values, used = _outcome_values(ok, config)
    labelled = ok[used]
    scores = labels = None
    if {"score", "label"} <= set(labelled.columns) and len(labelled):
        scores, labels = labelled["score"].to_numpy(float), labelled["label"].to_numpy(int)
    latencies = ok["latency_ms"].dropna().to_numpy(float) if "latency_ms" in ok else None
    return VariantEvidence(
        name=name,
        requests=len(rows),
        errors_4xx=int(((status >= 400) & (status < 500)).sum()),
        errors_5xx=int((status >= 500).sum()),
        outcomes=Outcomes.of(values, binary=config.metric is Metric.ACCURACY or is_binary(values)),
        latencies_ms=latencies,
        scores=scores,
        labels=labels,
        values=values if adaptive else None,
        propensities=labelled["propensity"].to_numpy(float) if adaptive else None,
    )


def _outcome_values(ok: pd.DataFrame, config: GateConfig) -> tuple[np.ndarray, np.ndarray]:
    """Per-request outcome of the configured metric, and which rows had one (label or reward)."""
    if config.metric is Metric.REWARD:
        if "reward" not in ok:
            raise ValueError("reward: metric 'reward' needs a reward column")
        used = ok["reward"].notna().to_numpy()
        return ok["reward"].to_numpy(float)[used], used
    for col in ("score", "label"):
        if col not in ok:
            raise ValueError(f"{col}: metric {config.metric.value!r} needs a {col} column")
    # every labelled answer counts; one without a usable score as the worst (metric_outcomes)
    used = ok["label"].notna().to_numpy()
    score, label = ok["score"].to_numpy(float)[used], ok["label"].to_numpy(float)[used]
    return metric_outcomes(config.metric, score, label, config.threshold), used
