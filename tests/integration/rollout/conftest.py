"""Fixtures of the rollout room's integration tests: an endpoint's lease on the local stack."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from canary.plan import RolloutPlan
from canary.rollout.lock import EndpointLock


@pytest.fixture
def lock_of(local_stack) -> Callable[[RolloutPlan], EndpointLock]:
    """The lease of a plan's endpoint, its table created (the plan's default table is shared
    by every test on the stack: each lease is keyed by its endpoint)."""

    def made(plan: RolloutPlan) -> EndpointLock:
        lock = EndpointLock(local_stack.client("dynamodb"), plan)
        lock.ensure_table()
        return lock

    return made
