"""What the gate benches share: Monte Carlo estimates with their standard errors, the
fixed-sample size the issue measures every design against, and the real engine driven poke
by poke to cross-check their vectorised paths."""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import numpy as np

from canary.experiment.gates import GateConfig, StageEvidence, Verdict, evaluate
from canary.experiment.gates.sequential import fixed_sample_drift

START = datetime(2025, 1, 1, tzinfo=UTC)  # when a simulated stage opens
END = START + timedelta(minutes=1)  # when its evidence is read
MC_SLACK = 2  # Monte Carlo standard errors an estimate may miss its target by (issue 13)


def share(flags: np.ndarray) -> tuple[float, float]:
    """A rate and its binomial standard error."""
    p = float(np.mean(flags))
    return p, math.sqrt(p * (1 - p) / len(flags))


def at_most(estimate: float, se: float, bound: float) -> bool:
    """Whether a Monte Carlo estimate keeps an upper target, within MC_SLACK standard errors."""
    return estimate <= bound + MC_SLACK * se


def at_least(estimate: float, se: float, bound: float) -> bool:
    """Whether a Monte Carlo estimate reaches a lower target, within MC_SLACK standard errors."""
    return estimate >= bound - MC_SLACK * se


def mean(values: np.ndarray, scale: float = 1.0) -> tuple[float, float]:
    """The mean of ``values / scale`` and its standard error."""
    return (
        float(np.mean(values) / scale),
        float(np.std(values, ddof=1) / math.sqrt(len(values)) / scale),
    )


def reference_n_fix(rate: float, margin: float, alpha: float, power: float) -> float:
    """Per-variant n of the fixed-horizon one-sided z test with the variance 2p(1-p) of the
    difference: (z_a + z_b)^2 2 p (1 - p) / delta^2, the yardstick issue 13's targets name. The
    gate sizes its score test itself (``GateConfig.variance``), at most a few % above it."""
    return fixed_sample_drift(alpha, power) ** 2 * 2 * rate * (1 - rate) / margin**2


def engine_verdict(config: GateConfig, pokes: Iterable[StageEvidence]) -> tuple[Verdict, int]:
    """One stream through ``evaluate`` poke by poke, as the sensor would: the verdict and the
    challenger's requests at the poke that decided (per variant at 50/50, pairs in a shadow
    stage, all of the stage's at 0/100)."""
    looks = None
    for evidence in pokes:
        decision, looks = evaluate(evidence, config, looks)
        if decision.verdict is not Verdict.CONTINUE:
            return decision.verdict, evidence.challenger.requests
    raise AssertionError("the engine did not decide by the last poke")
