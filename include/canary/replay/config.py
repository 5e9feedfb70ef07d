"""What one replay does: endpoint, stage weights, mode, strategy, concurrency, shard.

Why a plain frozen dataclass with ``to_dict``/``from_dict``: a stage's gate and its mapped burst
tasks each rebuild it in their own process, so it must round-trip as JSON and be validated on
arrival. Mode and strategy are the plan's enums (:class:`canary.plan.TrafficMode`,
:class:`canary.plan.AllocationStrategy`); plain strings are accepted and converted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any

from canary.experiment.allocation import make_policy, normalise_weights
from canary.plan import AllocationStrategy, TrafficMode
from canary.replay.invoke import RetryPolicy

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")


@dataclass(frozen=True)
class ReplayConfig:
    """One stage's replay against one endpoint (optionally one shard of it)."""

    endpoint_name: str
    stage: str
    weights: Mapping[str, float]
    run_id: str = "replay"
    mode: TrafficMode = TrafficMode.ENDPOINT_WEIGHTS
    strategy: AllocationStrategy = AllocationStrategy.WEIGHTED
    strategy_params: Mapping[str, Any] = field(default_factory=dict)
    warmup: int = 0
    concurrency: int = 8
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    shard_index: int = 0
    shard_count: int = 1
    error_reward: float | None = 0.0
    weight_sync_every: int = 0
    seed: int | None = None
    log_every_s: float = 15.0

    def __post_init__(self) -> None:
        if not self.endpoint_name:
            raise ValueError("endpoint_name: required")
        for name in ("stage", "run_id"):
            if not _NAME.match(str(getattr(self, name))):
                raise ValueError(
                    f"{name}: 1-32 characters of letters, digits, '_', '.' or '-' "
                    f"(it goes into inference ids and S3 keys), got {getattr(self, name)!r}"
                )
        longest_id = f"{self.run_id}-{self.stage}-{self.shard_count - 1}-00000000"
        if len(longest_id) > 64:
            raise ValueError(
                f"run_id/stage: inference ids ({longest_id!r}) would exceed SageMaker's 64 "
                "characters; shorten run_id or stage"
            )
        normalise_weights(self.weights)
        object.__setattr__(self, "mode", _member(TrafficMode, "mode", self.mode))
        make_policy(self.strategy, **dict(self.strategy_params))  # names a bad strategy
        object.__setattr__(self, "strategy", AllocationStrategy(self.strategy))
        weighted = self.strategy is AllocationStrategy.WEIGHTED
        if self.mode is TrafficMode.ENDPOINT_WEIGHTS and not weighted:
            raise ValueError(
                "strategy: in mode 'endpoint_weights' the endpoint routes every request, so only "
                "'weighted' applies; use mode='target_variant' for bandit strategies"
            )
        if self.concurrency < 1:
            raise ValueError(f"concurrency: must be >= 1, got {self.concurrency!r}")
        if self.warmup < 0:
            raise ValueError(f"warmup: must be >= 0, got {self.warmup!r}")
        if self.shard_count < 1 or not 0 <= self.shard_index < self.shard_count:
            raise ValueError(
                f"shard_index: must lie in [0, shard_count={self.shard_count}), "
                f"got {self.shard_index!r}"
            )
        if self.error_reward is not None and not 0.0 <= self.error_reward <= 1.0:
            raise ValueError(f"error_reward: must be None or in [0, 1], got {self.error_reward!r}")
        if self.weight_sync_every < 0:
            raise ValueError(f"weight_sync_every: must be >= 0, got {self.weight_sync_every!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (for XCom and task mapping)."""
        out = asdict(self)
        out["weights"] = dict(self.weights)
        out["mode"], out["strategy"] = self.mode.value, self.strategy.value
        out["strategy_params"] = dict(self.strategy_params)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReplayConfig:
        """Inverse of ``to_dict``; unknown keys are an error naming them."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"replay config: unknown field(s) {unknown}")
        kwargs = dict(data)
        if isinstance(kwargs.get("retry"), Mapping):
            kwargs["retry"] = RetryPolicy(**kwargs["retry"])
        return cls(**kwargs)

    def for_shard(self, index: int, count: int) -> ReplayConfig:
        """The same replay restricted to shard ``index`` of ``count`` (disjoint users)."""
        return replace(self, shard_index=index, shard_count=count)


def _member(enum: type[StrEnum], name: str, value: Any) -> Any:
    """``value`` as a member of ``enum``, or a ValueError naming the field and its choices."""
    try:
        return enum(value)
    except ValueError:
        choices = ", ".join(member.value for member in enum)
        raise ValueError(f"{name}: must be one of {choices}, got {value!r}") from None
