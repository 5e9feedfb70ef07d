"""Fixtures for replay tests: two real XGBoost variants deployed on the shared local stack.

The data is a small DataFrame (4 numeric features + ``label``); the champion and challenger are
trained on it with different depths so their scores really differ. Fault-injection endpoints use
the local runtime's model Environment variables (``LOCAL_SAGEMAKER_ERROR_RATE``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from canary.models.training import xgboost_tarball
from canary.replay import runtime_config

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


@dataclass
class ReplayEnv:
    """The trained boosters, and the shared ``StackDeployer`` to put them behind endpoints."""

    deployer: Any
    boosters: dict[str, xgb.Booster]

    def __post_init__(self) -> None:
        self.stack, self.bucket = self.deployer.stack, self.deployer.bucket
        self.s3, self.sm, self.runtime = self.deployer.s3, self.deployer.sm, self.deployer.rt
        self.metric = self.deployer.metric

    def model(self, name: str, env: dict[str, str] | None = None) -> str:
        key = f"models/{name}-{uuid.uuid4().hex[:6]}/model.tar.gz"
        url = self.deployer.upload(xgboost_tarball(self.boosters[name]), key)
        return self.deployer.model(url, env=env)

    def endpoint(self, weights: dict[str, float], envs: dict[str, dict] | None = None) -> str:
        """Champion/Challenger endpoint; ``envs`` adds fault-injection variables per variant."""
        envs = envs or {}
        variants = {
            variant: (self.model(variant.lower(), envs.get(variant)), weight)
            for variant, weight in weights.items()
        }
        return self.deployer.endpoint(self.deployer.config(variants))


@pytest.fixture(scope="session")
def replay_frame() -> pd.DataFrame:
    return labelled_frame()


@pytest.fixture(scope="session")
def replay_env(make_deployer: Any, replay_frame: pd.DataFrame) -> Iterator[ReplayEnv]:
    """Trained boosters and a bucket on the shared local stack (resources cleaned up after)."""
    boosters = {
        "champion": train(replay_frame, depth=1, rounds=3),
        "challenger": train(replay_frame, depth=4, rounds=20),
    }
    deployer = make_deployer("replay", ROLE, runtime_config(8))
    yield ReplayEnv(deployer, boosters)
    deployer.cleanup()


@pytest.fixture(scope="session")
def ab_endpoint(replay_env: ReplayEnv) -> str:
    """A healthy 50/50 Champion/Challenger endpoint shared by the read-only tests."""
    return replay_env.endpoint({"Champion": 1.0, "Challenger": 1.0})
