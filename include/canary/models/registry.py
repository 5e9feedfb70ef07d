"""The SageMaker Model Registry as the book of record: who is champion, what was rolled out.

Why the registry and not Airflow's database: the registry outlives any Airflow deployment, is what
people look at in the SageMaker console, and is what the nightly job and the registry-driven
rollout both read. Three facts live on each model package version, as CustomerMetadataProperties:

- ``canary:role`` = ``champion`` on the version serving production (``former-champion`` after it
  is replaced). The newest version so marked is the champion; promotion marks the new one
  *before* demoting the old, so there is never a moment without a champion.
- ``canary:rollout-run`` = the Airflow run id that rolls this version out. Written *before* the
  rollout is triggered and checked first, so an approval seen twice (an EventBridge retry, a
  poller that looks again) starts no second rollout. Durable: it survives restarts of Airflow.
- ``canary:offline:<metric>`` = the offline metrics the nightly job measured, as strings.

Updates always send the package's whole state (status, description, properties): SageMaker merges,
but moto (our local AWS) replaces and forgets what is not sent, so sending everything is correct on
both.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from canary.plan import SAGEMAKER_NAME
from canary.rollout.outcome import RunOutcome

log = logging.getLogger(__name__)

ROLE_KEY = "canary:role"
CHAMPION = "champion"
FORMER_CHAMPION = "former-champion"
ROLLOUT_KEY = "canary:rollout-run"
BOOTSTRAP_RUN = "bootstrap:first-champion"
OFFLINE_PREFIX = "canary:offline:"
APPROVED, PENDING, REJECTED = "Approved", "PendingManualApproval", "Rejected"
STATUSES = (APPROVED, PENDING, REJECTED)
PACKAGE_STATE_CHANGE = "SageMaker Model Package State Change"
MAX_DESCRIPTION = 1024


class RegistryError(ValueError):
    """A registry request that cannot be honoured; the message names the bad field."""


def check_group_name(name: str, field: str = "model_package_group") -> str:
    if not isinstance(name, str) or not SAGEMAKER_NAME.match(name):
        raise RegistryError(f"{field}: not a valid model package group name: {name!r}")
    return name


def versions(sm: Any, group: str, status: str | None = None) -> Iterator[dict[str, Any]]:
    """The group's package version summaries, newest first (optionally only one status)."""
    check_group_name(group)
    if status is not None and status not in STATUSES:
        raise RegistryError(f"status: must be one of {', '.join(STATUSES)}, got {status!r}")
    options: dict[str, Any] = {
        "ModelPackageGroupName": group,
        "SortBy": "CreationTime",
        "SortOrder": "Descending",
    }
    if status:
        options["ModelApprovalStatus"] = status
    for page in sm.get_paginator("list_model_packages").paginate(**options):
        yield from page.get("ModelPackageSummaryList", [])


def describe(sm: Any, arn: str) -> dict[str, Any]:
    return sm.describe_model_package(ModelPackageName=arn)


def properties(package: Mapping[str, Any]) -> dict[str, str]:
    return dict(package.get("CustomerMetadataProperties") or {})


def find_champion(sm: Any, group: str) -> str | None:
    """The ARN of the newest approved version marked champion, or None (a first night)."""
    for summary in versions(sm, group, APPROVED):
        arn = summary["ModelPackageArn"]
        if properties(describe(sm, arn)).get(ROLE_KEY) == CHAMPION:
            return arn
    return None


def update(
    sm: Any,
    arn: str,
    *,
    status: str | None = None,
    description: str | None = None,
    set_properties: Mapping[str, str] | None = None,
    remove: Iterable[str] = (),
) -> dict[str, Any]:
    """Change a package's status, description or properties, keeping everything else as it was."""
    if status is not None and status not in STATUSES:
        raise RegistryError(f"status: must be one of {', '.join(STATUSES)}, got {status!r}")
    package = describe(sm, arn)
    merged = {**properties(package), **{k: str(v) for k, v in (set_properties or {}).items()}}
    for key in remove:
        merged.pop(key, None)
    request: dict[str, Any] = {
        "ModelPackageArn": package["ModelPackageArn"],
        "ModelApprovalStatus": status or package.get("ModelApprovalStatus") or PENDING,
        "CustomerMetadataProperties": merged,
    }
    description = package.get("ApprovalDescription") if description is None else description
    if description:
        request["ApprovalDescription"] = description[:MAX_DESCRIPTION]
    removed = [key for key in remove if key in properties(package)]
    if removed:
        request["CustomerMetadataPropertiesToRemove"] = removed
    sm.update_model_package(**request)
    return merged


def mark_champion(sm: Any, group: str, arn: str) -> list[str]:
    """Make ``arn`` the group's champion and demote every other champion; returns the demoted."""
    package = describe(sm, arn)
    if package.get("ModelPackageGroupName") not in (None, group):
        raise RegistryError(f"challenger_source: {arn} is not in group {group!r}")
    update(sm, arn, status=APPROVED, set_properties={ROLE_KEY: CHAMPION})
    demoted = []
    for summary in versions(sm, group, APPROVED):
        other = summary["ModelPackageArn"]
        if other != package["ModelPackageArn"] and _is_champion(sm, other):
            update(sm, other, set_properties={ROLE_KEY: FORMER_CHAMPION})
            demoted.append(other)
    log.info("champion of %s is now %s (demoted: %s)", group, arn, demoted or "none")
    return demoted


def _is_champion(sm: Any, arn: str) -> bool:
    return properties(describe(sm, arn)).get(ROLE_KEY) == CHAMPION


def reject(sm: Any, arn: str, reason: str) -> None:
    """Mark a version that lost its rollout ``Rejected``, with the gate's reason as the why."""
    if not reason:
        raise RegistryError("reason: a rejection needs the decision record's reason")
    update(sm, arn, status=REJECTED, description=reason)


OUTCOME_KEY = "canary:rollout-outcome"


def record_outcome(sm: Any, arn: str, outcome: RunOutcome, reason: str) -> dict[str, Any]:
    """After a rollout: a promoted version becomes champion, a rolled-back one is Rejected.

    A halted (or failed) rollout proved nothing either way: the version keeps its status and
    the reason is written down, so a person decides.
    """
    package = describe(sm, arn)
    arn, group = package["ModelPackageArn"], package.get("ModelPackageGroupName")
    record: dict[str, Any] = {"updated": True, "package": arn, "outcome": outcome.value}
    if outcome is RunOutcome.PROMOTED:
        if not group:
            raise RegistryError(f"challenger_source: {arn} belongs to no model package group")
        update(sm, arn, set_properties={OUTCOME_KEY: outcome.value})
        record["demoted"] = mark_champion(sm, group, arn)
        record["status"] = APPROVED
    elif outcome is RunOutcome.ROLLED_BACK:
        update(sm, arn, set_properties={OUTCOME_KEY: outcome.value})
        reject(sm, arn, reason)
        record["status"] = REJECTED
    else:
        update(
            sm,
            arn,
            description=f"rollout {outcome.value}: {reason}",
            set_properties={OUTCOME_KEY: outcome.value},
        )
        record["status"] = package.get("ModelApprovalStatus")
    record["reason"] = reason
    return record


@dataclass(frozen=True)
class Claim:
    """Whether this caller may start the rollout of a package, and why (not)."""

    package_arn: str
    granted: bool
    reason: str
    champion_arn: str | None = None
    run_id: str | None = None


def claim_rollout(sm: Any, group: str, arn: str, run_id: str) -> Claim:
    """Reserve the rollout of an approved package for ``run_id``, at most once per package.

    Refused when the package is not approved, claimed by another run, is itself the champion,
    or when the group has no champion to compare with. Granted again to the run that holds the
    claim: a retry after its claim was written (say, a throttled call after it) must go on
    with the same version, not claim an older one instead. The rollout's run id is fixed per
    version, so starting it twice starts one run."""
    package = describe(sm, arn)
    arn = package["ModelPackageArn"]
    props = properties(package)
    if package.get("ModelPackageGroupName") != group:
        return Claim(
            arn, False, f"it belongs to {package.get('ModelPackageGroupName')}, not {group}"
        )
    if package.get("ModelApprovalStatus") != APPROVED:
        return Claim(arn, False, f"status is {package.get('ModelApprovalStatus')}, not Approved")
    holder = props.get(ROLLOUT_KEY) or None
    if holder not in (None, run_id):
        return Claim(arn, False, f"already rolled out by {holder}")
    if props.get(ROLE_KEY) == CHAMPION:
        return Claim(arn, False, "it is already the champion")
    champion = find_champion(sm, group)
    if champion is None:
        return Claim(arn, False, f"group {group} has no champion to compare against")
    if holder == run_id:
        return Claim(arn, True, "claimed already by this run (a retry)", champion, run_id)
    update(sm, arn, set_properties={ROLLOUT_KEY: run_id})
    return Claim(arn, True, "claimed", champion, run_id)


def unclaimed(package: Mapping[str, Any]) -> bool:
    """An approved version nobody has rolled out yet and that is not the champion itself."""
    props = properties(package)
    return (
        package.get("ModelApprovalStatus") == APPROVED
        and not props.get(ROLLOUT_KEY)
        and props.get(ROLE_KEY) != CHAMPION
    )


def offline_properties(metrics: Mapping[str, float | None]) -> dict[str, str]:
    """Offline metrics as CustomerMetadataProperties (strings, as the API wants)."""
    return {
        f"{OFFLINE_PREFIX}{name}": f"{value:.6f}"
        for name, value in metrics.items()
        if value is not None
    }


# -- production path: EventBridge rule → SQS, read by Airflow's MessageQueueTrigger -------------


def event_pattern(group: str) -> dict[str, Any]:
    """Approvals of versions in ``group``: the EventBridge pattern of the registry's own events."""
    check_group_name(group)
    return {
        "source": ["aws.sagemaker"],
        "detail-type": [PACKAGE_STATE_CHANGE],
        "detail": {"ModelPackageGroupName": [group], "ModelApprovalStatus": [APPROVED]},
    }


@dataclass(frozen=True)
class ApprovalQueue:
    queue_url: str
    queue_arn: str
    rule_arn: str


def ensure_approval_queue(sqs: Any, events: Any, group: str, queue_name: str) -> ApprovalQueue:
    """Create (idempotently) the SQS queue and the EventBridge rule that fills it with approvals."""
    queue_url = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    rule_name = f"{queue_name}-approvals"[:64]
    rule_arn = events.put_rule(
        Name=rule_name, EventPattern=json.dumps(event_pattern(group)), State="ENABLED"
    )["RuleArn"]
    sqs.set_queue_attributes(
        QueueUrl=queue_url, Attributes={"Policy": json.dumps(_queue_policy(queue_arn, rule_arn))}
    )
    events.put_targets(Rule=rule_name, Targets=[{"Id": "approvals-queue", "Arn": queue_arn}])
    return ApprovalQueue(queue_url, queue_arn, rule_arn)


def _queue_policy(queue_arn: str, rule_arn: str) -> dict[str, Any]:
    """Only this rule may send to the queue: EventBridge needs the grant, nobody else does."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "events.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
            }
        ],
    }


def approved_arns_from_messages(messages: Iterable[Mapping[str, Any]], group: str) -> list[str]:
    """Package ARNs approved in ``group``, read from SQS messages holding EventBridge events.

    Anything else on the queue (other groups, other statuses, unparsable bodies) is ignored and
    logged: a stray message must not start a rollout nor block the real ones.
    """
    arns: list[str] = []
    for message in messages:
        try:
            event = json.loads(message.get("Body", "{}"))
            detail = event["detail"]
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a message that is not an EventBridge event: %.200s", message)
            continue
        if detail.get("ModelPackageGroupName") != group:
            continue
        if detail.get("ModelApprovalStatus") != APPROVED:
            continue
        arn = detail.get("ModelPackageArn")
        if arn and arn not in arns:
            arns.append(arn)
    return arns
