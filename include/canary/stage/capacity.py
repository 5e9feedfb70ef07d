"""How many requests a stage's replay may need, and the plan check that its cap allows them.

Why a room of its own: the same sizing sizes a stage's first burst of synthetic traffic
(:mod:`.traffic`) and refuses, before any AWS call, a plan whose cap would stop a stage short
of its gate's planned last look (the rollout's ``validate_plan`` and the registry's claim,
before it claims a package version). It needs the gate's sizing but not the replay's data stack.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from canary.experiment.gates.config import GateConfig
from canary.experiment.gates.sizing import planned_max_pairs, planned_max_requests
from canary.plan import (
    SHADOW_STAGE,
    AllocationStrategy,
    PlanError,
    RolloutPlan,
    flat_name,
    invalid,
    parse_plan,
    stage_split,
    stage_title,
)

# the fields a refused replay cap names (the cap, and what else lowers a stage's need)
CAP = flat_name(("traffic", "requests_per_stage"))
SAMPLING = flat_name(("shadow_sampling_percent",))
MARGIN, POWER, ALPHA = (flat_name(("gate", leaf)) for leaf in ("margin", "power", "alpha"))


def planned_requests(
    plan: RolloutPlan, config: GateConfig, weights: tuple[float, float], carried_var: float = 0.0
) -> int:
    """The most requests a stage with ``weights`` (champion, challenger) can need before its gate
    must decide. In the shadow stage (weights (1, 0)) a request is a pair when the endpoint
    mirrors it, so it needs the gate's planned pairs over the sampling share."""
    if weights[1] == 0:
        return math.ceil(planned_max_pairs(config) / plan.shadow_share)
    return planned_max_requests(config, weights, carried_var).total


def validated_plan(flat: Mapping[str, Any]) -> RolloutPlan:
    """A plan from form fields, refused (naming the field) if it is invalid or its replay cap
    is too small (:func:`check_replay`)."""
    plan = parse_plan(flat)
    check_replay(plan)
    return plan


def check_replay(plan: RolloutPlan) -> None:
    """Refuse a replay whose request cap may stop a stage short of its gate's planned last
    look: that stage would take its last look early, with less power than the plan asks for.
    Checked: the shadow stage, and canary stages
    whose split is their weights (with a bandit strategy the split moves, and a 0/100 stage
    needs what the stages before it carried; neither is known before the run)."""
    if not plan.traffic.enabled:
        return
    config, cap = GateConfig.of(plan.gate), plan.traffic.requests_per_stage
    weighted = plan.traffic.strategy is AllocationStrategy.WEIGHTED
    for index in plan.stage_indices:
        shadow = index == SHADOW_STAGE
        weights = stage_split(plan.stages, index)
        if not shadow and (not weighted or weights[0] == 0):
            continue
        need = planned_requests(plan, config, weights)
        if need > cap:
            why = (
                f"{CAP}: {cap} requests may end "
                f"{'the ' if shadow else ''}{stage_title(index)} before its gate's last look, "
                f"which may need {need}; raise it{f' or {SAMPLING}' if shadow else ''}"
                f" (or widen {MARGIN}, lower {POWER} or raise {ALPHA})"
            )
            raise PlanError(invalid("rollout plan", [why]))
