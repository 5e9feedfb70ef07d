"""Fixtures of the integration tier: code under test that reaches AWS through Airflow's
``aws_default`` connection gets one that points at the local stack."""

from __future__ import annotations

import json

import pytest


@pytest.fixture
def aws_conn(local_stack, monkeypatch) -> None:
    """The ``aws_default`` connection (and the AWS environment) point at the local stack."""
    for key, value in local_stack.env().items():
        monkeypatch.setenv(key, value)
    extra = {"endpoint_url": local_stack.endpoint_url, "region_name": "us-east-1"}
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps({"conn_type": "aws", "extra": extra}))
