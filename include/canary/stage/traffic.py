"""A stage's synthetic traffic: how much it may send, its first burst over mapped tasks, and the
replay sessions that send it (in production, real traffic does this and none of it runs).
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import pandas as pd

from canary.experiment.gates.config import GateConfig
from canary.experiment.rewards import brier_reward
from canary.plan import AllocationStrategy, Metric, RolloutPlan, TrafficMode, short_digest
from canary.replay import (
    ReplayConfig,
    ReplayDataset,
    ReplaySession,
    S3Location,
    load_results,
    split_requests,
)
from canary.replay.session import runtime_config
from canary.rollout.layout import replay_location
from canary.stage.capacity import planned_requests
from canary.stage.window import StageWindow

REPLAY_RUN_DIGEST_LENGTH = 12  # the run's part of every inference id the replay sends


def gate_slice(plan: RolloutPlan, shadow: bool) -> tuple[int, int]:
    """The gate's (slice index, slice count) of the users: the last of ``traffic.shards`` + 1
    slices when a stage's first burst is mapped over tasks (the burst takes the others), else
    every user. The shadow stage never has a burst (its task group maps no replay tasks)."""
    traffic = plan.traffic
    count = traffic.shards + 1 if traffic.enabled and not shadow else 1
    return count - 1, count


class StageTraffic:
    """The replay of one stage of one run: its cap, its burst shards and its sessions."""

    def __init__(
        self,
        aws: Any,
        plan: RolloutPlan,
        window: StageWindow,
        run_key: str,
        config: GateConfig,
        carried_variance: float = 0.0,
    ) -> None:
        self.aws, self.plan, self.window, self.run_key = aws, plan, window, run_key
        self.config, self.carried_variance = config, carried_variance

    @property
    def request_cap(self) -> int:
        """Synthetic requests this stage may send at most: the user's cap."""
        return self.plan.traffic.requests_per_stage

    @cached_property
    def gate_cap(self) -> int:
        """Requests the gate's top-ups may send after the burst: one pass over the gate's
        slice of the dataset, within the user's cap. The gate stops replaying once it decides,
        so a pass longer than the plan (:attr:`planned_cap`) is used only when its information
        grows slower than planned (the models disagree more than the planning rate assumed, a
        bandit starves an arm, requests fail). Never more than one pass: a row replayed again
        gets the same answers (the models are deterministic), so counting it twice would
        overstate the information and the false promotion rate would exceed alpha. A slice
        smaller than the plan's need is spent before the planned last look, and the gate takes
        its last look there, at the information reached (less power, alpha kept)."""
        return min(self.request_cap - self.burst_total, self._first_pass(*self._gate_slice))

    @cached_property
    def planned_cap(self) -> int:
        """The requests the gate needs at most if the models behave as planned
        (:func:`planned_requests`, plus a chunk), within the cap: it sizes the first burst, so
        mapped tasks never replay more than the gate can use. ``validate_plan`` refuses a cap
        below the planned maximum of the stages whose need is known before the run
        (:func:`~canary.stage.capacity.check_replay`)."""
        traffic = self.plan.traffic
        weights = self.window.pair(self.plan)
        planned = planned_requests(self.plan, self.config, weights, self.carried_variance)
        return min(self.request_cap, planned + traffic.chunk_size)

    def burst_shards(self) -> list[dict[str, int]]:
        """The stage's first burst of traffic, one entry per mapped replay task.

        With ``traffic.shards`` = N, half the stage's planned cap is split over N tasks, each
        replaying its own slice of users (slice k of N + 1; the gate's top-ups use the last
        slice), so no two tasks ever send the same user or inference id. With N = 0 there is
        no burst, and the shadow stage never has one: its task group maps no replay tasks, so
        its gate sends the whole cap (a burst counted here would be subtracted from the gate's
        share, unsent).
        """
        return self._burst

    @cached_property
    def _burst(self) -> list[dict[str, int]]:
        _, count = self._gate_slice
        if count == 1:
            return [{"index": 0, "count": 1, "requests": 0}]
        parts = split_requests(self.planned_cap // 2, count - 1)
        return [
            {"index": k, "count": count, "requests": min(n, self._first_pass(k, count))}
            for k, n in enumerate(parts)
        ]

    def _first_pass(self, shard_index: int, shard_count: int) -> int:
        """Rows in one slice of users: the most a task may send in a stage, since a row sent
        twice gets the same answers and is no new evidence (see :attr:`gate_cap`)."""
        return len(self.dataset.shard_rows(shard_index, shard_count))

    @property
    def burst_total(self) -> int:
        return sum(shard["requests"] for shard in self.burst_shards())

    def burst(self, shard: dict[str, int]) -> dict[str, Any]:
        """Send one mapped task's share of the burst; returns its counters."""
        if shard["requests"] == 0:
            return {"requests": 0}
        self.window.wait_for_start()
        session = self.session(shard["index"], shard["count"])
        sent = session.cursor
        while sent < shard["requests"]:
            size = min(self.plan.traffic.chunk_size, shard["requests"] - sent)
            sent += len(session.run_chunk(size).frame)
        return session.totals.to_dict()

    def gate_session(self) -> ReplaySession:
        """The session the gate tops up with: the last slice of users, after the burst's (every
        user when the stage has no burst)."""
        return self.session(*self._gate_slice)

    @property
    def _gate_slice(self) -> tuple[int, int]:
        return gate_slice(self.plan, self.window.shadow)

    def session(self, shard_index: int, shard_count: int) -> ReplaySession:
        """One shard's replay session for this stage's window."""
        traffic = self.plan.traffic
        # the shadow stage has one serving variant: the endpoint routes every request to it, and
        # the routing mode and strategy of the plan apply to the canary stages after it
        mode = TrafficMode.ENDPOINT_WEIGHTS if self.window.shadow else traffic.mode
        strategy = AllocationStrategy.WEIGHTED if self.window.shadow else traffic.strategy
        greedy = strategy is AllocationStrategy.EPSILON_GREEDY
        config = ReplayConfig(
            endpoint_name=self.plan.endpoint_name,
            stage=self.window.replay_stage,
            weights=self.window.weights,
            run_id=short_digest(self.run_key, REPLAY_RUN_DIGEST_LENGTH),
            mode=mode,
            strategy=strategy,
            strategy_params={"epsilon": traffic.epsilon} if greedy else {},
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
            # bandits learn from what the gate judges: calibration when it judges the Brier score
            reward_fn=brier_reward if self.config.metric is Metric.BRIER else None,
        )

    def results(self) -> pd.DataFrame:
        """Every request replayed in this window of the stage so far, by any task."""
        return load_results(self.aws.s3, self.location, self.window.replay_stage)

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


def load_dataset(s3: Any, plan: RolloutPlan) -> ReplayDataset:
    """The labelled rows to replay: the demo's traffic, a local CSV or an S3 CSV."""
    source, label = plan.traffic.dataset, plan.traffic.label_column
    if source == "demo":
        from canary.models.demo_models import cached_demo_models  # trains on first use

        source = str(cached_demo_models().traffic_csv)
    if not source.startswith("s3://"):
        return ReplayDataset.from_csv(source, label)
    bucket, _, key = source.removeprefix("s3://").partition("/")
    return ReplayDataset(pd.read_csv(s3.get_object(Bucket=bucket, Key=key)["Body"]), label)
