"""How rollouts start: the nightly challenger registers a version, the registry starts its rollout
once, and the rollout's outcome lands back in the registry. Real DAG runs (``dag.test``) on the
local stack; no step is simulated."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from airflow.utils.state import DagRunState, TaskInstanceState

from canary.models import registry as reg
from canary.rollout.artifacts import split_s3_uri
from canary.rollout.outcome import RunOutcome
from canary_airflow import ids

# day 30 of the drifting churn data, the demo's "today"
TONIGHT = datetime(2026, 1, 31, 2, tzinfo=UTC)


def nightly_conf(group: str, bucket: str, **extra: object) -> dict[str, object]:
    return {"model_package_group": group, "bucket": bucket, **extra}


def test_first_night_makes_the_first_champion(local_stack, run_dag, unique_name, fast_rollout):
    group = f"first-{unique_name}"

    run = run_dag(ids.NIGHTLY_DAG, nightly_conf(group, fast_rollout["bucket"]), TONIGHT)

    assert run.state == DagRunState.SUCCESS
    night = run.xcom(ids.TRAIN_CHALLENGER)
    assert night["first_champion"] and night["approve"] and night["day"] == 30
    arn = run.xcom(ids.REGISTER_MODEL_VERSION)
    sm, s3 = local_stack.client("sagemaker"), local_stack.client("s3")
    package = sm.describe_model_package(ModelPackageName=arn)
    props = package["CustomerMetadataProperties"]
    assert package["ModelApprovalStatus"] == reg.APPROVED
    assert props[reg.ROLE_KEY] == reg.CHAMPION
    assert props[reg.ROLLOUT_KEY] == reg.BOOTSTRAP_RUN  # nothing to roll out against
    assert float(props["canary:offline:roc_auc"]) == round(night["challenger"]["roc_auc"], 6)
    assert reg.find_champion(sm, group) == arn
    report_uri = package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]
    bucket, key = split_s3_uri(report_uri)
    evaluation = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    assert evaluation["challenger"]["roc_auc"] == night["challenger"]["roc_auc"]
    refused = reg.claim_rollout(sm, group, arn, "registry__x")
    assert not refused.granted and "already" in refused.reason


def test_night_without_a_better_challenger_stops_before_registering(
    local_stack, seed_group, run_dag, fast_rollout
):
    # the champion is the model tonight's search produces again: same data, same seed
    group = seed_group(champion="challenger")

    run = run_dag(ids.NIGHTLY_DAG, nightly_conf(group.name, fast_rollout["bucket"]), TONIGHT)

    assert run.state == DagRunState.SUCCESS
    night = run.xcom(ids.TRAIN_CHALLENGER)
    assert night["improvement"] == 0.0 and not night["better"]
    assert run.state_of(ids.BETTER_OFFLINE) == TaskInstanceState.SUCCESS
    assert run.state_of(ids.REGISTRATION) == TaskInstanceState.SKIPPED
    assert run.state_of(ids.REGISTER_MODEL_VERSION) == TaskInstanceState.SKIPPED
    listed = list(reg.versions(local_stack.client("sagemaker"), group.name))
    assert [p["ModelPackageArn"] for p in listed] == [group.packages["challenger"]]


def test_nightly_approval_rolls_out_once_and_crowns_the_winner(
    local_stack, seed_group, run_dag, dag_runs, unique_name, one_stage
):
    group = seed_group(champion="champion")  # trained on day-0 data: stale by tonight
    old_champion = group.packages["champion"]
    sm = local_stack.client("sagemaker")

    # 1. nightly: better offline by more than the bar → registered Approved
    night_run = run_dag(ids.NIGHTLY_DAG, nightly_conf(group.name, one_stage["bucket"]), TONIGHT)
    night = night_run.xcom(ids.TRAIN_CHALLENGER)
    assert night["better"] and night["approve"], night
    assert night["improvement"] >= night["min_improvement"]
    challenger = night_run.xcom(ids.REGISTER_MODEL_VERSION)
    assert sm.describe_model_package(ModelPackageName=challenger)["ModelApprovalStatus"] == (
        reg.APPROVED
    )

    # 2. the registry poller sees the approval and starts one rollout
    registry_conf = {
        "model_package_group": group.name,
        "endpoint_name": f"registry-{unique_name}",
        "wait_minutes": 5,
        "rollout_conf": {k: v for k, v in one_stage.items() if k != "cleanup"},
    }
    started = run_dag(ids.REGISTRY_DAG, registry_conf)
    assert started.state == DagRunState.SUCCESS
    assert started.xcom(ids.WAIT_FOR_APPROVAL) == [challenger]
    claim = started.xcom(ids.CLAIM_ROLLOUT)
    assert claim["run_id"] == f"registry__{group.name}-v2"
    assert claim["conf"]["champion_source"] == old_champion
    assert claim["conf"]["challenger_source"] == challenger
    assert started.state_of(ids.START_ROLLOUT) == TaskInstanceState.SUCCESS
    rollouts = [r for r in dag_runs(ids.ROLLOUT_DAG) if r["run_id"] == claim["run_id"]]
    assert len(rollouts) == 1
    assert rollouts[0]["conf"] == claim["conf"]
    props = sm.describe_model_package(ModelPackageName=challenger)["CustomerMetadataProperties"]
    assert props[reg.ROLLOUT_KEY] == claim["run_id"]

    # 3. the same approval seen again starts nothing
    again = run_dag(ids.REGISTRY_DAG, {**registry_conf, "package_arn": challenger})
    assert again.state == DagRunState.SUCCESS
    # the claim is already this version's rollout's: its run exists, so the trigger is skipped
    assert again.state_of(ids.CLAIM_ROLLOUT) == TaskInstanceState.SUCCESS
    assert again.xcom(ids.CLAIM_ROLLOUT)["run_id"] == claim["run_id"]
    assert again.state_of(ids.START_ROLLOUT) == TaskInstanceState.SKIPPED
    registry_runs = [r["run_id"] for r in dag_runs(ids.ROLLOUT_DAG)]
    assert [run_id for run_id in registry_runs if run_id.startswith("registry__")] == [
        claim["run_id"]
    ]

    # 4. the rollout with exactly that conf (dag.test cannot pick up a queued run, so it runs
    #    the same conf under its own run id); promotion crowns the challenger in the registry
    rollout = run_dag(ids.ROLLOUT_DAG, claim["conf"])
    promoted = rollout.xcom(ids.PROMOTE)
    assert (RunOutcome(promoted["outcome"]), promoted["winner"]) == (
        RunOutcome.PROMOTED,
        "Challenger",
    )
    assert rollout.xcom(ids.UPDATE_REGISTRY)["demoted"] == [old_champion]
    assert reg.find_champion(sm, group.name) == challenger
    demoted = sm.describe_model_package(ModelPackageName=old_champion)
    assert demoted["CustomerMetadataProperties"][reg.ROLE_KEY] == reg.FORMER_CHAMPION


def test_better_but_below_the_bar_waits_for_a_person(
    local_stack, seed_group, run_dag, fast_rollout
):
    group = seed_group(champion="champion")
    conf = nightly_conf(group.name, fast_rollout["bucket"], min_improvement=0.5)

    run = run_dag(ids.NIGHTLY_DAG, conf, TONIGHT)

    night = run.xcom(ids.TRAIN_CHALLENGER)
    assert night["better"] and not night["approve"]
    package = local_stack.client("sagemaker").describe_model_package(
        ModelPackageName=run.xcom(ids.REGISTER_MODEL_VERSION)
    )
    assert package["ModelApprovalStatus"] == reg.PENDING
    assert reg.ROLLOUT_KEY not in package["CustomerMetadataProperties"]
    assert (
        float(package["CustomerMetadataProperties"]["canary:offline:roc_auc-improvement"])
        == (night["improvement"])
    )


def test_a_bad_registry_request_fails_before_any_wait(run_dag, unique_name, one_stage) -> None:
    """A rollout field out of range fails the run at its first task, naming the field: no
    approval is waited for, nothing is claimed in the registry."""
    conf = {
        "endpoint_name": f"registry-{unique_name}",
        "wait_minutes": 5,
        "rollout_conf": {**one_stage, "gate_alpha": 2},
    }
    failed = run_dag(ids.REGISTRY_DAG, conf)
    assert failed.state == DagRunState.FAILED
    assert failed.state_of(ids.CHECK_REQUEST) == TaskInstanceState.FAILED
    for later in (ids.WAIT_FOR_APPROVAL, ids.CLAIM_ROLLOUT, ids.START_ROLLOUT):
        assert failed.state_of(later) == TaskInstanceState.UPSTREAM_FAILED
