"""Every DAG file imports cleanly and the rollout DAG has the shape of its plan."""

from __future__ import annotations

from pathlib import Path

import pytest

from canary.plan import FLAT_FIELDS, MAX_STAGES

DAGS = Path(__file__).resolve().parents[2] / "dags"


@pytest.fixture(scope="module")
def dag_bag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


@pytest.fixture(scope="module")
def rollout(dag_bag):
    return dag_bag.dags["sagemaker_canary_rollout"]


def test_no_import_errors(dag_bag) -> None:
    assert dag_bag.import_errors == {}
    assert "sagemaker_canary_rollout" in dag_bag.dags


def test_started_only_from_outside(rollout) -> None:
    from airflow.sdk.definitions.timetables.simple import NullTimetable

    assert isinstance(rollout.timetable, NullTimetable)
    assert rollout.max_active_runs == 1


def test_form_covers_the_whole_plan(rollout) -> None:
    params = rollout.params
    assert set(params.keys()) == set(FLAT_FIELDS)
    for name in params:
        schema = params.get_param(name).schema
        assert schema.get("section"), f"{name} has no form section"
        assert schema.get("type"), f"{name} has no type"


def test_stages_are_held_by_rescheduling_gates(rollout) -> None:
    for number in range(1, MAX_STAGES + 1):
        gate = rollout.get_task(f"stage_{number}.gate")
        assert gate.mode == "reschedule"
        assert gate.upstream_task_ids == {
            f"stage_{number}.set_weights",
            f"stage_{number}.replay_burst",
            "validate_plan",
        }
        assert rollout.get_task(f"stage_{number}.replay_burst").get_needs_expansion()


def test_cleanup_is_a_teardown_of_every_setup(rollout) -> None:
    setups = {
        "stage_artifacts",
        "create_champion_model",
        "create_challenger_model",
        "create_endpoint_config",
        "deploy_endpoint",
    }
    for teardown in ("report", "cleanup"):
        task = rollout.get_task(teardown)
        assert task.is_teardown
        assert setups <= {t.task_id for t in task.upstream_list if t.is_setup}
    report = rollout.get_task("report")
    assert report.downstream_task_ids == {"cleanup"}
    assert {"promote", "rollback"} <= report.get_flat_relative_ids(upstream=True)
