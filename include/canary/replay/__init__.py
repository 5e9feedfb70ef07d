"""Traffic replay: a labelled data set sent to a SageMaker endpoint as synthetic users.

Public API (see each module for why it is shaped so):

* ``ReplayDataset`` (dataset): frame + label column -> CSV payloads, users, shards.
* ``ReplayConfig`` (config): endpoint, stage weights, mode, strategy, concurrency, shard.
* ``ReplaySession`` (session): ``run_chunk(n)``, ``replay_until(stop, chunk_size, max_requests)``,
  ``open(...)`` to resume from S3 state; ``runtime_config(concurrency)`` for the boto3 client.
* ``S3Location``, ``load_results``, ``RESULT_COLUMNS`` (records): the results contract on S3.
* ``shard_configs``, ``split_requests``, ``merge_results``, ``merge_states``.
"""

from canary.replay.config import ReplayConfig
from canary.replay.dataset import ReplayDataset, ReplayRequest
from canary.replay.invoke import RetryPolicy
from canary.replay.records import RESULT_COLUMNS, S3Location, load_results
from canary.replay.session import ChunkResult, ReplaySession, runtime_config
from canary.replay.shards import (
    merge_results,
    merge_states,
    shard_configs,
    split_requests,
)
from canary.replay.stats import ReplayStats

__all__ = [
    "RESULT_COLUMNS",
    "ChunkResult",
    "ReplayConfig",
    "ReplayDataset",
    "ReplayRequest",
    "ReplaySession",
    "ReplayStats",
    "RetryPolicy",
    "S3Location",
    "load_results",
    "merge_results",
    "merge_states",
    "runtime_config",
    "shard_configs",
    "split_requests",
]
