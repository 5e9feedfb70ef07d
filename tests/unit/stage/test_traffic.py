"""A stage's replay plan: how its cap is split between the burst tasks and the gate."""

from __future__ import annotations

from canary.experiment.gates import GateConfig
from canary.plan import SHADOW_STAGE, parse_plan
from canary.stage.traffic import StageTraffic
from canary.stage.window import StageWindow

ROLE = "arn:aws:iam::123456789012:role/canary"


def traffic(index: int, weights: dict[str, float]) -> StageTraffic:
    plan = parse_plan(
        {
            "endpoint_name": "churn-canary",
            "execution_role_arn": ROLE,
            "champion_source": "demo:champion",
            "challenger_source": "demo:challenger",
            "traffic_shards": 4,
        }
    )
    window = StageWindow(index, weights, started_at=0.0)
    return StageTraffic(None, plan, window, "run", GateConfig.of(plan.gate))


def test_a_canary_stage_bursts_half_its_cap_over_its_shards_and_the_gate_sends_the_rest() -> None:
    stage = traffic(0, {"Champion": 50.0, "Challenger": 50.0})
    shards = stage.burst_shards()
    assert [s["count"] for s in shards] == [5] * 4
    assert stage.burst_total == stage.request_cap // 2


def test_the_shadow_stage_has_no_burst_so_its_gate_sends_the_whole_cap() -> None:
    """Its task group maps no replay tasks: a burst counted here would never be sent."""
    stage = traffic(SHADOW_STAGE, {"Champion": 100.0, "Challenger": 0.0})
    assert stage.burst_shards() == [{"index": 0, "count": 1, "requests": 0}]
    assert stage.burst_total == 0
