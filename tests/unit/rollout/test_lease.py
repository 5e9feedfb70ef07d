"""How long an endpoint's lease lasts: past the end of any run of its plan."""

from __future__ import annotations

import pytest

from canary.plan import parse_plan
from canary.rollout.lock import SETUP_MINUTES, lease_seconds


@pytest.mark.parametrize("shadow", [True, False])
def test_the_lease_outlasts_every_stage_deadline_the_shadow_stage_included(shadow: bool) -> None:
    """A lease that ran out mid-run would let a second rollout take over a live endpoint."""
    plan = parse_plan(
        {"endpoint_name": "lease", "stages": [[50, 50]], "shadow": shadow,
         "gate_max_stage_minutes": 1440}
    )  # fmt: skip
    stages = 2 if shadow else 1
    deadlines = stages * (plan.gate.max_stage_minutes + plan.approval_timeout_minutes)
    assert lease_seconds(plan) > 60 * (SETUP_MINUTES + deadlines)
