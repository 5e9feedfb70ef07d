"""A stage's replay plan: how its cap is split between the burst tasks and the gate."""

from __future__ import annotations

import pytest

from canary.experiment.gates import GateConfig
from canary.plan import SHADOW_STAGE, PlanError, parse_plan
from canary.stage.capacity import check_replay
from canary.stage.traffic import StageTraffic
from canary.stage.window import StageWindow


def plan_with(**fields: object):
    return parse_plan({"endpoint_name": "churn-canary", **fields})


def traffic(index: int, weights: dict[str, float]) -> StageTraffic:
    plan = plan_with(traffic_shards=4)
    window = StageWindow(index, weights, started_at=0.0)
    return StageTraffic(None, plan, window, "run", GateConfig.of(plan.gate))


def test_a_canary_stage_bursts_half_its_planned_need_and_the_gate_may_send_up_to_the_cap() -> None:
    """The burst is sized by what the gate plans to need; the gate's top-ups may go on to the
    user's cap, since a slower-growing information (more disagreement than planned) needs
    more, and the gate stops replaying once it decides."""
    stage = traffic(0, {"Champion": 50.0, "Challenger": 50.0})
    shards = stage.burst_shards()
    assert [s["count"] for s in shards] == [5] * 4
    assert stage.burst_total == stage.planned_cap // 2
    assert stage.planned_cap < stage.request_cap == stage.plan.traffic.requests_per_stage


def test_the_shadow_stage_has_no_burst_so_its_gate_sends_the_whole_cap() -> None:
    """Its task group maps no replay tasks: a burst counted here would never be sent."""
    stage = traffic(SHADOW_STAGE, {"Champion": 100.0, "Challenger": 0.0})
    assert stage.burst_shards() == [{"index": 0, "count": 1, "requests": 0}]
    assert stage.burst_total == 0


@pytest.mark.parametrize(
    ("fields", "names"),
    [
        ({"shadow_sampling_percent": 10}, ("shadow stage", "shadow_sampling_percent")),
        ({"traffic_requests_per_stage": 3000, "shadow": False}, ("stage 1",)),
        ({"gate_margin": 0.02, "traffic_requests_per_stage": 6000}, ("stage 1", "7510")),
    ],
)
def test_a_cap_that_would_stop_a_stage_before_its_last_look_is_refused(
    fields: dict[str, object], names: tuple[str, ...]
) -> None:
    """Such a stage would decide with less power than planned; the error names the field."""
    with pytest.raises(PlanError) as error:
        check_replay(plan_with(**fields))
    message = str(error.value)
    assert "\n  traffic_requests_per_stage: " in message
    assert all(name in message for name in names), message


@pytest.mark.parametrize(
    "fields",
    [
        {},  # the form's defaults
        {"gate_margin": 0.02},  # the examples' plan
        {"traffic_requests_per_stage": 100, "traffic_enabled": False},  # real traffic: no replay
    ],
)
def test_caps_that_reach_every_last_look_pass(fields: dict[str, object]) -> None:
    check_replay(plan_with(**fields))
