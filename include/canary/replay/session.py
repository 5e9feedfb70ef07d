"""Chunked traffic replay against a SageMaker endpoint, with bandit feedback as it goes.

Why chunks: the rollout DAG alternates "send the next N requests" with "let the gate look", and
those steps may be separate Airflow task runs. A ``ReplaySession`` therefore keeps everything that
must survive between chunks (allocator statistics, sticky assignments, its random stream, each
stage's cursor and first row, running totals) in a JSON state that it saves to S3 after every
chunk and reloads in ``open``. Results and ground truth are written per chunk under keys fixed by
the chunk's first sequence number, so re-running a failed task overwrites rather than duplicates.

Concurrency: a bounded window of in-flight requests on a thread pool sharing one boto3 client.
The variant of each request is chosen on the main thread just before it is submitted, and every
reward is fed back on the main thread as soon as its answer arrives, so the bandit learns during
the chunk (with at most ``concurrency`` answers outstanding, like real delayed feedback).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import sys
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

import pandas as pd
from botocore.config import Config
from botocore.exceptions import ClientError
from tqdm import tqdm

from canary.aws_errors import is_missing
from canary.experiment.allocation import Allocator, make_policy, normalise_weights
from canary.experiment.rewards import RewardFn, check_reward, correct_at
from canary.plan import TrafficMode
from canary.replay.config import ReplayConfig
from canary.replay.dataset import ReplayDataset, ReplayRequest
from canary.replay.invoke import Outcome, invoke_with_retries, parse_score
from canary.replay.records import (
    S3Location,
    empty_results,
    ground_truth_jsonl,
    to_jsonl,
    typed_results,
)
from canary.replay.stats import ReplayStats

log = logging.getLogger(__name__)
STATE_VERSION = 2  # 2: allocation policies are named by canary.plan.AllocationStrategy


def runtime_config(concurrency: int) -> Config:
    """botocore config for the shared runtime client: one pooled connection per worker thread.

    SDK retries are off because the replay retries itself and counts every retry.
    """
    return Config(
        max_pool_connections=max(10, concurrency),
        retries={"total_max_attempts": 1, "mode": "standard"},
    )


@dataclass(frozen=True)
class ChunkResult:
    """One chunk's rows (contract columns) and counters."""

    frame: pd.DataFrame
    stats: ReplayStats
    first_seq: int


@dataclass(frozen=True)
class _Planned:
    request: ReplayRequest
    inference_id: str
    target: str | None
    propensity: float | None
    timestamp: str


class ReplaySession:
    """Replays a data set chunk by chunk for one stage (and one shard) of a rollout."""

    def __init__(
        self,
        runtime: Any,
        dataset: ReplayDataset,
        config: ReplayConfig,
        *,
        reward_fn: RewardFn | None = None,
        s3: Any = None,
        location: S3Location | None = None,
        sagemaker: Any = None,
        state: dict[str, Any] | None = None,
        progress: bool | None = None,
    ) -> None:
        if (s3 is None) != (location is None):
            raise ValueError("s3/location: give both to persist results, or neither")
        if config.weight_sync_every and sagemaker is None:
            raise ValueError("sagemaker: weight_sync_every needs a SageMaker client")
        self.runtime, self.dataset, self.config = runtime, dataset, config
        self.reward_fn = reward_fn or correct_at(0.5)
        if reward_fn is None:
            _check_binary_labels(dataset)
        self.s3, self.location, self.sagemaker = s3, location, sagemaker
        self.rows = dataset.shard_rows(config.shard_index, config.shard_count)
        self.arms, shares = normalise_weights(config.weights)
        self.shares = dict(zip(self.arms, shares.tolist(), strict=True))
        self.progress = sys.stderr.isatty() if progress is None else progress
        self._frames: list[pd.DataFrame] = []
        self.allocator, self.cursors, self.starts, self.totals = self._restore(state)
        _warn_small_pool(runtime, config.concurrency)

    # ---------------------------------------------------------------- state
    def _restore(
        self, state: dict[str, Any] | None
    ) -> tuple[Allocator, dict[str, int], dict[str, int], ReplayStats]:
        if not state:
            seed = None if self.config.seed is None else self.config.seed + self.config.shard_index
            policy = make_policy(self.config.strategy, **dict(self.config.strategy_params))
            alloc = Allocator(policy, warmup=self.config.warmup, salt=self.config.run_id, seed=seed)
            return alloc, {}, {}, ReplayStats()
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"state: version {state.get('version')!r} is not {STATE_VERSION}")
        alloc = Allocator.from_state_dict(state["allocator"])
        if alloc.policy.strategy is not self.config.strategy:
            log.info("strategy changes from %s to %s", alloc.policy.strategy, self.config.strategy)
            alloc.policy = make_policy(self.config.strategy, **dict(self.config.strategy_params))
            alloc.warmup = self.config.warmup
        starts = dict(state.get("starts", {}))  # none in a state saved before starts were
        return alloc, dict(state["cursors"]), starts, ReplayStats.from_dict(state["totals"])

    def state_dict(self) -> dict[str, Any]:
        """Everything the next chunk (maybe in another process) needs; JSON-ready."""
        return {
            "version": STATE_VERSION,
            "allocator": self.allocator.state_dict(),
            "cursors": self.cursors,
            "starts": self.starts,
            "totals": self.totals.to_dict(),
            "config": self.config.to_dict(),
        }

    @classmethod
    def open(
        cls,
        runtime: Any,
        dataset: ReplayDataset,
        config: ReplayConfig,
        *,
        s3: Any,
        location: S3Location,
        **kwargs: Any,
    ) -> ReplaySession:
        """A session that resumes from the state saved at ``location`` (if any)."""
        key = location.state_key(config.shard_index, config.shard_count)
        try:
            raw = s3.get_object(Bucket=location.bucket, Key=key)["Body"].read()
            state = json.loads(raw)
        except ClientError as exc:
            if not is_missing(exc):
                raise
            state = None
        return cls(runtime, dataset, config, s3=s3, location=location, state=state, **kwargs)

    @property
    def cursor(self) -> int:
        """Requests already sent in this session's stage (the next request's sequence number)."""
        return self.cursors.get(self.config.stage, 0)

    @property
    def start(self) -> int:
        """Where this stage's requests begin in the shard's rows: after every request the run's
        earlier stages sent from this state (the same slice of users), so a stage judges rows
        no earlier stage replayed, until the rows run out and wrap. Fixed by the stage's first
        chunk and saved with the state; a stage begun by a state from before starts were saved
        keeps the first row, as it began."""
        stage = self.config.stage
        if stage not in self.starts:
            return 0 if self.cursor else sum(self.cursors.values())
        return self.starts[stage]

    @property
    def results(self) -> pd.DataFrame:
        """All rows replayed by this session object so far."""
        if not self._frames:
            return empty_results()
        return pd.concat(self._frames, ignore_index=True)

    # ---------------------------------------------------------------- one request
    def _plan(self, request: ReplayRequest) -> _Planned:
        cfg = self.config
        inference_id = f"{cfg.run_id}-{cfg.stage}-{cfg.shard_index}-{request.seq:08d}"
        now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
        if cfg.mode is TrafficMode.ENDPOINT_WEIGHTS:
            return _Planned(request, inference_id, None, None, now)
        choice = self.allocator.assign(request.user_id, cfg.stage, cfg.weights)
        return _Planned(request, inference_id, choice.variant, choice.propensity, now)

    def _kwargs(self, planned: _Planned) -> dict[str, Any]:
        kwargs = {
            "EndpointName": self.config.endpoint_name,
            "ContentType": "text/csv",
            "Body": planned.request.payload.encode(),
            "InferenceId": planned.inference_id,
        }
        if planned.target is not None:
            kwargs["TargetVariant"] = planned.target
        return kwargs

    def _complete(self, planned: _Planned, outcome: Outcome, stats: ReplayStats) -> dict[str, Any]:
        """Turn an outcome into a result row, count it, and feed the reward back."""
        variant = outcome.invoked_variant or planned.target
        propensity = planned.propensity
        if propensity is None and variant is not None:
            propensity = self.shares.get(variant, math.nan)
        score, error_code = math.nan, outcome.error_code
        if outcome.status == 200:
            try:
                score = parse_score(outcome.body)
            except (ValueError, TypeError, KeyError, IndexError):
                error_code = "UnparseableResponse"
                stats.unparseable += 1
        # counted as the endpoint counts it: a container's 500 behind a 424 is a 5XX
        status = outcome.counted_status
        reward = self._reward(status, score, planned.request.label, variant)
        stats.count(status, variant, outcome.retries, outcome.sdk_retries, outcome.throttles)
        return {
            "stage": self.config.stage,
            "user_id": planned.request.user_id,
            "inference_id": planned.inference_id,
            "variant": variant,
            "target_variant": planned.target,
            "propensity": math.nan if propensity is None else propensity,
            "score": score,
            "label": planned.request.label,
            "reward": reward,
            "latency_ms": outcome.latency_ms,
            "status": status,
            "error_code": error_code,
            "timestamp": planned.timestamp,
            "_seq": planned.request.seq,
        }

    def _reward(self, status: int, score: float, label: Any, variant: str | None) -> float:
        """Reward for the row; fed to the bandit when it can be attributed to a variant.

        A failed request is worth ``error_reward`` (default 0: a variant that errors is a bad
        variant, and a 424 on every row is what a schema mismatch looks like). An answer with no
        usable score (a body that was no number) is worth 0, the least a reward can be. When
        the endpoint routed and the answer was an error, nobody knows which variant failed:
        reward is NaN.
        """
        if status == 200:
            if label is None or (isinstance(label, float) and math.isnan(label)):
                return math.nan
            reward = 0.0 if math.isnan(score) else check_reward(self.reward_fn(score, label))
        elif status != 200 and variant is not None and self.config.error_reward is not None:
            reward = float(self.config.error_reward)
        else:
            return math.nan
        if variant is not None and variant in self.shares:
            self.allocator.record(variant, reward)
        return reward

    # ---------------------------------------------------------------- chunks
    def run_chunk(self, n: int) -> ChunkResult:
        """Send the next ``n`` requests of this stage, persist them, and return them."""
        if n < 1:
            raise ValueError(f"n: chunk size must be >= 1, got {n!r}")
        first, start = self.cursor, self.start
        self.starts[self.config.stage] = start
        stats = ReplayStats()
        began = time.perf_counter()
        with _Progress(n, self.config, self.progress) as progress:
            rows = self._send(first, start, n, stats, progress)
        stats.elapsed_s = time.perf_counter() - began
        self.cursors[self.config.stage] = first + n
        self.totals = self.totals.merge(stats)
        frame = _rows_frame(rows)
        self._frames.append(frame)
        self._persist(frame, first)
        log.info("replay %s chunk @%d: %s", self.config.stage, first, _summary(stats))
        return ChunkResult(frame, stats, first)

    def _send(
        self, first: int, start: int, n: int, stats: ReplayStats, progress: _Progress
    ) -> list[dict]:
        """Keep up to ``concurrency`` requests in flight; choose and learn on this thread only.
        ``first`` is the stage's next sequence number, ``start`` the row its requests begin at."""
        rows: list[dict[str, Any]] = []
        pending: dict[Future, _Planned] = {}
        seq, end = first, first + n
        with ThreadPoolExecutor(self.config.concurrency, thread_name_prefix="replay") as pool:
            while seq < end or pending:
                while seq < end and len(pending) < self.config.concurrency:
                    planned = self._plan(self.dataset.request(seq, self.rows, start))
                    args = (self.runtime, self._kwargs(planned), self.config.retry)
                    pending[pool.submit(invoke_with_retries, *args)] = planned
                    seq += 1
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    rows.append(self._complete(pending.pop(future), future.result(), stats))
                    self._maybe_sync_weights(stats)
                progress.update(len(done), stats)
        return rows

    def replay_until(
        self,
        stop: Callable[[pd.DataFrame], bool],
        chunk_size: int,
        max_requests: int,
    ) -> tuple[pd.DataFrame, ReplayStats]:
        """Replay chunks until ``stop(results_so_far)`` is true or ``max_requests`` were sent.

        ``stop`` sees every row this session sent, after each chunk (e.g. "enough labelled
        requests per variant for the gate"). Returns those rows and the summed counters.
        """
        if chunk_size < 1 or max_requests < 1:
            raise ValueError("chunk_size/max_requests: must both be >= 1")
        sent, total = 0, ReplayStats()
        while sent < max_requests:
            chunk = self.run_chunk(min(chunk_size, max_requests - sent))
            sent += len(chunk.frame)
            total = total.merge(chunk.stats)
            if stop(self.results):
                break
        return self.results, total

    # ---------------------------------------------------------------- side effects
    def _maybe_sync_weights(self, stats: ReplayStats) -> None:
        """Mirror the bandit's allocation to the endpoint weights every N answered requests."""
        every = self.config.weight_sync_every
        if not every or stats.requests % every:
            return
        from canary.rollout.endpoint import set_weights  # the endpoint-ops module owns the call

        probs = self.allocator.probabilities(self.config.weights)
        try:
            set_weights(self.sagemaker, self.config.endpoint_name, probs)
            stats.weight_syncs += 1
        except ClientError as exc:
            stats.weight_sync_failures += 1
            log.warning("weight sync to %s failed: %s", probs, exc.response.get("Error", {}))

    def _persist(self, frame: pd.DataFrame, first: int) -> None:
        if self.s3 is None or self.location is None:
            return
        cfg, loc = self.config, self.location
        records = frame.to_dict("records")
        key = loc.results_key(cfg.stage, cfg.shard_index, first)
        self.s3.put_object(Bucket=loc.bucket, Key=key, Body=to_jsonl(records))
        labelled = [r for r in records if r["label"] is not None]
        when = dt.datetime.now(dt.UTC)
        name = f"{cfg.run_id}-{cfg.stage}-{cfg.shard_index}-{first:08d}"
        gt_key = loc.ground_truth_key(when, name)
        self.s3.put_object(Bucket=loc.bucket, Key=gt_key, Body=ground_truth_jsonl(labelled))
        state_key = loc.state_key(cfg.shard_index, cfg.shard_count)
        body = json.dumps(self.state_dict()).encode()
        self.s3.put_object(Bucket=loc.bucket, Key=state_key, Body=body)


def _rows_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows in send order with the contract's columns and dtypes."""
    return typed_results(pd.DataFrame(rows).sort_values("_seq").drop(columns="_seq"))


def _check_binary_labels(dataset: ReplayDataset) -> None:
    """The default reward needs 0/1 labels: fail before sending anything, naming the column."""
    values = {str(v) for v in pd.Series(dataset.labels).dropna().unique()}
    if not values <= {"0", "1", "0.0", "1.0", "True", "False"}:
        sample = sorted(values)[:5]
        raise ValueError(
            f"label: column {dataset.label!r} must be 0/1 for the default reward, found {sample}; "
            "pass reward_fn for other labels"
        )


def _warn_small_pool(runtime: Any, concurrency: int) -> None:
    pool = getattr(
        getattr(getattr(runtime, "meta", None), "config", None), "max_pool_connections", None
    )
    if isinstance(pool, int) and pool < concurrency:
        log.warning(
            "runtime client max_pool_connections=%d < concurrency=%d: threads will queue for "
            "connections; build the client with canary.replay.runtime_config(%d)",
            pool,
            concurrency,
            concurrency,
        )


def _summary(stats: ReplayStats) -> str:
    return (
        f"{stats.requests} requests in {stats.elapsed_s:.2f}s ({stats.rps:.0f}/s), ok {stats.ok}, "
        f"4XX {stats.client_errors}, 5XX {stats.server_errors}, no response {stats.no_response}, "
        f"retries {stats.retries} (+{stats.sdk_retries} by SDK), throttled {stats.throttles}, "
        f"by variant {stats.by_variant}"
    )


class _Progress:
    """tqdm on a terminal, periodic ``logging`` lines otherwise (Airflow captures those)."""

    def __init__(self, total: int, config: ReplayConfig, tty: bool) -> None:
        self.total, self.config, self.done = total, config, 0
        self.bar = tqdm(total=total, desc=f"replay {config.stage}", unit="req") if tty else None
        self.last_log = time.monotonic()

    def __enter__(self) -> _Progress:
        return self

    def update(self, n: int, stats: ReplayStats) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
            return
        now = time.monotonic()
        if now - self.last_log >= self.config.log_every_s:
            self.last_log = now
            log.info(
                "replay %s: %d/%d sent, 4XX %d, 5XX %d, retries %d",
                self.config.stage,
                self.done,
                self.total,
                stats.client_errors,
                stats.server_errors,
                stats.retries,
            )

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()
