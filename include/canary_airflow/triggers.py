"""Our triggers: an endpoint whose change has ended, and a registry poller.

``EndpointSettledTrigger`` waits, in the triggerer, until a SageMaker endpoint is no longer in
a change (``canary.rollout.endpoint.IN_PROGRESS``: Creating, Updating, SystemUpdating,
RollingBack, Deleting). The provider's ``SageMakerTrigger`` for endpoints
uses the ``endpoint_in_service`` waiter, whose only failure state is ``Failed``: an endpoint in
``UpdateRollbackFailed`` would hold it for its whole budget. This one fires on any final state
and leaves the judgement to the operator (``verify_serving``).

``ModelPackageApprovalTrigger``: a registry poller for event-driven rollouts where SageMaker emits
no events (the local stack).

On AWS, approvals arrive as EventBridge events in SQS, read by common-messaging's
``MessageQueueTrigger``. The local stack has no event emitter, so this trigger asks the registry
itself: it lists the group's approved versions with aiobotocore (never blocking the triggerer's
event loop) and reports those nobody has rolled out yet. It is a ``BaseEventTrigger``, so it
serves both as an ``AssetWatcher`` (in a triggerer, runs forever) and as the deferral target of
``RegistryApprovalSensor`` (one event, then done).

Repeats are harmless: the receiving DAG claims a version durably in the registry before it
starts a rollout. The trigger still remembers what it reported, so one approval is not reported
on every poll while the claim is on its way.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook
from airflow.triggers.base import BaseEventTrigger, BaseTrigger, TriggerEvent

from canary.models import registry as reg
from canary.rollout.endpoint import IN_PROGRESS, POLL_SECONDS, SETTLE_TIMEOUT_SECONDS
from canary_airflow.ids import DEFAULT_CONN_ID


def serialized(trigger: BaseTrigger, subject: str) -> tuple[str, dict[str, Any]]:
    """A trigger's classpath and keyword arguments: its ``subject`` plus the polling and
    connection arguments both triggers here take."""
    names = (subject, "poll_interval", "timeout", "aws_conn_id", "region_name")
    path = f"{type(trigger).__module__}.{type(trigger).__qualname__}"
    return path, {name: getattr(trigger, name) for name in names}


class EndpointSettledTrigger(BaseTrigger):
    """Fire ``{"status": "success", "endpoint_status": ...}`` once no change is under way.

    :param endpoint: the endpoint's name.
    :param poll_interval: seconds between two DescribeEndpoint calls.
    :param timeout: seconds before firing ``{"status": "timeout"}``.
    """

    def __init__(
        self,
        endpoint: str,
        poll_interval: float = POLL_SECONDS,
        timeout: float = SETTLE_TIMEOUT_SECONDS,
        aws_conn_id: str | None = DEFAULT_CONN_ID,
        region_name: str | None = None,
    ) -> None:
        super().__init__()
        self.endpoint, self.poll_interval, self.timeout = endpoint, poll_interval, timeout
        self.aws_conn_id, self.region_name = aws_conn_id, region_name

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return serialized(self, "endpoint")

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = SageMakerHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        async with await hook.get_async_conn() as client:
            while True:
                live = await client.describe_endpoint(EndpointName=self.endpoint)
                status = live["EndpointStatus"]
                if status not in IN_PROGRESS:
                    yield TriggerEvent({"status": "success", "endpoint_status": status})
                    return
                if loop.time() >= deadline:
                    yield TriggerEvent({"status": "timeout", "endpoint_status": status})
                    return
                await asyncio.sleep(self.poll_interval)


#: Seconds between two looks at the registry, where no SageMaker events reach Airflow.
REGISTRY_POLL_SECONDS = 15.0


class ModelPackageApprovalTrigger(BaseEventTrigger):
    """Fire when the model package group has approved versions that were never rolled out.

    :param group: the model package group to watch.
    :param poll_interval: seconds between two looks at the registry.
    :param timeout: give up after this many seconds (an event with ``status="timeout"``);
        ``None`` (an AssetWatcher) watches forever.
    """

    def __init__(
        self,
        group: str,
        poll_interval: float = REGISTRY_POLL_SECONDS,
        timeout: float | None = None,
        aws_conn_id: str | None = DEFAULT_CONN_ID,
        region_name: str | None = None,
    ) -> None:
        super().__init__()
        self.group = reg.check_group_name(group)
        if poll_interval <= 0:
            raise ValueError(f"poll_interval: must be > 0, got {poll_interval}")
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return serialized(self, "group")

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = SageMakerHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name)
        reported: set[str] = set()
        settled: set[str] = set()  # claimed or champion: never unclaimed again, not re-read
        loop = asyncio.get_running_loop()
        deadline = None if self.timeout is None else loop.time() + self.timeout
        while True:
            async with await hook.get_async_conn() as client:
                pending = await self._unclaimed(client, skip=reported | settled, settled=settled)
                fresh = [arn for arn in pending if arn not in reported]
            if fresh:
                reported.update(fresh)
                self.log.info("approved and not rolled out yet in %s: %s", self.group, fresh)
                yield TriggerEvent({"status": "approved", "group": self.group, "arns": fresh})
                if self.timeout is not None:
                    return
            if deadline is not None and loop.time() >= deadline:
                yield TriggerEvent({"status": "timeout", "group": self.group, "arns": []})
                return
            await asyncio.sleep(self.poll_interval)

    async def _unclaimed(self, client: Any, skip: set[str], settled: set[str]) -> list[str]:
        """Approved versions nobody claimed, oldest first; one Describe per version not yet
        known (``ListModelPackages`` does not return the metadata properties)."""
        arns: list[str] = []
        paginator = client.get_paginator("list_model_packages")
        pages = paginator.paginate(
            ModelPackageGroupName=self.group,
            ModelApprovalStatus=reg.APPROVED,
            SortBy="CreationTime",
            SortOrder="Ascending",
        )
        async for page in pages:
            for summary in page.get("ModelPackageSummaryList", []):
                arn = summary["ModelPackageArn"]
                if arn in skip:
                    continue
                package = await client.describe_model_package(ModelPackageName=arn)
                if reg.unclaimed(package):
                    arns.append(arn)
                elif package.get("ModelApprovalStatus") == reg.APPROVED:
                    settled.add(arn)
        return arns
