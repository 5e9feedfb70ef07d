"""
### Registry-driven rollouts: an approved model package version starts a canary rollout

The run is scheduled by an **asset with a watcher** (Airflow 3 event-driven scheduling):

- **AWS**: SageMaker emits *SageMaker Model Package State Change* events; an EventBridge rule sends
  approvals of this group to SQS (`canary.models.registry.ensure_approval_queue` creates both), and
  common-messaging's `MessageQueueTrigger` reads the queue. Set `CANARY_REGISTRY_QUEUE_URL`.
- **Local stack** (no SageMaker events): our `ModelPackageApprovalTrigger` polls the registry.

1. **check_request**: the group and the rollout's fields, before any wait or AWS call.
2. **wait_for_approval**: the approved versions from the triggering events, or a `package_arn`
   given in the form, or (a manual run without one) defer until the registry shows an approval.
3. **claim_rollout**: durable dedupe in the registry. The newest approved version is marked
   `canary:rollout-run=<run id>` *before* anything starts; a version already marked, already
   champion, or a group without champion stops here (short-circuit).
   The rollout gets the form's defaults plus `CANARY_REGISTRY_ROLLOUT_CONF` (a JSON object).
4. **start_rollout**: triggers `sagemaker_canary_rollout` with both sides as package ARNs under a
   run id derived from the version, which Airflow refuses to create twice.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import Asset, AssetWatcher, Param, chain, dag

from canary.plan import DEFAULT_PLAN, FORM_FIELDS, SAGEMAKER_NAME, NightlySpec
from canary_airflow import ids
from canary_airflow.params import field_schema
from canary_airflow.sensors import APPROVAL_WAIT_MINUTES, RegistryApprovalSensor
from canary_airflow.tasks import registry_rollout as tasks
from canary_airflow.triggers import REGISTRY_POLL_SECONDS, ModelPackageApprovalTrigger

GROUP = os.environ.get(
    "CANARY_MODEL_PACKAGE_GROUP", NightlySpec.model_fields["model_package_group"].default
)
QUEUE_URL = os.environ.get("CANARY_REGISTRY_QUEUE_URL", "")
POLL_SECONDS = float(os.environ.get("CANARY_REGISTRY_POLL_SECONDS", REGISTRY_POLL_SECONDS))
# An approval starts a run with the form's defaults, not a person's input: these fields (e.g.
# the bucket and the execution role on AWS) complete it.
ROLLOUT_CONF = tasks.configured_rollout_conf(os.environ.get("CANARY_REGISTRY_ROLLOUT_CONF"))
SECTION = "Registry"


def approval_watcher() -> AssetWatcher:
    """SQS fed by EventBridge on AWS; the registry poller where no events exist."""
    if QUEUE_URL:
        from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger

        trigger = MessageQueueTrigger(scheme="sqs", sqs_queue=QUEUE_URL, waiter_delay=10)
    else:
        trigger = ModelPackageApprovalTrigger(group=GROUP, poll_interval=POLL_SECONDS)
    return AssetWatcher(name=f"{GROUP}-approvals", trigger=trigger)


approvals = Asset(f"sagemaker-model-registry://{GROUP}/approved", watchers=[approval_watcher()])


@dag(
    dag_id=ids.REGISTRY_DAG,
    schedule=[approvals],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": ids.OWNER, "retries": 1, "retry_delay": timedelta(seconds=30)},
    render_template_as_native_obj=True,
    doc_md=__doc__,
    tags=["sagemaker", "canary", "registry"],
    params={
        "model_package_group": Param(
            GROUP, type="string", pattern=SAGEMAKER_NAME.pattern, section=SECTION
        ),
        "package_arn": Param(
            "",
            type="string",
            title="Package version ARN (optional)",
            description="Roll out this approved version now; empty: wait for the next approval.",
            section=SECTION,
        ),
        # the rollout's own fields, as its form declares them, in this form's section
        **{
            name: Param(
                getattr(DEFAULT_PLAN, name),
                **{**field_schema(DEFAULT_PLAN, FORM_FIELDS[name]), "section": SECTION},
            )
            for name in ("region", "endpoint_name")
        },
        "wait_minutes": Param(
            APPROVAL_WAIT_MINUTES,
            type="number",
            exclusiveMinimum=0,
            title="Wait for an approval (minutes)",
            section=SECTION,
        ),
        "rollout_conf": Param(
            ROLLOUT_CONF,
            type="object",
            title="Extra rollout fields",
            description='Fields of the rollout form, e.g. {"gate_margin": 0.02}.',
        ),
    },
)
def model_registry_rollout() -> None:
    checked = tasks.check_request()
    approved = RegistryApprovalSensor(
        task_id=ids.WAIT_FOR_APPROVAL,
        group=checked,
        package_arn="{{ params.package_arn }}",
        wait_minutes="{{ params.wait_minutes }}",
        region_name="{{ params.region }}",
        poll_interval=POLL_SECONDS,
    )
    claim = tasks.claim_rollout(approved.output)
    start = TriggerDagRunOperator(
        task_id=ids.START_ROLLOUT,
        trigger_dag_id=ids.ROLLOUT_DAG,
        trigger_run_id=f"{{{{ ti.xcom_pull(task_ids='{ids.CLAIM_ROLLOUT}')['run_id'] }}}}",
        conf=f"{{{{ ti.xcom_pull(task_ids='{ids.CLAIM_ROLLOUT}')['conf'] }}}}",
        skip_when_already_exists=True,
    )
    chain(checked, approved, claim, start)


model_registry_rollout()
