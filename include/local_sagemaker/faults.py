"""Fault injection read from a SageMaker Model's ``Environment``.

So that the rollback path can be exercised for real, a model can ask the runtime to misbehave:

* ``LOCAL_SAGEMAKER_LATENCY_MS``: milliseconds added to every model call (shows in ModelLatency).
* ``LOCAL_SAGEMAKER_ERROR_RATE``: share of requests in [0, 1] that fail as a model failing
  on a request does on AWS: a 424 ModelError carrying the container's 500 (final for a
  client, not retried; counted in Invocation5XXErrors), drawn independently per request.
* ``LOCAL_SAGEMAKER_UPDATE_FAILS``: an UpdateEndpoint that brings this model fails the way
  SageMaker's do: ``1`` rolls back by itself (the endpoint is InService again, on the previous
  config, with a FailureReason; the provider's waiter calls that success), ``rollback_failed``
  ends in UpdateRollbackFailed. A CreateEndpoint that brings it (either value) ends Failed.

The model of a shadow variant misbehaves the same way, on the requests replayed on it only:
its failures and delays show in the shadow's metrics, never to the caller.

Real SageMaker ignores these names, so the same model definition is harmless on AWS.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass

LATENCY_ENV = "LOCAL_SAGEMAKER_LATENCY_MS"
ERROR_RATE_ENV = "LOCAL_SAGEMAKER_ERROR_RATE"
UPDATE_FAILS_ENV = "LOCAL_SAGEMAKER_UPDATE_FAILS"
ROLLS_BACK, ROLLBACK_FAILS = "1", "rollback_failed"


class FaultConfigError(ValueError):
    """A fault-injection variable has a value the runtime cannot use."""


@dataclass(frozen=True)
class Faults:
    """Faults for one variant; the default injects nothing."""

    latency_s: float = 0.0
    error_rate: float = 0.0

    @property
    def active(self) -> bool:
        """True when any fault is configured (lets the hot path skip this entirely)."""
        return self.latency_s > 0 or self.error_rate > 0

    def should_fail(self) -> bool:
        """Draw whether this request fails."""
        return self.error_rate > 0 and random.random() < self.error_rate

    def delay(self) -> None:
        """Sleep the configured extra latency (inside the model call)."""
        if self.latency_s > 0:
            time.sleep(self.latency_s)


def _number(env: dict[str, str], name: str, low: float, high: float) -> float:
    raw = env.get(name)
    if raw is None or str(raw).strip() == "":
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        raise FaultConfigError(f"Environment {name}={raw!r} is not a number") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise FaultConfigError(f"Environment {name}={raw!r} must be between {low} and {high}")
    return value


def faults_from_environment(env: dict[str, str] | None) -> Faults:
    """Parse the fault variables of a model's Environment, naming any bad one."""
    env = env or {}
    latency_ms = _number(env, LATENCY_ENV, 0.0, 60_000.0)
    error_rate = _number(env, ERROR_RATE_ENV, 0.0, 1.0)
    return Faults(latency_s=latency_ms / 1000.0, error_rate=error_rate)


def update_failure(env: dict[str, str] | None) -> str | None:
    """How an update bringing a model with this Environment fails, or None when it does not."""
    raw = str((env or {}).get(UPDATE_FAILS_ENV, "")).strip()
    if raw in {"", "0"}:
        return None
    if raw not in {ROLLS_BACK, ROLLBACK_FAILS}:
        raise FaultConfigError(
            f"Environment {UPDATE_FAILS_ENV}={raw!r} must be {ROLLS_BACK!r} or {ROLLBACK_FAILS!r}"
        )
    return raw
