"""Percentiles without a stack: CloudWatch's pNN.NN rules, which datums can answer them, and the
metrics flusher's latency datums in moto's CloudWatch backend (in-process)."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from moto.cloudwatch.exceptions import InvalidParameterValue
from moto.cloudwatch.models import MetricAggregatedDatum, MetricDatum, cloudwatch_backends

from local_sagemaker.metrics import NAMESPACE, Metrics
from local_sagemaker.percentiles import ValuesDatum, parse_extended, percentiles
from local_sagemaker.profile import Profile

ACCOUNT, REGION = "123456789012", "us-east-1"
WHEN = datetime(2024, 1, 1)
DIMS = [{"Name": "EndpointName", "Value": "e"}]


def _values(values: list[float]) -> ValuesDatum:
    return ValuesDatum(NAMESPACE, "ModelLatency", DIMS, WHEN, "Microseconds", np.asarray(values))


def _set(count: float, low: float, high: float) -> MetricAggregatedDatum:
    total = count * low
    return MetricAggregatedDatum(NAMESPACE, "ModelLatency", low, high, count, total, DIMS, WHEN)


@pytest.mark.parametrize(
    ("asked", "percents"),
    [(["p99"], [99.0]), (["p0", "p50.5", "p99.99", "p100"], [0.0, 50.5, 99.99, 100.0])],
)
def test_pnn_nn_percentiles_are_accepted(asked, percents) -> None:
    assert parse_extended(asked) == list(zip(asked, percents, strict=True))


@pytest.mark.parametrize("bad", ["p101", "p100.01", "p99.999", "P99", "99", "p", "Average", "tm90"])
def test_what_cloudwatch_refuses_is_an_invalid_parameter_value(bad) -> None:
    with pytest.raises(InvalidParameterValue, match=rf"value {bad} .*ExtendedStatistics.member.2"):
        parse_extended(["p50", bad])


def test_at_most_ten_extended_statistics() -> None:
    assert len(parse_extended([f"p{i}" for i in range(10)])) == 10
    with pytest.raises(InvalidParameterValue, match="greater than 10"):
        parse_extended([f"p{i}" for i in range(11)])


def test_percentiles_are_numpys_over_every_raw_value_of_the_period() -> None:
    rng = np.random.default_rng(7)
    first, second = rng.exponential(1000, 300), rng.exponential(5000, 50)
    data = [_values(list(first)), _values(list(second)), MetricDatum(NAMESPACE, "M", 7.0, [], WHEN)]
    wanted = parse_extended(["p50", "p99"])
    expected = np.percentile(np.concatenate([first, second, [7.0]]), [50, 99])
    assert percentiles(data, wanted) == {"p50": expected[0], "p99": expected[1]}


def test_a_statistic_set_answers_only_when_it_is_one_value() -> None:
    wanted = parse_extended(["p50"])
    assert percentiles([_set(1, 4.0, 4.0), _set(3, 2.0, 2.0)], wanted) == {"p50": 2.0}
    assert percentiles([_values([1.0]), _set(3, 1.0, 9.0)], wanted) is None


def test_a_negative_value_leaves_no_percentile() -> None:
    assert percentiles([_values([-1.0, 5.0])], parse_extended(["p50"])) is None


def _record(metrics: Metrics, endpoint: str, model_us: list[float]) -> None:
    for value in model_us:
        metrics.record((ACCOUNT, REGION, endpoint, "Prod"), 200, value, 10.0)


def _statistics(endpoint: str, period: int = 3600) -> list:
    """moto's GetMetricStatistics (its model, below the HTTP handler) for ModelLatency."""
    now = datetime.now(UTC).replace(tzinfo=None)
    return cloudwatch_backends[ACCOUNT][REGION].get_metric_statistics(
        NAMESPACE,
        "ModelLatency",
        now - timedelta(minutes=5),
        now + timedelta(minutes=5),
        period,
        ["SampleCount"],
        [{"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": "Prod"}],
    )


def test_flushed_latencies_keep_every_value_in_one_datum_per_flush() -> None:
    endpoint, metrics = f"e-{uuid.uuid4().hex[:8]}", Metrics(Profile())
    values = list(np.random.default_rng(3).uniform(100, 900, 500))
    _record(metrics, endpoint, values[:200])
    metrics.flush()
    _record(metrics, endpoint, values[200:])
    metrics.flush()
    (point,) = _statistics(endpoint)
    assert point.sample_count == 500
    assert len(point.metric_data) <= 4  # one datum per (period, flush), not one per request
    p = percentiles(point.metric_data, parse_extended(["p50", "p99"]))
    assert p == {"p50": np.percentile(values, 50), "p99": np.percentile(values, 99)}


def test_values_reach_cloudwatch_only_after_the_ingestion_lag() -> None:
    endpoint = f"e-{uuid.uuid4().hex[:8]}"
    now = [time.time()]  # the stack's clock, moved by the test (moto is asked around now)
    metrics = Metrics(Profile(name="aws", metrics_period=60.0, metrics_lag=90.0), lambda: now[0])
    _record(metrics, endpoint, [500.0, 700.0])
    now[0] += 89.9
    metrics.flush()
    assert _statistics(endpoint) == []
    now[0] += 0.1
    metrics.flush()
    (point,) = _statistics(endpoint, period=60)
    assert percentiles(point.metric_data, parse_extended(["p50"])) == {"p50": 600.0}
