"""The champion's quality carried into a stage where it gets no traffic, read back from S3."""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict
from typing import Any

import pytest

from canary.experiment.gates.evidence import Outcomes
from canary.plan import SHADOW_STAGE, RolloutPlan, parse_plan
from canary.stage.evidence import carried_champion
from canary.stage.state import CHAMPION, StageState
from canary.stage.window import StageWindow


def saved_champions(
    local_stack, fields: dict[str, Any], outcomes: dict[int, tuple[int, int]]
) -> tuple[Any, RolloutPlan]:
    """A plan on a fresh bucket (``fields`` on top of the defaults) whose run saved the
    champion's (requests, correct) of each stage index in ``outcomes``: what earlier stages
    leave for a later one to carry. Returns (s3, plan)."""
    bucket = f"carried-{uuid.uuid4().hex[:8]}"
    s3 = local_stack.client("s3")
    s3.create_bucket(Bucket=bucket)
    plan = parse_plan({"bucket": bucket, **fields})
    for index, (n, correct) in outcomes.items():
        earlier = StageWindow(index, plan.stage_weights(index), started_at=time.time())
        StageState(s3, plan, "run", earlier).save(CHAMPION, asdict(Outcomes(n, correct, correct)))
    return s3, plan


def test_a_window_that_opens_on_a_later_period_still_carries_the_champion(local_stack) -> None:
    """set_weights returns the next whole CloudWatch period as the window's start, which may lie
    a minute ahead when the stage's tasks first build their gate."""
    stages = {"stages": [[50, 50], [25, 75], [0, 100]]}
    s3, plan = saved_champions(local_stack, stages, {0: (400, 360), 1: (200, 182)})
    weights = plan.stage_weights(2)
    window = StageWindow(index=2, weights=weights, started_at=time.time() + 60.0)

    carried = carried_champion(StageState(s3, plan, "run", window))

    assert carried is not None
    assert (carried.n, carried.mean) == (600, pytest.approx(542 / 600))


@pytest.mark.parametrize(("shards", "n"), [(0, 1000), (2, 600)])
def test_the_shadow_stages_champion_joins_unless_sharded_stages_replay_its_rows(
    local_stack, shards: int, n: int
) -> None:
    """The shadow stage served the champion every request: its outcomes count, unless the
    canary stages replay in mapped shards, which start their slices of users afresh on rows
    the shadow stage already sent (the same rows twice would understate the variance)."""
    saved = {SHADOW_STAGE: (400, 370), 0: (400, 360), 1: (200, 182)}
    s3, plan = saved_champions(local_stack, {"traffic_shards": shards}, saved)
    window = StageWindow(index=2, weights=plan.stage_weights(2), started_at=time.time())

    carried = carried_champion(StageState(s3, plan, "run", window))

    assert carried is not None and carried.n == n
