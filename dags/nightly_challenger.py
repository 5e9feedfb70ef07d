"""
### Nightly challenger: train on tonight's data, register it if it beats the champion offline

1. **Train**: tonight's window of (drifting) churn data, a small hyperparameter search with early
   stopping; the challenger and the registry's champion are scored on the same fresh holdout; the
   challenger is packaged as SageMaker's XGBoost `model.tar.gz` and uploaded to S3.
2. **Better offline?** If not, the night stops here (short-circuit): nothing is registered.
3. **Register** a new version in the model package group with the provider's register operator,
   carrying its offline metrics (CustomerMetadataProperties, ModelMetrics in S3). It is
   `Approved` when it beats the champion by at least `min_improvement` on `metric`, otherwise it
   waits as `PendingManualApproval` for a person.

An approval starts the rollout: `model_registry_rollout` watches the registry. On the first night
the group has no champion: the challenger is registered `Approved` *and* marked champion (and as
already rolled out), because there is nothing to roll out against.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import chain, dag

from canary_airflow import ids
from canary_airflow.operators import RegisterChallengerOperator
from canary_airflow.params import nightly_params
from canary_airflow.tasks import nightly_challenger as tasks


@dag(
    dag_id=ids.NIGHTLY_DAG,
    schedule="0 2 * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    # A night's steps are idempotent (same data, same seed, same S3 key): one retry rides out a
    # transient AWS error without waking anyone.
    default_args={"owner": ids.OWNER, "retries": 1, "retry_delay": timedelta(minutes=1)},
    render_template_as_native_obj=True,
    doc_md=__doc__,
    tags=["sagemaker", "canary", "registry"],
    params=nightly_params(),
)
def nightly_challenger() -> None:
    night = tasks.train_challenger()
    better = tasks.better_offline(night)
    request = tasks.registration(night)
    register = RegisterChallengerOperator(
        task_id=ids.REGISTER_MODEL_VERSION,
        image_uri=request["image_uri"],
        model_url=request["model_url"],
        package_group_name=request["group"],
        package_group_desc="Churn models trained nightly and rolled out by canary",
        package_desc=request["package_desc"],
        model_approval=request["model_approval"],
        extras=request["extras"],
        region_name=request["region"],
    )
    chain(night, better, request, register)


nightly_challenger()
