"""Whole rollouts against the local stack's ``aws`` profile: endpoints that take time to change
and refuse updates meanwhile, CloudWatch that shows whole periods late, a throttled control plane.

Every verdict must be the one the instant world gives, every stage's evidence must start on a
whole CloudWatch period, and the stack must hold nothing the run did not keep. The time scale
is 0.02 (a 240 s update takes 4.8 s; a 60 s period 1.2 s). The rollouts are in two files so
that two test workers can share them: each file runs on a stack of its own.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from canary.plan import CleanupPolicy
from canary_airflow import ids
from canary_airflow.dev.local_airflow import RunResult, airflow_env
from local_sagemaker.profile import aws_env
from local_sagemaker.stack import EmbeddedStack

PROFILE = aws_env(0.02)


@pytest.fixture(scope="module")
def aws_stack(airflow_local, tmp_path_factory) -> Iterator[EmbeddedStack]:
    """A stack under the aws profile; Airflow's connection points at it for this module."""
    log = tmp_path_factory.mktemp("aws_profile") / "local_stack.log"
    with EmbeddedStack(log_path=log, profile_env=PROFILE) as stack:
        os.environ.update(airflow_env(stack))
        try:
            yield stack
        finally:
            os.environ.update(airflow_local)


@pytest.fixture
def rollout(aws_stack, run_dag, fast_rollout):
    def run(endpoint: str, **conf: Any) -> RunResult:
        plan = {**fast_rollout, "cleanup": CleanupPolicy.KEEP_WINNER.value, **conf}
        return run_dag(ids.ROLLOUT_DAG, {"endpoint_name": endpoint, **plan})

    return run
