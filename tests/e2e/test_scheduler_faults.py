"""Faults and concurrency with Airflow's own scheduler on PostgreSQL: rollouts of different
endpoints at once and one per endpoint, a gate whose process is killed, a run marked failed by a
person mid-stage. A file of its own, so that it runs beside test_real_scheduler.py."""

from __future__ import annotations

import time
from datetime import datetime

from airflow.utils.state import DagRunState, TaskInstanceState

from canary.experiment.gates.decision import Verdict
from canary.plan import CleanupPolicy, RolloutPlan, parse_plan
from canary.rollout.layout import run_key, stage_state_key
from canary.rollout.outcome import RunOutcome
from canary.stage.state import DECISIONS, decision_of
from canary_airflow.ids import (
    CLEANUP,
    LOCK_ENDPOINT,
    ROLLOUT_DAG,
    SET_WEIGHTS,
    gate_task,
    stage_task,
)
from tests.e2e.leftovers import assert_only_winner_left, serving
from tests.e2e.scheduler import (
    RUN_DEADLINE,
    TEARDOWN_ENDED,
    Api,
    kill_first_try_at_start,
    kill_task_process,
)


def test_rollouts_run_at_once_but_one_endpoint_has_one(
    airflow_api: Api, local_stack, unique_name, one_stage
) -> None:
    """Three rollouts triggered in the same second: two on one endpoint, one on another. The
    other endpoint's and exactly one of the pair hold their leases at once; the second of the
    pair waits at lock_endpoint until the first's teardown gives the endpoint up, then takes
    its turn and runs to the end."""
    airflow_api.wait_for_dag(ROLLOUT_DAG)
    shared, other = f"lock-{unique_name}", f"free-{unique_name}"
    runs = {f"{shared}-a": shared, f"{shared}-b": shared, f"{other}-c": other}
    for run_id, endpoint_name in runs.items():
        conf = {**one_stage, "endpoint_name": endpoint_name}
        body = {"dag_run_id": run_id, "logical_date": None, "conf": conf}
        airflow_api.call("POST", f"dags/{ROLLOUT_DAG}/dagRuns", body)

    ended = {run_id: airflow_api.wait_for_run(ROLLOUT_DAG, run_id)["state"] for run_id in runs}

    assert set(ended.values()) == {DagRunState.SUCCESS}, ended
    locks = {run_id: airflow_api.xcom(ROLLOUT_DAG, run_id, LOCK_ENDPOINT) for run_id in runs}
    pair = [run_id for run_id in runs if runs[run_id] == shared]
    first, second = sorted(pair, key=lambda run_id: locks[run_id]["expires_at"])  # claimed
    assert locks[second]["waited_seconds"] > 0
    held = {run_id: _lease_held(airflow_api, run_id) for run_id in runs}
    assert held[second][0] > held[first][1], "the pair held one endpoint's lease at once"

    first_two = sorted(held[run_id] for run_id in (first, f"{other}-c"))
    assert first_two[1][0] < first_two[0][1], "the two endpoints' leases were never held at once"
    sm = local_stack.client("sagemaker")
    assert sm.list_endpoints(NameContains=shared)["Endpoints"] == []  # delete_all of both


def test_killed_gate_and_weight_shift_resume_and_a_run_marked_failed_still_cleans_up(
    airflow_api: Api, local_stack, unique_name, one_stage
) -> None:
    """kill -9 of the gate's process mid-stage: its retry carries on from what the stage keeps
    in S3 (the replay's cursor, its decision records and looks) and the stage promotes. kill -9
    of stage 2's weight shift as soon as a process runs it (on the instant stack the shift is
    over within a second of reporting running, so the kill lands as the task loads or calls
    AWS): its retry sets stage 2's weights, and stage 2 is judged on its own. Then a person
    marks the run failed over the REST API during stage 2: teardown still runs, the champion
    serves alone and nothing of the challenger is left."""
    airflow_api.wait_for_dag(ROLLOUT_DAG)
    endpoint_name = run_id = f"fault-{unique_name}"
    conf = {
        **one_stage,
        "stages": [[50, 50], [25, 75]],
        "cleanup": CleanupPolicy.KEEP_WINNER.value,
        "endpoint_name": endpoint_name,
        # a poke per 40 requests: the first cannot decide (fewer than min_requests a variant),
        # and the first look is due only pokes later, so the kill lands mid-stage
        "traffic_chunk_size": 40,
    }
    body = {"dag_run_id": run_id, "logical_date": None, "conf": conf}
    airflow_api.call("POST", f"dags/{ROLLOUT_DAG}/dagRuns", body)

    airflow_api.wait_for_task(
        ROLLOUT_DAG, run_id, gate_task(1), TaskInstanceState.RUNNING, poll=0.1
    )
    plan = parse_plan(conf)
    _wait_for_a_continue(local_stack, plan, run_id)  # mid-stage, not past it
    kill_task_process(airflow_api, run_id, gate_task(1))
    shift = stage_task(2, SET_WEIGHTS)
    kill_first_try_at_start(airflow_api, run_id, shift)
    # stage 2 may decide within a few seconds: only what must precede the mark comes before it
    airflow_api.wait_for_task(
        ROLLOUT_DAG, run_id, gate_task(2), TaskInstanceState.RUNNING, poll=0.1
    )
    sm, stage_two = local_stack.client("sagemaker"), plan.stage_weights(1)
    assert serving(sm, endpoint_name) == stage_two
    mark_failed = {"state": DagRunState.FAILED.value}
    airflow_api.call("PATCH", f"dags/{ROLLOUT_DAG}/dagRuns/{run_id}", mark_failed)
    shifted = airflow_api.task(ROLLOUT_DAG, run_id, shift)
    assert shifted["try_number"] >= 2 and shifted["state"] == TaskInstanceState.SUCCESS
    assert airflow_api.xcom(ROLLOUT_DAG, run_id, shift)["weights"] == stage_two
    gate = airflow_api.task(ROLLOUT_DAG, run_id, gate_task(1))
    assert gate["try_number"] >= 2 and gate["state"] == TaskInstanceState.SUCCESS
    assert (
        Verdict(airflow_api.xcom(ROLLOUT_DAG, run_id, gate_task(1))["verdict"]) is Verdict.PROMOTE
    )

    deadline = time.monotonic() + RUN_DEADLINE
    while airflow_api.task_states(ROLLOUT_DAG, run_id)[CLEANUP] not in TEARDOWN_ENDED:
        assert time.monotonic() < deadline, "cleanup never ran"
        time.sleep(3)
    assert airflow_api.task_states(ROLLOUT_DAG, run_id)[CLEANUP] == TaskInstanceState.SUCCESS
    cleaned = airflow_api.xcom(ROLLOUT_DAG, run_id, CLEANUP)
    assert RunOutcome(cleaned["outcome"]) is RunOutcome.FAILED
    assert serving(sm, endpoint_name) == {"Champion": 1.0}
    assert_only_winner_left(sm, endpoint_name, "champion")


def _lease_held(airflow_api: Api, run_id: str) -> tuple[datetime, datetime]:
    """When the run held its endpoint's lease: from lock_endpoint's end to cleanup's start. Two
    runs of different endpoints overlap here unless rollouts were serialised platform-wide; a
    gate's own span is too short to show it (a stage may decide at its first look)."""
    locked = airflow_api.task(ROLLOUT_DAG, run_id, LOCK_ENDPOINT)
    cleaned = airflow_api.task(ROLLOUT_DAG, run_id, CLEANUP)
    return datetime.fromisoformat(locked["end_date"]), datetime.fromisoformat(cleaned["start_date"])


def _wait_for_a_continue(local_stack, plan: RolloutPlan, run_id: str) -> None:
    """Until stage 1's newest decision record goes on: the gate has replayed and judged at least
    once and is still running (a fixed sleep either came too early or, on a fast stage, after it
    had already decided; the looks file is written by a final look too)."""
    s3, end = local_stack.client("s3"), time.monotonic() + 120
    prefix = stage_state_key(plan, run_key(run_id), 0, DECISIONS)
    while time.monotonic() < end:
        listed = s3.list_objects_v2(Bucket=plan.bucket, Prefix=prefix).get("Contents", [])
        if listed:  # listed by key, and so in the order written
            _, verdict = decision_of(listed[-1]["Key"])
            assert verdict is Verdict.CONTINUE, f"stage 1 decided ({verdict}) before the kill"
            return
        time.sleep(0.1)
    raise AssertionError(f"stage 1's gate recorded no look ({prefix})")
