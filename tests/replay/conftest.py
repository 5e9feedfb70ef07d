"""Fixtures for replay tests: two real XGBoost variants deployed on the shared local stack.

The data is a small DataFrame (4 numeric features + ``label``); the champion and challenger are
trained on it with different depths so their scores really differ. Fault-injection endpoints use
the local runtime's model Environment variables (``LOCAL_SAGEMAKER_ERROR_RATE``).
"""

from __future__ import annotations

import io
import tarfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from canary.replay import runtime_config

XGB_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
ROLE = "arn:aws:iam::123456789012:role/replay-test"
FEATURES = ["f0", "f1", "f2", "f3"]


def labelled_frame(n: int = 240, seed: int = 0) -> pd.DataFrame:
    """Features and a binary label that depends on the first two features (plus noise)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(FEATURES))).round(4)
    y = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(scale=0.7, size=n) > 0).astype(int)
    frame = pd.DataFrame(x, columns=FEATURES)
    frame["label"] = y
    return frame


def train(frame: pd.DataFrame, depth: int, rounds: int) -> xgb.Booster:
    params = {"objective": "binary:logistic", "max_depth": depth, "nthread": 1, "eta": 0.3}
    dtrain = xgb.DMatrix(frame[FEATURES].to_numpy(), label=frame["label"].to_numpy())
    return xgb.train(params, dtrain, num_boost_round=rounds)


def xgb_tarball(booster: xgb.Booster) -> bytes:
    """SageMaker's built-in XGBoost layout: ``xgboost-model`` inside model.tar.gz."""
    data = bytes(booster.save_raw("json"))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("xgboost-model")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@dataclass
class ReplayEnv:
    """Clients, a bucket, the trained boosters and a way to deploy two-variant endpoints."""

    stack: Any
    bucket: str
    boosters: dict[str, xgb.Booster]
    created: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.s3 = self.stack.client("s3")
        self.sm = self.stack.client("sagemaker")
        self.cw = self.stack.client("cloudwatch")
        self.runtime = self.stack.client("sagemaker-runtime", config=runtime_config(8))

    def model(self, name: str, env: dict[str, str] | None = None) -> str:
        key = f"models/{name}-{uuid.uuid4().hex[:6]}/model.tar.gz"
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=xgb_tarball(self.boosters[name]))
        model = f"m-{uuid.uuid4().hex[:10]}"
        container = {
            "Image": XGB_IMAGE,
            "ModelDataUrl": f"s3://{self.bucket}/{key}",
            "Environment": env or {},
        }
        self.sm.create_model(ModelName=model, ExecutionRoleArn=ROLE, PrimaryContainer=container)
        self.created.append(("model", model))
        return model

    def endpoint(self, weights: dict[str, float], envs: dict[str, dict] | None = None) -> str:
        """Champion/Challenger endpoint; ``envs`` adds fault-injection variables per variant."""
        envs = envs or {}
        variants = [
            {
                "VariantName": variant,
                "ModelName": self.model(variant.lower(), envs.get(variant)),
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
                "InitialVariantWeight": weight,
            }
            for variant, weight in weights.items()
        ]
        config = f"c-{uuid.uuid4().hex[:10]}"
        self.sm.create_endpoint_config(EndpointConfigName=config, ProductionVariants=variants)
        self.created.append(("config", config))
        name = f"e-{uuid.uuid4().hex[:10]}"
        self.sm.create_endpoint(EndpointName=name, EndpointConfigName=config)
        self.created.append(("endpoint", name))
        waiter = self.sm.get_waiter("endpoint_in_service")
        waiter.wait(EndpointName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
        return name

    def metric(self, endpoint: str, variant: str, name: str) -> float:
        """Sum of an AWS/SageMaker metric for one variant (after flushing the runtime)."""
        import datetime as dt

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
            Statistics=["Sum"],
        )["Datapoints"]
        return float(sum(p["Sum"] for p in points))

    def cleanup(self) -> None:
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


@pytest.fixture(scope="session")
def replay_frame() -> pd.DataFrame:
    return labelled_frame()


@pytest.fixture(scope="session")
def replay_env(local_stack: Any, replay_frame: pd.DataFrame) -> Iterator[ReplayEnv]:
    """Trained boosters and a bucket on the shared local stack (resources cleaned up after)."""
    boosters = {
        "champion": train(replay_frame, depth=1, rounds=3),
        "challenger": train(replay_frame, depth=4, rounds=20),
    }
    bucket = f"replay-{uuid.uuid4().hex[:12]}"
    local_stack.client("s3").create_bucket(Bucket=bucket)
    env = ReplayEnv(local_stack, bucket, boosters)
    yield env
    env.cleanup()


@pytest.fixture(scope="session")
def ab_endpoint(replay_env: ReplayEnv) -> str:
    """A healthy 50/50 Champion/Challenger endpoint shared by the read-only tests."""
    return replay_env.endpoint({"Champion": 1.0, "Challenger": 1.0})
