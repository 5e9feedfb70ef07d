"""The endpoint lease on the local stack's DynamoDB: one holder however the claims race, a retry
keeps it, a crashed or expired holder is taken over, only the holder releases."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest

from canary.plan import parse_plan
from canary.rollout import lock as lock_module
from canary.rollout.lock import EndpointBusy, EndpointLock, Lease


@pytest.fixture
def lock(lock_of, unique_name) -> EndpointLock:
    return lock_of(parse_plan({"endpoint_name": f"lock-{unique_name}"}))


def alive(holder: str) -> bool:
    return True


def test_claims_in_the_same_instant_have_exactly_one_winner(lock: EndpointLock) -> None:
    start = threading.Barrier(8)
    won, refused = [], []

    def claim(holder: str) -> None:
        start.wait()
        try:
            won.append(lock.claim(holder, alive).holder)
        except EndpointBusy as busy:
            refused.append(str(busy))

    threads = [threading.Thread(target=claim, args=(f"run-{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1 and len(refused) == 7
    assert all(f"held by run {won[0]!r}" in message for message in refused)
    assert lock.current().holder == won[0]


def test_a_retry_keeps_the_lease_and_only_the_holder_releases(lock: EndpointLock) -> None:
    first = lock.claim("run-a", alive)
    assert lock.claim("run-a", alive).holder == "run-a"
    assert lock.release("run-b") is False
    assert lock.current().holder == "run-a" and first.expires_at > time.time()
    assert lock.release("run-a") is True
    assert lock.current() is None
    assert lock.claim("run-b", alive).holder == "run-b"


def test_a_holder_whose_run_ended_is_taken_over(lock: EndpointLock) -> None:
    lock.claim("crashed-run", alive)
    taken = lock.claim("next-run", holder_alive=lambda holder: holder != "crashed-run")
    assert taken.holder == "next-run" and lock.current().holder == "next-run"


def test_a_claim_in_turn_waits_for_the_holder_to_give_the_endpoint_up(lock_of, unique_name) -> None:
    """A second rollout of the endpoint is queued, not refused: it claims again until the
    holder releases (here: once it has been refused at least once), then holds the lease."""
    plan = parse_plan({"endpoint_name": f"lock-{unique_name}", "lock_poll_seconds": 1})
    lock = lock_of(plan)
    lock.claim("first-run", alive)
    refused = threading.Event()

    def first_alive(holder: str) -> bool:  # asked on every refusal
        refused.set()
        return True

    leases: list[Lease] = []
    waiter = threading.Thread(
        target=lambda: leases.append(lock.claim_in_turn("second-run", first_alive))
    )
    waiter.start()
    assert refused.wait(30), "the second run was never refused"
    assert lock.release("first-run") is True
    waiter.join(30)
    [lease] = leases
    assert lease.holder == "second-run" and lock.current() == lease


@pytest.mark.parametrize(("minutes", "refusals"), [(0.0, 1), (0.03, 3)])
def test_a_claim_in_turn_gives_up_after_lock_wait_minutes_naming_the_holder(
    lock_of, unique_name, monkeypatch, minutes: float, refusals: int
) -> None:
    """0 refuses at the first claim; a wait of 1.8 s with a claim a second claims at 0, 1
    and 2 s (on a clock that moves only when the lock sleeps, so a slow machine counts the
    same). The refusal names the holder and the wait, and the holder keeps the lease."""
    clock = [0.0]
    moved = {"monotonic": lambda: clock[0],
             "sleep": lambda seconds: clock.__setitem__(0, clock[0] + seconds)}  # fmt: skip
    monkeypatch.setattr(lock_module, "time", SimpleNamespace(**{**vars(time), **moved}))
    plan = parse_plan(
        {"endpoint_name": f"lock-{unique_name}", "lock_wait_minutes": minutes,
         "lock_poll_seconds": 1}
    )  # fmt: skip
    lock = lock_of(plan)
    lock.claim("first-run", alive)
    asked: list[str] = []

    def first_alive(holder: str) -> bool:
        asked.append(holder)
        return True

    with pytest.raises(EndpointBusy, match=r"held by run 'first-run'.*; waited [\d.]+ minutes"):
        lock.claim_in_turn("second-run", first_alive)
    assert asked == ["first-run"] * refusals
    assert lock.current().holder == "first-run"


def test_an_expired_lease_is_taken_over_even_if_the_holder_looks_alive(
    lock: EndpointLock,
) -> None:
    lock.seconds = -1.0  # a lease that ran out at once
    lock.claim("stuck-run", alive)
    lock.seconds = 3600.0
    assert lock.claim("next-run", alive).holder == "next-run"


def test_renewing_pushes_the_lease_out_and_a_lost_lease_stops_the_run(lock: EndpointLock) -> None:
    """Each stage's entry renews: a slow run keeps its endpoint past the first estimate. A run
    whose lease was taken over meanwhile learns it there, with the new holder named."""
    lock.seconds = 1.0
    first = lock.claim("slow-run", alive)
    lock.seconds = 3600.0
    renewed = lock.renew("slow-run")
    assert renewed.holder == "slow-run" and renewed.claimed_at == first.claimed_at
    assert renewed.expires_at > first.expires_at + 3000
    assert lock.current() == renewed
    with pytest.raises(EndpointBusy, match=r"no longer run 'other-run'.s lease: held by run 'slow"):
        lock.renew("other-run")
    assert lock.current() == renewed  # a refused renewal changes nothing
    lock.release("slow-run")
    with pytest.raises(EndpointBusy, match="released"):
        lock.renew("slow-run")


def test_a_renewal_defeats_a_takeover_that_read_the_lease_before_it(lock: EndpointLock) -> None:
    """Run B reads an expired lease; run A renews it; B's takeover must then fail: A is at
    work, and its stage would otherwise run on an endpoint that B holds."""
    lock.seconds = -1.0
    lock.claim("slow-run", alive)
    lock.seconds = 3600.0
    stale = lock.current()
    renewed = lock.renew("slow-run")
    assert lock._take_over("next-run", time.time(), stale) is False
    assert lock.current() == renewed


def test_only_a_lease_still_held_is_trusted_and_renewed(lock: EndpointLock) -> None:
    """A cleanup trusts its lease only while it has it (renewing it for the teardown's length):
    a free lease was lost and released by the taker, and is not taken back."""
    lock.seconds = 1.0
    first = lock.claim("run-a", alive)
    lock.seconds = 3600.0
    assert lock.holds("run-a") is True
    assert lock.current().holder == "run-a" and lock.current().expires_at > first.expires_at + 3000
    lock.release("run-a")
    assert lock.holds("run-a") is False and lock.current() is None
    lock.claim("run-b", alive)
    assert lock.holds("run-a") is False and lock.current().holder == "run-b"


def test_no_lock_table_means_no_lease(local_stack, unique_name) -> None:
    """A cleanup after a claim that never created the table holds nothing, and says so."""
    plan = parse_plan({"endpoint_name": f"lock-{unique_name}", "lock_table": f"none-{unique_name}"})
    assert EndpointLock(local_stack.client("dynamodb"), plan).holds("run-a") is False
