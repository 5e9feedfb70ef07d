"""Collect a rollout stage's evidence from AWS: CloudWatch metrics plus captured predictions
joined with ground truth by inference id.

Why these sources: CloudWatch's per-variant ``Invocations``/``Invocation4XXErrors``/
``Invocation5XXErrors``/``ModelLatency`` count every request (errors included), which the SRM and
the guardrails need; Data Capture holds each served prediction with its inference id, and Model
Monitor's ground-truth files hold the label for that id, which the quality test needs. Everything
goes through the boto3 clients passed in, so the same code reads real AWS and the local stack.

Limits: CloudWatch gives no per-request latency, so the latency guardrail uses the p99 extended
statistic where the service provides one (real AWS and the local stack) and the per-request
Mann-Whitney test is skipped. The stage-level p99 is the largest per-period p99 (conservative;
a period is a minute unless the stage is longer than a day, :func:`period_for`).
Propensities are not in Data Capture, so evidence from AWS is never treated as adaptive.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from canary.experiment.gates.config import GateConfig
from canary.experiment.gates.evidence import (
    CarriedEstimate,
    LatencySummary,
    Outcomes,
    PairedOutcomes,
    StageEvidence,
    VariantEvidence,
)
from canary.experiment.rewards import metric_outcomes
from canary.plan import Metric
from canary.stage.window import PERIOD

NAMESPACE = "AWS/SageMaker"


@dataclass(frozen=True)
class StageSource:
    """Where one stage's telemetry lives. URIs are ``s3://bucket/prefix``; the capture URI is the
    endpoint config's ``DestinationS3Uri`` (records under ``{uri}/{endpoint}/{variant}/...``)."""

    endpoint_name: str
    variants: tuple[str, str]
    capture_uri: str
    ground_truth_uri: str

    def __post_init__(self) -> None:
        for name in ("capture_uri", "ground_truth_uri"):
            if not getattr(self, name).startswith("s3://"):
                raise ValueError(f"{name}: must be an s3:// URI, got {getattr(self, name)!r}")
        if len(self.variants) != 2 or self.variants[0] == self.variants[1]:
            raise ValueError(f"variants: need two distinct names, got {self.variants!r}")


@dataclass(frozen=True)
class StageAnswers:
    """What Data Capture and the ground truth hold for a stage: each variant's answers by
    inference id (a shadow's are only here), and the labels. Read once per look: the gate's
    outcomes and the shadow stage's pairs both come from it."""

    captured: dict[str, dict[str, list[float]]]  # variant -> inference id -> scores
    labels: dict[str, list[float]]

    @classmethod
    def read(cls, s3: Any, source: StageSource, start: datetime) -> StageAnswers:
        captured = {v: captured_predictions(s3, source, v, start) for v in source.variants}
        return cls(captured, ground_truth(s3, source.ground_truth_uri))


def collect_stage_evidence(
    cloudwatch: Any,
    s3: Any,
    source: StageSource,
    *,
    stage: int,
    weights: tuple[float, float],
    started_at: datetime,
    config: GateConfig,
    now: datetime | None = None,
    carried: CarriedEstimate | None = None,
    paired: PairedOutcomes | None = None,
    answers: StageAnswers | None = None,
) -> StageEvidence:
    """Everything the gate needs for ``stage`` since ``started_at`` (timezone-aware); the
    stage's ``answers`` are read here unless the caller has read them already."""
    if started_at.tzinfo is None:
        raise ValueError("started_at: must be timezone-aware (UTC)")
    now = now or datetime.now(UTC)
    answers = answers or StageAnswers.read(s3, source, started_at)
    per_variant = [
        _variant(cloudwatch, source, v, started_at, now, answers, config) for v in source.variants
    ]
    return StageEvidence(
        stage=stage,
        weights=weights,
        champion=per_variant[0],
        challenger=per_variant[1],
        started_at=started_at,
        observed_at=max(now, started_at),
        carried=carried,
        paired=paired,
    )


def _variant(
    cloudwatch: Any,
    source: StageSource,
    variant: str,
    start: datetime,
    end: datetime,
    answers: StageAnswers,
    config: GateConfig,
) -> VariantEvidence:
    metrics = variant_metrics(cloudwatch, source.endpoint_name, variant, start, end)
    scores, truth = joined_predictions(answers.captured[variant], answers.labels)
    accuracy = config.metric is Metric.ACCURACY
    values = metric_outcomes(config.metric, scores, truth, config.threshold)
    return VariantEvidence(
        name=variant,
        requests=metrics["invocations"],
        errors_4xx=metrics["errors_4xx"],
        errors_5xx=metrics["errors_5xx"],
        outcomes=Outcomes.of(values, binary=accuracy),
        latency=metrics["latency"],
        scores=scores,
        labels=truth.astype(int),
    )


def variant_metrics(
    cloudwatch: Any, endpoint: str, variant: str, start: datetime, end: datetime
) -> dict[str, Any]:
    """Request and error counts (:func:`variant_counts`) and a latency summary
    (:func:`variant_latency`) of one variant in [start, end)."""
    counts: dict[str, Any] = variant_counts(cloudwatch, endpoint, variant, start, end)
    return {**counts, "latency": variant_latency(cloudwatch, endpoint, variant, start, end)}


def variant_counts(
    cloudwatch: Any, endpoint: str, variant: str, start: datetime, end: datetime
) -> dict[str, int]:
    """Requests and 4XX/5XX errors of one variant in [start, end).

    Errors are read before requests: the counts only grow while a period is ingested, and
    every error is also a request, so requests read last are never fewer than the errors
    read first (the other order can see a flush land between the calls, and more errors
    than requests)."""
    counts: dict[str, int] = {}
    for key, name in (
        ("errors_4xx", "Invocation4XXErrors"),
        ("errors_5xx", "Invocation5XXErrors"),
        ("invocations", "Invocations"),
    ):
        points = _datapoints(cloudwatch, name, endpoint, variant, start, end)
        counts[key] = round(sum(p.get("Sum", 0.0) for p in points))
    return counts


def variant_latency(
    cloudwatch: Any, endpoint: str, variant: str, start: datetime, end: datetime
) -> LatencySummary | None:
    """One variant's ModelLatency in [start, end), in milliseconds."""
    points = _datapoints(cloudwatch, "ModelLatency", endpoint, variant, start, end, latency=True)
    return _latency(points)


#: GetMetricStatistics refuses a request for more data points than this.
MAX_DATAPOINTS = 1440


def period_for(start: datetime, end: datetime) -> int:
    """The period to read [start, end) with: CloudWatch's 60 s, or a multiple of it when a
    stage runs so long (more than a day; a stage may run a week) that 60 s periods would be
    more data points than one request may return."""
    span = (end - start).total_seconds()
    return PERIOD * max(1, math.ceil(span / (PERIOD * MAX_DATAPOINTS)))


def _datapoints(
    cloudwatch: Any,
    metric: str,
    endpoint: str,
    variant: str,
    start: datetime,
    end: datetime,
    latency: bool = False,
) -> list[dict[str, Any]]:
    """One variant's data points of ``metric`` in [start, end). Latency needs percentiles too,
    asked for in a call of their own: the API reference allows Statistics or
    ExtendedStatistics in one call, not both."""
    until = max(end, start + timedelta(seconds=1)) + timedelta(seconds=1)
    kwargs: dict[str, Any] = {
        "Namespace": NAMESPACE,
        "MetricName": metric,
        "Dimensions": [
            {"Name": "EndpointName", "Value": endpoint},
            {"Name": "VariantName", "Value": variant},
        ],
        "StartTime": start,
        "EndTime": until,
        "Period": period_for(start, until),
    }
    statistics = ["Sum", "SampleCount", "Maximum"] if latency else ["Sum"]
    points = cloudwatch.get_metric_statistics(**kwargs, Statistics=statistics)["Datapoints"]
    if not latency:
        return points
    extended = cloudwatch.get_metric_statistics(**kwargs, ExtendedStatistics=["p99"])
    p99s = {p["Timestamp"]: p.get("ExtendedStatistics", {}) for p in extended["Datapoints"]}
    return [{**p, "ExtendedStatistics": p99s.get(p["Timestamp"], {})} for p in points]


def _latency(points: list[dict[str, Any]]) -> LatencySummary | None:
    """Microseconds (CloudWatch's unit for ModelLatency) to milliseconds."""
    count = sum(p.get("SampleCount", 0.0) for p in points)
    if not count:
        return None
    total = sum(p.get("Sum", 0.0) for p in points)
    p99s = [
        p["ExtendedStatistics"]["p99"] for p in points if "p99" in p.get("ExtendedStatistics", {})
    ]
    return LatencySummary(
        count=int(count),
        mean_ms=total / count / 1000.0,
        max_ms=max(p.get("Maximum", 0.0) for p in points) / 1000.0,
        p99_ms=max(p99s) / 1000.0 if p99s else None,
    )


def ground_truth(s3: Any, uri: str) -> dict[str, list[float]]:
    """Labels by inference id from Model Monitor ground-truth records (CSV data, one label per
    row of the request)."""
    labels: dict[str, list[float]] = {}
    for record in _jsonl_records(s3, uri):
        try:
            event_id = record["eventMetadata"]["eventId"]
            data = record["groundTruthData"]["data"]
        except (KeyError, TypeError) as exc:
            raise ValueError(f"groundTruthData: malformed ground-truth record ({exc})") from exc
        labels[str(event_id)] = _csv_numbers(data)
    return labels


def joined_predictions(
    captured: dict[str, list[float]], labels: dict[str, list[float]]
) -> tuple[np.ndarray, np.ndarray]:
    """(scores, labels) of a variant's ``captured`` predictions that have a label."""
    scores: list[float] = []
    truth: list[float] = []
    for inference_id, predicted in captured.items():
        if inference_id not in labels:
            continue
        if len(predicted) != len(labels[inference_id]):
            raise ValueError(
                f"groundTruthData: {len(labels[inference_id])} labels for {len(predicted)} "
                f"predictions of inference id {inference_id!r}"
            )
        scores += predicted
        truth += labels[inference_id]
    return np.array(scores, dtype=float), np.array(truth, dtype=float)


def captured_predictions(
    s3: Any, source: StageSource, variant: str, start: datetime
) -> dict[str, list[float]]:
    """The variant's captured predictions since ``start`` by inference id: what a shadow
    variant answered (it is never returned to a caller) is only here."""
    found: dict[str, list[float]] = {}
    prefix = f"{source.capture_uri.rstrip('/')}/{source.endpoint_name}/{variant}"
    for record in _jsonl_records(s3, prefix, since=start):
        meta = record.get("eventMetadata", {})
        inference_id = meta.get("inferenceId")
        if inference_id is None or _when(meta) < start:
            continue
        found[inference_id] = captured_scores(record["captureData"]["endpointOutput"]["data"])
    return found


def _when(meta: dict[str, Any]) -> datetime:
    raw = meta.get("inferenceTime")
    if not raw:
        return datetime.max.replace(tzinfo=UTC)
    return datetime.fromisoformat(raw.replace("Z", "+00:00"))


def _csv_numbers(data: str) -> list[float]:
    return [float(x) for x in _csv_tokens(data)]


def captured_scores(data: str) -> list[float]:
    """A captured answer's scores, one per row. A token that is no finite number is an answer
    without a usable score: NaN, which the gate judges the worst outcome (as the replay
    records an unparseable answer), not a reason to fail the look."""
    return [_finite_or_nan(token) for token in _csv_tokens(data)]


def _finite_or_nan(token: str) -> float:
    try:
        value = float(token)
    except ValueError:
        return math.nan
    return value if math.isfinite(value) else math.nan


def _csv_tokens(data: str) -> list[str]:
    return [x for x in data.replace("\n", ",").split(",") if x.strip()]


def _jsonl_records(s3: Any, uri: str, since: datetime | None = None) -> Iterator[dict[str, Any]]:
    """Every JSON line of every object under ``uri``; with ``since``, skips hour folders
    (``.../yyyy/mm/dd/hh/``) that end before it."""
    bucket, _, prefix = uri[len("s3://") :].partition("/")
    prefix = prefix.rstrip("/") + "/" if prefix else ""
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            if since is not None and _hour_before(obj["Key"][len(prefix) :], since):
                continue
            body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read().decode()
            for line in body.splitlines():
                if line.strip():
                    yield json.loads(line)


def _hour_before(relative_key: str, since: datetime) -> bool:
    parts = relative_key.split("/")
    try:
        y, m, d, h = (int(p) for p in parts[-5:-1])
        folder = datetime(y, m, d, h, tzinfo=UTC)
    except ValueError:
        return False
    return folder + timedelta(hours=1) <= since
