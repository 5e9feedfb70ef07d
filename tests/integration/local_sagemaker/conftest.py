"""Fixtures for the local stack's own tests: tiny real models and a deployer on the shared stack."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import xgboost as xgb
from sklearn.linear_model import LogisticRegression

from local_sagemaker.stack import EmbeddedStack
from tests.integration.deployed import ROLE

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


@pytest.fixture
def deployer(make_deployer: Any) -> Iterator[Any]:
    """The shared ``StackDeployer`` with its own bucket, cleaned up after the test.

    This suite's artifact and payload helpers ride on it as ``tarball``, ``csv`` and ``synthetic``
    (tests cannot import this conftest); model tarballs come from ``canary.models.training``.
    """
    d = make_deployer("ls-test", ROLE)
    d.tarball, d.csv, d.synthetic = tarball, csv_rows, synthetic
    yield d
    d.cleanup()


def csv_rows(x: np.ndarray) -> str:
    """Rows as SageMaker's text/csv payload."""
    return "\n".join(",".join(repr(float(v)) for v in row) for row in x)


@pytest.fixture(scope="module")
def aws_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EmbeddedStack]:
    """A stack of its own under the ``aws`` profile the test module declares as ``PROFILE``
    (``local_sagemaker.profile.aws_env``): each module sets its own clock."""
    log = tmp_path_factory.mktemp(f"{request.module.__name__}_aws") / "local_stack.log"
    with EmbeddedStack(log_path=log, profile_env=request.module.PROFILE) as stack:
        yield stack
