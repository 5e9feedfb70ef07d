"""Shared fixtures: one real local AWS stack (a subprocess on loopback) per test session.

``local_stack`` is a ``local_sagemaker.stack.LocalStack``: use ``.client(service)``,
``.endpoint_url``, ``.env()`` and ``.flush()`` (makes metrics and capture records visible
in CloudWatch/S3 immediately). Tests share it, so give resources unique names.

``airflow_local`` wires Airflow (a per-session metadata database) to that stack, for tests that
run DAGs with Airflow's own runner.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from canary_airflow.local_airflow import airflow_env, ensure_database
from local_sagemaker.stack import LocalStack

# Airflow reads AIRFLOW_HOME once, when first imported: a per-session home must be in place
# before any test module imports Airflow, so it is set here, at collection time.
os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="canary-airflow-")
os.environ["CANARY_REPORTS_DIR"] = str(Path(os.environ["AIRFLOW_HOME"]) / "reports")


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The local stack, started once per session and stopped at the end."""
    log = tmp_path_factory.mktemp("local_stack") / "local_stack.log"
    with LocalStack(log_path=log) as stack:
        yield stack


@pytest.fixture
def unique_name() -> str:
    """A short unique suffix for resource names on the shared stack."""
    return uuid.uuid4().hex[:8]


@pytest.fixture(scope="session")
def airflow_local(local_stack: LocalStack) -> dict[str, str]:
    """Airflow's environment for this session: migrated database, AWS connection to the stack."""
    env = airflow_env(local_stack.endpoint_url, local_stack.env())
    os.environ.update(env)
    ensure_database(env)
    return env
