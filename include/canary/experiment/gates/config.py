"""What a gate is configured with: the plan's gate settings plus the sequential design's choices.

Why a model of its own: the same numbers size a stage's traffic (the DAG), decide every poke (the
sensor) and appear in every decision record. The settings people choose are declared once, on
:class:`canary.plan.GateSpec` (defaults, bounds, form); this model adds only what the design fixes
and a person rarely touches, so a gate built from a plan can never disagree with it.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from canary.experiment.gates.noninferiority import score_planning_variance
from canary.experiment.gates.sequential import Design, Family, Spending, plan_design
from canary.plan import GateSpec

#: The most looks (or exact-test decisions) a stage's gate takes.
MAX_LOOKS = 100


class GateConfig(GateSpec):
    """Gate settings. Rates are shares in [0, 1]; latency margins are relative (0.1 = +10%).

    ``margin`` is the non-inferiority margin delta on the primary metric (the challenger may be at
    most this much worse). ``planning_rate`` is the expected champion accuracy/conversion used to
    plan the sample size (the score test's planning variance, about p(1-p)); ``planning_variance``
    overrides it for non-binary rewards.
    """

    planning_variance: float | None = Field(None, gt=0)
    looks: int = Field(25, ge=1, le=MAX_LOOKS, strict=True)
    # Hwang-Shih-DeCani spending of alpha and of beta (futility); the defaults, with a binding
    # futility bound, come within 0.06 n_fix of Wald's SPRT floor (docs/architecture.md, "The
    # gate's design"): E[N]/n_fix 0.668 at no difference, 0.493 at the margin, max 1.342.
    alpha_gamma: float = -0.5
    beta_gamma: float = 0.5
    # Binding: the engine always rolls a stage back on a futility crossing (sequential.py).
    binding_futility: bool = Field(True, strict=True)
    threshold: float = Field(0.5, gt=0, lt=1)  # the score above which a request counts as churn
    min_requests: int = Field(30, ge=1, strict=True)
    guardrail_alpha: float = Field(0.01, gt=0, lt=0.5)
    error_rate_margin: float = Field(0.005, ge=0, le=1)
    latency_margin: float = Field(0.10, ge=0)
    auc_margin: float | None = Field(0.05, gt=0, lt=1)
    srm_alpha: float = Field(0.001, gt=0, lt=0.5)
    # A 50/50 stage of 0/1 outcomes whose variants expect fewer errors than this by n_fix runs
    # the exact lattice test (lattice.py) instead of the score z, which is far from normal there;
    # it decides every ``exact_step`` pairs. 0 turns it off.
    exact_below_errors: float = Field(100.0, ge=0)
    exact_step: int = Field(50, ge=1, strict=True)

    @classmethod
    def of(cls, gate: GateSpec) -> GateConfig:
        """The gate of a plan: its settings as given, the design's choices at their defaults."""
        return cls.model_validate(gate.model_dump())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready copy for decision records."""
        return self.model_dump(mode="json")

    @property
    def variance(self) -> float:
        """Planning variance of one request's outcome: for 0/1 outcomes the one that sizes the
        score test the gate runs (about p(1-p); see ``score_planning_variance``), unless
        overridden."""
        if self.planning_variance is not None:
            return self.planning_variance
        return score_planning_variance(self.planning_rate, self.margin, self.alpha, self.power)

    @property
    def design(self) -> Design:
        """The cached group-sequential design for these error rates and looks."""
        return plan_design(
            self.alpha,
            self.power,
            self.looks,
            Spending(Family.HSD, self.alpha_gamma),
            Spending(Family.HSD, self.beta_gamma),
            self.binding_futility,
        )
