"""Shadow variants: the production variant answers every request, a share of them is replayed on
the shadow, whose answers land in Data Capture and CloudWatch under its own name only."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from scipy.stats import binomtest

from canary.models.training import xgboost_tarball
from canary.rollout.endpoint import wait_settled
from local_sagemaker.profile import aws_env
from local_sagemaker.shadow import SHADOW_WORKERS
from local_sagemaker.stack import EmbeddedStack
from tests.integration.deployed import ROLE

ALPHA = 1e-4
PREFIX = "datacapture"
CAPTURE = {
    "EnableCapture": True,
    "InitialSamplingPercentage": 100,
    "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
    "CaptureContentTypeHeader": {"CsvContentTypes": ["text/csv"]},
}


def _variant(name: str, model: str, weight: float) -> dict[str, Any]:
    return {
        "VariantName": name,
        "ModelName": model,
        "InitialInstanceCount": 1,
        "InstanceType": "ml.m5.large",
        "InitialVariantWeight": weight,
    }


def _shadow_config(deployer: Any, prod: str, shadow: str, shadow_weight: float = 1.0) -> str:
    """CreateEndpointConfig: ``Prod`` (weight 1) and the shadow ``Shadow``, capturing everything."""
    name = f"c-{uuid.uuid4().hex[:10]}"
    deployer.sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[_variant("Prod", prod, 1.0)],
        ShadowProductionVariants=[_variant("Shadow", shadow, shadow_weight)],
        DataCaptureConfig={**CAPTURE, "DestinationS3Uri": f"s3://{deployer.bucket}/{PREFIX}"},
    )
    deployer.created.append(("config", name))
    return name


def _captured(deployer: Any, endpoint: str, variant: str) -> list[dict[str, Any]]:
    """The capture records of one variant (every record there is, after a flush)."""
    deployer.stack.flush()
    prefix = f"{PREFIX}/{endpoint}/{variant}/"
    listed = deployer.s3.list_objects_v2(Bucket=deployer.bucket, Prefix=prefix)
    records = []
    for obj in listed.get("Contents", []):
        body = deployer.s3.get_object(Bucket=deployer.bucket, Key=obj["Key"])["Body"].read()
        records += [json.loads(line) for line in body.decode().splitlines()]
    return records


def _ids(records: list[dict[str, Any]]) -> set[str]:
    return {r["eventMetadata"]["inferenceId"] for r in records}


def _send(deployer: Any, endpoint: str, n: int, tag: str = "inf") -> dict[str, tuple[str, str]]:
    """``n`` requests with InferenceIds; {id: (invoked variant, answer)}."""
    answers = {}
    for i in range(n):
        variant, body = deployer.invoke(endpoint, f"{i % 7},1,2,3", InferenceId=f"{tag}-{i}")
        answers[f"{tag}-{i}"] = (variant, body.decode())
    return answers


@pytest.fixture
def models(deployer: Any, boosters: dict[str, Any]) -> dict[str, str]:
    """The champion and the challenger as SageMaker models."""
    return {
        role: deployer.model(deployer.upload(xgboost_tarball(boosters[role])))
        for role in ("champion", "challenger")
    }


def test_describe_shows_the_shadow_on_the_config_and_the_endpoint(deployer, models):
    config = _shadow_config(deployer, models["champion"], models["challenger"], 0.5)
    described = deployer.sm.describe_endpoint_config(EndpointConfigName=config)
    assert described["ShadowProductionVariants"] == [_variant("Shadow", models["challenger"], 0.5)]
    endpoint = deployer.endpoint(config)
    live = deployer.sm.describe_endpoint(EndpointName=endpoint)
    assert [v["VariantName"] for v in live["ProductionVariants"]] == ["Prod"]
    assert live["ShadowProductionVariants"] == [
        {
            "VariantName": "Shadow",
            "CurrentWeight": 0.5,
            "DesiredWeight": 0.5,
            "CurrentInstanceCount": 1,
            "DesiredInstanceCount": 1,
        }
    ]
    plain = deployer.endpoint(deployer.config({"Prod": (models["champion"], 1.0)}))
    assert "ShadowProductionVariants" not in deployer.sm.describe_endpoint(EndpointName=plain)


@pytest.mark.parametrize(
    ("production", "shadows", "says"),
    [
        (["Prod"], ["S1", "S2"], "at most 1"),
        (["Prod", "Other"], ["Shadow"], "exactly 1 ProductionVariant"),
        (["Prod"], ["Prod"], "not unique"),
    ],
)
def test_a_config_sagemaker_refuses_is_refused_and_not_stored(
    deployer, models, production, shadows, says
):
    name = f"c-{uuid.uuid4().hex[:10]}"
    with pytest.raises(ClientError) as refused:
        deployer.sm.create_endpoint_config(
            EndpointConfigName=name,
            ProductionVariants=[_variant(v, models["champion"], 1.0) for v in production],
            ShadowProductionVariants=[_variant(v, models["challenger"], 1.0) for v in shadows],
        )
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert says in refused.value.response["Error"]["Message"]
    with pytest.raises(ClientError, match="Could not find endpoint configuration"):
        deployer.sm.describe_endpoint_config(EndpointConfigName=name)


def test_a_shadow_needs_a_model_that_exists(deployer, models):
    with pytest.raises(ClientError, match="Could not find model"):
        _shadow_config(deployer, models["champion"], "no-such-model")


def test_production_answers_every_request_and_the_shadow_answers_into_capture(
    deployer, models, boosters
):
    endpoint = deployer.endpoint(_shadow_config(deployer, models["champion"], models["challenger"]))
    n = 30
    answers = _send(deployer, endpoint, n)
    assert {variant for variant, _ in answers.values()} == {"Prod"}

    prod, shadow = _captured(deployer, endpoint, "Prod"), _captured(deployer, endpoint, "Shadow")
    assert _ids(prod) == _ids(shadow) == set(answers)
    assert not {r["eventMetadata"]["eventId"] for r in prod} & {
        r["eventMetadata"]["eventId"] for r in shadow
    }
    for record in shadow:
        inference_id = record["eventMetadata"]["inferenceId"]
        row = record["captureData"]["endpointInput"]["data"]
        expected = boosters["challenger"].inplace_predict(np.array([row.split(",")], dtype=float))
        assert record["captureData"]["endpointOutput"]["data"] == repr(expected.tolist()[0])
        assert answers[inference_id][1] != record["captureData"]["endpointOutput"]["data"]
    for variant in ("Prod", "Shadow"):
        assert deployer.metric(endpoint, variant, "Invocations") == n
        assert deployer.metric(endpoint, variant, "Invocation5XXErrors") == 0
        assert deployer.metric(endpoint, variant, "ModelLatency", "SampleCount") == n


def test_half_the_production_weight_replicates_about_half(deployer, models):
    endpoint = deployer.endpoint(
        _shadow_config(deployer, models["champion"], models["challenger"], 0.5)
    )
    n = 200
    answers = _send(deployer, endpoint, n)
    mirrored = _ids(_captured(deployer, endpoint, "Shadow"))
    assert mirrored <= set(answers)
    assert binomtest(len(mirrored), n, 0.5).pvalue > ALPHA
    assert deployer.metric(endpoint, "Shadow", "Invocations") == len(mirrored)
    assert deployer.metric(endpoint, "Prod", "Invocations") == n


def test_a_failing_shadow_is_counted_as_its_5xx_and_never_reaches_the_caller(
    deployer, models, boosters
):
    url = deployer.upload(xgboost_tarball(boosters["challenger"]))
    flaky = deployer.model(url, env={"LOCAL_SAGEMAKER_ERROR_RATE": "0.5"})
    endpoint = deployer.endpoint(_shadow_config(deployer, models["champion"], flaky))
    n = 120
    answers = _send(deployer, endpoint, n)  # raises on any non-200 answer
    assert {variant for variant, _ in answers.values()} == {"Prod"}
    failed = deployer.metric(endpoint, "Shadow", "Invocation5XXErrors")
    assert binomtest(int(failed), n, 0.5).pvalue > ALPHA
    assert deployer.metric(endpoint, "Shadow", "Invocations") == n
    assert len(_captured(deployer, endpoint, "Shadow")) == n - failed
    assert len(_captured(deployer, endpoint, "Prod")) == n
    assert deployer.metric(endpoint, "Prod", "Invocation5XXErrors") == 0


def test_a_slow_shadow_shows_in_its_model_latency_not_in_the_callers(deployer, models, boosters):
    # fewer calls than shadow workers, so each copy starts at once and is busy for 5 s after
    # its caller had the answer (ample for the stats call that follows, on a busy box too); a
    # runtime that waited for its shadow would have none under way
    latency_ms, n = 5000, SHADOW_WORKERS - 1
    url = deployer.upload(xgboost_tarball(boosters["challenger"]))
    slow = deployer.model(url, env={"LOCAL_SAGEMAKER_LATENCY_MS": str(latency_ms)})
    endpoint = deployer.endpoint(_shadow_config(deployer, models["champion"], slow))
    deployer.stack.flush()  # no shadow call of an earlier test is left in the count
    answers = _send(deployer, endpoint, n)
    assert {variant for variant, _ in answers.values()} == {"Prod"}
    assert deployer.stack.admin("GET", "stats")["shadow_calls_pending"] > 0
    assert deployer.metric(endpoint, "Shadow", "ModelLatency", "Minimum") >= latency_ms * 1000
    assert deployer.metric(endpoint, "Prod", "ModelLatency", "Maximum") < latency_ms * 1000
    assert deployer.metric(endpoint, "Shadow", "Invocations") == n


def test_copies_still_queued_when_the_endpoint_moves_on_are_never_served(
    deployer, models, boosters
):
    """A slow shadow's backlog, then the endpoint switches to two production variants, one
    named like the shadow (as a shadow stage hands over to its first canary stage). The copies
    that had not started are dropped with the old fleet: none is counted for the new config's
    variant of that name."""
    latency_ms, n = 5000, SHADOW_WORKERS + 6
    url = deployer.upload(xgboost_tarball(boosters["challenger"]))
    slow = deployer.model(url, env={"LOCAL_SAGEMAKER_LATENCY_MS": str(latency_ms)})
    endpoint = deployer.endpoint(_shadow_config(deployer, models["champion"], slow))
    deployer.stack.flush()  # no shadow call of an earlier test is left in the count
    _send(deployer, endpoint, n)
    both = deployer.config({"Prod": (models["champion"], 0.5), "Shadow": (slow, 0.5)})
    # copies wait behind the busy workers: some are still queued when the endpoint switches
    assert deployer.stack.admin("GET", "stats")["shadow_calls_pending"] > SHADOW_WORKERS
    deployer.sm.update_endpoint(EndpointName=endpoint, EndpointConfigName=both)
    wait_settled(deployer.sm, endpoint)
    deployer.stack.flush()
    served = deployer.metric(endpoint, "Shadow", "Invocations")
    assert SHADOW_WORKERS <= served < n  # those under way when it switched, not the queued


def test_target_variant_names_production_variants_only(deployer, models):
    endpoint = deployer.endpoint(_shadow_config(deployer, models["champion"], models["challenger"]))
    assert deployer.invoke(endpoint, "1,2,3,4", TargetVariant="Prod")[0] == "Prod"
    for target in ("Shadow", "Nowhere"):
        with pytest.raises(ClientError) as refused:
            deployer.invoke(endpoint, "1,2,3,4", TargetVariant=target)
        error = refused.value.response["Error"]
        assert error["Code"] == "ValidationError"
        assert error["Message"] == f"Endpoint {endpoint} does not have target variant {target}"


def test_the_shadow_weight_can_be_updated_like_a_production_variants(deployer, models):
    endpoint = deployer.endpoint(_shadow_config(deployer, models["champion"], models["challenger"]))
    deployer.sm.update_endpoint_weights_and_capacities(
        EndpointName=endpoint,
        DesiredWeightsAndCapacities=[{"VariantName": "Shadow", "DesiredWeight": 0.0}],
    )
    live = deployer.sm.describe_endpoint(EndpointName=endpoint)["ShadowProductionVariants"][0]
    assert (live["DesiredWeight"], live["CurrentWeight"]) == (0.0, 0.0)
    answers = _send(deployer, endpoint, 10)
    assert {variant for variant, _ in answers.values()} == {"Prod"}
    assert _captured(deployer, endpoint, "Shadow") == []


# -- UpdateEndpoint under the aws profile: SageMaker's states in time ----------------------------

# a 240 s create takes 1.2 s; an update 5 s, long enough to watch the old config serve
PROFILE = aws_env(0.005, update_seconds=1000)


@pytest.fixture
def aws_deployer(aws_stack: EmbeddedStack, make_deployer: Any) -> Iterator[Any]:
    deployer = make_deployer("shadow-aws", ROLE, stack=aws_stack)
    yield deployer
    deployer.cleanup()


def _variant_names(live: dict[str, Any], key: str) -> list[str]:
    return [v["VariantName"] for v in live.get(key, [])]


def test_update_endpoint_from_a_shadow_to_two_variants_and_back(aws_stack, aws_deployer, boosters):
    deployer = aws_deployer
    sm = aws_stack.client("sagemaker", config=Config(retries={"mode": "standard"}))
    champion, challenger = (
        deployer.model(deployer.upload(xgboost_tarball(boosters[role])))
        for role in ("champion", "challenger")
    )
    shadowed = _shadow_config(deployer, champion, challenger)
    both = deployer.config({"Prod": (champion, 1.0), "Challenger": (challenger, 1.0)})
    endpoint = deployer.endpoint(shadowed)
    warm = _send(deployer, endpoint, 1, "warm")  # both models load before the timed update

    sm.update_endpoint(EndpointName=endpoint, EndpointConfigName=both)
    live = sm.describe_endpoint(EndpointName=endpoint)
    assert live["EndpointStatus"] == "Updating"
    assert _variant_names(live, "ShadowProductionVariants") == ["Shadow"]  # the old config serves
    assert {v for v, _ in _send(deployer, endpoint, 3, "old").values()} == {"Prod"}
    live = wait_settled(sm, endpoint, delay=0.2)
    assert (live["EndpointStatus"], live["EndpointConfigName"]) == ("InService", both)
    assert "ShadowProductionVariants" not in live
    assert {v for v, _ in _send(deployer, endpoint, 40, "both").values()} == {"Prod", "Challenger"}

    sm.update_endpoint(EndpointName=endpoint, EndpointConfigName=shadowed)
    live = wait_settled(sm, endpoint, delay=0.2)
    assert _variant_names(live, "ProductionVariants") == ["Prod"]
    assert _variant_names(live, "ShadowProductionVariants") == ["Shadow"]
    back = _send(deployer, endpoint, 5, "back")
    assert {v for v, _ in back.values()} == {"Prod"}
    mirrored = {*warm, "old-0", "old-1", "old-2", *back}
    assert _ids(_captured(deployer, endpoint, "Shadow")) == mirrored
