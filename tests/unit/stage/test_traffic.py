"""A stage's replay plan: how its cap is split between the burst tasks and the gate."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from canary.experiment.gates import GateConfig
from canary.models.training import DEMO_TRAFFIC_ROWS
from canary.plan import FLAT_FIELDS, SHADOW_STAGE, PlanError, parse_plan, stage_split
from canary.stage.capacity import check_replay
from canary.stage.traffic import StageTraffic
from canary.stage.window import StageWindow


def plan_with(**fields: object):
    return parse_plan({"endpoint_name": "churn-canary", **fields})


def traffic(index: int, weights: dict[str, float], **fields: object) -> StageTraffic:
    plan = plan_with(traffic_shards=4, **fields)
    window = StageWindow(index, weights, started_at=0.0)
    no_aws = SimpleNamespace(s3=None)  # a local CSV dataset is read without S3
    return StageTraffic(no_aws, plan, window, "run", GateConfig.of(plan.gate))


def dataset(path: Path, rows: int) -> str:
    pd.DataFrame({"x": range(rows), "churn": [0, 1] * (rows // 2)}).to_csv(path, index=False)
    return str(path)


def test_a_canary_stage_bursts_half_its_planned_need_over_its_shards() -> None:
    stage = traffic(0, {"Champion": 50.0, "Challenger": 50.0})
    shards = stage.burst_shards()
    assert [s["count"] for s in shards] == [5] * 4
    assert stage.burst_total == stage.planned_cap // 2
    assert stage.planned_cap < stage.request_cap == stage.plan.traffic.requests_per_stage


def test_no_stage_of_the_demo_plan_needs_a_demo_row_twice() -> None:
    """Within what its gate plans for, each stage of the demo's plan (no burst: the gate sends
    every request) replays fresh rows of the demo's traffic (a 0/100 stage's need depends on
    what the stages before it carried: it is known only during the run)."""
    plan, config = plan_with(), GateConfig.of(plan_with().gate)
    for index in plan.stage_indices:
        weights = plan.stage_weights(index)
        if stage_split(plan.stages, index)[0] == 0:
            continue
        window = StageWindow(index, weights, started_at=0.0)
        stage = StageTraffic(SimpleNamespace(s3=None), plan, window, "run", config)
        assert stage.burst_total == 0 and stage.planned_cap <= DEMO_TRAFFIC_ROWS


@pytest.mark.parametrize(
    ("rows", "cap", "expect"),
    [(1_000, 20_000, "first pass"), (60_000, 20_000, "first pass"), (60_000, 9_000, "cap")],
)
def test_the_gates_top_ups_send_each_row_of_its_slice_once_within_the_cap(
    tmp_path: Path, rows: int, cap: int, expect: str
) -> None:
    """Information that grows slower than planned needs more requests: the gate may replay on,
    within the user's cap, while its slice of the dataset (a fifth of the users with 4 shards)
    still has rows it has not sent. A row sent twice is not new evidence, so a slice smaller
    than the plan (1,000 rows) ends the replay before the plan's need."""
    csv = dataset(tmp_path / "rows.csv", rows)
    stage = traffic(0, {"Champion": 50.0, "Challenger": 50.0}, traffic_dataset=csv,
                    traffic_requests_per_stage=cap)  # fmt: skip
    planned, fresh = stage.planned_cap - stage.burst_total, rows // 5
    assert stage.gate_cap == {"first pass": fresh, "cap": cap - stage.burst_total}[expect]
    assert stage.gate_cap <= fresh
    assert (stage.gate_cap < planned) == (rows == 1_000)


def test_no_burst_task_sends_a_row_of_its_slice_twice(tmp_path: Path) -> None:
    """1,000 rows over 4 burst slices and the gate's: 200 rows each, far less than half the
    stage's planned need; each task sends its slice once at most."""
    csv = dataset(tmp_path / "rows.csv", 1_000)
    stage = traffic(0, {"Champion": 50.0, "Challenger": 50.0}, traffic_dataset=csv)
    shards = stage.burst_shards()
    assert [shard["requests"] for shard in shards] == [200] * 4
    assert stage.burst_total < stage.planned_cap // 2


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
    for lever in ("gate_margin", "gate_power", "gate_alpha"):
        assert lever in message and lever in FLAT_FIELDS  # what else lowers the need


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
