"""The rollout's trigger form: one Airflow Param per plan field, grouped into sections.

Airflow validates these JSON schemas when a run is triggered from the UI or the REST API; the
first task validates the whole plan again (cross-field rules, other DAGs' confs) before any
AWS call. Names match :data:`canary.plan.FLAT_FIELDS`.
"""

from __future__ import annotations

from airflow.sdk import Param

from canary.plan import (
    DEFAULT_STAGES,
    MAX_STAGES,
    CleanupPolicy,
    DeadlinePolicy,
    Strategy,
    TrafficMode,
)

LOCAL_ROLE_ARN = "arn:aws:iam::123456789012:role/canary-local"
FRAMEWORKS = ["xgboost", "sklearn"]


def _model_params(side: str, title: str, variant: str) -> dict[str, Param]:
    section = f"{title} model"
    return {
        f"{side}_source": Param(
            f"demo:{side}",
            type="string",
            title=f"{title} artifact",
            description="A local model.tar.gz, s3://bucket/key/model.tar.gz, a model package ARN, "
            "or demo:champion / demo:challenger / demo:worse (generated synthetic churn models).",
            minLength=1,
            section=section,
        ),
        f"{side}_variant_name": Param(
            variant,
            type="string",
            title="Variant name",
            section=section,
            pattern=r"^[a-zA-Z0-9-]+$",
        ),
        f"{side}_framework": Param(
            "xgboost", type="string", enum=FRAMEWORKS, title="Framework", section=section
        ),
        f"{side}_framework_version": Param(
            "1.7-1", type="string", title="Framework version", section=section
        ),
        f"{side}_instance_type": Param(
            "ml.m5.large", type="string", title="Instance type", section=section
        ),
        f"{side}_instance_count": Param(
            1, type="integer", minimum=1, maximum=100, title="Instance count", section=section
        ),
        f"{side}_environment": Param(
            {},
            type="object",
            title="Container environment",
            description="Passed to the model container. On the local stack, "
            "LOCAL_SAGEMAKER_ERROR_RATE / LOCAL_SAGEMAKER_LATENCY_MS inject faults.",
            section=section,
        ),
    }


def rollout_params() -> dict[str, Param]:
    """Every field of the trigger form, with defaults that run the demo on the local stack."""
    return {
        "endpoint_name": Param(
            "churn-canary",
            type="string",
            title="Endpoint name",
            description="Created if missing; an existing endpoint is updated in place.",
            pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$",
            section="Endpoint",
        ),
        "execution_role_arn": Param(
            LOCAL_ROLE_ARN,
            type="string",
            title="Execution role ARN",
            description="The IAM role SageMaker assumes to pull images and artifacts.",
            section="Endpoint",
        ),
        "region": Param("us-east-1", type="string", title="AWS region", section="Endpoint"),
        "bucket": Param(
            "canary-rollouts",
            type="string",
            title="S3 bucket",
            description="Artifacts, Data Capture, ground truth and decision records go here.",
            section="Endpoint",
        ),
        "prefix": Param("canary", type="string", title="S3 prefix", section="Endpoint"),
        **_model_params("champion", "Champion", "Champion"),
        **_model_params("challenger", "Challenger", "Challenger"),
        "stages": Param(
            [list(stage) for stage in DEFAULT_STAGES],
            type="array",
            items={"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 2},
            minItems=1,
            maxItems=MAX_STAGES,
            title="Stages [champion, challenger]",
            description="Relative weights per stage; each stage is held until its gate decides.",
            section="Rollout",
        ),
        "cleanup": Param(
            CleanupPolicy.KEEP_WINNER.value,
            type="string",
            enum=[policy.value for policy in CleanupPolicy],
            title="Cleanup",
            description="keep_winner: the endpoint ends serving the winner alone. "
            "delete_all: remove everything this run created.",
            section="Rollout",
        ),
        "data_capture": Param(True, type="boolean", title="Data Capture", section="Rollout"),
        **_traffic_params(),
        **_gate_params(),
    }


def _traffic_params() -> dict[str, Param]:
    section = "Traffic replay"
    return {
        "traffic_enabled": Param(True, type="boolean", title="Replay traffic", section=section),
        "traffic_dataset": Param(
            "demo",
            type="string",
            title="Dataset",
            description="'demo' (synthetic churn test split) or a labelled CSV path / s3:// URI.",
            section=section,
        ),
        "traffic_label_column": Param(
            "churn", type="string", title="Label column", section=section
        ),
        "traffic_mode": Param(
            TrafficMode.ENDPOINT_WEIGHTS.value,
            type="string",
            enum=[mode.value for mode in TrafficMode],
            title="Routing",
            description="endpoint_weights: the endpoint routes; target_variant: the client picks.",
            section=section,
        ),
        "traffic_strategy": Param(
            Strategy.WEIGHTED.value,
            type="string",
            enum=[strategy.value for strategy in Strategy],
            title="Allocation strategy",
            description="Bandit strategies need routing 'target_variant'.",
            section=section,
        ),
        "traffic_epsilon": Param(0.1, type="number", minimum=0, maximum=1, section=section),
        "traffic_warmup": Param(50, type="integer", minimum=0, section=section),
        "traffic_requests_per_stage": Param(
            6000, type="integer", minimum=1, title="Request cap per stage", section=section
        ),
        "traffic_chunk_size": Param(
            400, type="integer", minimum=1, title="Requests between gate looks", section=section
        ),
        "traffic_concurrency": Param(8, type="integer", minimum=1, maximum=256, section=section),
        "traffic_shards": Param(
            0,
            type="integer",
            minimum=0,
            maximum=32,
            title="Mapped replay tasks per stage",
            description="0: the gate feeds traffic itself, in chunks (fewest requests). "
            "N: a first burst of half the stage's planned traffic is sent by N mapped tasks "
            "spread over the workers; the gate then tops up in chunks if it needs more.",
            section=section,
        ),
    }


def _gate_params() -> dict[str, Param]:
    section = "Gate"
    return {
        "gate_alpha": Param(
            0.05,
            type="number",
            exclusiveMinimum=0,
            exclusiveMaximum=0.5,
            title="α (false promotion rate)",
            section=section,
        ),
        "gate_power": Param(0.8, type="number", title="Power", section=section),
        "gate_margin": Param(
            0.03,
            type="number",
            exclusiveMinimum=0,
            title="Non-inferiority margin δ",
            description="How much worse than the champion the challenger may be and still pass.",
            section=section,
        ),
        "gate_metric": Param(
            "accuracy", type="string", enum=["accuracy", "reward"], title="Metric", section=section
        ),
        "gate_planning_rate": Param(
            0.9,
            type="number",
            exclusiveMinimum=0,
            exclusiveMaximum=1,
            title="Expected champion accuracy",
            description="Sizes the sequential test; a rough value is enough.",
            section=section,
        ),
        "gate_max_5xx_rate": Param(0.01, type="number", minimum=0, maximum=1, section=section),
        "gate_max_4xx_rate": Param(0.05, type="number", minimum=0, maximum=1, section=section),
        "gate_max_p99_latency_ms": Param(500.0, type="number", exclusiveMinimum=0, section=section),
        "gate_max_stage_minutes": Param(30.0, type="number", exclusiveMinimum=0, section=section),
        "gate_on_deadline": Param(
            DeadlinePolicy.ROLLBACK.value,
            type="string",
            enum=[policy.value for policy in DeadlinePolicy],
            title="At the stage deadline",
            section=section,
        ),
        "gate_poke_interval_seconds": Param(5.0, type="number", minimum=1, section=section),
    }
