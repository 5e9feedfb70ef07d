"""Rollouts that promote under the ``aws`` profile: the demo's plan, and bandit routing after
the shadow stage (the profile and its fixtures: this folder's conftest)."""

from __future__ import annotations

from airflow.utils.state import DagRunState

from canary.experiment.gates.decision import Verdict
from canary.models.demo_models import cached_demo_models
from canary.plan import Framework, TrafficMode
from tests.e2e.leftovers import assert_only_winner_left, serving
from tests.e2e.records import assert_on_whole_periods, gate_records


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
