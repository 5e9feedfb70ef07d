"""GetMetricStatistics ``ExtendedStatistics`` on the local stack: per-period percentiles of the
latencies the runtime publishes, computed from the raw per-request values (a shadow variant's
latency is only visible there), refused as CloudWatch refuses them, and subject to the ``aws``
profile's ingestion lag."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

from canary.models.training import xgboost_tarball
from canary.stage.telemetry import variant_metrics
from local_sagemaker.profile import aws_env
from tests.integration.deployed import ROLE

ROW = "1,2,3,4"
LATENCY_MS = 100  # far above a fast call, even one a busy box preempted


def _latency_points(
    cw: Any, endpoint: str, variant: str, extended: list[str], **kwargs: Any
) -> list[dict[str, Any]]:
    """ModelLatency datapoints of the last 10 minutes, one per ``Period`` (default: one)."""
    now = dt.datetime.now(dt.UTC)
    query: dict[str, Any] = {
        "StartTime": now - dt.timedelta(minutes=10),
        "EndTime": now + dt.timedelta(minutes=1),
        "Period": 3600,
        "Statistics": ["SampleCount", "Minimum", "Maximum"],
        **kwargs,
    }
    return cw.get_metric_statistics(
        Namespace="AWS/SageMaker",
        MetricName="ModelLatency",
        Dimensions=[
            {"Name": "EndpointName", "Value": endpoint},
            {"Name": "VariantName", "Value": variant},
        ],
        ExtendedStatistics=extended,
        **query,
    )["Datapoints"]


def _send(deployer: Any, endpoint: str, n: int) -> None:
    for _ in range(n):
        deployer.invoke(endpoint, ROW)


@pytest.fixture
def models(deployer: Any, boosters: dict[str, Any]) -> dict[str, str]:
    """The champion as it is and with ``LATENCY_MS`` injected into every model call."""
    url = deployer.upload(xgboost_tarball(boosters["champion"]))
    slow = {"LOCAL_SAGEMAKER_LATENCY_MS": str(LATENCY_MS)}
    return {"fast": deployer.model(url), "slow": deployer.model(url, env=slow)}


def test_percentiles_are_numpys_over_the_raw_latencies(deployer, models):
    endpoint = deployer.endpoint(deployer.config({"Prod": (models["slow"], 1.0)}))
    _send(deployer, endpoint, 41)
    deployer.stack.flush()
    (point,) = _latency_points(deployer.cw, endpoint, "Prod", ["p50", "p90", "p99"])
    assert point["SampleCount"] == 41
    p = point["ExtendedStatistics"]
    assert LATENCY_MS * 1000 <= point["Minimum"] <= p["p50"] <= p["p90"] <= p["p99"]
    assert p["p99"] <= point["Maximum"]
    # the stack's own numpy.percentile over the same raw values (all of this endpoint's requests)
    raw = deployer.stack.admin("GET", "stats")["latency_us"][f"{endpoint}/Prod"]["ModelLatency"]
    assert raw["count"] == 41
    for name in ("p50", "p90", "p99"):
        assert p[name] == pytest.approx(raw[name], rel=1e-12)


def test_each_period_has_the_percentiles_of_its_own_requests(deployer, models):
    endpoint = deployer.endpoint(deployer.config({"Prod": (models["fast"], 1.0)}))
    _send(deployer, endpoint, 20)
    time.sleep(1.0 - time.time() % 1.0 + 0.01)  # the slow requests start a fresh 1 s period
    slow = deployer.config({"Prod": (models["slow"], 1.0)})
    deployer.sm.update_endpoint(EndpointName=endpoint, EndpointConfigName=slow)
    _send(deployer, endpoint, 20)
    deployer.stack.flush()
    points = _latency_points(deployer.cw, endpoint, "Prod", ["p50", "p99"], Period=1)
    assert sum(p["SampleCount"] for p in points) == 40
    floor = LATENCY_MS * 1000
    fast = [p for p in points if p["Maximum"] < floor]
    slowed = [p for p in points if p["Minimum"] >= floor]
    assert fast and slowed and len(fast) + len(slowed) == len(points)  # no period mixes them
    assert all(p["ExtendedStatistics"]["p99"] < floor for p in fast)
    assert all(p["ExtendedStatistics"]["p50"] >= floor for p in slowed)
    (whole,) = _latency_points(deployer.cw, endpoint, "Prod", ["p25", "p75"])
    assert whole["ExtendedStatistics"]["p25"] < floor <= whole["ExtendedStatistics"]["p75"]


def test_a_slow_shadows_p99_shows_while_productions_stays_low(deployer, models):
    config = f"c-{uuid.uuid4().hex[:10]}"
    variant = {"InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}
    deployer.sm.create_endpoint_config(
        EndpointConfigName=config,
        ProductionVariants=[{"VariantName": "Prod", "ModelName": models["fast"], **variant}],
        ShadowProductionVariants=[
            {"VariantName": "Shadow", "ModelName": models["slow"], **variant}
        ],
    )
    deployer.created.append(("config", config))
    endpoint = deployer.endpoint(config)
    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    _send(deployer, endpoint, 30)
    deployer.stack.flush()  # waits for the shadow's replays first
    (shadow,) = _latency_points(deployer.cw, endpoint, "Shadow", ["p99"])
    (prod,) = _latency_points(deployer.cw, endpoint, "Prod", ["p50"])
    assert shadow["ExtendedStatistics"]["p99"] >= LATENCY_MS * 1000
    assert prod["ExtendedStatistics"]["p50"] < LATENCY_MS * 1000  # one preempted call may not
    # what the gate's latency guardrail reads: a p99 for the shadow, from CloudWatch alone
    end = dt.datetime.now(dt.UTC)
    latency = variant_metrics(deployer.cw, endpoint, "Shadow", start, end)["latency"]
    assert latency.p99_ms is not None and latency.p99_ms >= LATENCY_MS


@pytest.mark.parametrize(
    ("extended", "says"),
    [
        (["p99", "p101"], "The value p101 for parameter ExtendedStatistics.member.2"),
        (["p99.999"], "The value p99.999 for parameter ExtendedStatistics.member.1"),
        (["Average"], "The value Average for parameter ExtendedStatistics.member.1"),
        ([f"p{i}" for i in range(11)], "ExtendedStatistics must not have a size greater than 10"),
    ],
)
def test_an_invalid_extended_statistic_is_refused_as_cloudwatch_does(deployer, extended, says):
    with pytest.raises(ClientError) as refused:
        _latency_points(deployer.cw, "any-endpoint", "Prod", extended)
    assert refused.value.response["Error"]["Code"] == "InvalidParameterValue"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert says in refused.value.response["Error"]["Message"]


# -- the aws profile: percentiles only once their period has been ingested ------------------------

SCALE = 0.02  # a 60 s period is 1.2 s; the ingestion lag 6 s, longer than sending takes
PROFILE = aws_env(SCALE, metrics_lag=300)


def test_percentiles_appear_with_their_period_after_the_ingestion_lag(
    aws_stack, make_deployer, boosters
):
    deployer = make_deployer("percentiles-aws", ROLE, stack=aws_stack)
    url = deployer.upload(xgboost_tarball(boosters["champion"]))
    slow = deployer.model(url, env={"LOCAL_SAGEMAKER_LATENCY_MS": str(LATENCY_MS)})
    endpoint = deployer.endpoint(deployer.config({"Prod": (slow, 1.0)}))
    _send(deployer, endpoint, 10)
    aws_stack.flush()
    assert _latency_points(deployer.cw, endpoint, "Prod", ["p50"]) == []  # not ingested yet
    time.sleep(aws_stack.profile.metrics_lag + 0.5)
    aws_stack.flush()
    points = _latency_points(deployer.cw, endpoint, "Prod", ["p50"], Statistics=["SampleCount"])
    assert sum(p["SampleCount"] for p in points) == 10
    assert all(p["ExtendedStatistics"]["p50"] >= LATENCY_MS * 1000 for p in points)
    deployer.cleanup()
