"""The rollout plan refuses bad configuration before any AWS call, naming the field."""

from __future__ import annotations

import pytest

from canary.plan import (
    DIGEST_LENGTH,
    MAX_STAGES,
    SHADOW_STAGE,
    AllocationStrategy,
    ApprovalMode,
    CleanupPolicy,
    PlanError,
    parse_plan,
    stage_name,
)

ROLE = "arn:aws:iam::123456789012:role/canary"


def plan_fields(**overrides: object) -> dict[str, object]:
    return {
        "endpoint_name": "churn-canary",
        "execution_role_arn": ROLE,
        "champion_source": "demo:champion",
        "challenger_source": "s3://models/churn/v2/model.tar.gz",
        **overrides,
    }


def test_defaults_are_the_documented_rollout() -> None:
    plan = parse_plan(plan_fields())
    assert plan.stages == ((50, 50), (25, 75), (0, 100))
    assert plan.variants == ("Champion", "Challenger")
    assert plan.stage_weights(1) == {"Champion": 25.0, "Challenger": 75.0}
    assert plan.cleanup is CleanupPolicy.KEEP_WINNER
    assert plan.champion.demo_model == "champion"
    assert plan.challenger.demo_model is None


@pytest.mark.parametrize(
    ("overrides", "field", "why"),
    [
        ({"stages": [[50, 50], [-5, 105]]}, "stages.1.0", "greater than or equal to 0"),
        ({"stages": [[50, 50], [0, 100], [50, 50]]}, "stages", "never shrink"),
        ({"stages": [[100, 0]]}, "stages", "stage 1: the challenger needs weight > 0"),
        ({"stages": [[50, 50], [100, 0]]}, "stages", "stage 2: the challenger needs weight"),
        ({"stages": [[0, 100]]}, "stages", "champion needs weight > 0 in the first stage"),
        ({"stages": [[50, 50]] * (MAX_STAGES + 1)}, "stages", f"at most {MAX_STAGES} items"),
        ({"challenger_source": "model.zip"}, "challenger_source", "model.tar.gz"),
        ({"champion_source": "demo:nope"}, "champion_source", "demo sources"),
        ({"champion_instance_count": 0}, "champion_instance_count", "greater than or equal"),
        ({"gate_alpha": 0.7}, "gate_alpha", "less than 0.5"),
        ({"endpoint_name": "bad_name!"}, "endpoint_name", "pattern"),
        ({"execution_role_arn": "admin"}, "execution_role_arn", "pattern"),
        ({"traffic_strategy": "thompson"}, "traffic_strategy", "target_variant"),
        ({"challenger_variant_name": "Champion"}, "challenger_variant_name", "different variant"),
        ({"approval": "maybe"}, "approval", "'none', 'before_final_stage' or 'every_stage'"),
        ({"approval_timeout_minutes": -5}, "approval_timeout_minutes", "greater than 0"),
        ({"lock_wait_minutes": -1}, "lock_wait_minutes", "greater than or equal to 0"),
        ({"lock_wait_minutes": 10**6}, "lock_wait_minutes", "less than or equal"),
        ({"notify_topic_arn": "arn:aws:sqs:us-east-1:1:q"}, "notify_topic_arn", "pattern"),
        ({"notify_topic_arn": "my-topic"}, "notify_topic_arn", "pattern"),
        ({"shadow_sampling_percent": 0}, "shadow_sampling_percent", "greater than 0"),
        ({"shadow_sampling_percent": 100.5}, "shadow_sampling_percent", "less than or equal"),
        ({"shadow_sampling_percent": -3}, "shadow_sampling_percent", "greater than 0"),
        ({"data_capture": False}, "shadow", "only in Data Capture"),
        ({"gate_metric": "brier"}, "shadow", "judges accuracy"),
        ({"gate_max_stage_minutes": 5}, "gate_settle_seconds", "before its last look"),
        ({"gate_settle_seconds": -1}, "gate_settle_seconds", "greater than or equal to 0"),
        (
            {"shadow": False, "gate_metric": "reward", "traffic_enabled": False},
            "gate_metric",
            "turn traffic_enabled on or judge accuracy or brier",
        ),
    ],
)
def test_bad_field_is_named(overrides: dict[str, object], field: str, why: str) -> None:
    with pytest.raises(PlanError) as error:
        parse_plan(plan_fields(**overrides))
    message = str(error.value)
    assert f"\n  {field}:" in message or f"\n  {field}." in message, message
    assert why in message


SECRET = {"DB_PASSWORD": "hunter2"}


@pytest.mark.parametrize(
    "overrides",
    [
        {"data_capture": False, "challenger_environment": SECRET},  # a check across fields
        {"challenger_variant_name": "Champion", "champion_environment": SECRET},
        {"champion_environment": {"DB_PASSWORD": 12345}},  # a bad value inside it
    ],
)
def test_an_error_never_echoes_a_containers_environment(overrides: dict[str, object]) -> None:
    with pytest.raises(PlanError) as error:
        parse_plan(plan_fields(**overrides))
    assert "hunter2" not in str(error.value) and "12345" not in str(error.value)


def test_the_logged_plan_hides_environment_values_and_keeps_their_names() -> None:
    plan = parse_plan(plan_fields(challenger_environment=SECRET))
    assert plan.redacted()["challenger"]["environment"] == {"DB_PASSWORD": "***"}
    assert plan.challenger.environment == SECRET  # the container still gets the value


def test_the_shadow_stage_comes_first_and_serves_the_champion_alone() -> None:
    plan = parse_plan(plan_fields())
    assert plan.shadow and plan.shadow_sampling_percent == 100
    assert plan.stage_indices == (SHADOW_STAGE, 0, 1, 2)
    assert plan.stage_weights(SHADOW_STAGE) == {"Champion": 1.0, "Challenger": 0.0}
    assert (stage_name(SHADOW_STAGE), stage_name(0)) == ("shadow", "stage-1")
    without = parse_plan(plan_fields(shadow=False, data_capture=False, gate_metric="brier"))
    assert without.stage_indices == (0, 1, 2)


def test_unknown_field_is_an_error_not_a_default() -> None:
    with pytest.raises(PlanError, match=r"unknown plan field.*gate_alpah"):
        parse_plan(plan_fields(gate_alpah=0.1))


def test_every_bad_field_is_reported_at_once() -> None:
    with pytest.raises(PlanError) as error:
        parse_plan(plan_fields(gate_alpha=2, champion_instance_count=0))
    assert "gate_alpha" in str(error.value)
    assert "champion_instance_count" in str(error.value)


def test_resource_names_are_stable_and_valid() -> None:
    plan = parse_plan(plan_fields(endpoint_name="e" * 63))
    name = plan.resource_name("champion", "image s3://a/model.tar.gz")
    assert name == plan.resource_name("champion", "image s3://a/model.tar.gz")
    assert name != plan.resource_name("champion", "image s3://b/model.tar.gz")
    assert len(name) <= 63
    assert name.startswith(plan.resource_prefix("champion"))


def test_long_endpoint_names_that_differ_at_the_end_never_share_resource_names() -> None:
    """Names are cut to fit SageMaker's 63 characters; a digest of the whole endpoint name
    keeps two endpoints' canary resources (and their teardowns) apart."""
    base = "recommendation-ranking-model-production-eu-west-1-canary-"
    plans = [parse_plan(plan_fields(endpoint_name=base + end)) for end in ("1", "2")]
    for kind in ("champion", "challenger", "config"):
        first, second = (plan.resource_name(kind, "same inputs") for plan in plans)
        assert first != second and len(first) <= 63 and len(second) <= 63
        assert first.endswith(f"-{kind}-{first[-DIGEST_LENGTH:]}")
    short = parse_plan(plan_fields(endpoint_name="churn"))
    assert short.resource_prefix("config") == "churn-config-"


def test_bandit_strategies_need_target_variant_routing() -> None:
    plan = parse_plan(plan_fields(traffic_mode="target_variant", traffic_strategy="thompson"))
    assert plan.traffic.strategy is AllocationStrategy.THOMPSON


@pytest.mark.parametrize(
    ("approval", "stages", "asked_after"),
    [
        (ApprovalMode.NONE, [[50, 50], [25, 75], [0, 100]], []),
        (ApprovalMode.BEFORE_FINAL_STAGE, [[50, 50], [25, 75], [0, 100]], [1]),
        (ApprovalMode.BEFORE_FINAL_STAGE, [[50, 50]], [0]),
        (ApprovalMode.EVERY_STAGE, [[50, 50], [25, 75], [0, 100]], [0, 1, 2]),
    ],
)
def test_which_promotions_wait_for_a_person(
    approval: ApprovalMode, stages: list[list[int]], asked_after: list[int]
) -> None:
    """Before the final stage means after the gate before it; with one stage, before the
    challenger takes all traffic."""
    plan = parse_plan(plan_fields(approval=approval.value, stages=stages))
    assert [i for i in range(len(stages)) if plan.needs_approval(i)] == asked_after


def test_a_real_topic_arn_and_no_topic_are_both_accepted() -> None:
    topic = "arn:aws:sns:eu-west-1:123456789012:rollouts.fifo"
    assert parse_plan(plan_fields(notify_topic_arn=topic)).notify_topic_arn == topic
    assert parse_plan(plan_fields()).notify_topic_arn == ""
