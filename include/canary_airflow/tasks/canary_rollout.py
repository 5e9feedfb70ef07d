"""The rollout DAG's TaskFlow tasks: each one reads its inputs, calls the domain, returns a record.

Plans travel between tasks as JSON (``RolloutPlan.model_dump(mode="json")``) and are re-validated
on arrival, which costs microseconds and guarantees every task sees the same, valid plan.

The DAG processor imports this module on every parse, so the numeric stack (pandas, scipy,
scikit-learn, matplotlib) is imported inside the tasks that need it, never at module level.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from airflow.sdk import get_current_context, task

from canary.experiment.gates.decision import Verdict, promoted
from canary.models import registry as reg
from canary.plan import FLAT_FIELDS, SHADOW_STAGE, RolloutPlan
from canary.reporting import notification as news
from canary.rollout import artifacts as artifact_ops
from canary.rollout import cleanup as cleanup_ops
from canary.rollout import endpoint, layout
from canary.rollout.lock import EndpointLock, Lease
from canary.rollout.outcome import RunOutcome
from canary_airflow import ids
from canary_airflow.approval import rejection
from canary_airflow.aws import AwsClients
from canary_airflow.ids import DEFAULT_CONN_ID
from canary_airflow.notify import publish

log = logging.getLogger(__name__)


def load_plan(plan: dict[str, Any]) -> RolloutPlan:
    return RolloutPlan.model_validate(plan)


def run_key() -> str:
    """This run's folder-safe key (:func:`canary.rollout.layout.run_key`)."""
    return layout.run_key(get_current_context()["run_id"])


def clients_for(plan: RolloutPlan) -> AwsClients:
    return AwsClients(region=plan.region)


# The plan holds the containers' environments: a task that returns it must not also print it.
@task(task_id=ids.VALIDATE_PLAN, show_return_value_in_logs=False)
def validate_plan() -> dict[str, Any]:
    """Fail fast, before any AWS call, with every bad field named.

    The run's conf is checked on its own too: Airflow merges unknown conf keys into params, and a
    typo there (``gate_alpah``) must fail rather than silently fall back to a default.
    """
    context = get_current_context()
    conf = dict(context["dag_run"].conf or {})
    params = {key: value for key, value in context["params"].items() if key in FLAT_FIELDS}
    from canary.stage.capacity import validated_plan  # the numeric stack: in the task

    plan = validated_plan({**params, **conf})
    log.info("rollout plan: %s", json.dumps(plan.redacted(), indent=2))
    return plan.model_dump(mode="json")


# The wait is a loop in the task, which keeps its worker slot while it waits. Not a reschedule
# or deferred wait: Airflow 3 fails a task whose previous poke's (or deferral's) executor event
# arrives after it was queued again (apache/airflow#71172), and short waits hit that often.
@task(task_id=ids.LOCK_ENDPOINT)
def lock_endpoint(plan: dict[str, Any]) -> dict[str, Any]:
    """Take the endpoint's lease before anything touches it (see :mod:`canary.rollout.lock`).
    Another run holding it: wait for its turn, claiming again every ``lock_poll_seconds``, up
    to the ``lock_wait_minutes``; then fail naming the holder, with nothing touched
    (:meth:`EndpointLock.claim_in_turn`).

    Also records the config the endpoint serves now (``found_config``, None when there is no
    endpoint yet): what teardown puts back. Held by the lease, it is the config before this
    run, which the deploy task cannot tell on a retry after its own update (a retry clears its
    XComs)."""
    rollout = load_plan(plan)
    lock = endpoint_lock(rollout)
    lock.ensure_table()
    asked_at = time.time()
    lease = lock.claim_in_turn(get_current_context()["run_id"], rollout_running)
    _log_lease(rollout, lease)
    return {
        "holder": lease.holder,
        "expires_at": lease.expires_at,
        "waited_seconds": round(lease.claimed_at - asked_at, 1),
        "found_config": endpoint.settled_config(
            clients_for(rollout).sagemaker, rollout.endpoint_name
        ),
    }


def endpoint_lock(rollout: RolloutPlan) -> EndpointLock:
    return EndpointLock(clients_for(rollout).dynamodb, rollout)


def rollout_running(run_id: str) -> bool:
    """Whether a lease holder's run may still be at work, asked of this Airflow: not known
    here to have ended (queued or running here, or unknown here). A run id this Airflow never
    had is another deployment's run against the same account (or a run deleted since): its
    state cannot be read from here, so only its lease's expiry frees the endpoint."""
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance
    from airflow.utils.state import State

    finished = sorted(state.value for state in State.finished_dr_states)
    ended = RuntimeTaskInstance.get_dr_count(ids.ROLLOUT_DAG, run_ids=[run_id], states=finished)
    return ended == 0


@task(task_id=ids.STAGE_ARTIFACTS)
def stage_artifacts(plan: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Put both artifacts in S3 (uploading local files once), or resolve model packages."""
    rollout = load_plan(plan)
    aws = clients_for(rollout)
    artifact_ops.ensure_bucket(aws.s3, rollout.bucket, rollout.region)
    specs = [
        spec.model_copy(update={"source": str(demo_artifact(spec.demo_model))})
        if spec.demo_model
        else spec
        for spec in (rollout.champion, rollout.challenger)
    ]
    staged = {}
    for result in artifact_ops.stage_all(aws.s3, aws.sagemaker, rollout, specs):
        log.info(
            "%s artifact: %s (uploaded now: %s)",
            result.role,
            result.model_data_url,
            result.uploaded,
        )
        staged[result.role] = {
            "model_data_url": result.model_data_url,
            "image": result.image,
            "uploaded": result.uploaded,
        }
    return staged


def demo_artifact(name: str) -> Path:
    """The generated demo model ``name``, built once per machine and cached on disk."""
    from canary.models.demo_models import cached_demo_models

    return Path(getattr(cached_demo_models(), name))


@task(task_id=ids.BUILD_REQUESTS, multiple_outputs=True, show_return_value_in_logs=False)
def build_requests(plan: dict[str, Any], staged: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The SageMaker requests the provider operators send: two models, one config, one endpoint."""
    rollout = load_plan(plan)
    models = {}
    for spec in (rollout.champion, rollout.challenger):
        artifact = staged[spec.role]
        image = artifact["image"] or endpoint.image_uri(spec, rollout.region)
        models[spec.role] = endpoint.model_request(rollout, spec, image, artifact["model_data_url"])
    names = {role: request["ModelName"] for role, request in models.items()}
    canary = endpoint.endpoint_config_request(rollout, names, rollout.stage_weights(0))
    first = endpoint.shadow_config_request(rollout, names) if rollout.shadow else canary
    return {
        "champion_model": models["champion"],
        "challenger_model": models["challenger"],
        "endpoint_config": first,
        "endpoint": _endpoint_request(rollout, first),
        # what the endpoint moves to when the shadow stage passes (the same without a shadow)
        "canary_endpoint_config": canary,
        "canary_endpoint": _endpoint_request(rollout, canary),
    }


def _endpoint_request(rollout: RolloutPlan, config: dict[str, Any]) -> dict[str, Any]:
    return {
        "EndpointName": rollout.endpoint_name,
        "EndpointConfigName": config["EndpointConfigName"],
        "Tags": [*config["Tags"], {"Key": endpoint.RUN_TAG, "Value": run_key()}],
    }


# Both short-circuits skip only the shadow group's own tasks: the first canary stage's `enter`
# (trigger rule none_failed) still runs and decides from the shadow's verdict itself.
@task.short_circuit(task_id=ids.ENTER_STAGE, ignore_downstream_trigger_rules=False)
def enter_shadow(plan: dict[str, Any]) -> dict[str, Any] | None:
    """The shadow stage's window (the deployed endpoint already mirrors to the challenger), or
    nothing (skip the shadow stage's tasks) when the plan has no shadow stage."""
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    from canary_airflow.aws import evidence_start

    rollout = load_plan(plan)
    if not rollout.shadow:
        return None
    renew_lease(rollout)
    hook = AwsBaseHook(aws_conn_id=DEFAULT_CONN_ID, client_type="cloudwatch")
    return {
        "endpoint": rollout.endpoint_name,
        "weights": rollout.stage_weights(SHADOW_STAGE),
        "started_at": evidence_start(hook),
    }


@task.short_circuit(task_id=ids.SHADOW_PASSED, ignore_downstream_trigger_rules=False)
def shadow_passed() -> bool:
    """Only a shadow gate that promotes lets the endpoint serve the challenger to anyone."""
    record = get_current_context()["ti"].xcom_pull(task_ids=ids.SHADOW_GATE)
    return promoted(record)


@task.short_circuit(
    task_id=ids.ENTER_STAGE, ignore_downstream_trigger_rules=False, trigger_rule="none_failed"
)
def enter_stage(plan: dict[str, Any], index: int) -> dict[str, float] | None:
    """This stage's weights, or nothing (skip) when the plan is shorter, the last gate (the
    shadow's, before the first stage) stopped or a person rejected the step."""
    rollout = load_plan(plan)
    if index >= len(rollout.stages):
        return None
    if index == 0 and rollout.shadow:
        shadow = get_current_context()["ti"].xcom_pull(task_ids=ids.SHADOW_GATE)
        if not promoted(shadow):
            return None
    if index > 0:
        ti = get_current_context()["ti"]
        previous = ti.xcom_pull(task_ids=ids.gate_task(index))
        if not promoted(previous):
            return None
        if rejection([ti.xcom_pull(task_ids=ids.approve_task(index))]):
            return None
    renew_lease(rollout)
    return rollout.stage_weights(index)


def renew_lease(rollout: RolloutPlan) -> None:
    """Entering a stage renews the endpoint's lease: a run slower than its estimate keeps the
    endpoint, and one whose lease was taken over fails here, before it touches the endpoint."""
    _log_lease(rollout, endpoint_lock(rollout).renew(get_current_context()["run_id"]))


def _log_lease(rollout: RolloutPlan, lease: Lease) -> None:
    log.info("%s is this run's until %s at the latest", rollout.endpoint_name, lease.expires_at)


def stage_gate(plan: dict[str, Any], stage: dict[str, Any], index: int, conn_id: str) -> Any:
    """The domain's gate for one stage of this run (imports the numeric stack: call in tasks)."""
    from canary.stage.gate import StageGate
    from canary.stage.window import StageWindow

    rollout = load_plan(plan)
    window = StageWindow(index=index, weights=stage["weights"], started_at=stage["started_at"])
    return StageGate(AwsClients(conn_id=conn_id, region=rollout.region), rollout, window, run_key())


@task(task_id=ids.PLAN_BURST)
def plan_burst(plan: dict[str, Any], stage: dict[str, Any], index: int) -> list[dict[str, int]]:
    """How the stage's first burst of synthetic traffic splits over mapped replay tasks."""
    return stage_gate(plan, stage, index, DEFAULT_CONN_ID).traffic.burst_shards()


@task(task_id=ids.REPLAY_BURST, map_index_template="shard {{ task.op_kwargs['shard']['index'] }}")
def replay_burst(
    plan: dict[str, Any], stage: dict[str, Any], index: int, shard: dict[str, int]
) -> dict[str, Any]:
    """One mapped task's share of the burst: its own slice of users, its own inference ids."""
    return stage_gate(plan, stage, index, DEFAULT_CONN_ID).traffic.burst(shard)


@task.branch(task_id=ids.CONCLUDE, trigger_rule="none_failed")
def conclude(plan: dict[str, Any]) -> str:
    """Promote only when every stage of the plan passed its gate and no person rejected a step;
    otherwise roll back."""
    rollout = load_plan(plan)
    verdicts = gate_verdicts(rollout)
    rejected = rejection(approval_answers(rollout))
    log.info("gate verdicts: %s; %s", verdicts, rejected or "no step rejected")
    if verdicts and all(verdict is Verdict.PROMOTE for verdict in verdicts) and not rejected:
        return ids.PROMOTE
    return ids.ROLLBACK


def gate_verdicts(rollout: RolloutPlan) -> list[Verdict | None]:
    """Each planned stage's final verdict (the shadow's first), or None for a stage whose gate
    never decided."""
    ti = get_current_context()["ti"]
    decisions = [ti.xcom_pull(task_ids=task_id) for task_id in gate_tasks(rollout)]
    return [Verdict(decision["verdict"]) if decision else None for decision in decisions]


def gate_tasks(rollout: RolloutPlan) -> list[str]:
    """The gate task of every planned stage, in the order they run."""
    return [ids.gate_task(index + 1) for index in rollout.stage_indices]


def approval_answers(rollout: RolloutPlan) -> list[dict[str, Any] | None]:
    """Each planned stage's approval answer (None where the stage never got that far)."""
    ti = get_current_context()["ti"]
    stages = range(1, len(rollout.stages) + 1)
    return [ti.xcom_pull(task_ids=ids.approve_task(number)) for number in stages]


@task(task_id=ids.PROMOTE)
def promote(plan: dict[str, Any]) -> dict[str, Any]:
    """The challenger takes all traffic."""
    rollout = load_plan(plan)
    champion, challenger = rollout.variants
    _shift(rollout, {champion: 0.0, challenger: 1.0})
    return {"outcome": RunOutcome.PROMOTED.value, "winner": challenger}


@task(task_id=ids.ROLLBACK)
def rollback(plan: dict[str, Any]) -> dict[str, Any]:
    """The champion takes all traffic back; a halted experiment is told apart from a loss, and a
    person's Reject is recorded as the reason."""
    rollout = load_plan(plan)
    champion, challenger = rollout.variants
    _shift(rollout, {champion: 1.0, challenger: 0.0})
    halted = Verdict.HALT in gate_verdicts(rollout)
    outcome = RunOutcome.HALTED if halted else RunOutcome.ROLLED_BACK
    return {
        "outcome": outcome.value,
        "winner": champion,
        "rejected": rejection(approval_answers(rollout)),
    }


def _shift(rollout: RolloutPlan, weights: dict[str, float]) -> None:
    """Serve ``weights``, among the variants that serve at all: a rollback in the shadow stage
    finds the champion serving alone already (the challenger is only a shadow)."""
    sm = clients_for(rollout).sagemaker
    live = endpoint.describe_endpoint(sm, rollout.endpoint_name) or {}
    serving = set(endpoint.serving_weights(live)) if live else set(weights)
    weights = {name: weight for name, weight in weights.items() if name in serving}
    if endpoint.set_weights(sm, rollout.endpoint_name, weights):
        endpoint.wait_settled(sm, rollout.endpoint_name)
    endpoint.verify_serving(sm, rollout.endpoint_name, weights=weights)


def outcome_of_run() -> RunOutcome:
    """What the concluding task recorded; a run that never concluded has failed."""
    ti = get_current_context()["ti"]
    for task_id in (ids.PROMOTE, ids.ROLLBACK):
        result = ti.xcom_pull(task_ids=task_id)
        if result:
            return RunOutcome(result["outcome"])
    return RunOutcome.FAILED


@task(task_id=ids.REPORT)
def report(plan: dict[str, Any]) -> str:
    """Write the HTML report with charts and every decision record; returns its path."""
    from canary.reporting.run_report import write_run_report

    rollout = load_plan(plan)
    key = run_key()
    out_dir = layout.reports_dir() / key
    models = run_manifest().models
    rejected = rejection(approval_answers(rollout))
    path = write_run_report(
        clients_for(rollout).s3, rollout, key, outcome_of_run(), models, out_dir, rejected
    )
    log.info(
        "report: %s (a copy is in s3://%s/%s/report/)",
        path,
        rollout.bucket,
        layout.run_prefix(rollout, key),
    )
    return str(path)


@task(task_id=ids.CLEANUP)
def cleanup(plan: dict[str, Any]) -> dict[str, Any]:
    """Leave the winner serving alone (or delete everything), whatever happened before."""
    rollout = load_plan(plan)
    aws = clients_for(rollout)
    outcome = outcome_of_run()
    context = get_current_context()
    lock, run_id, ti = endpoint_lock(rollout), context["run_id"], context["ti"]
    try:
        result = cleanup_ops.tear_down(
            lock, run_id, aws.sagemaker, aws.s3, rollout, run_manifest(), outcome
        )
    except Exception:
        if ti.try_number > ti.max_tries:  # notified once: no retry is left, say so
            notify_outcome(rollout, outcome, cleaned_up=False)
        raise
    notify_outcome(rollout, outcome, cleaned_up=True)
    log.info("cleanup after %s: deleted %s; kept %s", outcome, result.deleted, result.kept)
    return {
        "outcome": result.outcome.value,
        "winner": result.winner,
        "serving_config": result.serving_config,
        "deleted": result.deleted,
        "kept": result.kept,
    }


def notify_outcome(rollout: RolloutPlan, outcome: RunOutcome, cleaned_up: bool) -> None:
    """Tell the plan's topic how the run ended, with the last decision, any rejection and
    whether teardown worked (``cleaned_up``: when not, resources may be left and the run
    fails). Only logged when it fails: it neither fails a finished teardown (whose retry would
    no longer hold the endpoint) nor hides the error of one that failed."""
    try:
        _publish_outcome(rollout, outcome, cleaned_up)
    except Exception:
        log.exception("could not notify the outcome of run %s", get_current_context()["run_id"])


def _publish_outcome(rollout: RolloutPlan, outcome: RunOutcome, cleaned_up: bool) -> None:
    from canary.reporting.report import PAGE_FILE

    context = get_current_context()
    last = last_decision(context["ti"], rollout)
    publish(
        rollout,
        news.Event.OUTCOME,
        news.outcome_subject(rollout.endpoint_name, outcome),
        context["run_id"],
        outcome=outcome.value,
        last_decision=news.decision_summary(last) if last else None,
        rejected=rejection(approval_answers(rollout)),
        cleaned_up=cleaned_up,
        report=f"s3://{rollout.bucket}/{layout.report_key(rollout, run_key(), PAGE_FILE)}",
    )


def run_manifest() -> cleanup_ops.RunManifest:
    """What this run created, read from the setup tasks' XComs (missing when they never ran)."""
    ti = get_current_context()["ti"]
    staged = ti.xcom_pull(task_ids=ids.STAGE_ARTIFACTS) or {}
    model_results = [ti.xcom_pull(task_ids=task_id) or {} for task_id in ids.CREATE_MODEL.values()]
    requests = {
        role: ti.xcom_pull(task_ids=ids.BUILD_REQUESTS, key=f"{role}_model") or {}
        for role in ids.CREATE_MODEL
    }
    configs = [
        ti.xcom_pull(task_ids=task_id) or {}
        for task_id in (ids.CREATE_ENDPOINT_CONFIG, ids.shadow_task(ids.CREATE_ENDPOINT_CONFIG))
    ]
    return cleanup_ops.RunManifest(
        models={role: req["ModelName"] for role, req in requests.items() if req},
        created_models=tuple(r["ModelName"] for r in model_results if r.get("created")),
        created_configs=tuple(c["EndpointConfigName"] for c in configs if c.get("created")),
        run_key=run_key(),
        previous_config=(ti.xcom_pull(task_ids=ids.LOCK_ENDPOINT) or {}).get("found_config"),
        artifacts={role: item["model_data_url"] for role, item in staged.items()},
        uploaded=tuple(role for role, item in staged.items() if item.get("uploaded")),
    )


@task(task_id=ids.UPDATE_REGISTRY)
def update_registry(plan: dict[str, Any]) -> dict[str, Any]:
    """Record the outcome in the registry: the winner becomes champion, a loser is Rejected,
    and a run that failed before it concluded says so on the version (which keeps its status
    for a person to decide). A teardown of the lease, so it runs whenever the run held the
    endpoint, also after a failed task.

    A no-op unless the challenger came from the registry (a model package ARN).
    """
    rollout = load_plan(plan)
    if not rollout.challenger.is_model_package:
        return {"updated": False, "reason": "challenger is not a model package"}
    ti = get_current_context()["ti"]
    outcome = outcome_of_run()
    reason = rejection(approval_answers(rollout)) or last_decision(ti, rollout).get("reason")
    reason = reason or "no gate decision was recorded"
    if outcome is RunOutcome.FAILED:
        reason = f"the run failed before it concluded (last gate decision: {reason})"
    record = reg.record_outcome(
        clients_for(rollout).sagemaker, rollout.challenger.source, outcome, reason
    )
    log.info("registry updated: %s", record)
    return record


def last_decision(ti: Any, rollout: RolloutPlan) -> dict[str, Any]:
    """The decision record of the last stage whose gate decided."""
    for task_id in reversed(gate_tasks(rollout)):
        decision = ti.xcom_pull(task_ids=task_id)
        if decision:
            return dict(decision)
    return {}
