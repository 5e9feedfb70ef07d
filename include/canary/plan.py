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
from collections.abc import Mapping
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

SAGEMAKER_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
MODEL_PACKAGE_ARN = re.compile(r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d{12}:model-package/.+")
ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/.+")
DEMO_MODELS = ("champion", "challenger", "worse")
DEFAULT_STAGES = ((50, 50), (25, 75), (0, 100))
DIGEST_LENGTH = 10
MAX_STAGES = 5  # the rollout DAG has one task group per possible stage


class PlanError(ValueError):
    """A rollout plan that cannot run; the message names every bad field."""


class Framework(StrEnum):
    XGBOOST = "xgboost"
    SKLEARN = "sklearn"


class TrafficMode(StrEnum):
    ENDPOINT_WEIGHTS = "endpoint_weights"
    TARGET_VARIANT = "target_variant"


class Strategy(StrEnum):
    WEIGHTED = "weighted"
    EPSILON_GREEDY = "epsilon_greedy"
    UCB1 = "ucb1"
    THOMPSON = "thompson"


class DeadlinePolicy(StrEnum):
    ROLLBACK = "rollback"
    HALT = "halt"


class CleanupPolicy(StrEnum):
    KEEP_WINNER = "keep_winner"
    DELETE_ALL = "delete_all"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ModelSpec(_Frozen):
    """One side of the rollout: where its artifact comes from and what serves it."""

    role: str
    variant_name: Annotated[str, Field(pattern=SAGEMAKER_NAME.pattern)]
    source: str
    framework: Framework = Framework.XGBOOST
    framework_version: str = "1.7-1"
    instance_type: Annotated[str, Field(pattern=r"^ml\.[a-z0-9]+\.[a-z0-9]+$")] = "ml.m5.large"
    instance_count: Annotated[int, Field(ge=1, le=100)] = 1
    environment: dict[str, str] = Field(default_factory=dict)

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

    enabled: bool = True
    dataset: str = "demo"
    label_column: str = "churn"
    mode: TrafficMode = TrafficMode.ENDPOINT_WEIGHTS
    strategy: Strategy = Strategy.WEIGHTED
    epsilon: Annotated[float, Field(gt=0, lt=1)] = 0.1
    warmup: Annotated[int, Field(ge=0)] = 50
    requests_per_stage: Annotated[int, Field(ge=1, le=1_000_000)] = 6000
    chunk_size: Annotated[int, Field(ge=1, le=100_000)] = 400
    concurrency: Annotated[int, Field(ge=1, le=256)] = 8
    shards: Annotated[int, Field(ge=0, le=32)] = 0

    @model_validator(mode="after")
    def _strategy_fits_mode(self) -> TrafficSpec:
        if self.mode is TrafficMode.ENDPOINT_WEIGHTS and self.strategy is not Strategy.WEIGHTED:
            raise ValueError(
                f"strategy {self.strategy.value!r} needs mode 'target_variant': "
                "with 'endpoint_weights' the endpoint routes by its weights"
            )
        return self


class GateSpec(_Frozen):
    """The statistical gate that holds each stage: promote, continue, roll back or halt."""

    alpha: Annotated[float, Field(gt=0, lt=0.5)] = 0.05
    power: Annotated[float, Field(gt=0.5, lt=1)] = 0.8
    margin: Annotated[float, Field(gt=0, lt=1)] = 0.03
    metric: str = "accuracy"
    planning_rate: Annotated[float, Field(gt=0, lt=1)] = 0.9
    max_5xx_rate: Annotated[float, Field(ge=0, le=1)] = 0.01
    max_4xx_rate: Annotated[float, Field(ge=0, le=1)] = 0.05
    max_p99_latency_ms: Annotated[float, Field(gt=0)] = 500.0
    max_stage_minutes: Annotated[float, Field(gt=0, le=7 * 24 * 60)] = 30.0
    on_deadline: DeadlinePolicy = DeadlinePolicy.ROLLBACK
    poke_interval_seconds: Annotated[float, Field(ge=1, le=3600)] = 5.0

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        if value not in {"accuracy", "reward"}:
            raise ValueError("must be 'accuracy' or 'reward'")
        return value


class RolloutPlan(_Frozen):
    """A whole canary rollout, from artifacts to cleanup."""

    endpoint_name: Annotated[str, Field(pattern=SAGEMAKER_NAME.pattern)]
    champion: ModelSpec
    challenger: ModelSpec
    stages: tuple[tuple[int, int], ...] = DEFAULT_STAGES
    traffic: TrafficSpec = TrafficSpec()
    gate: GateSpec = GateSpec()
    cleanup: CleanupPolicy = CleanupPolicy.KEEP_WINNER
    bucket: Annotated[str, Field(pattern=BUCKET_NAME.pattern)] = "canary-rollouts"
    prefix: str = "canary"
    execution_role_arn: Annotated[str, Field(pattern=ROLE_ARN.pattern)]
    region: Annotated[str, Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")] = "us-east-1"
    data_capture: bool = True

    @field_validator("stages")
    @classmethod
    def _sane_stages(cls, stages: tuple[tuple[int, int], ...]) -> tuple[tuple[int, int], ...]:
        if not stages:
            raise ValueError("at least one stage is needed")
        if len(stages) > MAX_STAGES:
            raise ValueError(f"at most {MAX_STAGES} stages")
        for index, (champion, challenger) in enumerate(stages):
            if champion < 0 or challenger < 0:
                raise ValueError(
                    f"stage {index}: weights must be >= 0, got {[champion, challenger]}"
                )
            if challenger == 0:
                raise ValueError(f"stage {index}: the challenger needs weight > 0 to be judged")
        if stages[0][0] == 0:
            raise ValueError(
                "stage 0: the champion needs weight > 0 in the first stage; a stage without it "
                "is judged against the champion's quality measured in the stages before"
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
            raise ValueError("champion and challenger need different variant names")
        return self

    @property
    def variants(self) -> tuple[str, str]:
        return self.champion.variant_name, self.challenger.variant_name

    def stage_weights(self, index: int) -> dict[str, float]:
        champion, challenger = self.stages[index]
        return dict(zip(self.variants, (float(champion), float(challenger)), strict=True))

    def run_prefix(self, run_key: str) -> str:
        """Where this run's records live in S3: one folder per endpoint and run."""
        return f"{self.prefix}/{self.endpoint_name}/{run_key}"

    def resource_name(self, kind: str, *parts: str) -> str:
        """A SageMaker resource name that is the same on every retry of the same inputs."""
        digest = hashlib.sha256("|".join(parts).encode()).hexdigest()[:DIGEST_LENGTH]
        return self.resource_prefix(kind) + digest

    def resource_prefix(self, kind: str) -> str:
        """What every canary resource of this endpoint and kind is named with."""
        return f"{self.endpoint_name}-{kind}"[: 63 - DIGEST_LENGTH - 1] + "-"


# Flat names (Airflow Params, run conf) → nested plan fields.
FLAT_FIELDS: dict[str, tuple[str, ...]] = {
    "endpoint_name": ("endpoint_name",),
    "execution_role_arn": ("execution_role_arn",),
    "region": ("region",),
    "bucket": ("bucket",),
    "prefix": ("prefix",),
    "stages": ("stages",),
    "cleanup": ("cleanup",),
    "data_capture": ("data_capture",),
    **{
        f"{side}_{field}": (side, field)
        for side in ("champion", "challenger")
        for field in (
            "source",
            "variant_name",
            "framework",
            "framework_version",
            "instance_type",
            "instance_count",
            "environment",
        )
    },
    **{
        f"traffic_{field}": ("traffic", field)
        for field in (
            "enabled",
            "dataset",
            "label_column",
            "mode",
            "strategy",
            "epsilon",
            "warmup",
            "requests_per_stage",
            "chunk_size",
            "concurrency",
            "shards",
        )
    },
    **{
        f"gate_{field}": ("gate", field)
        for field in (
            "alpha",
            "power",
            "margin",
            "metric",
            "planning_rate",
            "max_5xx_rate",
            "max_4xx_rate",
            "max_p99_latency_ms",
            "max_stage_minutes",
            "on_deadline",
            "poke_interval_seconds",
        )
    },
}
_NESTED_TO_FLAT = {path: flat for flat, path in FLAT_FIELDS.items()}


def nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """Turn flat form fields into the nested shape of :class:`RolloutPlan`.

    Unknown keys are an error rather than silently ignored: a typo in a run's conf
    (``gate_alpah``) must not quietly fall back to a default.
    """
    unknown = sorted(set(flat) - set(FLAT_FIELDS))
    if unknown:
        raise PlanError(f"unknown plan field(s): {', '.join(unknown)}")
    nested: dict[str, Any] = {
        "champion": {"role": "champion", "variant_name": "Champion"},
        "challenger": {"role": "challenger", "variant_name": "Challenger"},
    }
    for key, value in flat.items():
        if value is None:
            continue
        *parents, leaf = FLAT_FIELDS[key]
        target = nested
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
    return nested


def parse_plan(flat: Mapping[str, Any]) -> RolloutPlan:
    """Validate a flat configuration into a plan, or raise :class:`PlanError` naming each field."""
    try:
        return RolloutPlan.model_validate(nest(flat))
    except ValidationError as error:
        raise PlanError(_describe(error)) from None


def _describe(error: ValidationError) -> str:
    lines = []
    for issue in error.errors():
        location = tuple(str(part) for part in issue["loc"])
        name = _flat_name(location)
        message = issue["msg"].removeprefix("Value error, ")
        lines.append(f"{name}: {message} (got {issue.get('input')!r})")
    return "invalid rollout plan:\n  " + "\n  ".join(lines)


def _flat_name(location: tuple[str, ...]) -> str:
    for length in range(len(location), 0, -1):
        flat = _NESTED_TO_FLAT.get(location[:length])
        if flat:
            rest = location[length:]
            return ".".join((flat, *rest))
    return ".".join(location) or "plan"
