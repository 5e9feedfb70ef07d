"""GetMetricStatistics ``ExtendedStatistics`` (percentiles) for moto's CloudWatch.

moto 5.2.5 reads ``ExtendedStatistics`` and ignores it, so a percentile query (the gate's p99
latency guardrail) gets datapoints without any. CloudWatch computes percentiles from the raw
values of each period; it cannot from a statistic set (SampleCount/Sum/Minimum/Maximum) unless
the set is one value (SampleCount 1, or Minimum equal to Maximum), and gives none for a metric
with a negative value ([GetMetricStatistics](https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_GetMetricStatistics.html)).

So the stack's latency metrics are written as ``ValuesDatum``: a statistic set (one object a
variant, period and flush, so moto's metric list does not grow with traffic, as moto's own
``Values``/``Counts`` would: it stores one datum per value) that also keeps the period's exact
values. ``install`` replaces moto's GetMetricStatistics handler with one that checks
``ExtendedStatistics`` as CloudWatch does and adds, to every datapoint,
``"ExtendedStatistics": {"p99": value, ...}`` computed from the raw values of that datapoint's
period: our datums' values, moto's single values (``Value``, or ``Values``/``Counts``) and
single-valued statistic sets. A datapoint holding any other statistic set, or a negative value,
gets no ``ExtendedStatistics``, as on CloudWatch.

AWS does not document how it interpolates between ranks; ``numpy.percentile``'s linear
interpolation is used (the same as the stack's ``/_local_sagemaker/stats``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

import numpy as np
from moto.cloudwatch.exceptions import InvalidParameterValue
from moto.cloudwatch.models import (
    CloudWatchBackend,
    MetricAggregatedDatum,
    MetricDatum,
    MetricDatumBase,
)
from moto.cloudwatch.responses import CloudWatchResponse
from moto.core.responses import ActionResult

# botocore's service model: ExtendedStatistics has at most 10 members
MAX_EXTENDED_STATISTICS = 10
# pNN.NN: "any percentile, using up to two decimal places (for example, p95.45)", p0.0 to p100
_PERCENTILE = re.compile(r"p(\d{1,3}(?:\.\d{1,2})?)")


class ValuesDatum(MetricAggregatedDatum):
    """A statistic set that keeps the raw values it summarises, so percentiles stay exact."""

    def __init__(
        self,
        namespace: str,
        name: str,
        dimensions: list[dict[str, str]],
        timestamp: datetime,
        unit: str,
        values: np.ndarray,
    ) -> None:
        super().__init__(
            namespace,
            name,
            min_stat=float(values.min()),
            max_stat=float(values.max()),
            sample_count=float(values.size),
            sum_stat=float(values.sum()),
            dimensions=dimensions,
            timestamp=timestamp,
            unit=unit,
        )
        self.values = values


def put_values(
    backend: CloudWatchBackend,
    namespace: str,
    name: str,
    dimensions: list[dict[str, str]],
    timestamp: datetime,
    values: Sequence[float],
    unit: str,
) -> None:
    """Store one metric's values of one period (non-empty) as a single ``ValuesDatum``."""
    datum = ValuesDatum(namespace, name, dimensions, timestamp, unit, np.asarray(values, float))
    backend.metric_data.append(datum)


def parse_extended(asked: Sequence[str]) -> list[tuple[str, float]]:
    """(name, percent) of each requested percentile; refuses what CloudWatch refuses with its
    ``InvalidParameterValue`` (the message's wording is ours: AWS documents only the code)."""
    if len(asked) > MAX_EXTENDED_STATISTICS:
        raise InvalidParameterValue(
            "The collection ExtendedStatistics must not have a size greater than "
            f"{MAX_EXTENDED_STATISTICS}."
        )
    parsed = []
    for index, name in enumerate(asked, start=1):
        match = _PERCENTILE.fullmatch(name)
        if match is None or float(match.group(1)) > 100:
            raise InvalidParameterValue(
                f"The value {name} for parameter ExtendedStatistics.member.{index} is not "
                "supported. Specify a percentile between p0.0 and p100."
            )
        parsed.append((name, float(match.group(1))))
    return parsed


def _raw_values(datum: MetricDatumBase) -> np.ndarray | None:
    """The values a datum stands for, or None when a statistic set cannot tell them."""
    if isinstance(datum, ValuesDatum):
        return datum.values
    if isinstance(datum, MetricDatum):
        return np.asarray([datum.value])
    if isinstance(datum, MetricAggregatedDatum) and (
        datum.sample_count == 1 or datum.min == datum.max
    ):
        return np.full(int(datum.sample_count), datum.min)
    return None


def percentiles(
    data: Sequence[MetricDatumBase], wanted: Sequence[tuple[str, float]]
) -> dict[str, float] | None:
    """``{name: value}`` over the raw values of one period's datums; None when CloudWatch would
    give none (a statistic set of several distinct values, a negative value, no values)."""
    parts = [_raw_values(datum) for datum in data]
    if not parts or any(part is None for part in parts):
        return None
    values = np.concatenate(parts)
    if not values.size or (values < 0).any():
        return None
    found = np.percentile(values, [percent for _, percent in wanted])
    return {name: float(value) for (name, _), value in zip(wanted, found, strict=True)}


_original_handler = CloudWatchResponse.get_metric_statistics


def _get_metric_statistics(self: CloudWatchResponse) -> ActionResult:
    """moto's handler, plus ``ExtendedStatistics`` on every datapoint that can have them."""
    wanted = parse_extended(self._get_param("ExtendedStatistics") or [])
    answer = _original_handler(self)
    if wanted:
        for point in answer.result["Datapoints"]:
            point.extended_statistics = percentiles(point.metric_data, wanted)
    return answer


def install() -> None:
    """Answer ExtendedStatistics from now on (idempotent; moto dispatches by method name)."""
    CloudWatchResponse.get_metric_statistics = _get_metric_statistics
