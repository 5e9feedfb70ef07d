"""One rollout at a time per endpoint: a lease in DynamoDB, taken with a conditional write.

Why DynamoDB and not Airflow's own run records: a task cannot list other runs' confs (the task
SDK has no database access), two runs that start in the same second would both see the other and
need a tie-break, and rollouts can start from different Airflow deployments against one AWS
account. A conditional ``PutItem`` is atomic on AWS: of two claims racing for one endpoint,
exactly one succeeds, whatever the timing.

A holder that crashed never releases; its lease is taken over when it has expired (it is meant
to outlive any run of the plan, :func:`lease_seconds`, and each stage's entry renews it for as
long again) or when the holder's run is known to have ended (``holder_alive``, asked of
Airflow: a run another deployment started is unknown there, so only expiry frees its lease).
The takeover is itself conditional on the stale lease being unchanged (its holder, claim and
expiry: a renewal in the meantime makes it fail), so two runs taking over race-free too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from canary.aws_errors import error_code
from canary.plan import RolloutPlan

log = logging.getLogger(__name__)

# a lease already taken over or a table already deleted: releasing it is done
_NOTHING_TO_RELEASE = frozenset({"ConditionalCheckFailedException", "ResourceNotFoundException"})

KEY = "endpoint_key"  # "<region>/<endpoint name>": endpoint names are unique per region
SETUP_MINUTES = 60.0  # staging, models and deploy, before the first stage's deadline starts
UPDATE_MINUTES = 30.0  # the endpoint update before each stage (a config going live, or weights)


class EndpointBusy(RuntimeError):
    """Another run holds the endpoint; the message names it."""


@dataclass(frozen=True)
class Lease:
    holder: str
    claimed_at: float
    expires_at: float

    @classmethod
    def of(cls, item: dict[str, Any]) -> Lease:
        return cls(
            item["holder"]["S"], float(item["claimed_at"]["N"]), float(item["expires_at"]["N"])
        )


def lease_seconds(plan: RolloutPlan) -> float:
    """Longer than any run of this plan can hold the endpoint: every stage it runs (the shadow
    stage too) at its deadline, after its approval and its endpoint update."""
    per_stage = plan.gate.max_stage_minutes + plan.approval_timeout_minutes + UPDATE_MINUTES
    return 60.0 * (SETUP_MINUTES + per_stage * len(plan.stage_indices))


class EndpointLock:
    """The lease of one endpoint in the plan's lock table (created on first use)."""

    def __init__(self, dynamodb: Any, plan: RolloutPlan) -> None:
        self.db, self.table = dynamodb, plan.lock_table
        self.key = {KEY: {"S": f"{plan.region}/{plan.endpoint_name}"}}
        self.seconds = lease_seconds(plan)
        self.patience = 60.0 * plan.lock_wait_minutes  # how long a claim waits its turn
        self.poll_seconds = plan.lock_poll_seconds  # and how often it asks meanwhile

    def ensure_table(self) -> None:
        """Create the table (on demand billing) unless it exists; wait until it is active."""
        try:
            self.db.create_table(
                TableName=self.table,
                KeySchema=[{"AttributeName": KEY, "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": KEY, "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
        except ClientError as error:
            if error_code(error) != "ResourceInUseException":
                raise
        self.db.get_waiter("table_exists").wait(
            TableName=self.table, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
        )

    def claim(self, holder: str, holder_alive: Callable[[str], bool]) -> Lease:
        """Take the endpoint for ``holder`` (again, on a retry), or raise :class:`EndpointBusy`."""
        now = time.time()
        fresh = "attribute_not_exists(#key) OR holder = :me"  # free, or already ours (a retry)
        if self._put(holder, now, fresh, {":me": {"S": holder}}):
            return Lease(holder, now, now + self.seconds)
        current = self.current()
        if current is None:  # released between our write and our read: try once more
            return self.claim(holder, holder_alive)
        if current.expires_at > now and holder_alive(current.holder):
            raise EndpointBusy(
                f"endpoint {self.key[KEY]['S']} is held by run {current.holder!r} (since "
                f"{_utc(current.claimed_at)}, until {_utc(current.expires_at)} unless it ends "
                "first); this run touched nothing"
            )
        if self._take_over(holder, now, current):
            return Lease(holder, now, now + self.seconds)
        return self.claim(holder, holder_alive)  # another run took it over first: look again

    def claim_in_turn(self, holder: str, holder_alive: Callable[[str], bool]) -> Lease:
        """:meth:`claim`, queued behind another run's lease: claim again every
        ``lock_poll_seconds`` until the holder gives the endpoint up, for up to the plan's
        ``lock_wait_minutes``; then :class:`EndpointBusy`, naming the holder."""
        since = time.monotonic()
        while True:
            try:
                return self.claim(holder, holder_alive)
            except EndpointBusy as busy:
                waited = time.monotonic() - since
                if waited >= self.patience:
                    raise EndpointBusy(f"{busy}; waited {waited / 60:.1f} minutes") from None
                log.info("waiting for the endpoint (%.0f s so far): %s", waited, busy)
                time.sleep(self.poll_seconds)

    def _take_over(self, holder: str, now: float, stale: Lease) -> bool:
        """Replace the ``stale`` lease, only if it is still exactly that one: a renewal since
        (a later ``expires_at``) means its holder is at work, and the takeover fails."""
        values = {
            ":old": {"S": stale.holder},
            ":at": {"N": repr(stale.claimed_at)},
            ":until": {"N": repr(stale.expires_at)},
        }
        condition = "holder = :old AND claimed_at = :at AND expires_at = :until"
        return self._put(holder, now, condition, values)

    def renew(self, holder: str) -> Lease:
        """Push ``holder``'s lease a whole run's length out from now. Each stage's entry does,
        so a run slower than :func:`lease_seconds` estimates (endpoint waits beyond
        ``UPDATE_MINUTES``, retries) never has its endpoint taken over while it works. Raises
        :class:`EndpointBusy` when the lease is no longer the holder's: the run must stop."""
        lease = self._renewed(holder)
        if lease is None:
            current = self.current()
            now_held = f"held by run {current.holder!r}" if current else "released"
            raise EndpointBusy(
                f"endpoint {self.key[KEY]['S']} is no longer run {holder!r}'s lease: {now_held}"
            )
        return lease

    def holds(self, holder: str) -> bool:
        """Whether ``holder`` still has the lease, renewing it if so. Never takes a free lease:
        either the holder released it (its teardown is done) or lost it (taken over, then
        released by the taker), and the endpoint may since serve what another run left."""
        try:
            return self._renewed(holder) is not None
        except ClientError as error:  # no table (deleted, or a teardown run by hand): no lease
            if error_code(error) != "ResourceNotFoundException":
                raise
            return False

    def _renewed(self, holder: str) -> Lease | None:
        """The lease pushed out a run's length from now, only if it is ``holder``'s (a
        conditional UpdateItem); None when it is not."""
        expires = time.time() + self.seconds
        try:
            item = self.db.update_item(
                TableName=self.table,
                Key=self.key,
                UpdateExpression="SET expires_at = :at",
                ConditionExpression="holder = :me",
                ExpressionAttributeValues={":me": {"S": holder}, ":at": {"N": repr(expires)}},
                ReturnValues="ALL_NEW",
            )["Attributes"]
        except ClientError as error:
            if error_code(error) != "ConditionalCheckFailedException":
                raise
            return None
        return Lease.of(item)

    def release(self, holder: str) -> bool:
        """Give the endpoint up if ``holder`` still has it; False when it had not."""
        try:
            self.db.delete_item(
                TableName=self.table,
                Key=self.key,
                ConditionExpression="holder = :me",
                ExpressionAttributeValues={":me": {"S": holder}},
            )
        except ClientError as error:
            if error_code(error) in _NOTHING_TO_RELEASE:
                return False
            raise
        return True

    def current(self) -> Lease | None:
        item = self.db.get_item(TableName=self.table, Key=self.key, ConsistentRead=True).get("Item")
        return Lease.of(item) if item else None

    def _put(self, holder: str, now: float, condition: str, values: dict[str, Any]) -> bool:
        item = {
            **self.key,
            "holder": {"S": holder},
            "claimed_at": {"N": repr(now)},
            "expires_at": {"N": repr(now + self.seconds)},
        }
        names = {"ExpressionAttributeNames": {"#key": KEY}} if "#key" in condition else {}
        try:
            self.db.put_item(
                TableName=self.table,
                Item=item,
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
                **names,
            )
        except ClientError as error:
            if error_code(error) == "ConditionalCheckFailedException":
                return False
            raise
        return True


def _utc(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(seconds))
