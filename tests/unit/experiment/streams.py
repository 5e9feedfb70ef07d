"""Evidence the gate tests build: counts as a simulation gives them, and a stream of pokes
through the engine with its looks kept as JSON between them, as the sensor keeps them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from canary.experiment.gates import (
    Decision,
    GateConfig,
    Outcomes,
    StageEvidence,
    VariantEvidence,
    Verdict,
    evaluate,
)

START = datetime(2025, 1, 1, tzinfo=UTC)


def counts_evidence(n0: int, k0: int, n1: int, k1: int, **kwargs: Any) -> StageEvidence:
    """Counts-only evidence (n requests, k correct per variant), as a simulation gives."""
    minutes = kwargs.pop("minutes", 1.0)
    weights = kwargs.pop("weights", (50, 50))
    e5 = kwargs.pop("errors_5xx", (0, 0))
    champ = VariantEvidence("champion", n0, errors_5xx=e5[0], outcomes=Outcomes(n0, k0, k0))
    chall = VariantEvidence("challenger", n1, errors_5xx=e5[1], outcomes=Outcomes(n1, k1, k1))
    end = START + timedelta(minutes=minutes)
    return StageEvidence(0, weights, champ, chall, START, end, **kwargs)


def poked_until_decided(
    config: GateConfig, p0: float, p1: float, seed: int, chunk: int = 40
) -> tuple[Decision, int, list[dict[str, Any]]]:
    """Poke the engine every ``chunk`` requests per variant until it decides; JSON round-trips
    the looks between pokes exactly as a rescheduled sensor would. The decision, the requests
    per variant at it, and the looks."""
    rng = np.random.default_rng(seed)
    n = k0 = k1 = 0
    looks: list = []
    while True:
        n += chunk
        k0 += rng.binomial(chunk, p0)
        k1 += rng.binomial(chunk, p1)
        decision, looks = evaluate(counts_evidence(n, k0, n, k1), config, looks)
        looks = json.loads(json.dumps(looks))
        if decision.verdict is not Verdict.CONTINUE:
            return decision, n, looks
