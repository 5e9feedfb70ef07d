"""Teardown on the local stack when the run no longer holds the endpoint's lease."""

from __future__ import annotations

from canary.plan import parse_plan
from canary.rollout.cleanup import RunManifest, finish
from canary.rollout.endpoint import ENDPOINT_TAG
from canary.rollout.outcome import RunOutcome
from tests.integration.deployed import IMAGE, ROLE, artifact


def test_a_run_whose_lease_was_taken_over_leaves_the_endpoint_to_its_holder(
    local_stack, unique_name: str
) -> None:
    """The holder serves its config and is preparing another (a canary resource of this
    endpoint that nothing serves yet, as an earlier run's leftover would be). The run that lost
    the lease deletes only what it made; it neither deletes the endpoint it created nor
    sweeps the holder's resources as leftovers, nor deletes the artifact the holder's models
    may read."""
    plan = parse_plan({"bucket": f"lost-{unique_name}", "endpoint_name": f"lost-{unique_name}"})
    s3, sm = local_stack.client("s3"), local_stack.client("sagemaker")
    s3.create_bucket(Bucket=plan.bucket)
    s3.put_object(Bucket=plan.bucket, Key="m/model.tar.gz", Body=artifact(0))
    tags = [{"Key": ENDPOINT_TAG, "Value": plan.endpoint_name}]
    names = {}
    for run in ("holder", "holder-next", "lost"):
        model, config = plan.resource_name("champion", run), plan.resource_name("config", run)
        sm.create_model(ModelName=model, ExecutionRoleArn=ROLE, Tags=tags, PrimaryContainer={
            "Image": IMAGE, "ModelDataUrl": f"s3://{plan.bucket}/m/model.tar.gz"})  # fmt: skip
        sm.create_endpoint_config(EndpointConfigName=config, Tags=tags, ProductionVariants=[{
            "VariantName": "Champion", "ModelName": model, "InitialInstanceCount": 1,
            "InstanceType": "ml.m5.large", "InitialVariantWeight": 1.0}])  # fmt: skip
        names[run] = (model, config)
    sm.create_endpoint(EndpointName=plan.endpoint_name, EndpointConfigName=names["holder"][1])
    sm.get_waiter("endpoint_in_service").wait(
        EndpointName=plan.endpoint_name, WaiterConfig={"Delay": 1, "MaxAttempts": 30}
    )
    uploaded = f"s3://{plan.bucket}/m/model.tar.gz"  # content-addressed: the holder reads it too
    made = RunManifest(
        created_models=(names["lost"][0],),
        created_configs=(names["lost"][1],),
        endpoint_created=True,
        uploaded_artifacts={"champion": uploaded},
    )

    report = finish(sm, s3, plan, made, RunOutcome.ROLLED_BACK, holds_endpoint=False)

    live = sm.describe_endpoint(EndpointName=plan.endpoint_name)
    assert live["EndpointConfigName"] == names["holder"][1]
    assert sorted(report.deleted) == [f"endpoint config {names['lost'][1]}",
                                      f"model {names['lost'][0]}"]  # fmt: skip
    left = {c["EndpointConfigName"] for c in sm.list_endpoint_configs()["EndpointConfigs"]}
    assert {names["holder"][1], names["holder-next"][1]} <= left
    assert names["lost"][1] not in left
    assert report.kept == [f"endpoint {plan.endpoint_name} (another run holds its lease)",
                           f"artifact {uploaded}"]  # fmt: skip
    assert s3.head_object(Bucket=plan.bucket, Key="m/model.tar.gz")["ContentLength"] > 0
    sm.delete_endpoint(EndpointName=plan.endpoint_name)
