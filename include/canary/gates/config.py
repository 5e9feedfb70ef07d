"""What a gate is configured with: error rates, margins, ceilings and the sequential design.

Why a separate, validated dataclass: the same numbers size a stage's traffic (the DAG), decide every
poke (the sensor) and appear in every decision record, so they are checked once, early, and every
error names the field that is wrong.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from canary.gates.sequential import Design, Spending, plan_design

METRICS = ("accuracy", "reward", "brier")
DEADLINE_POLICIES = ("rollback", "halt")


@dataclass(frozen=True)
class GateConfig:
    """Gate settings. Rates are shares in [0, 1]; latency margins are relative (0.1 = +10%).

    ``margin`` is the non-inferiority margin delta on the primary metric (the challenger may be at
    most this much worse). ``planning_rate`` is the expected champion accuracy/conversion used to
    plan the sample size (planning variance p(1-p)); ``planning_variance`` overrides it for
    non-binary rewards.
    """

    alpha: float = 0.05
    power: float = 0.8
    margin: float = 0.03
    metric: str = "accuracy"
    planning_rate: float = 0.85
    planning_variance: float | None = None
    looks: int = 25
    alpha_gamma: float = 1.0
    beta_gamma: float = -1.0
    threshold: float = 0.5
    min_requests: int = 30
    guardrail_alpha: float = 0.01
    max_5xx_rate: float = 0.01
    max_4xx_rate: float = 0.05
    error_rate_margin: float = 0.005
    latency_margin: float = 0.10
    max_p99_latency_ms: float = 500.0
    auc_margin: float | None = 0.05
    srm_alpha: float = 0.001
    max_stage_minutes: float = 30.0
    on_deadline: str = "rollback"

    def __post_init__(self) -> None:
        _check_open("alpha", self.alpha, 0, 0.5)
        _check_open("power", self.power, 0.5, 1)
        _check_open("margin", self.margin, 0, math.inf)
        _check_open("planning_rate", self.planning_rate, 0, 1)
        _check_open("threshold", self.threshold, 0, 1)
        _check_open("guardrail_alpha", self.guardrail_alpha, 0, 0.5)
        _check_open("srm_alpha", self.srm_alpha, 0, 0.5)
        _check_open("max_stage_minutes", self.max_stage_minutes, 0, math.inf)
        _check_open("max_p99_latency_ms", self.max_p99_latency_ms, 0, math.inf)
        for name in ("max_5xx_rate", "max_4xx_rate", "error_rate_margin", "latency_margin"):
            _check_closed(name, getattr(self, name), 0, 1 if "rate" in name else math.inf)
        if self.metric not in METRICS:
            raise ValueError(f"metric: must be one of {METRICS}, got {self.metric!r}")
        if self.on_deadline not in DEADLINE_POLICIES:
            raise ValueError(
                f"on_deadline: must be one of {DEADLINE_POLICIES}, got {self.on_deadline!r}"
            )
        if not isinstance(self.looks, int) or not 1 <= self.looks <= 100:
            raise ValueError(f"looks: must be an integer in [1, 100], got {self.looks!r}")
        if not isinstance(self.min_requests, int) or self.min_requests < 1:
            raise ValueError(f"min_requests: must be a positive integer, got {self.min_requests!r}")
        if self.planning_variance is not None:
            _check_open("planning_variance", self.planning_variance, 0, math.inf)
        if self.auc_margin is not None:
            _check_open("auc_margin", self.auc_margin, 0, 1)

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> GateConfig:
        """Build from a plan's gate section or a record; unknown keys are an error, not ignored."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known - _IGNORED_PLAN_KEYS)
        if unknown:
            raise ValueError(f"{unknown[0]}: not a gate setting (known: {sorted(known)})")
        return cls(**{k: v for k, v in values.items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready copy for decision records."""
        return asdict(self)

    @property
    def variance(self) -> float:
        """Planning variance of one request's outcome (Bernoulli p(1-p) unless overridden)."""
        if self.planning_variance is not None:
            return self.planning_variance
        return self.planning_rate * (1 - self.planning_rate)

    @property
    def design(self) -> Design:
        """The cached group-sequential design for these error rates and looks."""
        return plan_design(
            self.alpha,
            self.power,
            self.looks,
            Spending("hsd", self.alpha_gamma),
            Spending("hsd", self.beta_gamma),
        )


_IGNORED_PLAN_KEYS = {"poke_interval_seconds"}


def _check_open(name: str, value: float, lo: float, hi: float) -> None:
    if not isinstance(value, int | float) or not lo < value < hi:
        raise ValueError(f"{name}: must lie in ({lo}, {hi}), got {value!r}")


def _check_closed(name: str, value: float, lo: float, hi: float) -> None:
    if not isinstance(value, int | float) or not lo <= value <= hi:
        raise ValueError(f"{name}: must lie in [{lo}, {hi}], got {value!r}")
