"""SageMaker shadow variants: what an endpoint config with one may hold, how much traffic the
shadow sees, and the pool that serves it off the request path.

What AWS documents, and the stack follows:

* ``CreateEndpointConfig.ShadowProductionVariants`` takes ``ProductionVariant`` objects; "if you
  use this field, you can only specify one variant for ProductionVariants and one variant for
  ShadowProductionVariants" (API reference). "SageMaker AI supports a maximum of one shadow
  variant per endpoint. For an endpoint with a shadow variant, there can be a maximum of one
  production variant" (developer guide, "Create a shadow test").
* The production variant "receives and responds to 100 percent of the incoming inference
  requests"; the shadow "receives a percentage of the incoming requests, replicated from the
  production variant, but does not return any responses" (same page). Data Capture logs both.
* The replicated percentage is the *traffic sampling percentage*. With the API it is set by the
  variants' weights: AWS's own examples (developer guide "Shadow variants", the
  ``mlops-shadow-deployment`` sample project) give both variants weight 1 for every request.
  The stack takes the shadow's weight relative to the production variant's (0.5 against 1.0
  replicates half), capped at 100 %; AWS does not spell out the ratio for other weights.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

# Shadow calls mostly wait (injected latency sleeps, xgboost releases the GIL), so a few more
# threads than the machine's 2 cores keep a slow shadow's backlog short without crowding out
# the request threads.
SHADOW_WORKERS = 4
# Calls waiting for a worker at most: a shadow slower than its traffic would otherwise queue
# request bodies without bound in a long-lived stack, and answer minutes late. Past it a
# replicated request is dropped (counted, logged): the shadow sees a smaller share.
SHADOW_BACKLOG = 1000
log = logging.getLogger("local_sagemaker")


class ShadowConfigError(ValueError):
    """An endpoint config's variants break a rule SageMaker enforces for shadow variants."""


def check_variants(production: Sequence[dict[str, Any]], shadows: Sequence[dict[str, Any]]) -> None:
    """Refuse what SageMaker refuses: more than one shadow, a shadow beside more than one
    production variant, and a variant name used twice (it names the variant's metrics and its
    capture folder, so it must be unique within the config)."""
    if len(shadows) > 1:
        raise ShadowConfigError(
            f"ShadowProductionVariants holds {len(shadows)} variants; at most 1 is supported."
        )
    if shadows and len(production) != 1:
        raise ShadowConfigError(
            "An endpoint configuration with ShadowProductionVariants must have exactly 1 "
            f"ProductionVariant, got {len(production)}."
        )
    seen: set[str] = set()
    for spec in [*production, *shadows]:
        name = spec.get("VariantName")
        if name in seen:
            raise ShadowConfigError(f'The variant name "{name}" is not unique in the request.')
        seen.add(name)


def sampling_share(production_weight: float, shadow_weight: float) -> float:
    """The share of requests replicated to the shadow: its weight relative to the production
    variant's, at most all of them (none while the production variant serves nothing)."""
    if production_weight <= 0 or shadow_weight <= 0:
        return 0.0
    return min(1.0, shadow_weight / production_weight)


class ShadowPool:
    """Runs shadow calls on worker threads so they never add to the caller's latency.

    ``drain`` waits until every call submitted so far has recorded its metrics and capture, so
    an explicit flush (tests, shutdown) sees them all. The count is kept under a lock, taken
    only for requests that are replicated. At most ``workers + backlog`` calls are under way;
    ``dropped`` counts the ones refused past that.
    """

    def __init__(self, workers: int = SHADOW_WORKERS, backlog: int = SHADOW_BACKLOG) -> None:
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="local-sagemaker-shadow")
        self._idle = threading.Condition()
        self._in_flight = 0
        self._limit = workers + backlog
        self.dropped = 0

    def submit(self, call: Callable[[], object]) -> bool:
        """Run ``call`` on a worker (False: dropped, the backlog is full); its failures are
        logged, never raised to anyone."""
        with self._idle:
            if self._in_flight >= self._limit:
                self.dropped += 1
                if self.dropped == 1 or self.dropped % self._limit == 0:
                    log.warning("shadow backlog full: %d replicated requests dropped", self.dropped)
                return False
            self._in_flight += 1
        self._executor.submit(self._run, call)
        return True

    def _run(self, call: Callable[[], object]) -> None:
        try:
            call()
        except Exception:  # a broken shadow must not take a worker down
            log.exception("shadow call failed")
        finally:
            with self._idle:
                self._in_flight -= 1
                if not self._in_flight:
                    self._idle.notify_all()

    @property
    def pending(self) -> int:
        """Calls submitted and not yet ended, read without waiting for any."""
        with self._idle:
            return self._in_flight

    def drain(self, timeout: float) -> int:
        """Wait up to ``timeout`` s for the calls under way to end; returns how many still are."""
        with self._idle:
            self._idle.wait_for(lambda: not self._in_flight, timeout)
            return self._in_flight
