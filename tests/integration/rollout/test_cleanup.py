"""Teardown on the local stack when the run no longer holds the endpoint's lease, and when the
teardown itself fails: the lease decides who may touch the endpoint."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import EndpointConnectionError

from canary.plan import CleanupPolicy, RolloutPlan, parse_plan
from canary.rollout.cleanup import NOT_HOLDING, RunManifest, finish, tear_down
from canary.rollout.endpoint import ENDPOINT_TAG, RUN_TAG, wait_settled
from canary.rollout.lock import EndpointLock
from canary.rollout.outcome import RunOutcome
from tests.integration.deployed import IMAGE, ROLE, artifact

ARTIFACT_KEY = "m/model.tar.gz"
UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nobody listens on loopback


@pytest.fixture
def deployer(make_deployer) -> Iterator[Any]:
    made = make_deployer("lost", ROLE)
    yield made
    made.cleanup()


@pytest.fixture
def plan(deployer, unique_name: str) -> RolloutPlan:
    """A delete_all plan in the deployer's bucket, with one (content-addressed) artifact."""
    deployer.upload(artifact(0), ARTIFACT_KEY)
    return parse_plan({
        "bucket": deployer.bucket, "endpoint_name": f"lost-{unique_name}",
        "cleanup": CleanupPolicy.DELETE_ALL.value})  # fmt: skip


@pytest.fixture
def lock(lock_of, plan: RolloutPlan) -> EndpointLock:
    return lock_of(plan)


def made_by(deployer: Any, plan: RolloutPlan, run: str) -> tuple[str, str]:
    """A champion model and a config serving it, named and tagged as run ``run``'s canary
    resources of the plan's endpoint."""
    models, config = canary_resources(deployer, plan, run, ("champion",))
    return models["champion"], config


def canary_resources(
    deployer: Any, plan: RolloutPlan, run: str, roles: tuple[str, ...]
) -> tuple[dict[str, str], str]:
    """A model per role (all from the one staged artifact) and a config serving them in equal
    shares, named and tagged as run ``run``'s canary resources of the plan's endpoint."""
    tags = [{"Key": ENDPOINT_TAG, "Value": plan.endpoint_name}]
    url = f"s3://{plan.bucket}/{ARTIFACT_KEY}"
    models = {
        role: deployer.model(url, IMAGE, name=plan.resource_name(role, run), tags=tags)
        for role in roles
    }
    variants = dict(zip(("champion", "challenger"), plan.variants, strict=True))
    shares = {variants[role]: (model, 1.0) for role, model in models.items()}
    return models, deployer.config(shares, name=plan.resource_name("config", run), tags=tags)


def endpoint_of(deployer: Any, plan: RolloutPlan, config: str, run: str) -> str:
    """The plan's endpoint serving ``config``, created (and so tagged) by run ``run``."""
    return deployer.endpoint(config, plan.endpoint_name, tags=[{"Key": RUN_TAG, "Value": run}])


def switch(sm: Any, plan: RolloutPlan, config: str) -> None:
    """What another run's stage does: serve ``config`` on the plan's endpoint."""
    sm.update_endpoint(EndpointName=plan.endpoint_name, EndpointConfigName=config)
    sm.get_waiter("endpoint_in_service").wait(
        EndpointName=plan.endpoint_name, WaiterConfig={"Delay": 1, "MaxAttempts": 30}
    )


def manifest_of(plan: RolloutPlan, made: tuple[str, str], run: str) -> RunManifest:
    """What run ``run``, which uploaded the artifact, recorded."""
    url = f"s3://{plan.bucket}/{ARTIFACT_KEY}"
    return RunManifest(
        created_models=(made[0],),
        created_configs=(made[1],),
        run_key=run,
        artifacts={"champion": url},
        uploaded=("champion",),
    )


def test_a_run_whose_lease_was_taken_over_leaves_the_endpoint_to_its_holder(
    deployer, plan: RolloutPlan
) -> None:
    """The holder serves its config and is preparing another (a canary resource of this
    endpoint that nothing serves yet, as an earlier run's leftover would be). The run that lost
    the lease deletes only what it made; it neither deletes the endpoint it created nor
    sweeps the holder's resources as leftovers, nor deletes the artifact the holder's models
    may read."""
    s3, sm = deployer.s3, deployer.sm
    names = {run: made_by(deployer, plan, run) for run in ("holder", "holder-next", "lost")}
    endpoint_of(deployer, plan, names["holder"][1], "lost")
    made = manifest_of(plan, names["lost"], "lost")

    report = finish(sm, s3, plan, made, RunOutcome.ROLLED_BACK, holds_endpoint=False)

    live = sm.describe_endpoint(EndpointName=plan.endpoint_name)
    assert live["EndpointConfigName"] == names["holder"][1]
    assert sorted(report.deleted) == [f"endpoint config {names['lost'][1]}",
                                      f"model {names['lost'][0]}"]  # fmt: skip
    left = {c["EndpointConfigName"] for c in sm.list_endpoint_configs()["EndpointConfigs"]}
    assert {names["holder"][1], names["holder-next"][1]} <= left
    assert names["lost"][1] not in left
    lost = f"endpoint {plan.endpoint_name} {NOT_HOLDING}"
    assert report.kept == [lost, f"artifact {made.artifacts['champion']}"]
    assert s3.head_object(Bucket=plan.bucket, Key=ARTIFACT_KEY)["ContentLength"] > 0


def test_a_late_teardown_after_the_taker_released_keeps_its_hands_off(
    deployer, plan: RolloutPlan, lock: EndpointLock
) -> None:
    """Run A created the endpoint; run B took the lease over (A's run looked ended), served its
    winner and released. A's teardown comes late and finds the lease free: the endpoint is
    B's winner now, so A must neither delete it nor take the lease back."""
    s3, sm = deployer.s3, deployer.sm
    lock.claim("run-a", lambda holder: True)
    ours, theirs = made_by(deployer, plan, "run-a"), made_by(deployer, plan, "run-b")
    endpoint_of(deployer, plan, ours[1], "run-a")
    lock.claim("run-b", holder_alive=lambda holder: holder != "run-a")
    switch(sm, plan, theirs[1])
    lock.release("run-b")

    report = tear_down(
        lock, "run-a", sm, s3, plan, manifest_of(plan, ours, "run-a"), RunOutcome.FAILED
    )

    assert sm.describe_endpoint(EndpointName=plan.endpoint_name)["EndpointConfigName"] == theirs[1]
    assert sm.describe_model(ModelName=theirs[0])["ModelName"] == theirs[0]
    assert report.kept[0] == f"endpoint {plan.endpoint_name} {NOT_HOLDING}"
    assert sorted(report.deleted) == [f"endpoint config {ours[1]}", f"model {ours[0]}"]
    assert lock.current() is None


def test_a_failed_teardown_keeps_the_lease_for_its_retry(
    deployer, plan: RolloutPlan, lock: EndpointLock
) -> None:
    """The first teardown cannot reach SageMaker: it fails and the run still holds the lease,
    so its retry deletes the endpoint the run created, and only then gives the lease up."""
    s3, sm = deployer.s3, deployer.sm
    lock.claim("run-a", lambda holder: True)
    ours = made_by(deployer, plan, "run-a")
    endpoint_of(deployer, plan, ours[1], "run-a")
    made = manifest_of(plan, ours, "run-a")
    down = Config(signature_version=UNSIGNED, retries={"total_max_attempts": 1})
    dead = boto3.client("sagemaker", endpoint_url=UNREACHABLE, region_name=plan.region, config=down)
    with pytest.raises(EndpointConnectionError):
        tear_down(lock, "run-a", dead, s3, plan, made, RunOutcome.FAILED)
    assert lock.current().holder == "run-a"

    report = tear_down(lock, "run-a", sm, s3, plan, made, RunOutcome.FAILED)

    assert f"endpoint {plan.endpoint_name}" in report.deleted
    assert sm.list_endpoints(NameContains=plan.endpoint_name)["Endpoints"] == []
    assert lock.current() is None


def test_keep_winner_leaves_an_endpoint_the_run_never_changed_as_it_was(
    deployer, plan: RolloutPlan
) -> None:
    """The user's endpoint serves their own config; the run made its champion model and failed
    before its deploy. keep_winner must not switch the endpoint to a champion-only config of
    the run: it deletes the run's model and leaves the endpoint serving what it found."""
    s3, sm = deployer.s3, deployer.sm
    url = f"s3://{plan.bucket}/{ARTIFACT_KEY}"
    theirs = deployer.config({"Live": (deployer.model(url, IMAGE), 1.0)})
    deployer.endpoint(theirs, name=plan.endpoint_name)
    ours, _ = made_by(deployer, plan, "failed-early")  # its config: a leftover nothing serves
    keep = plan.model_copy(update={"cleanup": CleanupPolicy.KEEP_WINNER})
    made = RunManifest(models={"champion": ours}, created_models=(ours,), previous_config=theirs)

    report = finish(sm, s3, keep, made, RunOutcome.FAILED)

    live = sm.describe_endpoint(EndpointName=plan.endpoint_name)
    assert (live["EndpointStatus"], live["EndpointConfigName"]) == ("InService", theirs)
    assert report.winner is None and report.serving_config in (None, theirs)
    assert f"model {ours}" in report.deleted
    configs = {c["EndpointConfigName"] for c in sm.list_endpoint_configs()["EndpointConfigs"]}
    assert not [c for c in configs if c.startswith(plan.resource_prefix("config"))]


def test_keep_winner_keeps_the_artifact_the_winner_reads_whichever_side_uploaded_it(
    deployer, plan: RolloutPlan
) -> None:
    """Champion and challenger from one file (a canary of a new environment, say): the
    champion's side uploaded it, the challenger's found it there. The promoted challenger
    serves alone; its artifact must stay, though the run recorded it as the champion's upload."""
    s3, sm = deployer.s3, deployer.sm
    url = f"s3://{plan.bucket}/{ARTIFACT_KEY}"
    models, config = canary_resources(deployer, plan, "run-a", ("champion", "challenger"))
    endpoint_of(deployer, plan, config, "run-a")
    keep = plan.model_copy(update={"cleanup": CleanupPolicy.KEEP_WINNER})
    made = RunManifest(
        models=models, created_models=tuple(models.values()), created_configs=(config,),
        run_key="run-a", artifacts={"champion": url, "challenger": url},
        uploaded=("champion",),
    )  # fmt: skip

    report = finish(sm, s3, keep, made, RunOutcome.PROMOTED)

    assert report.winner == plan.challenger.variant_name
    assert f"model {models['champion']}" in report.deleted
    assert not [item for item in report.deleted if item.startswith("artifact")]
    assert s3.head_object(Bucket=plan.bucket, Key=ARTIFACT_KEY)["ContentLength"] > 0


def test_delete_all_restores_an_endpoint_another_run_created(deployer, plan: RolloutPlan) -> None:
    """Whether the run created the endpoint is read from its run tag: an endpoint tagged by
    another run (an earlier rollout made it) is put back on the config this run found, never
    deleted, even under delete_all."""
    sm = deployer.sm
    before, ours = made_by(deployer, plan, "earlier"), made_by(deployer, plan, "run-a")
    endpoint_of(deployer, plan, before[1], "earlier")
    switch(sm, plan, ours[1])  # run-a's deploy
    made = dataclasses.replace(manifest_of(plan, ours, "run-a"), previous_config=before[1])

    report = finish(sm, deployer.s3, plan, made, RunOutcome.ROLLED_BACK)

    live = sm.describe_endpoint(EndpointName=plan.endpoint_name)
    assert (live["EndpointStatus"], live["EndpointConfigName"]) == ("InService", before[1])
    assert report.serving_config == before[1]
    assert f"endpoint {plan.endpoint_name}" not in report.deleted


def test_an_endpoint_the_run_created_that_ended_failed_is_deleted_under_keep_winner(
    deployer, plan: RolloutPlan
) -> None:
    """Its container never started, so CreateEndpoint ended Failed, where SageMaker accepts
    only a delete: there is no winner to keep on it, and an update would fail every retry."""
    s3, sm = deployer.s3, deployer.sm
    url = f"s3://{plan.bucket}/{ARTIFACT_KEY}"
    broken = deployer.model(url, IMAGE, env={"LOCAL_SAGEMAKER_UPDATE_FAILS": "1"})
    config = deployer.config({"Champion": (broken, 1.0)})
    tags = [{"Key": RUN_TAG, "Value": "run-a"}]
    deployer.endpoint(config, name=plan.endpoint_name, tags=tags, wait=False)
    assert wait_settled(sm, plan.endpoint_name)["EndpointStatus"] == "Failed"
    keep = plan.model_copy(update={"cleanup": CleanupPolicy.KEEP_WINNER})
    made = RunManifest(models={"champion": broken}, run_key="run-a")

    report = finish(sm, s3, keep, made, RunOutcome.FAILED)

    assert f"endpoint {plan.endpoint_name}" in report.deleted and report.winner is None
    assert sm.list_endpoints(NameContains=plan.endpoint_name)["Endpoints"] == []
