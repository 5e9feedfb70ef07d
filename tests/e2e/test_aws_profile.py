"""Whole rollouts against the local stack's ``aws`` profile: endpoints that take time to change
and refuse updates meanwhile, CloudWatch that shows whole periods late, a throttled control plane.

Every verdict must be the one the instant world gives, every stage's evidence must start on a
whole CloudWatch period, and the stack must hold nothing the run did not keep. The time scale
is 0.02 (a 240 s update takes 4.8 s; a 60 s period 1.2 s) so the file stays a few minutes long.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from airflow.utils.state import DagRunState

from canary.experiment.gates.decision import Verdict
from canary.experiment.gates.guardrails import FAIL
from canary.models.demo_models import cached_demo_models
from canary.plan import CleanupPolicy, Framework, TrafficMode
from canary_airflow import ids
from canary_airflow.dev.local_airflow import RunResult, airflow_env
from local_sagemaker.stack import EmbeddedStack
from tests.e2e.leftovers import assert_only_winner_left, serving
from tests.e2e.records import gate_records

PROFILE = {"LOCAL_SAGEMAKER_PROFILE": "aws", "LOCAL_SAGEMAKER_TIME_SCALE": "0.02"}
LOOSE_P99_MS = 5000.0


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


def assert_on_whole_periods(records: list[dict[str, Any]], period: float) -> None:
    """Each stage's evidence starts on a CloudWatch period boundary (no earlier count in it)."""
    for record in records:
        started = datetime.fromisoformat(record["stage_started_at"]).timestamp()
        assert abs(started / period - round(started / period)) < 1e-6, (started, period)


def test_the_demo_plan_promotes_through_shadow_and_three_stages(aws_stack, rollout) -> None:
    """The shadow stage, then the endpoint's update to two production variants (minutes on
    AWS) and three canary stages."""
    result = rollout("aws-better", shadow=True, stages=[[50, 50], [25, 75], [0, 100]])
    assert result.state == DagRunState.SUCCESS, result.tasks
    records = gate_records(result, 3, shadow=True)
    assert [Verdict(r["verdict"]) for r in records] == [Verdict.PROMOTE] * 4
    assert_on_whole_periods(records, aws_stack.profile.metrics_period)
    sm = aws_stack.client("sagemaker")
    assert serving(sm, "aws-better") == {"Challenger": 1.0}
    assert_only_winner_left(sm, "aws-better", "challenger")


@pytest.mark.parametrize(
    ("case", "conf", "failed_check"),
    [
        ("worse", {"challenger_source": "demo:worse", "shadow": True}, None),
        (
            "shadow-5xx",  # not "5xx-…": names of one endpoint are not the prefix of another
            {"challenger_environment": {"LOCAL_SAGEMAKER_ERROR_RATE": "0.2"}, "shadow": True},
            "5xx_ceiling",
        ),
        ("5xx", {"challenger_environment": {"LOCAL_SAGEMAKER_ERROR_RATE": "0.2"}}, "5xx_ceiling"),
        (
            "slow",
            {
                "challenger_environment": {"LOCAL_SAGEMAKER_LATENCY_MS": "1500"},
                "gate_max_p99_latency_ms": 1000.0,
                "traffic_chunk_size": 200,  # slow requests: look sooner
            },
            "p99_latency_ceiling",
        ),
    ],
)
def test_a_bad_challenger_is_rolled_back(aws_stack, rollout, case, conf, failed_check) -> None:
    endpoint = f"aws-{case}"
    result = rollout(
        endpoint, **{"stages": [[50, 50]], "gate_max_p99_latency_ms": LOOSE_P99_MS, **conf}
    )
    assert result.state == DagRunState.SUCCESS, result.tasks
    shadow = conf.get("shadow", False)
    record, *later = gate_records(result, 1, shadow)
    assert Verdict(record["verdict"]) is Verdict.ROLLBACK, record["reason"]
    assert later == ([None] if shadow else [])  # rolled back in the shadow: no user saw it
    if failed_check:
        failed = {check["name"] for check in record["guardrails"] if check["status"] == FAIL}
        assert failed_check in failed, record["guardrails"]
    assert_on_whole_periods([record], aws_stack.profile.metrics_period)
    sm = aws_stack.client("sagemaker")
    assert serving(sm, endpoint) == {"Champion": 1.0}
    assert_only_winner_left(sm, endpoint, "champion")


def test_bandit_routing_with_a_users_scikit_learn_challenger(aws_stack, rollout) -> None:
    """After the shadow stage, Thompson sampling picks each request's variant (TargetVariant)
    while the endpoint's own weights follow it; the scikit-learn challenger is better on AUC and
    decided by the gate."""
    result = rollout(
        "aws-bandit",
        shadow=True,  # the shadow stage routes by the endpoint; Thompson takes over after it
        stages=[[50, 50]],
        traffic_mode=TrafficMode.TARGET_VARIANT.value,
        traffic_strategy="thompson",
        challenger_source=str(cached_demo_models().sklearn_challenger),  # a user's model.tar.gz
        challenger_framework=Framework.SKLEARN.value,
        challenger_framework_version="1.2-1",
    )
    assert result.state == DagRunState.SUCCESS, result.tasks
    shadow, record = gate_records(result, 1, shadow=True)
    assert Verdict(shadow["verdict"]) is Verdict.PROMOTE, shadow["reason"]
    verdict = Verdict(record["verdict"])
    assert verdict in {Verdict.PROMOTE, Verdict.ROLLBACK}, record["reason"]
    winner = "challenger" if verdict is Verdict.PROMOTE else "champion"
    assert_only_winner_left(aws_stack.client("sagemaker"), "aws-bandit", winner)
