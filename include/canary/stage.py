"""One rollout stage held by its gate: feed it traffic, gather the evidence, let the gate decide.

This is the rollout step's side of the Argo-Rollouts/Flagger split: the gate (``canary.gates``)
only judges evidence; this module decides where the evidence comes from and keeps the stage's
state between looks, so a sensor can call :meth:`StageGate.hold` again after a reschedule, in
another process, and carry on where the last poke stopped.

Evidence comes from the replay's per-request results (scores, labels joined by inference id,
latencies, logged propensities) when the plan replays traffic, and from Data Capture, ground
truth and CloudWatch through :mod:`canary.telemetry` when real traffic flows.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import pandas as pd
from botocore.exceptions import ClientError

from canary import gates, telemetry
from canary.endpoint import capture_uri
from canary.gates.decision import Decision, Verdict
from canary.gates.evidence import (
    CarriedEstimate,
    Outcomes,
    StageEvidence,
    VariantEvidence,
    champion_estimate,
)
from canary.gates.frame import evidence_from_frame
from canary.gates.sizing import planned_max_requests
from canary.plan import RolloutPlan, Strategy
from canary.replay import (
    ReplayConfig,
    ReplayDataset,
    ReplaySession,
    S3Location,
    load_results,
    split_requests,
)
from canary.replay.session import runtime_config

log = logging.getLogger(__name__)

# CloudWatch may lag the traffic (a flush interval locally, a minute or two on AWS): how long a
# look waits for it to count what the replay sent, and how often it asks.
METRICS_CATCH_UP_SECONDS = 180.0
METRICS_POLL_SECONDS = 0.5

STRATEGY_NAMES = {
    Strategy.WEIGHTED: "WeightedSampling",
    Strategy.EPSILON_GREEDY: "EpsilonGreedy",
    Strategy.UCB1: "UCB1",
    Strategy.THOMPSON: "ThompsonSampling",
}


@dataclass(frozen=True)
class StageWindow:
    """Which stage, at which weights, since when (the moment the weights took effect)."""

    index: int
    weights: dict[str, float]
    started_at: float

    @property
    def name(self) -> str:
        return f"stage-{self.index + 1}"


class StageGate:
    """The gate of one stage of one run, with its traffic and its state in S3."""

    def __init__(self, aws: Any, plan: RolloutPlan, window: StageWindow, run_key: str) -> None:
        self.aws, self.plan, self.window, self.run_key = aws, plan, window, run_key
        self.config = gate_config(plan)

    # -------------------------------------------------------------- the loop
    def hold(self, budget_seconds: float) -> Decision:
        """Replay and look until the gate decides, traffic runs out, or the budget is spent."""
        deadline = time.monotonic() + budget_seconds
        looks = self._load("looks.json", default=[])
        session = self._gate_session() if self.plan.traffic.enabled else None
        frame = self._results(self.window.name) if session else None
        burst = sum(shard["requests"] for shard in self.burst_shards())
        cap = self.request_cap - burst
        while True:
            sent_chunk = False
            if session is not None and session.cursor < cap:
                size = min(self.plan.traffic.chunk_size, cap - session.cursor)
                frame = pd.concat([frame, session.run_chunk(size).frame], ignore_index=True)
                sent_chunk = True
            evidence = self._evidence(frame)
            decision, looks = gates.evaluate(evidence, self.config, looks)
            self._record(decision, looks)
            if decision.verdict is not Verdict.CONTINUE:
                self._save("champion.json", asdict(evidence.champion.outcomes))
                return decision
            if not sent_chunk:
                return decision
            if time.monotonic() > deadline:
                return decision

    # -------------------------------------------------------------- evidence
    def _evidence(self, frame: pd.DataFrame | None) -> StageEvidence:
        weights = self._weights()
        now = datetime.now(UTC)
        started = datetime.fromtimestamp(self.window.started_at, UTC)
        if frame is None:
            source = telemetry.StageSource(
                endpoint_name=self.plan.endpoint_name,
                variants=self.plan.variants,
                capture_uri=capture_uri(self.plan),
                ground_truth_uri=f"s3://{self.plan.bucket}/{ground_truth_prefix(self.plan)}",
            )
            return telemetry.collect_stage_evidence(
                self.aws.cloudwatch,
                self.aws.s3,
                source,
                stage=self.window.index,
                weights=weights,
                started_at=started,
                config=self.config,
                now=max(now, started),
                carried=self._carried,
            )
        evidence = evidence_from_frame(
            frame.assign(stage=self.window.index),
            stage=self.window.index,
            weights=weights,
            variants=self.plan.variants,
            config=self.config,
            carried=self._carried,
            started_at=started,
            observed_at=max(now, started),
        )
        answered = int((frame["status"] > 0).sum())  # status 0: no response reached us
        return self._served_counts(evidence, answered)

    def _served_counts(self, evidence: StageEvidence, answered: int) -> StageEvidence:
        """Requests and errors per variant as the endpoint counted them (CloudWatch).

        SageMaker's error responses do not name the variant that failed, so a client routed by
        endpoint weights cannot attribute its 4XX/5XX; the endpoint's own metrics can. They are
        the only source of counts (mixing them with the client's would skew the split), and
        the gate waits until they account for the ``answered`` requests, so rates and the sample
        ratio are never judged on a lagging view of the traffic.
        """
        deadline = time.monotonic() + METRICS_CATCH_UP_SECONDS
        while True:
            metrics = [
                telemetry.variant_metrics(
                    self.aws.cloudwatch,
                    self.plan.endpoint_name,
                    variant.name,
                    evidence.started_at,
                    datetime.now(UTC),
                )
                for variant in (evidence.champion, evidence.challenger)
            ]
            counted = sum(m["invocations"] for m in metrics)
            if counted >= answered or time.monotonic() > deadline:
                break
            time.sleep(METRICS_POLL_SECONDS)
        if counted < answered:
            log.warning("CloudWatch counts %d of %d answered requests so far", counted, answered)
        champion, challenger = (
            replace(
                variant,
                requests=m["invocations"],
                errors_4xx=m["errors_4xx"],
                errors_5xx=m["errors_5xx"],
            )
            for variant, m in zip((evidence.champion, evidence.challenger), metrics, strict=True)
        )
        return replace(evidence, champion=champion, challenger=challenger)

    def _weights(self) -> tuple[float, float]:
        champion, challenger = self.plan.variants
        return (float(self.window.weights[champion]), float(self.window.weights[challenger]))

    @cached_property
    def _carried(self) -> CarriedEstimate | None:
        """The champion's quality over earlier stages, for a stage where it gets no traffic."""
        if self._weights()[0] > 0:
            return None
        earlier = [
            self._load("champion.json", None, stage=index) for index in range(self.window.index)
        ]
        stages = [
            StageEvidence(
                stage=index,
                weights=(1.0, 1.0),
                champion=VariantEvidence(self.plan.variants[0], outcomes=Outcomes(**outcomes)),
                challenger=VariantEvidence(self.plan.variants[1]),
                started_at=datetime.fromtimestamp(self.window.started_at, UTC),
            )
            for index, outcomes in enumerate(earlier)
            if outcomes and outcomes["n"] > 1
        ]
        return champion_estimate(stages) if stages else None

    # -------------------------------------------------------------- traffic
    @cached_property
    def request_cap(self) -> int:
        """Synthetic requests this stage may send: the user's cap, never beyond what the gate
        can need (its planned maximum), so a demo never replays pointlessly."""
        carried = self._carried
        planned = planned_max_requests(
            self.config, self._weights(), carried.variance if carried else 0.0
        )
        return min(
            self.plan.traffic.requests_per_stage, planned.total + self.plan.traffic.chunk_size
        )

    def burst_shards(self) -> list[dict[str, int]]:
        """The stage's first burst of traffic, one entry per mapped replay task.

        With ``traffic.shards`` = N, half the stage's cap is split over N tasks, each replaying
        its own slice of users (slice k of N + 1; the gate's top-ups use the last slice), so no
        two tasks ever send the same user or inference id. With N = 0 there is no burst.
        """
        shards = self.plan.traffic.shards if self.plan.traffic.enabled else 0
        if shards == 0:
            return [{"index": 0, "count": 1, "requests": 0}]
        parts = split_requests(self.request_cap // 2, shards)
        return [{"index": k, "count": shards + 1, "requests": n} for k, n in enumerate(parts)]

    def burst(self, shard: dict[str, int]) -> dict[str, Any]:
        """Send one mapped task's share of the burst; returns its counters."""
        if shard["requests"] == 0:
            return {"requests": 0}
        session = self._replay_session(shard["index"], shard["count"])
        sent = session.cursor
        while sent < shard["requests"]:
            size = min(self.plan.traffic.chunk_size, shard["requests"] - sent)
            sent += len(session.run_chunk(size).frame)
        return session.totals.to_dict()

    def _gate_session(self) -> ReplaySession:
        shards = self.plan.traffic.shards
        return self._replay_session(shards, shards + 1)

    def _replay_session(self, shard_index: int, shard_count: int) -> ReplaySession:
        traffic = self.plan.traffic
        config = ReplayConfig(
            endpoint_name=self.plan.endpoint_name,
            stage=self.window.name,
            weights=self.window.weights,
            run_id=hashlib.sha256(self.run_key.encode()).hexdigest()[:12],
            mode=traffic.mode.value,
            strategy=STRATEGY_NAMES[traffic.strategy],
            strategy_params=(
                {"epsilon": traffic.epsilon} if traffic.strategy is Strategy.EPSILON_GREEDY else {}
            ),
            warmup=traffic.warmup,
            concurrency=traffic.concurrency,
            shard_index=shard_index,
            shard_count=shard_count,
        )
        return ReplaySession.open(
            self.runtime,
            self.dataset,
            config,
            s3=self.aws.s3,
            location=self.location,
            progress=False,
        )

    @cached_property
    def runtime(self) -> Any:
        """A runtime client whose connection pool matches the replay's concurrency."""
        return self.aws.runtime_with(runtime_config(self.plan.traffic.concurrency))

    @cached_property
    def dataset(self) -> ReplayDataset:
        return load_dataset(self.aws.s3, self.plan)

    @property
    def location(self) -> S3Location:
        return replay_location(self.plan, self.run_key)

    def _results(self, stage_name: str) -> pd.DataFrame:
        return load_results(self.aws.s3, self.location, stage_name)

    # -------------------------------------------------------------- state
    def _key(self, name: str, stage: int | None = None) -> str:
        index = self.window.index if stage is None else stage
        return f"{gates_prefix(self.plan, self.run_key)}stage-{index + 1}/{name}"

    def _save(self, name: str, value: Any) -> None:
        body = json.dumps(value).encode()
        self.aws.s3.put_object(Bucket=self.plan.bucket, Key=self._key(name), Body=body)

    def _load(self, name: str, default: Any, stage: int | None = None) -> Any:
        try:
            key = self._key(name, stage)
            body = self.aws.s3.get_object(Bucket=self.plan.bucket, Key=key)["Body"]
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in {"NoSuchKey", "404"}:
                return default
            raise
        return json.loads(body.read())

    def _record(self, decision: Decision, looks: list[dict[str, Any]]) -> None:
        """Every evaluation leaves its decision record in S3, then the looks it is based on."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        name = f"decisions/{stamp}-{decision.verdict.value}.json"
        self.aws.s3.put_object(
            Bucket=self.plan.bucket, Key=self._key(name), Body=decision.to_json().encode()
        )
        self._save("looks.json", looks)


def replay_location(plan: RolloutPlan, run_key: str) -> S3Location:
    """Where a run's replayed requests, their ground truth and the replay state live."""
    return S3Location(
        bucket=plan.bucket,
        prefix=f"{plan.run_prefix(run_key)}/replay",
        ground_truth_prefix=ground_truth_prefix(plan),
    )


def ground_truth_prefix(plan: RolloutPlan) -> str:
    """Labels for every captured request of the endpoint, in Model Monitor's layout."""
    return f"{plan.prefix}/ground-truth"


def gates_prefix(plan: RolloutPlan, run_key: str) -> str:
    """Where a run's gates keep their looks and every decision record, one folder per stage."""
    return f"{plan.run_prefix(run_key)}/gates/"


def gate_config(plan: RolloutPlan) -> gates.GateConfig:
    """The gate's settings from the plan's gate section."""
    gate = plan.gate
    return gates.GateConfig(
        alpha=gate.alpha,
        power=gate.power,
        margin=gate.margin,
        metric=gate.metric,
        planning_rate=gate.planning_rate,
        max_5xx_rate=gate.max_5xx_rate,
        max_4xx_rate=gate.max_4xx_rate,
        max_p99_latency_ms=gate.max_p99_latency_ms,
        max_stage_minutes=gate.max_stage_minutes,
        on_deadline=gate.on_deadline.value,
    )


def load_dataset(s3: Any, plan: RolloutPlan) -> ReplayDataset:
    """The labelled rows to replay: the demo's test split, a local CSV or an S3 CSV."""
    source, label = plan.traffic.dataset, plan.traffic.label_column
    if source == "demo":
        from canary.demo import cached_demo_models

        source = str(cached_demo_models().test_csv)
    if source.startswith("s3://"):
        bucket, _, key = source.removeprefix("s3://").partition("/")
        frame = pd.read_csv(s3.get_object(Bucket=bucket, Key=key)["Body"])
    else:
        frame = pd.read_csv(source)
    return ReplayDataset(frame, label)
