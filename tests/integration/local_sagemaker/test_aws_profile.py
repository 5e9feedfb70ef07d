"""The local stack's ``aws`` profile: SageMaker's states and CloudWatch's periods, on a fast clock.

One stack for the module, at a time scale of 0.02 (a 240 s update takes 4.8 s), so every
behaviour is seen happening in time rather than instantly. The states a test must catch while
they last (a weights update, a delete, CloudWatch's ingestion lag) are given AWS-side values
that last 5 to 6 s here, so that a busy CI box still sees them.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from canary.models.training import xgboost_tarball
from canary.rollout.endpoint import (
    EndpointError,
    settled_config,
    verify_serving,
    wait_deleted,
    wait_settled,
)
from local_sagemaker.profile import AWS_VALUES, aws_env
from local_sagemaker.stack import EmbeddedStack
from tests.integration.deployed import ROLE

SCALE = 0.02
WEIGHTS_SECONDS = 300.0  # AWS-side, so 6 s here
PROFILE = aws_env(SCALE, weights_seconds=WEIGHTS_SECONDS, delete_seconds=250, metrics_lag=250)
ROW = "1,2,3,4"
AT_ONCE = 10  # requests sent together: as many as botocore's default connection pool


@pytest.fixture
def sm(aws_stack: EmbeddedStack) -> Any:
    # retries as the rollout's clients have them: the profile throttles
    return aws_stack.client("sagemaker", config=Config(retries={"mode": "standard"}))


@pytest.fixture
def champion_config(aws_stack, make_deployer, boosters) -> Iterator[dict[str, str]]:
    """A Champion-only and a two-variant config (Challenger at weight 0), no endpoint yet."""
    deployer = make_deployer("aws-profile", ROLE, stack=aws_stack)
    models = {
        role: deployer.model(deployer.upload(xgboost_tarball(boosters[role])))
        for role in ("champion", "challenger")
    }
    yield {
        "one": deployer.config({"Champion": (models["champion"], 1.0)}),
        "two": deployer.config(
            {"Champion": (models["champion"], 1.0), "Challenger": (models["challenger"], 0.0)}
        ),
    }
    deployer.cleanup()


def _invoked(aws_stack: EmbeddedStack, endpoint: str, n: int) -> set[str]:
    """The variants that answered ``n`` requests, sent at once: on a busy box one after another
    they could straddle a CloudWatch period (1.2 s here) that a test means them to share."""
    runtime = aws_stack.client("sagemaker-runtime")

    def invoke(_: int) -> str:
        answer = runtime.invoke_endpoint(EndpointName=endpoint, Body=ROW, ContentType="text/csv")
        return answer["InvokedProductionVariant"]

    with ThreadPoolExecutor(max_workers=min(n, AT_ONCE)) as pool:
        return set(pool.map(invoke, range(n)))


def _status(sm: Any, endpoint: str) -> str:
    return sm.describe_endpoint(EndpointName=endpoint)["EndpointStatus"]


def test_create_update_weights_and_delete_pass_through_sagemakers_states(
    aws_stack, sm, champion_config
):
    endpoint = f"e-{time.time_ns()}"
    sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=champion_config["two"])
    assert _status(sm, endpoint) == "Creating"
    with pytest.raises(ClientError, match="not found"):
        _invoked(aws_stack, endpoint, 1)
    assert wait_settled(sm, endpoint, delay=0.1)["EndpointStatus"] == "InService"
    assert _invoked(aws_stack, endpoint, 5) == {"Champion"}

    desired = [
        {"VariantName": "Champion", "DesiredWeight": 0.0},
        {"VariantName": "Challenger", "DesiredWeight": 1.0},
    ]
    sm.update_endpoint_weights_and_capacities(
        EndpointName=endpoint, DesiredWeightsAndCapacities=desired
    )
    live = sm.describe_endpoint(EndpointName=endpoint)
    weights = {
        v["VariantName"]: (v["DesiredWeight"], v["CurrentWeight"])
        for v in live["ProductionVariants"]
    }
    assert live["EndpointStatus"] == "Updating"
    assert weights == {"Champion": (0.0, 1.0), "Challenger": (1.0, 0.0)}
    assert _invoked(aws_stack, endpoint, 5) == {"Champion"}  # current weights serve meanwhile
    with pytest.raises(ClientError) as refused:
        sm.update_endpoint(EndpointName=endpoint, EndpointConfigName=champion_config["one"])
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert "Cannot update in-progress endpoint" in refused.value.response["Error"]["Message"]

    wait_settled(sm, endpoint, delay=0.1)
    verify_serving(sm, endpoint, weights={"Champion": 0.0, "Challenger": 1.0})
    assert _invoked(aws_stack, endpoint, 5) == {"Challenger"}

    sm.update_endpoint(EndpointName=endpoint, EndpointConfigName=champion_config["one"])
    assert _status(sm, endpoint) == "Updating"
    # the config it is leaving, until the switch: what a lease taken now must not record
    assert (
        sm.describe_endpoint(EndpointName=endpoint)["EndpointConfigName"]
        == (champion_config["two"])
    )
    assert _invoked(aws_stack, endpoint, 3) == {"Challenger"}  # the old config until the switch
    assert settled_config(sm, endpoint, delay=0.1) == champion_config["one"]
    verify_serving(sm, endpoint, config_name=champion_config["one"])

    sm.delete_endpoint(EndpointName=endpoint)
    assert _status(sm, endpoint) == "Deleting"
    assert settled_config(sm, endpoint, delay=0.1) is None  # gone: nothing to put back
    wait_deleted(sm, endpoint, delay=0.1)
    with pytest.raises(ClientError, match="Could not find endpoint"):
        sm.describe_endpoint(EndpointName=endpoint)


@pytest.mark.parametrize(
    ("fault", "final"), [("1", "InService"), ("rollback_failed", "UpdateRollbackFailed")]
)
def test_a_failing_update_rolls_back_in_time_and_is_never_taken_for_success(
    aws_stack, sm, make_deployer, champion_config, boosters, fault, final
):
    endpoint = f"e-{time.time_ns()}"
    sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=champion_config["one"])
    wait_settled(sm, endpoint, delay=0.1)
    deployer = make_deployer("aws-broken", ROLE, stack=aws_stack)
    url = deployer.upload(xgboost_tarball(boosters["champion"]))
    broken = deployer.model(url, env={"LOCAL_SAGEMAKER_UPDATE_FAILS": fault})
    bad = deployer.config({"Champion": (broken, 1.0)})
    sm.update_endpoint(EndpointName=endpoint, EndpointConfigName=bad)
    seen = {_status(sm, endpoint)}
    while (status := _status(sm, endpoint)) not in {"InService", "UpdateRollbackFailed"}:
        seen.add(status)
        time.sleep(0.05)
    assert seen == {"Updating", "RollingBack"}
    assert status == final
    live = wait_settled(sm, endpoint, delay=0.1)
    assert live["EndpointConfigName"] == champion_config["one"]
    assert "ping health check" in live["FailureReason"]
    with pytest.raises(EndpointError, match=r"rolled the update back|UpdateRollbackFailed"):
        verify_serving(sm, endpoint, config_name=bad)
    sm.delete_endpoint(EndpointName=endpoint)
    deployer.cleanup()


def _invocations(cw: Any, endpoint: str, start: dt.datetime, period: int = 60) -> list[dict]:
    return cw.get_metric_statistics(
        Namespace="AWS/SageMaker",
        MetricName="Invocations",
        Dimensions=[
            {"Name": "EndpointName", "Value": endpoint},
            {"Name": "VariantName", "Value": "Champion"},
        ],
        StartTime=start,
        EndTime=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1),
        Period=period,
        Statistics=["Sum"],
    )["Datapoints"]


def test_cloudwatch_shows_counts_per_period_after_the_ingestion_lag(aws_stack, sm, champion_config):
    period, lag = aws_stack.profile.metrics_period, aws_stack.profile.metrics_lag
    endpoint = f"e-{time.time_ns()}"
    sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=champion_config["one"])
    wait_settled(sm, endpoint, delay=0.1)
    cw = aws_stack.client("cloudwatch")
    _invoked(aws_stack, endpoint, 1)  # loads the model, so the 20 below fit in one period
    time.sleep(period - time.time() % period + 0.01)  # at the start of a fresh period
    start = dt.datetime.now(dt.UTC)
    _invoked(aws_stack, endpoint, 20)
    aws_stack.flush()
    assert _invocations(cw, endpoint, start) == []  # not ingested yet

    time.sleep(lag + 1.0)
    aws_stack.flush()
    assert sum(p["Sum"] for p in _invocations(cw, endpoint, start)) == 20
    stamps = {p["Timestamp"].timestamp() for p in _invocations(cw, endpoint, start, period=1)}
    assert stamps and all(abs(s / period - round(s / period)) < 1e-6 for s in stamps)
    # StartTime late in the requests' period is rounded down to that period's start, as
    # CloudWatch rounds to the minute: its datapoint (stamped at the start) is still counted
    first_period = start.timestamp() // period * period
    late = dt.datetime.fromtimestamp(first_period + 0.99 * period, dt.UTC)
    assert sum(p["Sum"] for p in _invocations(cw, endpoint, late)) == 20
    sm.delete_endpoint(EndpointName=endpoint)


def test_control_plane_throttles_and_botocores_retries_absorb_it(aws_stack, sm):
    bare = aws_stack.client("sagemaker")  # one attempt per call

    def refused(_: int) -> bool:
        try:
            bare.list_endpoints()
        except ClientError as error:
            assert error.response["Error"]["Code"] == "ThrottlingException"
            return True
        return False

    # at once, so that more than the burst arrive within one refill however slow the box is
    with ThreadPoolExecutor(max_workers=AT_ONCE) as pool:
        throttled = sum(pool.map(refused, range(60)))
    assert throttled > 0
    for _ in range(60):  # the rollout's clients: standard retries
        sm.list_endpoints()
    assert aws_stack.admin("GET", "stats")["throttled"] >= throttled


def test_profile_route_reports_the_scaled_durations(aws_stack):
    profile = aws_stack.admin("GET", "profile")
    assert profile["name"] == "aws"
    assert profile["update_seconds"] == pytest.approx(AWS_VALUES.update_seconds * SCALE)
    assert profile["weights_seconds"] == pytest.approx(WEIGHTS_SECONDS * SCALE)  # a knob, scaled
    assert aws_stack.profile.metrics_period == pytest.approx(profile["metrics_period"])
