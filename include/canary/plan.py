"""The rollout plan: everything a canary rollout needs to know, validated before any AWS call.

A plan arrives as a flat mapping (Airflow Params, a DAG run's conf, another DAG's trigger) and
leaves as an immutable, nested :class:`RolloutPlan`. Validation errors name the offending field
(``challenger_source``, ``stages.1``) and say why, so a bad form submission fails the first
task with a readable message and nothing gets created.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

SAGEMAKER_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
DYNAMODB_TABLE = re.compile(r"^[a-zA-Z0-9_.-]{3,255}$")
BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
MODEL_PACKAGE_ARN = re.compile(r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d{12}:model-package/.+")
ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/.+")
REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
SNS_TOPIC_ARN = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$")
DEFAULT_REGION = "us-east-1"
DEFAULT_BUCKET = "canary-rollouts"
DEFAULT_FRAMEWORK_VERSION = "1.7-1"
DEMO_MODELS = ("champion", "challenger", "worse")
DEFAULT_STAGES = ((50, 50), (25, 75), (0, 100))
DIGEST_LENGTH = 10  # hex digits of a resource's inputs in its name
ENDPOINT_DIGEST_LENGTH = 8  # of an endpoint name too long for resource names to carry whole
MAX_STAGES = 5  # the rollout DAG has one task group per possible stage
MAX_WAIT_MINUTES = 7 * 24 * 60  # the longest a run waits on anything: a stage, a person, a lease
MAX_INTERVAL_SECONDS = 3600  # the longest between two checks: gate looks, claims, settling
StageWeight = Annotated[int, Field(ge=0)]
#: The shadow stage's index: it comes before canary stage 0 and serves the champion alone.
SHADOW_STAGE = -1
#: The shadow stage's number: canary stages count from 1, the shadow stage comes before them.
SHADOW_NUMBER = SHADOW_STAGE + 1


def stage_index(number: int) -> int:
    """The stage index of a stage number (task ids and the dashboard count the shadow stage
    as 0, the first canary stage as 1)."""
    return number - SHADOW_NUMBER + SHADOW_STAGE


def stage_sequence(canary_stages: int, shadow: bool) -> tuple[int, ...]:
    """Every stage a rollout runs, by index, in order: the shadow stage first when planned."""
    canary = tuple(range(canary_stages))
    return (SHADOW_STAGE, *canary) if shadow else canary


def stage_split(stages: Sequence[Sequence[float]], index: int) -> tuple[float, float]:
    """What (champion, challenger) serve in stage ``index``: the shadow serves no one."""
    champion, challenger = (1, 0) if index == SHADOW_STAGE else stages[index]
    return float(champion), float(challenger)


def stage_name(index: int) -> str:
    """A stage as its folders name it: ``shadow``, ``stage-1``, ``stage-2`` … (the replay names
    each window of a stage after it, ``StageWindow.replay_stage``)."""
    return "shadow" if index == SHADOW_STAGE else f"stage-{index + 1}"


def short_digest(text: str, length: int) -> str:
    """The first ``length`` hex digits of ``text``'s SHA-256: what tells apart names that must
    stay short and stable (resource names, run keys, inference ids)."""
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def stage_label(stage: Sequence[float]) -> str:
    """``(1, 3)`` -> ``"25/75"``: weights as percentages of traffic, champion first (a
    stage's weights are relative: ``(9, 1)`` and ``(90, 10)`` are one split)."""
    total = stage[0] + stage[1]
    return f"{100 * stage[0] / total:.0f}/{100 * stage[1] / total:.0f}"


def stage_title(index: int) -> str:
    """A stage as people read it: ``shadow stage``, ``stage 1``, ``stage 2`` …"""
    return "shadow stage" if index == SHADOW_STAGE else f"stage {index + 1}"


class PlanError(ValueError):
    """A rollout plan that cannot run; the message names every bad field."""


class CrossFieldError(ValueError):
    """A check across fields, blamed on the field a person should change, by its path inside
    the model that checks (the error names its flat form field). A model-level validator's
    location is the whole model, whose input must not be echoed: it holds the containers'
    environments, which may hold secrets."""

    def __init__(self, path: tuple[str, ...], message: str) -> None:
        super().__init__(message)
        self.path = path


def setting(
    default: Any = PydanticUndefined,
    *,
    title: str,
    description: str | None = None,
    section: str | None = None,
    **constraints: Any,
) -> Any:
    """A plan field that people set: its one declaration of default, bounds, title and help.

    The trigger form (``canary_airflow.params``) is generated from these fields, so the form and
    the plan cannot disagree. ``section`` groups top-level fields on the form; the leaves of a
    sub-model (``gate``, ``traffic``, each side) take the section of the field that holds it.
    A field declared without ``setting`` (a model's ``role``) is not on the form.
    """
    extra = {"section": section} if section else None
    return Field(
        default, title=title, description=description, json_schema_extra=extra, **constraints
    )


def section(name: str, default: Any) -> Any:
    """A sub-model field whose leaves form one section of the trigger form."""
    return Field(default, json_schema_extra={"section": name})


class Framework(StrEnum):
    XGBOOST = "xgboost"
    SKLEARN = "sklearn"


class TrafficMode(StrEnum):
    """Who routes each request: the endpoint by its weights, or the client by ``TargetVariant``."""

    ENDPOINT_WEIGHTS = "endpoint_weights"
    TARGET_VARIANT = "target_variant"


class AllocationStrategy(StrEnum):
    """How the replay client splits traffic (``canary.experiment.allocation`` implements each)."""

    WEIGHTED = "weighted"
    EPSILON_GREEDY = "epsilon_greedy"
    UCB1 = "ucb1"
    THOMPSON = "thompson"


class Metric(StrEnum):
    """The gate's primary metric, per request."""

    ACCURACY = "accuracy"  # the score thresholded, against the label
    REWARD = "reward"  # a logged reward column
    BRIER = "brier"  # minus the squared error of the score


class DeadlinePolicy(StrEnum):
    ROLLBACK = "rollback"
    HALT = "halt"


class CleanupPolicy(StrEnum):
    KEEP_WINNER = "keep_winner"
    DELETE_ALL = "delete_all"


class ApprovalMode(StrEnum):
    """Which promotions wait for a person (a Human-in-the-loop task, Approve or Reject)."""

    NONE = "none"
    BEFORE_FINAL_STAGE = "before_final_stage"  # before the traffic goes to the last stage
    EVERY_STAGE = "every_stage"  # after every canary stage's gate that promotes


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ModelSpec(_Frozen):
    """One side of the rollout: where its artifact comes from and what serves it."""

    role: str
    source: str = setting(
        title="Artifact",
        description="A local model.tar.gz, s3://bucket/key/model.tar.gz, a model package ARN, "
        "or demo:champion / demo:challenger / demo:worse (generated synthetic churn models).",
        min_length=1,
    )
    variant_name: str = setting(title="Variant name", pattern=SAGEMAKER_NAME.pattern)
    framework: Framework = setting(Framework.XGBOOST, title="Framework")
    framework_version: str = setting(DEFAULT_FRAMEWORK_VERSION, title="Framework version")
    instance_type: str = setting(
        "ml.m5.large", title="Instance type", pattern=r"^ml\.[a-z0-9]+\.[a-z0-9]+$"
    )
    instance_count: int = setting(1, title="Instance count", ge=1, le=100)
    environment: dict[str, str] = setting(
        {},
        title="Container environment",
        description="Passed to the model container. On the local stack, "
        "LOCAL_SAGEMAKER_ERROR_RATE / LOCAL_SAGEMAKER_LATENCY_MS inject faults.",
    )

    @field_validator("source")
    @classmethod
    def _known_source(cls, value: str) -> str:
        value = value.strip()
        if value.startswith("demo:"):
            if value.removeprefix("demo:") not in DEMO_MODELS:
                raise ValueError(f"demo sources are {', '.join('demo:' + m for m in DEMO_MODELS)}")
            return value
        if MODEL_PACKAGE_ARN.match(value):
            return value
        if value.startswith("s3://"):
            if not value.endswith(".tar.gz") or len(value.split("/", 3)) < 4:
                raise ValueError("an S3 source must be s3://bucket/key/model.tar.gz")
            return value
        if not value.endswith(".tar.gz"):
            raise ValueError(
                "must be a local model.tar.gz, an s3:// URI, a model package ARN or demo:<name>"
            )
        return value

    @property
    def is_model_package(self) -> bool:
        return bool(MODEL_PACKAGE_ARN.match(self.source))

    @property
    def demo_model(self) -> str | None:
        """Which generated demo model this side uses, if any (``demo:challenger``)."""
        return self.source.removeprefix("demo:") if self.source.startswith("demo:") else None


class TrafficSpec(_Frozen):
    """Synthetic traffic replayed while each gate waits (in production, real traffic does this)."""

    enabled: bool = setting(True, title="Replay traffic")
    dataset: str = setting(
        "demo",
        title="Dataset",
        description="'demo' (synthetic churn traffic) or a labelled CSV path / s3:// URI.",
        min_length=1,
    )
    label_column: str = setting("churn", title="Label column", min_length=1)
    mode: TrafficMode = setting(
        TrafficMode.ENDPOINT_WEIGHTS,
        title="Routing",
        description="endpoint_weights: the endpoint routes; target_variant: the client picks.",
    )
    strategy: AllocationStrategy = setting(
        AllocationStrategy.WEIGHTED,
        title="Allocation strategy",
        description="Bandit strategies need routing 'target_variant'.",
    )
    epsilon: float = setting(0.1, title="ε (epsilon-greedy exploration)", gt=0, lt=1)
    warmup: int = setting(50, title="Warm-up requests per variant (bandits)", ge=0)
    requests_per_stage: int = setting(
        20_000,
        title="Request cap per stage",
        description="A stage replays only until its gate decides; once its traffic is spent, "
        "the gate decides at the information reached.",
        ge=1,
        le=1_000_000,
    )
    chunk_size: int = setting(400, title="Requests between gate looks", ge=1, le=100_000)
    concurrency: int = setting(8, title="Concurrent requests", ge=1, le=256)
    shards: int = setting(
        0,
        title="Mapped replay tasks per stage",
        description="0: the gate feeds traffic itself, in chunks (fewest requests). "
        "N: a first burst of half the stage's planned traffic is sent by N mapped tasks "
        "spread over the workers; the gate then tops up in chunks if it needs more.",
        ge=0,
        le=32,
    )

    @model_validator(mode="after")
    def _strategy_fits_mode(self) -> TrafficSpec:
        weighted = self.strategy is AllocationStrategy.WEIGHTED
        if self.mode is TrafficMode.ENDPOINT_WEIGHTS and not weighted:
            raise CrossFieldError(
                ("strategy",),
                f"{self.strategy.value!r} needs traffic_mode 'target_variant': "
                "with 'endpoint_weights' the endpoint routes by its weights",
            )
        return self


class GateSpec(_Frozen):
    """The statistical gate that holds each stage: promote, continue, roll back or halt.

    These are the settings people choose; ``canary.experiment.gates.GateConfig`` extends them with
    the sequential design's fixed choices (looks, spending functions, guardrail levels).
    """

    alpha: float = setting(0.05, title="α (false promotion rate)", gt=0, lt=0.5)
    power: float = setting(0.8, title="Power", gt=0.5, lt=1)
    margin: float = setting(
        0.03,
        title="Non-inferiority margin δ",
        description="How much worse than the champion the challenger may be and still pass.",
        gt=0,
        lt=1,
    )
    metric: Metric = setting(Metric.ACCURACY, title="Metric")
    planning_rate: float = setting(
        0.9,
        title="Expected champion accuracy",
        description="Sizes the sequential test; a rough value is enough, and if unsure err "
        "low: the test loses power when the models are less accurate than this.",
        gt=0,
        lt=1,
    )
    max_5xx_rate: float = setting(0.01, title="Ceiling on the 5XX rate", ge=0, le=1)
    max_4xx_rate: float = setting(0.05, title="Ceiling on the 4XX rate", ge=0, le=1)
    max_p99_latency_ms: float = setting(500.0, title="Ceiling on p99 latency (ms)", gt=0)
    max_stage_minutes: float = setting(
        30.0, title="Stage deadline (minutes)", gt=0, le=MAX_WAIT_MINUTES
    )
    on_deadline: DeadlinePolicy = setting(DeadlinePolicy.ROLLBACK, title="At the stage deadline")
    poke_interval_seconds: float = setting(
        5.0, title="Seconds between gate looks (real traffic)", ge=1, le=MAX_INTERVAL_SECONDS
    )
    settle_seconds: float = setting(
        300.0,
        title="Seconds a spent stage waits for late evidence",
        description="Once a stage's traffic is spent, its last look waits until Data Capture "
        "holds every shadow answer, or until the counts have not moved for this long (Data "
        "Capture sampling; a retried request that reused its inference id).",
        ge=0,
        le=MAX_INTERVAL_SECONDS,
    )

    @model_validator(mode="after")
    def _settles_before_the_deadline(self) -> GateSpec:
        if self.settle_seconds >= 60 * self.max_stage_minutes:
            raise CrossFieldError(
                ("settle_seconds",),
                f"{self.settle_seconds:g} s is not shorter than gate_max_stage_minutes "
                f"({self.max_stage_minutes:g} min): a spent stage would reach its deadline "
                "before its last look; lower it or raise the deadline",
            )
        return self


PEOPLE = "Approval and notifications"
LOCAL_ROLE_ARN = "arn:aws:iam::123456789012:role/canary-local"


class RolloutPlan(_Frozen):
    """A whole canary rollout, from artifacts to cleanup. The defaults run the demo locally."""

    endpoint_name: str = setting(
        "churn-canary",
        title="Endpoint name",
        description="Created if missing; an existing endpoint is updated in place.",
        section="Endpoint",
        pattern=SAGEMAKER_NAME.pattern,
    )
    execution_role_arn: str = setting(
        LOCAL_ROLE_ARN,
        title="Execution role ARN",
        description="The IAM role SageMaker assumes to pull images and artifacts.",
        section="Endpoint",
        pattern=ROLE_ARN.pattern,
    )
    region: str = setting(
        DEFAULT_REGION, title="AWS region", section="Endpoint", pattern=REGION.pattern
    )
    bucket: str = setting(
        DEFAULT_BUCKET,
        title="S3 bucket",
        description="Artifacts, Data Capture, ground truth and decision records go here.",
        section="Endpoint",
        pattern=BUCKET_NAME.pattern,
    )
    prefix: str = setting("canary", title="S3 prefix", section="Endpoint")
    lock_table: str = setting(
        "canary-endpoint-locks",
        title="DynamoDB lock table",
        description="One rollout at a time per endpoint: its lease lives here (created if "
        "missing). Rollouts of different endpoints run at the same time.",
        section="Endpoint",
        pattern=DYNAMODB_TABLE.pattern,
    )
    lock_wait_minutes: float = setting(
        120.0,
        title="Wait for a busy endpoint (minutes)",
        description="Another rollout holds the endpoint: this run waits for it to end, then "
        "takes its turn; still held after this long, the run fails naming the holder, having "
        "touched nothing. 0: fail at once.",
        section="Endpoint",
        ge=0,
        le=MAX_WAIT_MINUTES,
    )
    lock_poll_seconds: float = setting(
        30.0,
        title="Seconds between claims on a busy endpoint",
        section="Endpoint",
        ge=1,
        le=MAX_INTERVAL_SECONDS,
    )
    champion: ModelSpec = section(
        "Champion model",
        ModelSpec(role="champion", variant_name="Champion", source="demo:champion"),
    )
    challenger: ModelSpec = section(
        "Challenger model",
        ModelSpec(role="challenger", variant_name="Challenger", source="demo:challenger"),
    )
    stages: tuple[tuple[StageWeight, StageWeight], ...] = setting(
        DEFAULT_STAGES,
        title="Stages [champion, challenger]",
        description="Relative weights per stage; each stage is held until its gate decides.",
        section="Rollout",
        min_length=1,
        max_length=MAX_STAGES,
    )
    cleanup: CleanupPolicy = setting(
        CleanupPolicy.KEEP_WINNER,
        title="Cleanup",
        description="keep_winner: the endpoint ends serving the winner alone. "
        "delete_all: remove everything this run created.",
        section="Rollout",
    )
    data_capture: bool = setting(True, title="Data Capture", section="Rollout")
    shadow: bool = setting(
        True,
        title="Shadow stage first",
        description="Before any user is served by the challenger, it runs as a SageMaker shadow "
        "variant: it answers a copy of the champion's requests, the answers are only captured, "
        "and a paired test on the same requests decides whether the canary stages start. "
        "Needs Data Capture.",
        section="Rollout",
    )
    shadow_sampling_percent: float = setting(
        100.0,
        title="Shadow sampling (%)",
        description="Share of the champion's requests mirrored to the shadow challenger.",
        section="Rollout",
        gt=0,
        le=100,
    )
    approval: ApprovalMode = setting(
        ApprovalMode.NONE,
        title="Human approval",
        description="before_final_stage: a person approves before the last stage; every_stage: "
        "after every canary stage's gate that promotes (the shadow stage's verdict starts the "
        "first canary stage without asking). Reject rolls back and cleans up.",
        section=PEOPLE,
    )
    approval_timeout_minutes: float = setting(
        60.0,
        title="Approval timeout (minutes)",
        description="Unanswered by then: Reject.",
        section=PEOPLE,
        gt=0,
        le=MAX_WAIT_MINUTES,
    )
    notify_topic_arn: str = setting(
        "",
        title="SNS topic for notifications",
        description="Every stage verdict, approval request and outcome is published here as "
        "JSON. Empty: no notifications.",
        section=PEOPLE,
        pattern=f"^$|{SNS_TOPIC_ARN.pattern}",
    )
    traffic: TrafficSpec = section("Traffic replay", TrafficSpec())
    gate: GateSpec = section("Gate", GateSpec())

    @field_validator("stages")
    @classmethod
    def _sane_stages(cls, stages: tuple[tuple[int, int], ...]) -> tuple[tuple[int, int], ...]:
        for index, (_, challenger) in enumerate(stages):
            if challenger == 0:
                raise ValueError(
                    f"{stage_title(index)}: the challenger needs weight > 0 to be judged"
                )
        if stages[0][0] == 0:
            raise ValueError(
                f"{stage_title(0)}: the champion needs weight > 0 in the first stage; a stage "
                "without it is judged against the champion's quality measured in the stages before"
            )
        shares = [challenger / (champion + challenger) for champion, challenger in stages]
        if any(later < earlier for earlier, later in itertools.pairwise(shares)):
            raise ValueError(
                f"the challenger's share must never shrink from stage to stage: {shares}"
            )
        return stages

    @field_validator("prefix")
    @classmethod
    def _clean_prefix(cls, prefix: str) -> str:
        return prefix.strip("/")

    @model_validator(mode="after")
    def _distinct_variants(self) -> RolloutPlan:
        if self.champion.variant_name == self.challenger.variant_name:
            raise CrossFieldError(
                ("challenger", "variant_name"),
                "champion and challenger need different variant names",
            )
        return self

    @model_validator(mode="after")
    def _shadow_can_be_judged(self) -> RolloutPlan:
        if self.shadow and not self.data_capture:
            raise CrossFieldError(
                ("shadow",),
                "the shadow's answers exist only in Data Capture; "
                "turn data_capture on or shadow off",
            )
        if self.shadow and self.gate.metric is not Metric.ACCURACY:
            raise CrossFieldError(
                ("shadow",),
                f"the paired test judges accuracy on the same requests, not "
                f"{self.gate.metric.value!r}; set gate_metric to accuracy or shadow off",
            )
        return self

    @model_validator(mode="after")
    def _reward_needs_the_replay(self) -> RolloutPlan:
        if self.gate.metric is Metric.REWARD and not self.traffic.enabled:
            raise CrossFieldError(
                ("gate", "metric"),
                "the reward is known only for replayed requests (AWS telemetry has no reward); "
                f"turn {flat_name(('traffic', 'enabled'))} on or judge "
                + " or ".join(m.value for m in Metric if m is not Metric.REWARD),
            )
        return self

    @property
    def variants(self) -> tuple[str, str]:
        return self.champion.variant_name, self.challenger.variant_name

    def needs_approval(self, index: int) -> bool:
        """Whether a person approves the promotion of stage ``index`` before traffic moves on.

        ``before_final_stage`` asks before the last stage's weights (with one stage: before the
        challenger takes all traffic); ``every_stage`` asks after every canary stage's gate
        (not after the shadow stage's).
        """
        if self.approval is ApprovalMode.EVERY_STAGE:
            return True
        if self.approval is ApprovalMode.BEFORE_FINAL_STAGE:
            return index == max(len(self.stages) - 2, 0)
        return False

    @property
    def shadow_share(self) -> float:
        """The share (0, 1] of the champion's requests the shadow answers too."""
        return self.shadow_sampling_percent / 100

    def redacted(self) -> dict[str, Any]:
        """The plan as JSON for logs, with the containers' environment values hidden: an
        environment may carry secrets, and a log is read by more people than the conf."""
        data = self.model_dump(mode="json")
        for role in ("champion", "challenger"):
            data[role]["environment"] = dict.fromkeys(data[role]["environment"], "***")
        return data

    @property
    def stage_indices(self) -> tuple[int, ...]:
        """Every stage the rollout runs, in order: the shadow stage first when planned."""
        return stage_sequence(len(self.stages), self.shadow)

    def stage_weights(self, index: int) -> dict[str, float]:
        """What each variant serves in stage ``index`` (the shadow serves no one)."""
        return dict(zip(self.variants, stage_split(self.stages, index), strict=True))

    def resource_name(self, kind: str, identity: str) -> str:
        """A SageMaker resource name that is the same on every retry of the same inputs
        (``identity``: what tells them apart)."""
        return self.resource_prefix(kind) + short_digest(identity, DIGEST_LENGTH)

    def resource_prefix(self, kind: str) -> str:
        """What every canary resource of this endpoint and kind is named with, within
        SageMaker's 63 characters. When the endpoint's whole name does not fit, the prefix
        keeps its start and a digest of the whole: two long names that differ only at the end
        must not share a prefix, or one endpoint's run would reuse (and its teardown delete)
        the other's models and configs."""
        room = 63 - DIGEST_LENGTH - 1  # the inputs' digest and the '-' before it follow
        whole = f"{self.endpoint_name}-{kind}"
        if len(whole) <= room:
            return whole + "-"
        digest = short_digest(self.endpoint_name, ENDPOINT_DIGEST_LENGTH)
        head = self.endpoint_name[: room - len(kind) - ENDPOINT_DIGEST_LENGTH - 2]
        return f"{head}-{digest}-{kind}-"


@dataclass(frozen=True)
class FormField:
    """One field of the flat form: its name, where it lives in the plan, its section."""

    name: str  # gate_alpha
    path: tuple[str, ...]  # ("gate", "alpha")
    section: str
    info: FieldInfo


def form_fields(model: type[BaseModel]) -> dict[str, FormField]:
    """Every field of ``model`` declared with :func:`setting`, by its flat name.

    A sub-model field (``gate``) contributes its leaves as ``<field>_<leaf>`` (``gate_alpha``),
    in the section the sub-model field names.
    """
    found: dict[str, FormField] = {}
    for name, info in model.model_fields.items():
        if isinstance(info.default, BaseModel):
            held = _section_of(info)
            for leaf, leaf_info in type(info.default).model_fields.items():
                if leaf_info.title is not None:
                    flat = f"{name}_{leaf}"
                    found[flat] = FormField(flat, (name, leaf), held, leaf_info)
        elif info.title is not None:
            found[name] = FormField(name, (name,), _section_of(info), info)
    return found


def _section_of(info: FieldInfo) -> str:
    extra = info.json_schema_extra
    return str(extra["section"]) if isinstance(extra, dict) else ""


#: Flat names (Airflow Params, a run's conf) → the plan's fields, derived from the model.
FORM_FIELDS: dict[str, FormField] = form_fields(RolloutPlan)
FLAT_FIELDS: dict[str, tuple[str, ...]] = {name: f.path for name, f in FORM_FIELDS.items()}
_NESTED_TO_FLAT = {path: flat for flat, path in FLAT_FIELDS.items()}
DEFAULT_PLAN = RolloutPlan()


class OfflineMetric(StrEnum):
    """What the nightly job compares challenger and champion on, on the same fresh holdout."""

    ROC_AUC = "roc_auc"
    ACCURACY = "accuracy"
    F1 = "f1"
    PRECISION = "precision"
    RECALL = "recall"


NIGHTLY = "Nightly challenger"


class NightlySpec(_Frozen):
    """What one night trains and how it judges the challenger (the ``nightly_challenger`` form)."""

    model_package_group: str = setting(
        "churn-models", title="Model package group", section=NIGHTLY, pattern=SAGEMAKER_NAME.pattern
    )
    region: str = setting(
        DEFAULT_REGION, title="AWS region", section=NIGHTLY, pattern=REGION.pattern
    )
    bucket: str = setting(
        DEFAULT_BUCKET, title="S3 bucket", section=NIGHTLY, pattern=BUCKET_NAME.pattern
    )
    prefix: str = setting("nightly", title="S3 prefix", section=NIGHTLY)
    n_rows: int = setting(12000, title="Rows per night", section=NIGHTLY, ge=200)
    seed: int = setting(0, title="Seed", section=NIGHTLY, ge=0)
    metric: OfflineMetric = setting(OfflineMetric.ROC_AUC, title="Offline metric", section=NIGHTLY)
    min_improvement: float = setting(
        0.005,
        title="Minimum improvement to approve",
        description="Better than the champion by at least this much: Approved (a rollout "
        "starts). Better, but less: PendingManualApproval. Not better: not registered.",
        section=NIGHTLY,
        gt=-1,
        lt=1,
    )
    framework_version: str = setting(
        DEFAULT_FRAMEWORK_VERSION, title="XGBoost framework version", section=NIGHTLY
    )

    @property
    def group(self) -> str:
        return self.model_package_group


NIGHTLY_FIELDS: dict[str, FormField] = form_fields(NightlySpec)


def nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """Turn flat form fields into the nested shape of :class:`RolloutPlan`, over its defaults.

    Unknown keys are an error rather than silently ignored: a typo in a run's conf
    (``gate_alpah``) must not quietly fall back to a default.
    """
    unknown = sorted(set(flat) - set(FLAT_FIELDS))
    if unknown:
        raise PlanError(f"unknown plan field(s): {', '.join(unknown)}")
    nested = DEFAULT_PLAN.model_dump()
    for key, value in flat.items():
        if value is None:
            continue
        *parents, leaf = FLAT_FIELDS[key]
        target = nested
        for parent in parents:
            target = target[parent]
        target[leaf] = value
    return nested


def flat_values(model: BaseModel, fields: Mapping[str, FormField]) -> dict[str, Any]:
    """A model's values as flat form values (JSON types): what a trigger form starts with."""
    dumped = model.model_dump(mode="json")
    values = {}
    for name, field in fields.items():
        value = dumped
        for part in field.path:
            value = value[part]
        values[name] = value
    return values


def parse_plan(flat: Mapping[str, Any]) -> RolloutPlan:
    """Validate a flat configuration into a plan, or raise :class:`PlanError` naming each field."""
    try:
        return RolloutPlan.model_validate(nest(flat))
    except ValidationError as error:
        raise PlanError(_describe(error, "rollout plan")) from None


def parse_nightly(values: Mapping[str, Any]) -> NightlySpec:
    """Validate the nightly form, or raise :class:`PlanError` naming each bad field."""
    try:
        return NightlySpec.model_validate(dict(values))
    except ValidationError as error:
        raise PlanError(_describe(error, "nightly settings")) from None


def _describe(error: ValidationError, what: str) -> str:
    """One line per bad field: its flat name, what is wrong, and the value given, except where
    the value could be a secret (a container environment, or a whole model holding one)."""
    lines = []
    for issue in error.errors():
        location = tuple(str(part) for part in issue["loc"])
        cause = issue.get("ctx", {}).get("error")
        blamed = cause.path if isinstance(cause, CrossFieldError) else ()
        name = flat_name((*location, *blamed))
        message = issue["msg"].removeprefix("Value error, ")
        given = issue.get("input")
        secret = "environment" in location or isinstance(given, Mapping)
        lines.append(f"{name}: {message}" + ("" if secret else f" (got {given!r})"))
    return invalid(what, lines)


def invalid(what: str, lines: list[str]) -> str:
    """The message of a :class:`PlanError`: what is invalid, then one line per bad field."""
    return f"invalid {what}:\n  " + "\n  ".join(lines)


def flat_name(location: tuple[str, ...]) -> str:
    """The flat (form) name of a plan field's path, ``("gate", "alpha")`` → ``gate_alpha``;
    what lies below a form field (a list index, a sub-key) follows it, dotted."""
    for length in range(len(location), 0, -1):
        flat = _NESTED_TO_FLAT.get(location[:length])
        if flat:
            rest = location[length:]
            return ".".join((flat, *rest))
    return ".".join(location) or "plan"
