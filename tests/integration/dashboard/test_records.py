"""What the dashboard reads from a run's S3 folder on the local stack, as the gates wrote it."""

from __future__ import annotations

import time
import uuid

from canary.experiment.gates.decision import Decision, Verdict
from canary.plan import SHADOW_NUMBER, SHADOW_STAGE, RolloutPlan, parse_plan
from canary.rollout import layout
from canary.stage.state import StageState
from canary.stage.window import StageWindow
from canary_airflow import ids
from canary_airflow.dashboard import records
from canary_airflow.dashboard.shaping import RunRecords

RUN_ID = "manual__records"


def _looking(local_stack, plan: RolloutPlan, index: int) -> dict:
    """Stage ``index``'s gate takes one look that decides nothing, through its own state
    store; returns the window the stage's ``enter``/``set_weights`` would have returned."""
    window = StageWindow(index, plan.stage_weights(index), started_at=time.time())
    state = StageState(local_stack.client("s3"), plan, layout.run_key(RUN_ID), window)
    look = {"look": 1, "verdict": Verdict.CONTINUE.value, "at": window.opened_at.isoformat()}
    reason = f"stage {index}: next look"
    record = {"verdict": Verdict.CONTINUE.value, "reason": reason, "stage": index, "looks": [look]}
    state.record(Decision(Verdict.CONTINUE, reason, record), [look])
    return {"weights": plan.stage_weights(index), "started_at": window.started_at}


def test_a_run_in_its_shadow_stage_shows_the_shadow_gates_files(local_stack, aws_conn) -> None:
    """The shadow stage is number 0: its live record and looks are read like any stage's."""
    bucket = f"dashboard-{uuid.uuid4().hex[:8]}"
    local_stack.client("s3").create_bucket(Bucket=bucket)
    plan = parse_plan({"bucket": bucket, "shadow": True})
    window = _looking(local_stack, plan, SHADOW_STAGE)
    run = RunRecords(
        ids.ROLLOUT_DAG,
        RUN_ID,
        "running",
        xcoms={
            ids.VALIDATE_PLAN: plan.model_dump(mode="json"),
            ids.shadow_task(ids.ENTER_STAGE): window,
        },
    )

    live = records.with_live_gate(run).stage_files
    everything = records.with_everything(run).stage_files

    assert list(live) == [SHADOW_NUMBER]
    assert live[SHADOW_NUMBER].newest["reason"] == "stage -1: next look"
    assert list(everything) == [SHADOW_NUMBER, *range(1, len(plan.stages) + 1)]
    shadow = everything[SHADOW_NUMBER]
    assert [look["look"] for look in shadow.looks] == [1]
    assert [r["reason"] for r in shadow.look_records] == ["stage -1: next look"]
    assert all(everything[n].newest is None for n in range(1, len(plan.stages) + 1))
