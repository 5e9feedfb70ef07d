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

from datetime import datetime

from airflow.sdk import Param, chain, dag

from canary.nightly import METRICS
from canary_airflow import registry

SECTION = "Nightly challenger"


@dag(
    dag_id="nightly_challenger",
    schedule="0 2 * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    render_template_as_native_obj=True,
    doc_md=__doc__,
    tags=["sagemaker", "canary", "registry"],
    params={
        "model_package_group": Param(
            "churn-models",
            type="string",
            pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$",
            title="Model package group",
            section=SECTION,
        ),
        "region": Param("us-east-1", type="string", title="AWS region", section=SECTION),
        "bucket": Param("canary-rollouts", type="string", title="S3 bucket", section=SECTION),
        "prefix": Param("nightly", type="string", title="S3 prefix", section=SECTION),
        "n_rows": Param(
            12000, type="integer", minimum=200, title="Rows per night", section=SECTION
        ),
        "seed": Param(0, type="integer", minimum=0, section=SECTION),
        "metric": Param(
            "roc_auc", type="string", enum=list(METRICS), title="Offline metric", section=SECTION
        ),
        "min_improvement": Param(
            0.005,
            type="number",
            title="Minimum improvement to approve",
            description="Better than the champion by at least this much: Approved (a rollout "
            "starts). Better, but less: PendingManualApproval. Not better: not registered.",
            section=SECTION,
        ),
        "framework_version": Param("1.7-1", type="string", section=SECTION),
    },
)
def nightly_challenger() -> None:
    night = registry.train_challenger()
    better = registry.better_offline(night)
    request = registry.registration(night)
    register = registry.RegisterChallengerOperator(
        task_id="register_model_version",
        image_uri=request["image_uri"],
        model_url=request["model_url"],
        package_group_name="{{ params.model_package_group }}",
        package_group_desc="Churn models trained nightly and rolled out by canary",
        package_desc=request["package_desc"],
        model_approval=request["model_approval"],
        extras=request["extras"],
        region_name="{{ params.region }}",
    )
    chain(night, better, request, register)


nightly_challenger()
