"""Whole rollouts with Airflow's own runner on the real local stack: the gate's endings (promote,
roll back, refuse bad input). Runs that break on the way: test_rollout_faults.py.

After every run the stack must hold nothing the run created except the winner it was asked to
keep, so each test checks the endpoint's variants and every model and config of its name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from airflow.utils.state import DagRunState, TaskInstanceState

from canary.experiment.gates.decision import Verdict
from canary.experiment.gates.engine import EXACT_METHOD
from canary.experiment.gates.guardrails import Guardrail, Status
from canary.models import registry as reg
from canary.plan import SHADOW_STAGE, CleanupPolicy, parse_plan, stage_name
from canary.reporting.notification import Event
from canary.rollout import layout
from canary.rollout.endpoint import RUN_TAG
from canary.rollout.outcome import RunOutcome
from canary_airflow import ids
from canary_airflow.dev.local_airflow import RunResult
from tests.e2e.conftest import BUCKET, Rollout
from tests.e2e.leftovers import (
    assert_nothing_left,
    assert_only_winner_left,
    canary_resources,
    serving,
)
from tests.e2e.records import gate_records, outcome

FAST_P99_MS = 5000.0
NO_PACKAGE = {"updated": False, "reason": "challenger is not a model package"}


def verdicts(result: RunResult, stages: int = 3, shadow: bool = False) -> list[Verdict | None]:
    """Each stage's verdict, the shadow stage's first when the run had one."""
    records = gate_records(result, stages, shadow)
    return [Verdict(record["verdict"]) if record else None for record in records]


def replayed(local_stack, result: RunResult, endpoint: str, stage: int) -> Any:
    """What callers got back in one stage (its only window): the replay's results (one row
    per request)."""
    from canary.replay import load_results
    from canary.rollout.layout import replay_location, run_key

    plan = parse_plan({"endpoint_name": endpoint, "bucket": BUCKET})
    location = replay_location(plan, run_key(result.run_id))
    rows = load_results(local_stack.client("s3"), location)
    return rows[rows["stage"].str.startswith(f"{stage_name(stage)}_")]


def news_of(inbox: Any, result: RunResult) -> list[tuple[Event, int, Verdict | RunOutcome]]:
    """The run's notifications in order: (event, stage, verdict) and (outcome, last stage, how)."""
    found = []
    for received in inbox.messages():
        body = received["body"]
        assert body["run_id"] == result.run_id and Event(received["event"]) is Event(body["event"])
        if Event(body["event"]) is Event.OUTCOME:
            assert body["cleaned_up"] is True  # teardown worked: nothing of the run is left
            found.append(
                (Event.OUTCOME, body["last_decision"]["stage"], RunOutcome(body["outcome"]))
            )
        else:
            summary = body["summary"]
            found.append((Event(body["event"]), summary["stage"], Verdict(summary["verdict"])))
    return found


def test_better_challenger_is_promoted_and_a_rerun_duplicates_nothing(
    local_stack, rollout: Rollout, one_stage, sns_inbox
) -> None:
    """The demo's plan end to end (the shadow stage, three canary stages, keep_winner), each
    verdict and the outcome published to SNS, then a second run on the same endpoint: it finds
    the endpoint and the challenger's model and creates neither again."""
    # the demo's plan; the bucket is the rerun's (a staged artifact's URL names its bucket), and
    # the p99 ceiling is loose: a busy box is slow, not the challenger
    shared = {"bucket": one_stage["bucket"], "gate_max_p99_latency_ms": FAST_P99_MS}
    result = rollout("canary-better", **shared, notify_topic_arn=sns_inbox.topic_arn)
    assert result.state == DagRunState.SUCCESS, result.tasks
    assert verdicts(result, shadow=True) == [Verdict.PROMOTE] * 4
    assert outcome(result, ids.PROMOTE) == (RunOutcome.PROMOTED, "Challenger")
    no_one_asked = [result.xcom(ids.approve_task(n))["needed"] for n in (1, 2, 3)]
    assert no_one_asked == [False] * 3
    shadow, first = result.xcom(ids.SHADOW_GATE), result.xcom(ids.gate_task(1))
    # the same requests judged in pairs: the shadow stage decides on no more requests than the
    # 50/50 stage (both may stop at their first look), and the most it could need at the
    # variance it saw is well under what the 50/50 stage plans for
    assert (
        shadow["paired"]["n_pairs"] <= first["look"]["n_champion"] + first["look"]["n_challenger"]
    )
    planned_5050 = first["design"]["max_requests"]["total"]
    assert shadow["paired"]["n_pairs_for_last_look_now"] < 0.5 * planned_5050
    assert set(replayed(local_stack, result, "canary-better", SHADOW_STAGE)["variant"]) == {
        "Champion"
    }
    assert news_of(sns_inbox, result) == [
        (Event.STAGE_VERDICT, 0, Verdict.PROMOTE),
        (Event.STAGE_VERDICT, 1, Verdict.PROMOTE),
        (Event.STAGE_VERDICT, 2, Verdict.PROMOTE),
        (Event.STAGE_VERDICT, 3, Verdict.PROMOTE),
        (Event.OUTCOME, 3, RunOutcome.PROMOTED),
    ]
    assert result.xcom(ids.UPDATE_REGISTRY) == NO_PACKAGE  # demo sources are no packages
    sm = local_stack.client("sagemaker")
    assert serving(sm, "canary-better") == {"Challenger": 1.0}
    assert_only_winner_left(sm, "canary-better", "challenger")
    report = Path(result.xcom(ids.REPORT))
    assert sorted(p.suffix for p in report.parent.iterdir()).count(".png") >= 3

    again = rollout("canary-better", **{**one_stage, "cleanup": CleanupPolicy.KEEP_WINNER.value})
    assert again.state == DagRunState.SUCCESS, again.tasks
    live = sm.describe_endpoint(EndpointName="canary-better")
    tags = sm.list_tags(ResourceArn=live["EndpointArn"])["Tags"]
    assert {"Key": RUN_TAG, "Value": layout.run_key(result.run_id)} in tags  # not the re-run's
    assert again.xcom(ids.CREATE_MODEL["challenger"])["created"] is False
    assert_only_winner_left(sm, "canary-better", "challenger")


def test_worse_package_is_rolled_back_and_rejected_with_the_gates_reason(
    local_stack, rollout: Rollout, seed_group, fast_rollout, sns_inbox
) -> None:
    """A worse challenger registered as a model package: the shadow stage rolls it back before
    any caller got one of its answers, the champion serves alone, and the registry rejects the
    package with the gate's reason."""
    group = seed_group(champion="champion", challenger="worse")
    worse = group.packages["worse"]
    result = rollout(
        "canary-worse",
        **{**fast_rollout, "cleanup": CleanupPolicy.KEEP_WINNER.value, "shadow": True},
        champion_source=group.packages["champion"],
        challenger_source=worse,
        notify_topic_arn=sns_inbox.topic_arn,
    )
    assert result.state == DagRunState.SUCCESS, result.tasks
    assert verdicts(result, shadow=True)[:2] == [Verdict.ROLLBACK, None]
    shadow = result.xcom(ids.SHADOW_GATE)
    last_look = shadow["looks"][-1]
    assert last_look["champion_only"] > last_look["challenger_only"]  # discordant pairs favour it
    answered = replayed(local_stack, result, "canary-worse", SHADOW_STAGE)
    assert len(answered) > 0 and set(answered["variant"]) == {"Champion"}
    assert news_of(sns_inbox, result) == [
        (Event.STAGE_VERDICT, 0, Verdict.ROLLBACK),
        (Event.OUTCOME, 0, RunOutcome.ROLLED_BACK),
    ]
    for task in (ids.shadow_task(ids.GO_LIVE), ids.stage_task(1, ids.SET_WEIGHTS)):
        assert result.state_of(task) == TaskInstanceState.SKIPPED
    assert outcome(result, ids.ROLLBACK) == (RunOutcome.ROLLED_BACK, "Champion")
    sm = local_stack.client("sagemaker")
    assert serving(sm, "canary-worse") == {"Champion": 1.0}
    assert_only_winner_left(sm, "canary-worse", "champion")

    assert result.xcom(ids.UPDATE_REGISTRY)["status"] == reg.REJECTED
    package = sm.describe_model_package(ModelPackageName=worse)
    assert package["ModelApprovalStatus"] == reg.REJECTED
    assert package["ApprovalDescription"] == shadow["reason"]
    assert package["CustomerMetadataProperties"][reg.OUTCOME_KEY] == RunOutcome.ROLLED_BACK
    assert reg.find_champion(sm, group.name) == group.packages["champion"]  # keeps its crown


@pytest.mark.parametrize("shadow", [True, False], ids=["shadow", "canary"])
def test_failing_challenger_is_rolled_back_by_the_5xx_guardrail(
    local_stack, rollout: Rollout, fast_rollout, shadow: bool
) -> None:
    """As a shadow, its errors reach no caller (its own CloudWatch metrics count them); in a
    canary stage they do. Either way the 5XX guardrail rolls it back in its first stage."""
    endpoint = f"canary-5xx-{'shadow' if shadow else 'canary'}"
    result = rollout(
        endpoint,
        **{**fast_rollout, "cleanup": CleanupPolicy.KEEP_WINNER.value, "shadow": shadow},
        challenger_environment={"LOCAL_SAGEMAKER_ERROR_RATE": "0.2"},
    )
    assert result.state == DagRunState.SUCCESS, result.tasks
    first_gate = result.xcom(ids.SHADOW_GATE if shadow else ids.gate_task(1))
    assert Verdict(first_gate["verdict"]) is Verdict.ROLLBACK
    failed = {
        check["name"]
        for check in first_gate["guardrails"]
        if Status(check["status"]) is Status.FAIL
    }
    assert Guardrail.CEILING_5XX in failed, first_gate["guardrails"]
    answered = replayed(local_stack, result, endpoint, SHADOW_STAGE if shadow else 0)
    # callers saw the challenger only in the canary stage; in the shadow stage every request
    # was answered, by the champion (a canary stage's 5XX are mostly hidden by client retries)
    served = {"Champion"} if shadow else {"Champion", "Challenger"}
    assert set(answered["variant"].dropna()) == served
    if shadow:
        assert answered["variant"].notna().all() and set(answered["status"]) == {200}
    assert serving(local_stack.client("sagemaker"), endpoint) == {"Champion": 1.0}
    assert_only_winner_left(local_stack.client("sagemaker"), endpoint, "champion")


def test_a_stage_with_rare_errors_is_decided_by_the_exact_test(
    local_stack, rollout: Rollout, one_stage
) -> None:
    """Planned at 92 % accuracy with a margin of 0.07 (about 17 errors per variant by n_fix),
    the 50/50 stage of a real run is judged by the exact lattice test: its record names it,
    its walk stays on the test's decisions within the answers both variants gave, and the
    run ends on its verdict (either: the demo's challenger is promoted 93 % of the time
    there) with only the winner left."""
    fields = {**one_stage, "cleanup": CleanupPolicy.KEEP_WINNER.value}
    result = rollout("canary-exact", **fields, gate_planning_rate=0.92, gate_margin=0.07)
    assert result.state == DagRunState.SUCCESS, result.tasks
    record = result.xcom(ids.gate_task(1))
    assert record["design"]["method"] == EXACT_METHOD
    assert record["exact_test"]["false_promotion_at_most"] <= record["design"]["alpha"]
    look = record["look"]
    walked = look["exact"]["pairs"]
    assert walked % record["exact_test"]["step_pairs"] == 0
    assert 0 < walked <= min(look["n_champion"], look["n_challenger"])
    (verdict,) = verdicts(result, stages=1)
    assert verdict in (Verdict.PROMOTE, Verdict.ROLLBACK)
    winner = "Challenger" if verdict is Verdict.PROMOTE else "Champion"
    assert serving(local_stack.client("sagemaker"), "canary-exact") == {winner: 1.0}
    assert_only_winner_left(local_stack.client("sagemaker"), "canary-exact", winner.lower())


def test_bad_configuration_fails_fast_and_creates_nothing(local_stack, rollout: Rollout) -> None:
    """Cross-field rules the form cannot express fail the first task, before any AWS call."""
    result = rollout("canary-bad", stages=[[50, 50], [60, 40]], challenger_source="model.zip")
    assert result.state == DagRunState.FAILED
    assert result.state_of(ids.VALIDATE_PLAN) == TaskInstanceState.FAILED
    assert result.state_of(ids.STAGE_ARTIFACTS) == TaskInstanceState.UPSTREAM_FAILED
    assert_nothing_left(local_stack.client("sagemaker"), "canary-bad")


@pytest.mark.parametrize(
    "bad",
    [
        {"gate_alpha": 0.9},
        {"approval": "maybe"},
        {"approval_timeout_minutes": -1},
        {"notify_topic_arn": "arn:aws:sqs:us-east-1:123456789012:not-a-topic"},
    ],
)
def test_form_rejects_out_of_range_values_before_a_run_exists(
    local_stack, rollout: Rollout, bad: dict[str, Any]
) -> None:
    from airflow.sdk.exceptions import ParamValidationError

    [field] = bad
    with pytest.raises(ParamValidationError, match=field):
        rollout("canary-refused", **bad)
    assert canary_resources(local_stack.client("sagemaker"), "canary-refused")["models"] == []
