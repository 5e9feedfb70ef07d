"""Every DAG file parses under Airflow's own DagBag, follows the house policy, and has the shape
of its plan. Task ids come from :mod:`canary_airflow.ids`, as the DAG files use them."""

from __future__ import annotations

from pathlib import Path

import pytest

from canary.plan import FLAT_FIELDS, MAX_STAGES, NIGHTLY_FIELDS, PlanError
from canary_airflow import ids

DAGS = Path(__file__).resolve().parents[2] / "dags"
DAG_IDS = (ids.ROLLOUT_DAG, ids.NIGHTLY_DAG, ids.REGISTRY_DAG)
MAX_RETRIES = 3


@pytest.fixture(scope="module")
def bag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def test_every_dag_file_imports_and_nothing_else_appears(bag) -> None:
    assert bag.import_errors == {}
    assert set(bag.dags) == set(DAG_IDS)


@pytest.mark.parametrize("dag_id", DAG_IDS)
def test_dag_policy(bag, dag_id: str) -> None:
    """Owner, tags, documentation and bounded, explicit retries on every DAG and task."""
    dag = bag.dags[dag_id]
    assert "canary" in dag.tags and "sagemaker" in dag.tags
    assert dag.doc_md and dag.doc_md.lstrip().startswith("###"), "doc_md renders as a heading"
    assert dag.catchup is False
    # rollouts of different endpoints run at once (lock_endpoint keeps one per endpoint)
    assert dag.max_active_runs == (16 if dag_id == ids.ROLLOUT_DAG else 1)
    for task in dag.tasks:
        assert task.owner == ids.OWNER, task.task_id
        assert isinstance(task.retries, int) and 0 <= task.retries <= MAX_RETRIES, task.task_id
        assert task.doc or task.doc_md or _docstring(task), f"{task.task_id} is undocumented"


def _docstring(task) -> str | None:
    """A TaskFlow task's own function docstring, or its operator class's own (not inherited:
    every operator base class has one, so falling back to it would always pass)."""
    python = getattr(task, "python_callable", None)
    return python.__doc__ if python else vars(type(task)).get("__doc__")


# -- sagemaker_canary_rollout ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def rollout(bag):
    return bag.dags[ids.ROLLOUT_DAG]


def test_every_sagemaker_operator_works_in_the_plans_region(rollout) -> None:
    """Not the connection's region: the lock, the artifacts, the gate and teardown all use the
    plan's, and a model made elsewhere would neither find its artifact nor be cleaned up. The
    region and the endpoint's name come as the plan's XComs, never from a natively rendered
    template (an endpoint named "123" would reach boto as a number)."""
    from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator

    operators = [task for task in rollout.tasks if isinstance(task, AwsBaseOperator)]
    assert len(operators) == 6 + MAX_STAGES  # models, configs, deploy, go live, weights
    for task in operators:
        assert _plan_value(task.region_name) == "region", task.task_id
        if task.task_id.endswith(ids.SET_WEIGHTS):
            assert _plan_value(task.endpoint_name) == "endpoint_name", task.task_id


def _plan_value(value: object) -> str | None:
    """The key of the validated plan's XCom that ``value`` is, if it is one."""
    operator = getattr(value, "operator", None)
    if operator is None or operator.task_id != ids.VALIDATE_PLAN:
        return None
    return value.key


def test_rollout_is_started_only_from_outside(rollout) -> None:
    from airflow.sdk.definitions.timetables.simple import NullTimetable

    assert isinstance(rollout.timetable, NullTimetable)


def test_rollout_form_is_the_whole_plan_in_sections(rollout) -> None:
    assert set(rollout.params.keys()) == set(FLAT_FIELDS)
    for name in rollout.params:
        schema = rollout.params.get_param(name).schema
        assert schema.get("section") and schema.get("type") and schema.get("title"), name


def test_stages_are_held_by_rescheduling_gates(rollout) -> None:
    for number in range(1, MAX_STAGES + 1):
        gate = rollout.get_task(ids.gate_task(number))
        assert gate.mode == "reschedule"
        assert gate.upstream_task_ids == {
            ids.stage_task(number, ids.SET_WEIGHTS),
            ids.stage_task(number, ids.REPLAY_BURST),
            ids.VALIDATE_PLAN,
        }
        assert rollout.get_task(ids.stage_task(number, ids.REPLAY_BURST)).get_needs_expansion()


def test_report_and_cleanup_are_teardowns_of_every_setup(rollout) -> None:
    setups = {
        ids.LOCK_ENDPOINT,
        ids.STAGE_ARTIFACTS,
        *ids.CREATE_MODEL.values(),
        ids.CREATE_ENDPOINT_CONFIG,
        ids.DEPLOY_ENDPOINT,
    }
    for teardown in (ids.REPORT, ids.CLEANUP):
        task = rollout.get_task(teardown)
        assert task.is_teardown
        assert setups <= {t.task_id for t in task.upstream_list if t.is_setup}
    cleanup = rollout.get_task(ids.CLEANUP)
    assert cleanup.on_failure_fail_dagrun is True  # resources left behind fail the run
    assert cleanup.retries >= 1  # and are tried again while the run still holds the lease
    report = rollout.get_task(ids.REPORT)
    assert report.downstream_task_ids == {ids.CLEANUP}
    assert {ids.PROMOTE, ids.ROLLBACK} <= report.get_flat_relative_ids(upstream=True)


def test_the_endpoint_is_locked_before_anything_touches_it(rollout) -> None:
    lock = rollout.get_task(ids.LOCK_ENDPOINT)
    assert lock.upstream_task_ids == {ids.VALIDATE_PLAN}
    teardowns = {ids.UPDATE_REGISTRY, ids.REPORT, ids.CLEANUP}
    assert lock.downstream_task_ids == {ids.STAGE_ARTIFACTS, *teardowns}
    assert lock.is_setup


def test_update_registry_sits_between_the_outcome_and_the_report(rollout) -> None:
    """A teardown of the lease: it records a failed run too, whenever the run held the
    endpoint (not when the plan was refused before the claim)."""
    update = rollout.get_task(ids.UPDATE_REGISTRY)
    assert update.upstream_task_ids >= {ids.PROMOTE, ids.ROLLBACK, ids.LOCK_ENDPOINT}
    assert ids.REPORT in update.downstream_task_ids
    assert update.is_teardown and update.trigger_rule == "all_done_setup_success"


# -- nightly_challenger and model_registry_rollout ------------------------------------------------


def test_tasks_that_return_the_plan_do_not_print_it(rollout) -> None:
    """Their return value holds the containers' environments, which may carry secrets that
    Airflow's masker does not recognise by name; validate_plan logs the plan redacted."""
    for task_id in (ids.VALIDATE_PLAN, ids.BUILD_REQUESTS):
        assert rollout.get_task(task_id).show_return_value_in_logs is False


def test_nightly_runs_on_a_cron_with_its_form(bag) -> None:
    nightly = bag.dags[ids.NIGHTLY_DAG]
    assert nightly.timetable.expression == "0 2 * * *"
    assert set(nightly.params.keys()) == set(NIGHTLY_FIELDS)
    assert nightly.get_task(ids.REGISTER_MODEL_VERSION).upstream_task_ids == {ids.REGISTRATION}
    assert nightly.get_task(ids.REGISTRATION).upstream_task_ids == {
        ids.BETTER_OFFLINE,
        ids.TRAIN_CHALLENGER,
    }


def test_registry_rollout_is_scheduled_by_an_asset_watching_the_registry(bag) -> None:
    from canary_airflow.triggers import ModelPackageApprovalTrigger

    registry = bag.dags[ids.REGISTRY_DAG]
    (asset,) = registry.timetable.asset_condition.objects
    (watcher,) = asset.watchers
    assert isinstance(watcher.trigger, ModelPackageApprovalTrigger)  # no queue URL configured
    start = registry.get_task(ids.START_ROLLOUT)
    assert start.trigger_dag_id == ids.ROLLOUT_DAG
    assert start.skip_when_already_exists is True
    assert registry.get_task(ids.CLAIM_ROLLOUT).upstream_task_ids == {ids.WAIT_FOR_APPROVAL}
    # the request is checked before the wait: a bad field fails the run at once
    assert registry.get_task(ids.WAIT_FOR_APPROVAL).upstream_task_ids == {ids.CHECK_REQUEST}
    rollout_form = bag.dags[ids.ROLLOUT_DAG].params
    for shared in ("region", "endpoint_name"):  # declared once, on the plan
        schema = registry.params.get_param(shared).schema
        assert {k: v for k, v in schema.items() if k != "section"} == {
            k: v for k, v in rollout_form.get_param(shared).schema.items() if k != "section"
        }


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ('{"gate_alpah": 0.1}', "gate_alpah"),
        ('{"gate_alpha": 2}', "gate_alpha"),
        ("[1, 2]", "JSON object"),
    ],
)
def test_registry_rollout_fields_are_checked_when_the_dag_is_parsed(raw: str, named: str) -> None:
    from canary_airflow.tasks.registry_rollout import configured_rollout_conf

    with pytest.raises(PlanError, match=named):
        configured_rollout_conf(raw)
    assert configured_rollout_conf('{"stages": [[50, 50]]}') == {"stages": [[50, 50]]}
    assert configured_rollout_conf(None) == {}
