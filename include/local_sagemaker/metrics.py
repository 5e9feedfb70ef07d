"""Per-variant CloudWatch metrics, aggregated in memory and flushed into moto in-process.

One PutMetricData per request would make moto's metric list (and every GetMetricStatistics
scan) grow with traffic and put a lock on the hot path. Instead each request adds to a
per-(endpoint, variant, period) bucket; the flusher writes the counts as ``StatisticValues``
(SampleCount/Sum/Minimum/Maximum) and each latency metric as one
:class:`~local_sagemaker.percentiles.ValuesDatum` (the same statistic set, plus the period's
exact per-request values), all stamped with their period's start, so Sum and SampleCount stay
exact and percentiles can be computed from the raw values, as CloudWatch does. The period is a
second when instant; under the ``aws`` profile it is CloudWatch's minute (scaled), a request is
written only once the profile's ingestion lag has passed (so the newest period shows partial
counts, and percentiles of what has arrived, as on AWS), and GetMetricStatistics rounds
StartTime down to a period, as CloudWatch does.

Namespace ``AWS/SageMaker``, dimensions ``EndpointName`` + ``VariantName``:

* ``Invocations`` (Count): every request routed to the variant, errors included.
* ``Invocation4XXErrors`` / ``Invocation5XXErrors`` (Count): 0/1 per request, so Average is
  the error rate and Sum the error count, as on AWS.
* ``ModelLatency`` (Microseconds): time in the model container: decode, predict, encode
  (plus injected latency).
* ``OverheadLatency`` (Microseconds): the rest of the time our server spent on the request.

GetMetricStatistics answers ``ExtendedStatistics`` (pNN.NN, at most 10) for the latency metrics
per period from those raw values (:mod:`local_sagemaker.percentiles`, installed by ``Metrics``:
moto ignores them). ``Metrics.latency_percentiles`` (``GET /_local_sagemaker/stats``) gives the
same percentiles over the latest ``RESERVOIR`` requests, whatever CloudWatch shows yet.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from moto.cloudwatch.models import CloudWatchBackend, cloudwatch_backends

from local_sagemaker.percentiles import install as install_percentiles
from local_sagemaker.percentiles import put_values
from local_sagemaker.profile import Profile

NAMESPACE = "AWS/SageMaker"
RESERVOIR = 200_000
_EPOCH = datetime(1970, 1, 1)


class _Bucket:
    """Counts and raw latencies (µs) of one variant for one period, as written in one flush."""

    __slots__ = ("e4", "e5", "model", "n", "overhead")

    def __init__(self) -> None:
        self.n = 0
        self.e4 = 0
        self.e5 = 0
        self.model: list[float] = []
        self.overhead: list[float] = []


def _datum(name: str, dims: list[dict], when: datetime, stats: tuple, unit: str) -> dict:
    count, total, low, high = stats
    values = {"SampleCount": count, "Sum": total, "Minimum": low, "Maximum": high}
    return {
        "MetricName": name,
        "Dimensions": dims,
        "Timestamp": when,
        "StatisticValues": values,
        "Unit": unit,
    }


def _errors(n: int, errors: int) -> tuple:
    return (n, errors, 1 if errors == n else 0, 1 if errors else 0)


def _write(backend: CloudWatchBackend, where: tuple[str, str], when: datetime, b: _Bucket) -> None:
    """One period's bucket of (endpoint, variant) into moto: counts as statistic sets, latencies
    with their raw values."""
    dims = [
        {"Name": "EndpointName", "Value": where[0]},
        {"Name": "VariantName", "Value": where[1]},
    ]
    counts = [
        _datum("Invocations", dims, when, (b.n, b.n, 1, 1), "Count"),
        _datum("Invocation4XXErrors", dims, when, _errors(b.n, b.e4), "Count"),
        _datum("Invocation5XXErrors", dims, when, _errors(b.n, b.e5), "Count"),
    ]
    backend.put_metric_data(NAMESPACE, counts)
    for name, values in (("OverheadLatency", b.overhead), ("ModelLatency", b.model)):
        if values:  # a request that failed before the model has no ModelLatency
            put_values(backend, NAMESPACE, name, dims, when, values, "Microseconds")


class Metrics:
    """Thread-safe aggregation of invocation metrics plus raw latency reservoirs.

    ``record`` runs on every request, so it takes no lock: it appends one tuple to a deque
    (atomic under the GIL). A lock on the request path was contended by the other request
    threads and the flusher. ``_drain`` folds queued events into the per-second buckets and
    the reservoirs; ``flush`` and ``latency_percentiles`` drain first, so nothing recorded
    before they are called is missed.
    """

    def __init__(
        self, profile: Profile | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        install_percentiles()  # the latency datums written here answer ExtendedStatistics
        self.profile, self.clock = profile or Profile(), clock
        self._events: deque[tuple] = deque()
        self._ingesting: deque[tuple] = deque()  # drained, not yet visible in CloudWatch
        self._lock = threading.Lock()
        self._latency: dict[tuple[str, str], tuple[deque, deque]] = {}

    def record(
        self,
        where: tuple[str, str, str, str],
        status: int,
        model_us: float | None,
        overhead_us: float,
    ) -> None:
        """Count one request; ``where`` is (account, region, endpoint, variant)."""
        self._events.append((where, self.clock(), status, model_us, overhead_us))

    def _drain(self) -> None:
        """Fold every queued event into the reservoirs and the ingestion queue (caller holds
        ``_lock``)."""
        events, ingesting, latency = self._events, self._ingesting, self._latency
        while events:
            event = events.popleft()
            ingesting.append(event)
            where, _, _, model_us, overhead_us = event
            pair = latency.get(where[2:])
            if pair is None:
                pair = latency[where[2:]] = (deque(maxlen=RESERVOIR), deque(maxlen=RESERVOIR))
            if model_us is not None:
                pair[0].append(model_us)
            pair[1].append(overhead_us)

    def _visible_buckets(self) -> dict[tuple, _Bucket]:
        """The events older than the ingestion lag, per period (caller holds ``_lock``)."""
        horizon = self.clock() - self.profile.metrics_lag
        buckets: dict[tuple, _Bucket] = {}
        ingesting = self._ingesting
        while ingesting and ingesting[0][1] <= horizon:
            where, when, status, model_us, overhead_us = ingesting.popleft()
            key = (*where, self.profile.floor_to_period(when))
            bucket = buckets.get(key)
            if bucket is None:
                bucket = buckets[key] = _Bucket()
            bucket.n += 1
            if status >= 500:
                bucket.e5 += 1
            elif status >= 400:
                bucket.e4 += 1
            if model_us is not None:
                bucket.model.append(model_us)
            bucket.overhead.append(overhead_us)
        return buckets

    def flush(self) -> int:
        """Write what CloudWatch would show by now into moto; returns the requests written."""
        with self._lock:
            self._drain()
            buckets = self._visible_buckets()
        for (account, region, endpoint, variant, period), bucket in buckets.items():
            when = _EPOCH + timedelta(seconds=period)
            _write(cloudwatch_backends[account][region], (endpoint, variant), when, bucket)
        return sum(bucket.n for bucket in buckets.values())

    def latency_percentiles(self, reset: bool = False) -> dict[str, dict[str, Any]]:
        """p50/p90/p99/max of Model/OverheadLatency (µs) per endpoint/variant, raw values."""
        with self._lock:
            self._drain()
            snapshot = {k: (list(m), list(o)) for k, (m, o) in self._latency.items()}
            if reset:
                self._latency.clear()
        return {
            f"{endpoint}/{variant}": {
                "ModelLatency": _summary(model),
                "OverheadLatency": _summary(overhead),
            }
            for (endpoint, variant), (model, overhead) in snapshot.items()
        }


_original_statistics = CloudWatchBackend.get_metric_statistics


def round_start_time(profile: Profile) -> None:
    """GetMetricStatistics rounds StartTime down to a period, as CloudWatch rounds it down to
    the minute (only under the ``aws`` profile: instant periods are a second)."""
    if not profile.asynchronous:
        return

    def get_metric_statistics(
        self: Any, namespace: str, metric_name: str, start_time: datetime, *args: Any, **kwargs: Any
    ) -> Any:
        epoch = (start_time.replace(tzinfo=None) - _EPOCH).total_seconds()
        rounded = _EPOCH + timedelta(seconds=profile.floor_to_period(epoch))
        start = rounded.replace(tzinfo=start_time.tzinfo)
        return _original_statistics(self, namespace, metric_name, start, *args, **kwargs)

    CloudWatchBackend.get_metric_statistics = get_metric_statistics


def _summary(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"count": 0}
    arr = np.asarray(values)
    p50, p90, p99 = np.percentile(arr, [50, 90, 99])
    return {"count": len(values), "p50": p50, "p90": p90, "p99": p99, "max": float(arr.max())}
