"""Tiers and shared fixtures: one real local AWS stack (a subprocess on loopback) per session.

A test's tier is the folder it lives in, and its marker follows from it: ``tests/unit`` (no
sockets, no subprocesses; ``pytest -m unit``), ``tests/integration`` (the local stack) and
``tests/e2e`` (DAG runs with Airflow's runner and the real scheduler).

``local_stack`` is a ``local_sagemaker.stack.EmbeddedStack``: use ``.client(service)``,
``.endpoint_url``, ``.env()`` and ``.flush()`` (makes metrics and capture records visible
in CloudWatch/S3 immediately). Tests share it, so give resources unique names.

``make_deployer`` makes ``StackDeployer``s: models, endpoint configs and endpoints on that stack,
CloudWatch statistics of them, and cleanup.

``seed_group`` makes a model package group with real demo artifacts registered in it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from botocore.config import Config

from canary.models import registry as reg
from canary.models.demo_models import cached_demo_models
from canary.plan import DEFAULT_PLAN
from canary.rollout import layout
from canary.rollout.endpoint import image_uri
from canary_airflow.dev.local_airflow import airflow_settings
from local_sagemaker.stack import EmbeddedStack

# Airflow reads its home and DAG folder once, when first imported: a per-session home and the
# project's settings must be in place before any test module imports Airflow, so they are set
# here, at collection time.
os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="canary-airflow-")
os.environ[layout.REPORTS_DIR_ENV] = str(Path(os.environ["AIRFLOW_HOME"]) / "reports")
os.environ.update(airflow_settings())


TIERS = ("unit", "integration", "e2e")

#: The slowest files, to be handed out first. ``make test`` gives xdist's workers whole files in
#: collection order (``--dist loadfile --no-loadscope-reorder``): one file each to start, then
#: the next file to a worker with two tests or fewer left. So the long e2e files start at once
#: and the short ones fill the gaps; by default xdist orders files by their number of tests,
#: which started the two slowest (few tests, each a scheduler run of minutes) last and left one
#: worker busy long after the others. Measured worker-seconds on the 2-core box, 2026-12-05:
#: 319, 258, 235, 65, 199, 169, 138, 79 (the short nightly file fourth: the first worker to ask
#: for more soon, while its two long tests run, gets a short file queued behind them). A file
#: renamed away from this list fails collection; a stale order only costs speed.
SLOWEST_FIRST = (
    "e2e/test_real_scheduler.py",
    "e2e/test_rollout_runs.py",
    "e2e/aws_profile/test_rollbacks.py",
    "e2e/test_nightly_to_rollout.py",
    "e2e/test_scheduler_faults.py",
    "e2e/test_rollout_faults.py",
    "e2e/aws_profile/test_rollouts.py",
    "e2e/test_demo.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with its tier, taken from its folder, so ``-m unit`` etc. select them;
    then put the slowest files first (:data:`SLOWEST_FIRST`), the rest in their order."""
    root = Path(__file__).parent
    for item in items:
        tier = item.path.relative_to(root).parts[0]
        if tier not in TIERS:
            raise pytest.UsageError(
                f"{item.nodeid}: tests live in one of tests/{{{','.join(TIERS)}}}"
            )
        item.add_marker(getattr(pytest.mark, tier))
    missing = [name for name in SLOWEST_FIRST if not (root / name).is_file()]
    if missing:
        raise pytest.UsageError(f"SLOWEST_FIRST names files that do not exist: {missing}")
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.relative_to(root).as_posix(), len(rank)))


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    """The local stack, started once per session and stopped at the end."""
    log = tmp_path_factory.mktemp("local_stack") / "local_stack.log"
    with EmbeddedStack(log_path=log) as stack:
        yield stack


@pytest.fixture
def unique_name() -> str:
    """A short unique suffix for resource names on the shared stack."""
    return uuid.uuid4().hex[:8]


XGB_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"


@dataclass
class StackDeployer:
    """Creates S3 artifacts, models, configs and endpoints on the stack; cleans up after.

    One implementation for every suite that deploys real endpoints (suites reach it through the
    ``make_deployer`` fixture: with ``--import-mode=importlib`` tests cannot import conftests).
    """

    stack: EmbeddedStack
    bucket: str
    role: str
    runtime_config: Config | None = None
    created: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.s3 = self.stack.client("s3")
        self.sm = self.stack.client("sagemaker")
        # No config: the stack's default (no retries, so every call is one counted request).
        options = {"config": self.runtime_config} if self.runtime_config else {}
        self.rt = self.stack.client("sagemaker-runtime", **options)
        self.cw = self.stack.client("cloudwatch")

    def upload(self, data: bytes, key: str | None = None) -> str:
        """Put an artifact and return its s3:// URL."""
        key = key or f"models/{uuid.uuid4().hex}/model.tar.gz"
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=data)
        return f"s3://{self.bucket}/{key}"

    def model(
        self,
        url: str,
        image: str = XGB_IMAGE,
        env: dict | None = None,
        name: str | None = None,
        tags: Sequence[dict[str, str]] = (),
    ) -> str:
        """CreateModel for an artifact; returns the model name (``name``, or a fresh one)."""
        name = name or f"m-{uuid.uuid4().hex[:10]}"
        container = {"Image": image, "ModelDataUrl": url, "Environment": env or {}}
        self.sm.create_model(
            ModelName=name, ExecutionRoleArn=self.role, PrimaryContainer=container, Tags=[*tags]
        )
        self.created.append(("model", name))
        return name

    def config(
        self,
        variants: dict[str, tuple[str, float]],
        capture: dict | None = None,
        shadow: dict[str, tuple[str, float]] | None = None,
        name: str | None = None,
        tags: Sequence[dict[str, str]] = (),
    ) -> str:
        """CreateEndpointConfig with {variant: (model, initial weight)}, and ``shadow`` ones
        that only answer a copy of each request."""
        name = name or f"c-{uuid.uuid4().hex[:10]}"
        kwargs: dict[str, Any] = {
            "EndpointConfigName": name,
            "ProductionVariants": _variant_specs(variants),
            "Tags": [*tags],
        }
        if shadow:
            kwargs["ShadowProductionVariants"] = _variant_specs(shadow)
        if capture:
            kwargs["DataCaptureConfig"] = capture
        self.sm.create_endpoint_config(**kwargs)
        self.created.append(("config", name))
        return name

    def endpoint(
        self,
        config: str,
        name: str | None = None,
        tags: Sequence[dict[str, str]] = (),
        wait: bool = True,
    ) -> str:
        """CreateEndpoint and wait (as the provider's sensor would) until InService; without
        ``wait``, for an endpoint meant to end otherwise (Failed)."""
        name = name or f"e-{uuid.uuid4().hex[:10]}"
        self.sm.create_endpoint(EndpointName=name, EndpointConfigName=config, Tags=[*tags])
        self.created.append(("endpoint", name))
        if not wait:
            return name
        waiter = self.sm.get_waiter("endpoint_in_service")
        waiter.wait(EndpointName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
        return name

    def invoke(self, endpoint: str, body: str | bytes, **kwargs: Any) -> tuple[str, bytes]:
        """InvokeEndpoint; returns (invoked variant, body)."""
        kwargs.setdefault("ContentType", "text/csv")
        response = self.rt.invoke_endpoint(EndpointName=endpoint, Body=body, **kwargs)
        return response["InvokedProductionVariant"], response["Body"].read()

    def metric(self, endpoint: str, variant: str, name: str, stat: str = "Sum") -> float:
        """A statistic of one AWS/SageMaker metric over the last 10 minutes (after a flush)."""
        self.stack.flush()
        now = dt.datetime.now(dt.UTC)
        points = self.cw.get_metric_statistics(
            Namespace="AWS/SageMaker",
            MetricName=name,
            Dimensions=[
                {"Name": "EndpointName", "Value": endpoint},
                {"Name": "VariantName", "Value": variant},
            ],
            StartTime=now - dt.timedelta(minutes=10),
            EndTime=now + dt.timedelta(minutes=5),
            Period=3600,
            Statistics=[stat],
        )["Datapoints"]
        values = [p[stat] for p in points]
        if stat == "Minimum":
            return min(values, default=float("nan"))
        if stat == "Maximum":
            return max(values, default=float("nan"))
        return float(sum(values))

    def cleanup(self) -> None:
        """Delete what this deployer created (endpoints first), ignoring what is already gone."""
        order = {"endpoint": 0, "config": 1, "model": 2}
        for kind, name in sorted(reversed(self.created), key=lambda item: order[item[0]]):
            try:
                if kind == "endpoint":
                    self.sm.delete_endpoint(EndpointName=name)
                elif kind == "config":
                    self.sm.delete_endpoint_config(EndpointConfigName=name)
                else:
                    self.sm.delete_model(ModelName=name)
            except self.sm.exceptions.ClientError:
                pass


def _variant_specs(variants: dict[str, tuple[str, float]]) -> list[dict[str, Any]]:
    return [
        {
            "VariantName": variant,
            "ModelName": model,
            "InitialInstanceCount": 1,
            "InstanceType": "ml.m5.large",
            "InitialVariantWeight": weight,
        }
        for variant, (model, weight) in variants.items()
    ]


@pytest.fixture(scope="session")
def make_deployer(local_stack: EmbeddedStack) -> Callable[..., StackDeployer]:
    """Factory of ``StackDeployer``s, each with a new bucket ``{bucket_prefix}-<random>``, on the
    session's stack or another (``stack=``).

    The caller owns what it makes: call ``.cleanup()`` when its fixture's scope ends."""

    def make(
        bucket_prefix: str,
        role: str,
        runtime_config: Config | None = None,
        stack: EmbeddedStack | None = None,
    ) -> StackDeployer:
        on = stack or local_stack
        bucket = f"{bucket_prefix}-{uuid.uuid4().hex[:12]}"
        on.client("s3").create_bucket(Bucket=bucket)
        return StackDeployer(on, bucket, role, runtime_config)

    return make


# -- the model registry: a group seeded with real demo artifacts ---------------------------------

REGISTRY_BUCKET = "canary-registry-tests"


@dataclass(frozen=True)
class SeededGroup:
    """A model package group on the local stack with real demo artifacts registered in it."""

    name: str
    packages: dict[str, str]  # demo model name → package ARN


def register_demo(sm: Any, s3: Any, group: str, model: str, status: str, **props: str) -> str:
    """Upload a demo model's artifact and register it as a version of ``group``."""
    path = Path(getattr(cached_demo_models(), model))
    key = f"seed/{group}/{model}/model.tar.gz"
    s3.upload_file(str(path), REGISTRY_BUCKET, key)
    spec = DEFAULT_PLAN.champion.model_copy(update={"source": str(path)})
    response = sm.create_model_package(
        ModelPackageGroupName=group,
        ModelPackageDescription=f"demo:{model}",
        ModelApprovalStatus=status,
        CustomerMetadataProperties=props or {"canary:seed": model},
        InferenceSpecification={
            "Containers": [
                {
                    "Image": image_uri(spec, DEFAULT_PLAN.region),
                    "ModelDataUrl": f"s3://{REGISTRY_BUCKET}/{key}",
                }
            ],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
    )
    return response["ModelPackageArn"]


@pytest.fixture
def seed_group(local_stack: EmbeddedStack, unique_name: str) -> Iterator[Any]:
    """Make a fresh group with a champion (and optionally an approved challenger)."""
    sm, s3 = local_stack.client("sagemaker"), local_stack.client("s3")
    from canary.rollout.artifacts import ensure_bucket

    ensure_bucket(s3, REGISTRY_BUCKET, DEFAULT_PLAN.region)

    def seed(
        champion: str | None = None, challenger: str | None = None, name: str | None = None
    ) -> SeededGroup:
        name = name or f"churn-{unique_name}"
        sm.create_model_package_group(ModelPackageGroupName=name)
        packages = {}
        if champion:
            packages[champion] = register_demo(
                sm, s3, name, champion, reg.APPROVED, **{reg.ROLE_KEY: reg.CHAMPION}
            )
        if challenger:
            packages[challenger] = register_demo(sm, s3, name, challenger, reg.APPROVED)
        return SeededGroup(name, packages)

    yield seed


@dataclass
class SnsInbox:
    """An SNS topic on the stack with an SQS queue subscribed: what a subscriber would receive."""

    topic_arn: str
    queue_url: str
    sqs: Any

    def messages(self, wait_seconds: int = 2) -> list[dict[str, Any]]:
        """Every notification delivered so far, as (subject, event attribute, parsed JSON body)."""
        received: list[dict[str, Any]] = []
        while True:
            batch = self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_seconds
            ).get("Messages", [])
            if not batch:
                return received
            for item in batch:
                envelope = json.loads(item["Body"])
                received.append(
                    {
                        "subject": envelope.get("Subject"),
                        "event": envelope["MessageAttributes"]["event"]["Value"],
                        "body": json.loads(envelope["Message"]),
                    }
                )
                self.sqs.delete_message(
                    QueueUrl=self.queue_url, ReceiptHandle=item["ReceiptHandle"]
                )


@pytest.fixture
def sns_inbox(local_stack: EmbeddedStack, unique_name: str) -> Iterator[SnsInbox]:
    """A fresh topic and subscribed queue per test, deleted afterwards."""
    sns, sqs = local_stack.client("sns"), local_stack.client("sqs")
    topic_arn = sns.create_topic(Name=f"canary-news-{unique_name}")["TopicArn"]
    queue_url = sqs.create_queue(QueueName=f"canary-news-{unique_name}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    yield SnsInbox(topic_arn, queue_url, sqs)
    sns.delete_topic(TopicArn=topic_arn)
    sqs.delete_queue(QueueUrl=queue_url)
