"""Fault injection through the model's Environment shows up where a gate would look."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError
from scipy.stats import binomtest

from canary.models.training import xgboost_tarball
from canary.rollout.endpoint import EndpointError, verify_serving, wait_deleted, wait_settled

ALPHA = 1e-4


def test_injected_latency_shows_in_model_latency(deployer, boosters):
    url = deployer.upload(xgboost_tarball(boosters["champion"]))
    slow = deployer.model(url, env={"LOCAL_SAGEMAKER_LATENCY_MS": "40"})
    fast = deployer.model(url)
    endpoint = deployer.endpoint(deployer.config({"Slow": (slow, 1.0), "Fast": (fast, 1.0)}))
    for variant in ("Slow", "Fast"):
        for _ in range(5):
            deployer.invoke(endpoint, "1,2,3,4", TargetVariant=variant)
    assert deployer.metric(endpoint, "Slow", "ModelLatency", "Minimum") >= 40_000
    assert deployer.metric(endpoint, "Fast", "ModelLatency", "Minimum") < 40_000


def test_error_rate_fails_a_share_counted_as_5xx(deployer, boosters):
    url = deployer.upload(xgboost_tarball(boosters["champion"]))
    flaky = deployer.model(url, env={"LOCAL_SAGEMAKER_ERROR_RATE": "0.5"})
    endpoint = deployer.endpoint(deployer.config({"Flaky": (flaky, 1.0)}))
    n, failed = 120, 0
    for _ in range(n):
        try:
            deployer.invoke(endpoint, "1,2,3,4")
        except ClientError as exc:  # as a model failing on a request: final, not retried
            assert exc.response["Error"]["Code"] == "ModelError"
            assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == 424
            assert exc.response["OriginalStatusCode"] == 500
            failed += 1
    assert binomtest(failed, n, 0.5).pvalue > ALPHA
    assert deployer.metric(endpoint, "Flaky", "Invocation5XXErrors") == failed
    assert deployer.metric(endpoint, "Flaky", "Invocations") == n
    assert deployer.metric(endpoint, "Flaky", "Invocation4XXErrors") == 0


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"LOCAL_SAGEMAKER_ERROR_RATE": "lots"}, "LOCAL_SAGEMAKER_ERROR_RATE"),
        ({"LOCAL_SAGEMAKER_LATENCY_MS": "-5"}, "LOCAL_SAGEMAKER_LATENCY_MS"),
    ],
)
def test_bad_fault_setting_names_the_variable(deployer, boosters, env, named):
    url = deployer.upload(xgboost_tarball(boosters["champion"]))
    endpoint = deployer.endpoint(deployer.config({"V": (deployer.model(url, env=env), 1.0)}))
    with pytest.raises(ClientError) as caught:
        deployer.invoke(endpoint, "1,2,3,4")
    assert caught.value.response["Error"]["Code"] == "InternalFailure"
    assert named in caught.value.response["Error"]["Message"]


@pytest.mark.parametrize(
    ("fault", "status"), [("1", "InService"), ("rollback_failed", "UpdateRollbackFailed")]
)
def test_a_failing_update_rolls_back_as_sagemaker_does_and_verify_serving_sees_it(
    deployer, boosters, fault: str, status: str
):
    """UpdateEndpoint to a config whose model cannot start: the endpoint keeps (or is stuck
    rolling back to) the old config, with a FailureReason, and ``verify_serving`` says so."""
    url = deployer.upload(xgboost_tarball(boosters["champion"]))
    good = deployer.config({"Champion": (deployer.model(url), 1.0)})
    endpoint_name = deployer.endpoint(good)
    broken = deployer.model(url, env={"LOCAL_SAGEMAKER_UPDATE_FAILS": fault})
    bad = deployer.config({"Champion": (deployer.model(url), 1.0), "Challenger": (broken, 1.0)})

    deployer.sm.update_endpoint(EndpointName=endpoint_name, EndpointConfigName=bad)

    live = deployer.sm.describe_endpoint(EndpointName=endpoint_name)
    assert (live["EndpointStatus"], live["EndpointConfigName"]) == (status, good)
    assert "did not pass its ping health check" in live["FailureReason"]
    assert [v["VariantName"] for v in live["ProductionVariants"]] == ["Champion"]
    with pytest.raises(EndpointError, match=r"rolled the update back|UpdateRollbackFailed"):
        verify_serving(deployer.sm, endpoint_name, config_name=bad)
    if status == "InService":  # what the provider's waiter sees: success
        deployer.sm.get_waiter("endpoint_in_service").wait(EndpointName=endpoint_name)


def test_a_create_whose_model_cannot_start_ends_failed_and_takes_only_a_delete(deployer, boosters):
    """Nothing to roll back to: the endpoint ends Failed, with a FailureReason; SageMaker then
    refuses updates (weights or config) and accepts a delete."""
    url = deployer.upload(xgboost_tarball(boosters["champion"]))
    broken = deployer.model(url, env={"LOCAL_SAGEMAKER_UPDATE_FAILS": "1"})
    name = deployer.endpoint(deployer.config({"Champion": (broken, 1.0)}), wait=False)
    live = wait_settled(deployer.sm, name)
    assert live["EndpointStatus"] == "Failed"
    assert "ping health check" in live["FailureReason"]
    with pytest.raises(EndpointError, match="is Failed"):
        verify_serving(deployer.sm, name)
    good = deployer.config({"Champion": (deployer.model(url), 1.0)})
    with pytest.raises(ClientError, match="in Failed state"):
        deployer.sm.update_endpoint(EndpointName=name, EndpointConfigName=good)
    deployer.sm.delete_endpoint(EndpointName=name)
    wait_deleted(deployer.sm, name)
