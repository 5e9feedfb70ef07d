"""Approvals reach Airflow: EventBridge → SQS → MessageQueueTrigger on AWS, the registry poller
locally. Both triggers run for real here (asyncio, aiobotocore) against the local stack."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from canary.models import registry as reg


def first_event(trigger: Any, timeout: float = 120.0) -> dict[str, Any]:
    async def take() -> dict[str, Any]:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("trigger ended without an event")

    return asyncio.run(asyncio.wait_for(take(), timeout))


def approval_event(group: str, arn: str, status: str = reg.APPROVED) -> dict[str, Any]:
    """An event shaped like SageMaker's own "Model Package State Change"."""
    detail = {"ModelPackageGroupName": group, "ModelPackageArn": arn, "ModelApprovalStatus": status}
    return {
        "Source": "aws.sagemaker",
        "DetailType": reg.PACKAGE_STATE_CHANGE,
        "Detail": json.dumps(detail),
    }


def test_eventbridge_rule_routes_only_this_groups_approvals_to_the_queue(
    local_stack, unique_name, aws_conn
) -> None:
    group = f"events-{unique_name}"
    sqs, events = local_stack.client("sqs"), local_stack.client("events")
    queue = reg.ensure_approval_queue(sqs, events, group, f"approvals-{unique_name}")
    again = reg.ensure_approval_queue(sqs, events, group, f"approvals-{unique_name}")
    assert again == queue  # idempotent setup
    arn = f"arn:aws:sagemaker:us-east-1:123456789012:model-package/{group}/3"
    events.put_events(
        Entries=[
            approval_event(group, arn),
            approval_event("another-group", arn.replace(group, "another-group")),
            approval_event(group, arn.replace("/3", "/4"), status=reg.REJECTED),
        ]
    )

    from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger

    trigger = MessageQueueTrigger(
        scheme="sqs", sqs_queue=queue.queue_url, max_messages=10, waiter_delay=1
    )
    payload = first_event(trigger)

    messages = payload["message_batch"]
    assert reg.approved_arns_from_messages(messages, group) == [arn]
    bodies = [json.loads(m["Body"]) for m in messages]
    assert {b["detail"]["ModelPackageGroupName"] for b in bodies} == {group}
    assert {b["detail"]["ModelApprovalStatus"] for b in bodies} == {reg.APPROVED}


def test_stray_messages_are_ignored() -> None:
    messages = [{"Body": "not json"}, {"Body": json.dumps({"detail-type": "x"})}, {}]
    assert reg.approved_arns_from_messages(messages, "g") == []


def test_registry_poller_reports_an_approval_once_and_never_a_claimed_one(
    local_stack, seed_group, aws_conn
) -> None:
    from canary_airflow.triggers import ModelPackageApprovalTrigger

    group = seed_group(champion="champion", challenger="challenger")
    challenger = group.packages["challenger"]

    event = first_event(ModelPackageApprovalTrigger(group.name, poll_interval=0.5, timeout=60))
    assert event == {"status": "approved", "group": group.name, "arns": [challenger]}

    sm = local_stack.client("sagemaker")
    claim = reg.claim_rollout(sm, group.name, challenger, "registry__test-v2")
    assert claim.granted and claim.champion_arn == group.packages["champion"]
    retried = reg.claim_rollout(sm, group.name, challenger, "registry__test-v2")
    # a retry of the claim: the same version goes on, under the same run, against the champion
    assert retried.granted and retried.run_id == claim.run_id == "registry__test-v2"
    assert retried.package_arn == challenger and retried.champion_arn == claim.champion_arn
    other = reg.claim_rollout(sm, group.name, challenger, "registry__another")
    assert not other.granted and "already rolled out by registry__test-v2" in other.reason

    quiet = ModelPackageApprovalTrigger(group.name, poll_interval=0.5, timeout=1.5)
    assert first_event(quiet) == {"status": "timeout", "group": group.name, "arns": []}


def test_bad_group_name_is_named() -> None:
    from canary_airflow.triggers import ModelPackageApprovalTrigger

    with pytest.raises(reg.RegistryError, match="model_package_group"):
        ModelPackageApprovalTrigger("bad group!")
