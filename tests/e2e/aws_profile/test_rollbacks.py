"""Bad challengers rolled back under the ``aws`` profile, in the shadow stage or a canary
stage (the profile and its fixtures: this folder's conftest)."""

from __future__ import annotations

import pytest
from airflow.utils.state import DagRunState

from canary.experiment.gates.decision import Verdict
from canary.experiment.gates.guardrails import Guardrail, Status
from tests.e2e.leftovers import assert_only_winner_left, serving
from tests.e2e.records import assert_on_whole_periods, gate_records

LOOSE_P99_MS = 5000.0


@pytest.mark.parametrize(
    ("case", "conf", "failed_check"),
    [
        ("worse", {"challenger_source": "demo:worse", "shadow": True}, None),
        (
            "shadow-5xx",  # not "5xx-…": names of one endpoint are not the prefix of another
            {"challenger_environment": {"LOCAL_SAGEMAKER_ERROR_RATE": "0.2"}, "shadow": True},
            Guardrail.CEILING_5XX,
        ),
        (
            "5xx",
            {"challenger_environment": {"LOCAL_SAGEMAKER_ERROR_RATE": "0.2"}},
            Guardrail.CEILING_5XX,
        ),
        (
            "slow",
            {
                "challenger_environment": {"LOCAL_SAGEMAKER_LATENCY_MS": "1500"},
                "gate_max_p99_latency_ms": 1000.0,
                "traffic_chunk_size": 200,  # slow requests: look sooner
            },
            Guardrail.CEILING_P99,
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
        failed = {
            check["name"]
            for check in record["guardrails"]
            if Status(check["status"]) is Status.FAIL
        }
        assert failed_check in failed, record["guardrails"]
    assert_on_whole_periods([record], aws_stack.profile.metrics_period)
    sm = aws_stack.client("sagemaker")
    assert serving(sm, endpoint) == {"Champion": 1.0}
    assert_only_winner_left(sm, endpoint, "champion")
