"""Fixtures for the local stack's own tests: tiny real models and a deployer on the shared stack."""

from __future__ import annotations

import datetime as dt
import io
import tarfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import joblib
import numpy as np
import pytest
import xgboost as xgb
from sklearn.linear_model import LogisticRegression

XGB_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
SKLEARN_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
ROLE = "arn:aws:iam::123456789012:role/local-test"
N_FEATURES = 4


def tarball(files: dict[str, bytes]) -> bytes:
    """A model.tar.gz holding the given files."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def synthetic(seed: int, n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """Tiny binary classification data; the label depends on the first two features."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, N_FEATURES))
    y = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(scale=0.5, size=n) > 0).astype(int)
    return x, y


@pytest.fixture(scope="session")
def boosters() -> dict[str, xgb.Booster]:
    """Champion and challenger XGBoost models trained on different seeds and depths."""
    out = {}
    for name, seed, depth in (("champion", 1, 2), ("challenger", 2, 4)):
        x, y = synthetic(seed)
        params = {"objective": "binary:logistic", "max_depth": depth, "nthread": 1}
        out[name] = xgb.train(params, xgb.DMatrix(x, label=y), num_boost_round=8)
    return out


@pytest.fixture(scope="session")
def sklearn_model() -> LogisticRegression:
    """A fitted scikit-learn classifier."""
    x, y = synthetic(3)
    return LogisticRegression().fit(x, y)


def xgb_tarball(booster: xgb.Booster) -> bytes:
    """SageMaker's built-in XGBoost layout: ``xgboost-model`` inside model.tar.gz."""
    return tarball({"xgboost-model": bytes(booster.save_raw("json"))})


def sklearn_tarball(model: Any) -> bytes:
    """scikit-learn layout: ``model.joblib`` inside model.tar.gz."""
    buf = io.BytesIO()
    joblib.dump(model, buf)
    return tarball({"model.joblib": buf.getvalue()})


@dataclass
class Deployer:
    """Creates S3 artifacts, models, configs and endpoints on the stack; cleans up after."""

    stack: Any
    bucket: str
    created: list[tuple[str, str]] = field(default_factory=list)

    tarball = staticmethod(tarball)
    xgb_tarball = staticmethod(xgb_tarball)
    sklearn_tarball = staticmethod(sklearn_tarball)
    csv = staticmethod(lambda x: csv_rows(x))
    synthetic = staticmethod(synthetic)

    def __post_init__(self) -> None:
        self.s3 = self.stack.client("s3")
        self.sm = self.stack.client("sagemaker")
        self.rt = self.stack.client("sagemaker-runtime")
        self.cw = self.stack.client("cloudwatch")

    def upload(self, data: bytes, key: str | None = None) -> str:
        """Put an artifact and return its s3:// URL."""
        key = key or f"models/{uuid.uuid4().hex}/model.tar.gz"
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=data)
        return f"s3://{self.bucket}/{key}"

    def model(self, url: str, image: str = XGB_IMAGE, env: dict | None = None) -> str:
        """CreateModel for an artifact; returns the model name."""
        name = f"m-{uuid.uuid4().hex[:10]}"
        container = {"Image": image, "ModelDataUrl": url, "Environment": env or {}}
        self.sm.create_model(ModelName=name, ExecutionRoleArn=ROLE, PrimaryContainer=container)
        self.created.append(("model", name))
        return name

    def config(self, variants: dict[str, tuple[str, float]], capture: dict | None = None) -> str:
        """CreateEndpointConfig with {variant: (model, initial weight)}."""
        name = f"c-{uuid.uuid4().hex[:10]}"
        specs = [
            {
                "VariantName": variant,
                "ModelName": model,
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
                "InitialVariantWeight": weight,
            }
            for variant, (model, weight) in variants.items()
        ]
        kwargs: dict[str, Any] = {"EndpointConfigName": name, "ProductionVariants": specs}
        if capture:
            kwargs["DataCaptureConfig"] = capture
        self.sm.create_endpoint_config(**kwargs)
        self.created.append(("config", name))
        return name

    def endpoint(self, config: str) -> str:
        """CreateEndpoint and wait (as the provider's sensor would) until InService."""
        name = f"e-{uuid.uuid4().hex[:10]}"
        self.sm.create_endpoint(EndpointName=name, EndpointConfigName=config)
        self.created.append(("endpoint", name))
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


@pytest.fixture
def deployer(local_stack: Any) -> Iterator[Deployer]:
    """A Deployer with its own bucket on the shared stack."""
    bucket = f"ls-test-{uuid.uuid4().hex[:12]}"
    local_stack.client("s3").create_bucket(Bucket=bucket)
    d = Deployer(local_stack, bucket)
    yield d
    d.cleanup()


def csv_rows(x: np.ndarray) -> str:
    """Rows as SageMaker's text/csv payload."""
    return "\n".join(",".join(repr(float(v)) for v in row) for row in x)
