"""Scale-out: one replay split into shards of disjoint users, run as mapped tasks, then merged.

Why users, not rows: stickiness and the user-clustered variance both assume a user lives in one
place. Shard ``k`` of ``N`` owns users with ``user_index % N == k``. Weighted assignment hashes
(salt = run id, stage, user), so shards agree without talking. Bandits run one learner per shard
(independent, each logging its own exact propensities, so IPW stays valid); ``merge_states`` sums
their statistics for reporting or to seed the next stage.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

from canary.experiment.allocation import ArmStats
from canary.replay.config import ReplayConfig
from canary.replay.records import empty_results, typed_results


def shard_configs(config: ReplayConfig, shards: int) -> list[dict[str, Any]]:
    """One JSON-ready config per shard: the list a DAG passes to ``.expand()``."""
    if shards < 1:
        raise ValueError(f"shards: must be >= 1, got {shards!r}")
    return [config.for_shard(k, shards).to_dict() for k in range(shards)]


def split_requests(total: int, shards: int) -> list[int]:
    """Share ``total`` requests between shards as evenly as possible (first shards get the rest)."""
    if total < 0 or shards < 1:
        raise ValueError(f"total/shards: need total >= 0 and shards >= 1, got {total}, {shards}")
    base, extra = divmod(total, shards)
    return [base + (k < extra) for k in range(shards)]


def merge_results(frames: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate shard results, refusing overlaps that would double-count requests or users."""
    parts = [f for f in frames if len(f)]
    if not parts:
        return empty_results()
    merged = typed_results(pd.concat(parts, ignore_index=True))
    dup = merged["inference_id"][merged["inference_id"].duplicated()]
    if len(dup):
        raise ValueError(f"inference_id: shards overlap, e.g. {dup.iloc[0]!r}")
    owners = [set(f["user_id"]) for f in parts]
    for i, a in enumerate(owners):
        for b in owners[i + 1 :]:
            shared = a & b
            if shared:
                raise ValueError(f"user_id: shards share users, e.g. {sorted(shared)[0]!r}")
    return merged.sort_values("timestamp", kind="stable").reset_index(drop=True)


def merge_states(states: Sequence[dict[str, Any]]) -> ArmStats:
    """Summed bandit statistics of the shards' saved session states."""
    total = ArmStats()
    for state in states:
        raw = state["allocator"]["stats"]
        total = total.merged(ArmStats(dict(raw["pulls"]), dict(raw["reward_sum"])))
    return total
