"""Per-variant CloudWatch metrics, aggregated in memory and flushed into moto in-process.

One PutMetricData per request would make moto's metric list (and every GetMetricStatistics
scan) grow with traffic and put a lock on the hot path. Instead each request adds to a
per-(endpoint, variant, second) bucket; the flusher writes every closed bucket as
``StatisticValues`` (SampleCount/Sum/Minimum/Maximum), so Sum and SampleCount stay exact.

Namespace ``AWS/SageMaker``, dimensions ``EndpointName`` + ``VariantName``:

* ``Invocations`` (Count): every request routed to the variant, errors included.
* ``Invocation4XXErrors`` / ``Invocation5XXErrors`` (Count): 0/1 per request, so Average is
  the error rate and Sum the error count, as on AWS.
* ``ModelLatency`` (Microseconds): time in the model container: decode, predict, encode
  (plus injected latency).
* ``OverheadLatency`` (Microseconds): the rest of the time our server spent on the request.

Caveat: moto ignores ``ExtendedStatistics`` (p99 etc.), and aggregated datums could not answer
them honestly anyway. Percentiles are available from ``Metrics.latency_percentiles`` (exposed
by the server at ``GET /_local_sagemaker/stats``), computed from the raw per-request values.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from moto.cloudwatch.models import cloudwatch_backends

NAMESPACE = "AWS/SageMaker"
RESERVOIR = 200_000
_EPOCH = datetime(1970, 1, 1)


class _Bucket:
    """Running statistics of one variant for one second."""

    __slots__ = ("e4", "e5", "model", "n", "overhead")

    def __init__(self) -> None:
        self.n = 0
        self.e4 = 0
        self.e5 = 0
        self.model: list[float] = [0, 0.0, float("inf"), float("-inf")]
        self.overhead: list[float] = [0, 0.0, float("inf"), float("-inf")]


def _add(stats: list[float], value: float) -> None:
    stats[0] += 1
    stats[1] += value
    if value < stats[2]:
        stats[2] = value
    if value > stats[3]:
        stats[3] = value


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


class Metrics:
    """Thread-safe aggregation of invocation metrics plus raw latency reservoirs.

    ``record`` runs on every request, so it takes no lock: it appends one tuple to a deque
    (atomic under the GIL). A lock on the request path was contended by the other request
    threads and the flusher. ``_drain`` folds queued events into the per-second buckets and
    the reservoirs; ``flush`` and ``latency_percentiles`` drain first, so nothing recorded
    before they are called is missed.
    """

    def __init__(self) -> None:
        self._events: deque[tuple] = deque()
        self._buckets: dict[tuple, _Bucket] = {}
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
        self._events.append((where, int(time.time()), status, model_us, overhead_us))

    def _drain(self) -> None:
        """Fold every queued event into buckets and reservoirs (caller holds ``_lock``)."""
        events, buckets, latency = self._events, self._buckets, self._latency
        while events:
            where, second, status, model_us, overhead_us = events.popleft()
            key = (*where, second)
            bucket = buckets.get(key)
            if bucket is None:
                bucket = buckets[key] = _Bucket()
            bucket.n += 1
            if status >= 500:
                bucket.e5 += 1
            elif status >= 400:
                bucket.e4 += 1
            if model_us is not None:
                _add(bucket.model, model_us)
            _add(bucket.overhead, overhead_us)
            pair = latency.get(where[2:])
            if pair is None:
                pair = latency[where[2:]] = (deque(maxlen=RESERVOIR), deque(maxlen=RESERVOIR))
            if model_us is not None:
                pair[0].append(model_us)
            pair[1].append(overhead_us)

    def flush(self) -> int:
        """Write every bucket to moto's CloudWatch backend; returns the requests flushed."""
        with self._lock:
            self._drain()
            buckets, self._buckets = self._buckets, {}
        served = 0
        for (account, region, endpoint, variant, second), bucket in buckets.items():
            dims = [
                {"Name": "EndpointName", "Value": endpoint},
                {"Name": "VariantName", "Value": variant},
            ]
            data = self._data(dims, _EPOCH + timedelta(seconds=second), bucket)
            cloudwatch_backends[account][region].put_metric_data(NAMESPACE, data)
            served += bucket.n
        return served

    @staticmethod
    def _data(dims: list[dict], when: datetime, b: _Bucket) -> list[dict[str, Any]]:
        data = [
            _datum("Invocations", dims, when, (b.n, b.n, 1, 1), "Count"),
            _datum("Invocation4XXErrors", dims, when, _errors(b.n, b.e4), "Count"),
            _datum("Invocation5XXErrors", dims, when, _errors(b.n, b.e5), "Count"),
            _datum("OverheadLatency", dims, when, tuple(b.overhead), "Microseconds"),
        ]
        if b.model[0]:
            data.append(_datum("ModelLatency", dims, when, tuple(b.model), "Microseconds"))
        return data

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


def _summary(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"count": 0}
    arr = np.asarray(values)
    p50, p90, p99 = np.percentile(arr, [50, 90, 99])
    return {"count": len(values), "p50": p50, "p90": p90, "p99": p99, "max": float(arr.max())}
