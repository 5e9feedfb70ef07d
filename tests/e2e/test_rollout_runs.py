"""Whole rollouts with Airflow's own runner on the real local stack: the four endings that matter.

After every run the stack must hold nothing the run created except the winner it was asked to
keep, so each test checks the endpoint's variants and every model and config of its name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from canary_airflow.dev.local_airflow import RunResult
from canary_airflow.ids import ROLLOUT_DAG

pytestmark = pytest.mark.usefixtures("airflow_local")


def rollout(endpoint: str, **conf: Any) -> RunResult:
    from canary_airflow.dev.local_airflow import run_dag

    return run_dag(ROLLOUT_DAG, {"endpoint_name": endpoint, **conf})


def canary_resources(sm: Any, endpoint: str) -> dict[str, list[str]]:
    """Every model, endpoint config and endpoint on the stack that belongs to ``endpoint``."""
    mine = f"{endpoint}-"
    return {
        "models": sorted(
            m["ModelName"]
            for m in sm.list_models(MaxResults=100)["Models"]
            if m["ModelName"].startswith(mine)
        ),
        "configs": sorted(
            c["EndpointConfigName"]
            for c in sm.list_endpoint_configs(MaxResults=100)["EndpointConfigs"]
            if c["EndpointConfigName"].startswith(mine)
        ),
        "endpoints": sorted(
            e["EndpointName"]
            for e in sm.list_endpoints(MaxResults=100)["Endpoints"]
            if e["EndpointName"] == endpoint
        ),
    }


def serving(sm: Any, endpoint: str) -> dict[str, float]:
    variants = sm.describe_endpoint(EndpointName=endpoint)["ProductionVariants"]
    return {v["VariantName"]: v["CurrentWeight"] for v in variants}


def verdicts(result: RunResult, stages: int = 3) -> list[str | None]:
    return [
        (result.xcom(f"stage_{number}.gate") or {}).get("verdict")
        for number in range(1, stages + 1)
    ]


def assert_only_winner_left(sm: Any, endpoint: str, winner_role: str) -> None:
    left = canary_resources(sm, endpoint)
    assert left["endpoints"] == [endpoint]
    assert len(left["models"]) == 1 and f"-{winner_role}-" in left["models"][0], left
    live = sm.describe_endpoint(EndpointName=endpoint)["EndpointConfigName"]
    assert left["configs"] == [live], left


def test_better_challenger_is_promoted_and_served_alone(local_stack) -> None:
    result = rollout("canary-better")
    assert result.state == "success", result.tasks
    assert verdicts(result) == ["promote", "promote", "promote"]
    assert result.xcom("promote") == {"outcome": "promoted", "winner": "Challenger"}
    sm = local_stack.client("sagemaker")
    assert serving(sm, "canary-better") == {"Challenger": 1.0}
    assert_only_winner_left(sm, "canary-better", "challenger")
    report = Path(result.xcom("report"))
    html = report.read_text()
    assert "promote" in html and "non-inferior" in html
    assert sorted(p.suffix for p in report.parent.iterdir()).count(".png") >= 3


def test_rerun_on_the_same_endpoint_duplicates_nothing(local_stack) -> None:
    first = rollout("canary-again", stages=[[50, 50], [0, 100]])
    second = rollout("canary-again", stages=[[50, 50], [0, 100]])
    assert (first.state, second.state) == ("success", "success")
    assert second.xcom("deploy_endpoint", key="created") is False
    assert second.xcom("create_challenger_model")["created"] is False
    assert_only_winner_left(local_stack.client("sagemaker"), "canary-again", "challenger")


def test_worse_challenger_is_rolled_back_at_the_first_stage(local_stack) -> None:
    result = rollout("canary-worse", challenger_source="demo:worse")
    assert result.state == "success", result.tasks
    assert verdicts(result)[0] == "rollback"
    assert result.state_of("stage_2.set_weights") == "skipped"
    assert result.xcom("rollback") == {"outcome": "rolled_back", "winner": "Champion"}
    sm = local_stack.client("sagemaker")
    assert serving(sm, "canary-worse") == {"Champion": 1.0}
    assert_only_winner_left(sm, "canary-worse", "champion")


def test_failing_challenger_is_rolled_back_by_the_5xx_guardrail(local_stack) -> None:
    result = rollout("canary-5xx", challenger_environment={"LOCAL_SAGEMAKER_ERROR_RATE": "0.2"})
    assert result.state == "success", result.tasks
    first_gate = result.xcom("stage_1.gate")
    assert first_gate["verdict"] == "rollback"
    assert "5xx" in first_gate["reason"].lower()
    assert serving(local_stack.client("sagemaker"), "canary-5xx") == {"Champion": 1.0}
    assert_only_winner_left(local_stack.client("sagemaker"), "canary-5xx", "champion")


def test_bad_configuration_fails_fast_and_creates_nothing(local_stack) -> None:
    """Cross-field rules the form cannot express fail the first task, before any AWS call."""
    result = rollout("canary-bad", stages=[[50, 50], [60, 40]], challenger_source="model.zip")
    assert result.state == "failed"
    assert result.state_of("validate_plan") == "failed"
    assert result.state_of("stage_artifacts") == "upstream_failed"
    assert canary_resources(local_stack.client("sagemaker"), "canary-bad") == {
        "models": [],
        "configs": [],
        "endpoints": [],
    }


def test_form_rejects_out_of_range_values_before_a_run_exists(local_stack) -> None:
    from airflow.sdk.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError, match="gate_alpha"):
        rollout("canary-refused", gate_alpha=0.9)
    assert canary_resources(local_stack.client("sagemaker"), "canary-refused")["models"] == []


def test_replay_burst_is_spread_over_mapped_tasks(local_stack) -> None:
    result = rollout("canary-mapped", stages=[[50, 50], [0, 100]], traffic_shards=2)
    assert result.state == "success", result.tasks
    assert result.xcom("promote") == {"outcome": "promoted", "winner": "Challenger"}
    shards = result.xcom("stage_1.plan_burst")
    assert [shard["index"] for shard in shards] == [0, 1]
    assert all(shard["count"] == 3 and shard["requests"] > 0 for shard in shards)


def test_failure_mid_rollout_still_cleans_up_to_the_champion(local_stack) -> None:
    """A stage that breaks (its dataset lacks the label column) fails the run; teardown still
    leaves the champion serving alone and removes the rest."""
    result = rollout("canary-broken", traffic_label_column="no_such_column")
    assert result.state == "failed"
    assert result.state_of("stage_1.gate") == "failed"
    assert result.state_of("conclude") == "upstream_failed"
    assert result.xcom("cleanup")["outcome"] == "failed"
    sm = local_stack.client("sagemaker")
    assert serving(sm, "canary-broken") == {"Champion": 1.0}
    assert_only_winner_left(sm, "canary-broken", "champion")


def test_delete_all_leaves_nothing_behind(local_stack) -> None:
    result = rollout("canary-gone", stages=[[50, 50], [0, 100]], cleanup="delete_all")
    assert result.state == "success", result.tasks
    assert result.xcom("promote")["outcome"] == "promoted"
    assert canary_resources(local_stack.client("sagemaker"), "canary-gone") == {
        "models": [],
        "configs": [],
        "endpoints": [],
    }
    deleted = result.xcom("cleanup")["deleted"]
    assert any(item.startswith("artifact s3://") for item in deleted)
