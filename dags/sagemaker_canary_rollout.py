"""
### Canary rollout of a SageMaker model: champion → challenger, one gated stage at a time

1. **Setup**: validate the plan (before any AWS call), take the endpoint's lease (one rollout
   per endpoint; while another run holds it, this one waits its turn, touching nothing, up to
   `lock_wait_minutes`), stage both artifacts in S3, create both models, an endpoint config
   with Data Capture (the shadow stage's, or two production variants without one), deploy the
   endpoint.
2. **Shadow stage** (`shadow`, on by default): the endpoint starts with the champion as its only
   production variant and the challenger as a shadow variant, which answers a copy of
   `shadow_sampling_percent` of the requests into Data Capture only. A paired sequential test on
   the same requests decides: *promote* moves the endpoint to the canary config, *rollback* ends
   the run before any user was served by the challenger.
3. **Stages** (default 50/50, 25/75, 0/100): shift the weights, then hold the stage until its
   statistical gate says *promote* (next stage), *rollback* or *halt*. Synthetic traffic is
   replayed while the gate waits (optionally a first burst from mapped tasks); in production,
   real traffic does this. With `approval`, a person then approves the step on the Required
   Actions page (Reject, or no answer in time, rolls back).
4. **Conclude**: promote the challenger, or put the champion back at 100 %. Every verdict,
   approval request and the outcome go to `notify_topic_arn` (SNS) when one is set.
5. **Teardown** (always runs): the report, then cleanup: the endpoint ends serving the winner
   alone (`keep_winner`) or everything this run created is removed (`delete_all`).

Trigger it from the form, from another DAG (`nightly_challenger`, `model_registry_rollout`) or
with a conf whose keys are the form's fields.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import TaskGroup, chain, dag

from canary.plan import MAX_STAGES, SHADOW_STAGE
from canary_airflow import ids
from canary_airflow.approval import StageApprovalOperator
from canary_airflow.operators import (
    EnsureSageMakerEndpointConfigOperator,
    EnsureSageMakerEndpointOperator,
    EnsureSageMakerModelOperator,
    SageMakerUpdateEndpointWeightsOperator,
)
from canary_airflow.params import rollout_params
from canary_airflow.sensors import CanaryGateSensor
from canary_airflow.tasks import canary_rollout as tasks

MAX_ACTIVE_ROLLOUTS = 16
# Tasks that resume where they stopped are retried: the deferrable waits (Airflow 3.3 can fail a
# deferred task whose trigger fires before the scheduler has seen it defer, apache/airflow#72716;
# both are idempotent), the gate, whose looks live in S3 (a killed worker costs one poke), and
# the burst tasks, whose replay state lives there too.
RESUMABLE = {"retries": 2, "retry_delay": timedelta(seconds=5)}


@dag(
    dag_id=ids.ROLLOUT_DAG,
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params=rollout_params(),
    render_template_as_native_obj=True,
    # Rollouts of different endpoints run at once; lock_endpoint keeps one per endpoint. A run
    # queued behind a busy endpoint takes one of these slots (and a worker) while it waits.
    max_active_runs=MAX_ACTIVE_ROLLOUTS,
    # No blanket retries: a failed step must reach rollback and cleanup quickly, and the steps
    # that wait on AWS (deploy, set_weights) retry on their own.
    default_args={"owner": ids.OWNER, "retries": 0},
    doc_md=__doc__,
    tags=["sagemaker", "canary"],
)
def sagemaker_canary_rollout() -> None:
    # -- setup --------------------------------------------------------------------------------
    plan = tasks.validate_plan()
    # the plan's region for every SageMaker operator (not the connection's); plan values are
    # passed as XComs, never rendered from a template: with native rendering an endpoint
    # named "123" or "None" would reach boto as a number or None
    in_region = {"region_name": plan["region"]}
    lock = tasks.lock_endpoint(plan)
    artifacts = tasks.stage_artifacts(plan)
    requests = tasks.build_requests(plan, artifacts)
    champion_model = EnsureSageMakerModelOperator(
        task_id=ids.CREATE_MODEL["champion"], config=requests["champion_model"], **in_region
    )
    challenger_model = EnsureSageMakerModelOperator(
        task_id=ids.CREATE_MODEL["challenger"], config=requests["challenger_model"], **in_region
    )
    endpoint_config = EnsureSageMakerEndpointConfigOperator(
        task_id=ids.CREATE_ENDPOINT_CONFIG, config=requests["endpoint_config"], **in_region
    )
    deploy = EnsureSageMakerEndpointOperator(
        task_id=ids.DEPLOY_ENDPOINT,
        config=requests["endpoint"],
        deferrable=True,
        check_interval=1,
        **in_region,
        **RESUMABLE,
    )
    chain(
        plan, lock, artifacts, requests, [champion_model, challenger_model], endpoint_config, deploy
    )

    # -- shadow stage: the challenger answers a copy of the champion's traffic, never a user --
    with TaskGroup(group_id=ids.SHADOW_GROUP) as shadow:
        window = tasks.enter_shadow(plan)
        shadow_gate = CanaryGateSensor(
            task_id=ids.GATE, plan=plan, stage=window, stage_index=SHADOW_STAGE, **RESUMABLE
        )
        canary_config = EnsureSageMakerEndpointConfigOperator(
            task_id=ids.CREATE_ENDPOINT_CONFIG,
            config=requests["canary_endpoint_config"],
            **in_region,
        )
        go_live = EnsureSageMakerEndpointOperator(
            task_id=ids.GO_LIVE,
            config=requests["canary_endpoint"],
            deferrable=True,
            check_interval=1,
            **in_region,
            **RESUMABLE,
        )
        chain(window, shadow_gate, tasks.shadow_passed(), canary_config, go_live)
    deploy >> shadow

    # -- stages: each shifts the weights, then holds until its gate decides ------------------
    previous = shadow
    for index in range(MAX_STAGES):
        with TaskGroup(group_id=ids.STAGE_GROUP.format(number=index + 1)) as stage:
            entered = tasks.enter_stage(plan, index)
            weights = SageMakerUpdateEndpointWeightsOperator(
                task_id=ids.SET_WEIGHTS,
                endpoint_name=plan["endpoint_name"],
                weights=entered,
                deferrable=True,
                check_interval=1,
                **in_region,
                **RESUMABLE,
            )
            shards = tasks.plan_burst(plan, weights.output, index)
            # a burst task resumes from its saved replay state: a retry sends only what is left
            burst = (
                tasks.replay_burst.override(**RESUMABLE)
                .partial(plan=plan, stage=weights.output, index=index)
                .expand(shard=shards)
            )
            gate = CanaryGateSensor(
                task_id=ids.GATE, plan=plan, stage=weights.output, stage_index=index, **RESUMABLE
            )
            approve = StageApprovalOperator(task_id=ids.APPROVE, plan=plan, stage_index=index)
            chain(entered, weights, shards, burst, gate, approve)
        previous >> stage
        previous = stage

    # -- conclude -----------------------------------------------------------------------------
    outcome = tasks.conclude(plan)
    finished = [tasks.promote(plan), tasks.rollback(plan)]
    chain(previous, outcome, finished)

    # -- teardown: always runs, whatever happened above -----------------------------------------
    # (the shadow group's config and go_live are not setups: the first stage runs without them
    # when the plan has no shadow stage; cleanup finds their config by its name and tag)
    setups = [lock, artifacts, champion_model, challenger_model, endpoint_config, deploy]
    report = tasks.report(plan).as_teardown(setups=setups)
    # a cleanup that fails fails the run (Airflow ignores a teardown's failure by default) and
    # retries: it keeps the endpoint's lease until it has worked
    cleanup = tasks.cleanup.override(**RESUMABLE)(plan).as_teardown(
        setups=setups, on_failure_fail_dagrun=True
    )
    # registry bookkeeping (a no-op unless the challenger is a model package): champion,
    # Rejected, or a note that the run failed; it runs whenever the run held the endpoint.
    # Not on_failure_fail_dagrun: then it would be the run's leaf in place of promote and
    # rollback, and a run whose stage failed would end "success" once its note was written
    registry = tasks.update_registry.override(**RESUMABLE)(plan).as_teardown(setups=lock)
    chain(finished, registry, report, cleanup)


sagemaker_canary_rollout()
