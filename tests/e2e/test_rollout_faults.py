"""Whole rollouts with Airflow's own runner that meet trouble on the way: a run that breaks, a
lock left by a crashed run, an update SageMaker rolls back, work spread over mapped tasks.
Whatever happens, teardown leaves the stack as the plan asked (tests/e2e/leftovers.py).
"""

from __future__ import annotations

from pathlib import Path

from airflow.utils.state import DagRunState, TaskInstanceState

from canary.models import registry as reg
from canary.plan import CleanupPolicy, parse_plan
from canary.rollout.lock import EndpointLock
from canary.rollout.outcome import RunOutcome
from canary_airflow import ids
from tests.e2e.conftest import Rollout
from tests.e2e.leftovers import (
    assert_nothing_left,
    assert_only_winner_left,
    canary_resources,
    serving,
)
from tests.e2e.records import outcome

ROLE = "arn:aws:iam::123456789012:role/canary-e2e"


def test_mapped_burst_then_delete_all_leaves_nothing_behind(
    local_stack, rollout: Rollout, one_stage
) -> None:
    """The first burst spread over two mapped tasks; ``delete_all`` then removes everything
    the run created, staged artifacts included."""
    result = rollout("canary-mapped", **one_stage, traffic_shards=2)
    assert result.state == DagRunState.SUCCESS, result.tasks
    assert outcome(result, ids.PROMOTE) == (RunOutcome.PROMOTED, "Challenger")
    shards = result.xcom(ids.stage_task(1, ids.PLAN_BURST))
    assert [shard["index"] for shard in shards] == [0, 1]
    assert all(shard["count"] == 3 and shard["requests"] > 0 for shard in shards)
    assert_nothing_left(local_stack.client("sagemaker"), "canary-mapped")
    deleted = result.xcom(ids.CLEANUP)["deleted"]
    assert any(item.startswith("artifact s3://") for item in deleted)


def test_failure_mid_rollout_still_cleans_up_to_the_champion(
    local_stack, rollout: Rollout, one_stage
) -> None:
    """A stage that breaks (its dataset lacks the label column) fails the run; teardown still
    leaves the champion serving alone and removes the rest."""
    result = rollout(
        "canary-broken",
        **{**one_stage, "cleanup": CleanupPolicy.KEEP_WINNER.value},
        traffic_label_column="no_such_column",
    )
    assert result.state == DagRunState.FAILED
    assert result.state_of(ids.gate_task(1)) == TaskInstanceState.FAILED
    assert result.state_of(ids.CONCLUDE) == TaskInstanceState.UPSTREAM_FAILED
    assert RunOutcome(result.xcom(ids.CLEANUP)["outcome"]) is RunOutcome.FAILED
    sm = local_stack.client("sagemaker")
    assert serving(sm, "canary-broken") == {"Champion": 1.0}
    assert_only_winner_left(sm, "canary-broken", "champion")


def test_a_failed_rollout_of_a_package_is_noted_in_the_registry(
    local_stack, rollout: Rollout, one_stage, seed_group
) -> None:
    """A run that fails before it concludes proved nothing either way: the version keeps its
    status, and the registry says the run failed (not silence, and not a claim that hangs
    with no word of what happened)."""
    group = seed_group(champion="champion", challenger="challenger")
    champion, challenger = group.packages["champion"], group.packages["challenger"]
    sources = {"champion_source": champion, "challenger_source": challenger}
    result = rollout(
        "canary-failed-package", **one_stage, **sources, traffic_label_column="no_such_column"
    )
    assert result.state == DagRunState.FAILED
    assert result.state_of(ids.gate_task(1)) == TaskInstanceState.FAILED
    record = result.xcom(ids.UPDATE_REGISTRY)
    assert RunOutcome(record["outcome"]) is RunOutcome.FAILED
    package = local_stack.client("sagemaker").describe_model_package(ModelPackageName=challenger)
    assert package["ModelApprovalStatus"] == reg.APPROVED
    assert package["CustomerMetadataProperties"][reg.OUTCOME_KEY] == RunOutcome.FAILED.value
    assert package["ApprovalDescription"].startswith("rollout failed: the run failed")


def test_a_crashed_holders_lease_is_taken_over_and_released_at_the_end(
    local_stack, rollout: Rollout, one_stage
) -> None:
    """A lease left by a run that has ended (this Airflow knows the run, and it is over) does
    not lock the endpoint until it expires: the next rollout takes it over, and gives it up in
    its teardown. The ended run is a real one, refused at validation; its lease is put back
    as a run that crashed holding it would have left it."""
    ended = rollout("canary-relock", **{**one_stage, "stages": [[50, 50], [60, 40]]})
    assert ended.state_of(ids.VALIDATE_PLAN) == TaskInstanceState.FAILED
    plan = parse_plan({**one_stage, "endpoint_name": "canary-relock"})
    lock = EndpointLock(local_stack.client("dynamodb"), plan)
    lock.ensure_table()
    lock.claim(ended.run_id, holder_alive=lambda holder: True)

    result = rollout("canary-relock", **one_stage)

    assert result.state == DagRunState.SUCCESS, result.tasks
    assert result.xcom(ids.LOCK_ENDPOINT)["holder"] == result.run_id
    assert lock.current() is None


def test_a_lease_held_by_a_run_this_airflow_never_had_is_not_taken_over(
    local_stack, rollout: Rollout, one_stage
) -> None:
    """Rollouts may start from another Airflow deployment against the same account: a holder
    this Airflow does not know may be at work, so its live lease is not taken over. With no
    wait (``lock_wait_minutes`` 0) the run fails at its claim and touches nothing."""
    plan = parse_plan({**one_stage, "endpoint_name": "canary-foreign"})
    lock = EndpointLock(local_stack.client("dynamodb"), plan)
    lock.ensure_table()
    lock.claim("another-airflows-run", holder_alive=lambda holder: True)
    try:
        result = rollout("canary-foreign", **one_stage, lock_wait_minutes=0)

        assert result.state == DagRunState.FAILED
        assert result.state_of(ids.LOCK_ENDPOINT) == TaskInstanceState.FAILED
        assert result.state_of(ids.STAGE_ARTIFACTS) == TaskInstanceState.UPSTREAM_FAILED
        assert lock.current().holder == "another-airflows-run"
        assert_nothing_left(local_stack.client("sagemaker"), "canary-foreign")
    finally:
        lock.release("another-airflows-run")


def test_an_update_that_sagemaker_rolls_back_is_never_taken_for_success(
    local_stack, rollout: Rollout, make_deployer, one_stage
) -> None:
    """An endpoint already serving a model; the rollout's update to two variants fails and
    SageMaker puts the old config back, InService (the provider's waiter says success). The
    rollout checks what the endpoint serves, stops at deploy, and its teardown leaves the
    endpoint as it was and nothing of its own."""
    from canary.models.demo_models import cached_demo_models
    from canary.rollout.endpoint import image_uri

    deployer = make_deployer("canary-e2e-existing", ROLE)
    try:
        url = deployer.upload(Path(cached_demo_models().champion).read_bytes())
        image = image_uri(parse_plan({}).champion, "us-east-1")
        existing = deployer.config({"Live": (deployer.model(url, image=image), 1.0)})
        name = deployer.endpoint(existing)
        broken = {"LOCAL_SAGEMAKER_UPDATE_FAILS": "1"}

        result = rollout(name, **one_stage, challenger_environment=broken)

        assert result.state == DagRunState.FAILED
        assert result.state_of(ids.DEPLOY_ENDPOINT) == TaskInstanceState.FAILED
        assert result.state_of(ids.stage_task(1, ids.GATE)) == TaskInstanceState.UPSTREAM_FAILED
        assert RunOutcome(result.xcom(ids.CLEANUP)["outcome"]) is RunOutcome.FAILED
        assert result.xcom(ids.LOCK_ENDPOINT)["found_config"] == existing  # what teardown restores
        sm = local_stack.client("sagemaker")
        live = sm.describe_endpoint(EndpointName=name)
        assert (live["EndpointStatus"], live["EndpointConfigName"]) == ("InService", existing)
        assert canary_resources(sm, name)["models"] == []
        assert canary_resources(sm, name)["configs"] == []
    finally:
        deployer.cleanup()
