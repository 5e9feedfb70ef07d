"""The ``nightly_challenger`` DAG's TaskFlow tasks: train tonight's challenger, judge it offline,
and prepare what the provider's register operator sends.

Every decision is in :mod:`canary.models.nightly` and :mod:`canary.models.registry`; these tasks
read the run's context, pass our AWS clients in, and return small records for XCom. Training
libraries load only when a task runs, never when the DAG file is parsed.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.providers.amazon.aws.utils.sagemaker import ApprovalStatus
from airflow.sdk import get_current_context, task

from canary.models import registry as reg
from canary.plan import (
    DEFAULT_PLAN,
    NIGHTLY_FIELDS,
    Framework,
    NightlySpec,
    parse_nightly,
    short_digest,
)
from canary.rollout.endpoint import image_uri
from canary_airflow import ids
from canary_airflow.aws import AwsClients

log = logging.getLogger(__name__)
CLIENT_TOKEN_LENGTH = 32  # hex digits; CreateModelPackage takes at most 36 characters


def nightly_spec() -> NightlySpec:
    """Tonight's settings from the form, validated (every bad field named) before any AWS call."""
    params = get_current_context()["params"]
    return parse_nightly({name: params[name] for name in NIGHTLY_FIELDS if name in params})


@task(task_id=ids.TRAIN_CHALLENGER)
def train_challenger() -> dict[str, Any]:
    """Train tonight's challenger on the night's window and score it against the champion."""
    from canary.models import nightly

    context = get_current_context()
    spec = nightly_spec()
    logical = context.get("logical_date") or context["dag_run"].run_after
    day = nightly.data_day(logical.date())
    aws = AwsClients(region=spec.region)
    result = nightly.run_night(aws.s3, aws.sagemaker, spec, day)
    return result.to_dict()


@task.short_circuit(task_id=ids.BETTER_OFFLINE)
def better_offline(result: dict[str, Any]) -> bool:
    """Stop the night here when the challenger does not beat the champion on the holdout."""
    if not result["better"]:
        log.info(
            "challenger not better offline (%s improvement %s): nothing registered",
            result["metric"],
            result["improvement"],
        )
    return bool(result["better"])


@task(task_id=ids.REGISTRATION, multiple_outputs=True)
def registration(result: dict[str, Any]) -> dict[str, Any]:
    """What the provider's register operator sends: image, artifact, approval, evidence."""
    from canary.models import nightly

    spec = nightly_spec()
    night = nightly.NightlyResult(
        **{k: v for k, v in result.items() if k not in {"first_champion", "better", "approve"}}
    )
    model = DEFAULT_PLAN.challenger.model_copy(
        update={
            "source": night.model_data_url,
            "framework": Framework.XGBOOST,
            "framework_version": spec.framework_version,
        }
    )
    approval = ApprovalStatus.APPROVED if night.approve else ApprovalStatus.PENDING_MANUAL_APPROVAL
    # one version per model artifact (its URL names the group, the night and the seed): a
    # retried register (its call made, its XCom not) or a re-run of the night gets the version
    # already made back from SageMaker instead of registering the model twice
    token = short_digest(night.model_data_url, CLIENT_TOKEN_LENGTH)
    return {  # the group and region as XComs: a natively rendered "123" becomes a number
        "group": spec.model_package_group,
        "region": spec.region,
        "image_uri": image_uri(model, spec.region),
        "model_url": night.model_data_url,
        "model_approval": approval.value,
        "package_desc": nightly.package_description(night)[: reg.MAX_DESCRIPTION],
        "extras": {
            "ClientToken": token,
            "CustomerMetadataProperties": nightly.package_properties(night),
            **({"ModelMetrics": metrics} if (metrics := nightly.model_metrics(night)) else {}),
        },
    }
