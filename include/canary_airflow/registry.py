"""Thin Airflow glue between the Model Registry and the rollout: nightly registration, the
approval sensor, the durable claim, and the rollout's ``update_registry`` bookkeeping.

Every decision is in :mod:`canary.registry` and :mod:`canary.nightly`; these tasks read the
run's context, pass our AWS clients in, and return small records for XCom.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.operators.sagemaker import SageMakerRegisterModelVersionOperator
from airflow.providers.amazon.aws.utils.sagemaker import ApprovalStatus
from airflow.sdk import BaseSensorOperator, get_current_context, task
from airflow.sdk.exceptions import AirflowSkipException

from canary import registry as reg
from canary.endpoint import image_uri
from canary.plan import ModelSpec
from canary_airflow.aws import AwsClients
from canary_airflow.tasks import GATE_TASK, clients_for, load_plan
from canary_airflow.triggers import ModelPackageApprovalTrigger

if TYPE_CHECKING:
    from canary.nightly import NightlySpec

log = logging.getLogger(__name__)

ROLLOUT_RUN_PREFIX = "registry__"


# -- nightly_challenger ------------------------------------------------------------------------


def nightly_spec(params: Mapping[str, Any]) -> NightlySpec:
    """Tonight's settings from the form; training libraries load only when a task runs."""
    from canary import nightly

    return nightly.NightlySpec(
        group=params["model_package_group"],
        bucket=params["bucket"],
        prefix=params["prefix"],
        n_rows=int(params["n_rows"]),
        seed=int(params["seed"]),
        metric=params["metric"],
        min_improvement=float(params["min_improvement"]),
    )


@task
def train_challenger() -> dict[str, Any]:
    """Train tonight's challenger on the night's window and score it against the champion."""
    from canary import nightly

    context = get_current_context()
    spec = nightly_spec(context["params"])
    logical = context.get("logical_date") or context["dag_run"].run_after
    day = nightly.data_day(logical.date())
    aws = AwsClients(region=context["params"]["region"])
    result = nightly.run_night(aws.s3, aws.sagemaker, spec, day)
    return result.to_dict()


@task.short_circuit
def better_offline(result: dict[str, Any]) -> bool:
    """Stop the night here when the challenger does not beat the champion on the holdout."""
    if not result["better"]:
        log.info(
            "challenger not better offline (%s improvement %s): nothing registered",
            result["metric"],
            result["improvement"],
        )
    return bool(result["better"])


@task(multiple_outputs=True)
def registration(result: dict[str, Any]) -> dict[str, Any]:
    """What the provider's register operator sends: image, artifact, approval, evidence."""
    from canary import nightly

    params = get_current_context()["params"]
    night = nightly.NightlyResult(
        **{k: v for k, v in result.items() if k not in {"first_champion", "better", "approve"}}
    )
    spec = ModelSpec(
        role="challenger",
        variant_name="Challenger",
        source=night.model_data_url,
        framework="xgboost",
        framework_version=params["framework_version"],
    )
    approval = ApprovalStatus.APPROVED if night.approve else ApprovalStatus.PENDING_MANUAL_APPROVAL
    return {
        "image_uri": image_uri(spec, params["region"]),
        "model_url": night.model_data_url,
        "model_approval": approval.value,
        "package_desc": nightly.package_description(night)[: reg.MAX_DESCRIPTION],
        "extras": {
            "CustomerMetadataProperties": nightly.package_properties(night),
            **({"ModelMetrics": metrics} if (metrics := nightly.model_metrics(night)) else {}),
        },
    }


class RegisterChallengerOperator(SageMakerRegisterModelVersionOperator):
    """The provider's register operator, with ``extras`` templated and the approval as a string.

    Why: the approval status and the offline evidence are decided at run time by the upstream
    task, and the provider only templates ``model_approval`` (then calls ``.value`` on it).
    """

    template_fields = (*SageMakerRegisterModelVersionOperator.template_fields, "extras")

    def execute(self, context: Any) -> str:
        if isinstance(self.model_approval, str):
            self.model_approval = ApprovalStatus(self.model_approval)
        arn = super().execute(context)
        self.log.info("registered %s as %s", arn, self.model_approval.value)
        return arn


# -- model_registry_rollout ----------------------------------------------------------------------


class RegistryApprovalSensor(BaseSensorOperator):
    """The approved package versions this run should roll out.

    Taken, in order, from the run's conf (``package_arn``: a person asks for one version), from
    the asset events that scheduled the run (SQS messages of EventBridge approvals, or the
    registry poller's payload), or else by deferring to :class:`ModelPackageApprovalTrigger`
    until an approval shows up (skipped when none does before ``timeout``).
    """

    template_fields = ("group", "package_arn", "wait_minutes")

    def __init__(
        self,
        *,
        group: str,
        package_arn: str = "",
        wait_minutes: float | str = 60.0,
        poll_interval: float = 10.0,
        aws_conn_id: str = "aws_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.group = group
        self.package_arn = package_arn
        self.wait_minutes = wait_minutes
        self.poll_interval = poll_interval
        self.aws_conn_id = aws_conn_id

    def execute(self, context: Any) -> list[str]:
        reg.check_group_name(self.group)
        arns = [self.package_arn] if self.package_arn else []
        arns = arns or approved_from_events(context.get("triggering_asset_events"), self.group)
        if arns:
            self.log.info("approved versions to roll out: %s", arns)
            return arns
        self.defer(
            trigger=ModelPackageApprovalTrigger(
                group=self.group,
                poll_interval=self.poll_interval,
                timeout=float(self.wait_minutes) * 60,
                aws_conn_id=self.aws_conn_id,
            ),
            method_name="execute_complete",
        )
        return []  # unreachable: defer raises

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> list[str]:
        if not event or event.get("status") != "approved" or not event.get("arns"):
            raise AirflowSkipException(f"no new approval in {self.group} before the timeout")
        return list(event["arns"])


def approved_from_events(events: Any, group: str) -> list[str]:
    """Package ARNs in the asset events that scheduled this run (SQS batches or poller events)."""
    arns: list[str] = []
    for asset_events in (events or {}).values():
        for event in asset_events:
            payload = (event.extra or {}).get("payload") or {}
            found = payload.get("arns") or reg.approved_arns_from_messages(
                payload.get("message_batch") or [], group
            )
            for arn in found:
                if arn not in arns:
                    arns.append(arn)
    return arns


def rollout_run_id(package: Mapping[str, Any]) -> str:
    """One run id per package version: Airflow refuses a second run with it (a second guard)."""
    version = package.get("ModelPackageVersion")
    name = package.get("ModelPackageGroupName") or package.get("ModelPackageName", "package")
    return f"{ROLLOUT_RUN_PREFIX}{name}-v{version}"


@task.short_circuit(retries=3, retry_delay=timedelta(seconds=20))
def claim_rollout(arns: list[str]) -> dict[str, Any] | None:
    """Claim the newest approved version for one rollout; older ones in the batch are superseded.

    Why one: every rollout replaces the endpoint's challenger, so rolling out an older version
    that a newer approval already replaces would only delay the newer one.
    """
    params = get_current_context()["params"]
    group = params["model_package_group"]
    sm = AwsClients(region=params["region"]).sagemaker
    packages = sorted(
        (reg.describe(sm, arn) for arn in arns),
        key=lambda package: package.get("ModelPackageVersion") or 0,
        reverse=True,
    )
    for index, package in enumerate(packages):
        claim = reg.claim_rollout(sm, group, package["ModelPackageArn"], rollout_run_id(package))
        log.info("%s: %s", package["ModelPackageArn"], claim.reason)
        if claim.granted:
            _supersede(sm, packages[index + 1 :], claim.package_arn)
            return {"run_id": claim.run_id, "conf": rollout_conf(params, claim)}
    return None


def _supersede(sm: Any, older: Iterable[Mapping[str, Any]], newer: str) -> None:
    for package in older:
        if reg.unclaimed(package):
            reg.update(
                sm,
                package["ModelPackageArn"],
                set_properties={reg.ROLLOUT_KEY: f"superseded-by:{newer}"},
            )


def rollout_conf(params: Mapping[str, Any], claim: reg.Claim) -> dict[str, Any]:
    """The rollout DAG's conf: both sides as package ARNs, plus the form's extra fields."""
    return {
        **dict(params.get("rollout_conf") or {}),
        "champion_source": claim.champion_arn,
        "challenger_source": claim.package_arn,
        "endpoint_name": params["endpoint_name"],
        "region": params["region"],
    }


# -- sagemaker_canary_rollout: champion bookkeeping ----------------------------------------------


@task(trigger_rule="none_failed_min_one_success")
def update_registry(plan: dict[str, Any]) -> dict[str, Any]:
    """Record the outcome in the registry: the winner becomes champion, a loser is Rejected.

    A no-op unless the challenger came from the registry (a model package ARN).
    """
    rollout = load_plan(plan)
    if not rollout.challenger.is_model_package:
        return {"updated": False, "reason": "challenger is not a model package"}
    ti = get_current_context()["ti"]
    outcome = ti.xcom_pull(task_ids="promote") or ti.xcom_pull(task_ids="rollback") or {}
    decision = last_decision(ti, len(rollout.stages))
    record = reg.record_outcome(
        clients_for(rollout).sagemaker,
        rollout.challenger.source,
        outcome.get("outcome", "failed"),
        decision.get("reason") or "no gate decision was recorded",
    )
    log.info("registry updated: %s", record)
    return record


def last_decision(ti: Any, stages: int) -> dict[str, Any]:
    """The decision record of the last stage whose gate decided."""
    for number in range(stages, 0, -1):
        decision = ti.xcom_pull(task_ids=GATE_TASK.format(number=number))
        if decision:
            return dict(decision)
    return {}
