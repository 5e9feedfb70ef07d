"""The ``model_registry_rollout`` DAG's TaskFlow tasks: claim an approved version, durably, and
say how the rollout DAG is to be triggered for it.

The claim itself (a property on the package version, written before anything starts) is
:func:`canary.models.registry.claim_rollout`; this glue picks the version and builds the conf.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

from airflow.sdk import get_current_context, task

from canary.models import registry as reg
from canary.plan import PlanError, parse_plan
from canary_airflow import ids
from canary_airflow.aws import AwsClients

log = logging.getLogger(__name__)

ROLLOUT_RUN_PREFIX = "registry__"


def configured_rollout_conf(raw: str | None) -> dict[str, Any]:
    """The rollout fields every registry-started rollout uses (``CANARY_REGISTRY_ROLLOUT_CONF``).

    Validated against the plan when the DAG is parsed: a typo there is an import error naming
    the field. What needs the gate's sizing (the replay cap) is checked by ``claim_rollout``
    before it claims anything: never a version claimed for a rollout that fails its first task.
    """
    conf = json.loads(raw or "{}")
    if not isinstance(conf, dict):
        raise PlanError("CANARY_REGISTRY_ROLLOUT_CONF must be a JSON object of rollout form fields")
    parse_plan(conf)
    return conf


def rollout_run_id(package: Mapping[str, Any]) -> str:
    """One run id per package version: Airflow refuses a second run with it (a second guard)."""
    version = package.get("ModelPackageVersion")
    name = package.get("ModelPackageGroupName") or package.get("ModelPackageName", "package")
    return f"{ROLLOUT_RUN_PREFIX}{name}-v{version}"


@task(task_id=ids.CHECK_REQUEST)
def check_request() -> str:
    """Fail fast, before the wait for an approval and any AWS call, naming each bad field: the
    group, and the rollout an approval would start (its sources aside). Returns the group, for
    the sensor as an XCom: a template rendered natively would turn a group named "123" into
    a number."""
    from canary.stage.capacity import validated_plan  # the numeric stack: in the task

    params = get_current_context()["params"]
    group = reg.check_group_name(params["model_package_group"])
    validated_plan(form_fields(params))
    return group


@task.short_circuit(task_id=ids.CLAIM_ROLLOUT, retries=3, retry_delay=timedelta(seconds=20))
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
    """The rollout DAG's conf: both sides as package ARNs, plus the form's fields."""
    sources = {"champion_source": claim.champion_arn, "challenger_source": claim.package_arn}
    return {**form_fields(params), **sources}


def form_fields(params: Mapping[str, Any]) -> dict[str, Any]:
    """The rollout fields this DAG's form sets: the extra fields, the endpoint and region."""
    return {
        **dict(params.get("rollout_conf") or {}),
        "endpoint_name": params["endpoint_name"],
        "region": params["region"],
    }
