"""The three ways a rollout starts are wired as designed (parsed by Airflow's own DagBag)."""

from __future__ import annotations

from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"


@pytest.fixture(scope="module")
def dags():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    return bag.dags


def test_nightly_runs_on_a_cron_without_catchup(dags) -> None:
    nightly = dags["nightly_challenger"]
    assert nightly.timetable.expression == "0 2 * * *"
    assert nightly.catchup is False
    register = nightly.get_task("register_model_version")
    assert register.upstream_task_ids == {"registration"}
    assert nightly.get_task("registration").upstream_task_ids == {
        "better_offline",
        "train_challenger",
    }


def test_registry_rollout_is_scheduled_by_an_asset_watching_the_registry(dags) -> None:
    from canary_airflow.triggers import ModelPackageApprovalTrigger

    registry = dags["model_registry_rollout"]
    (asset,) = registry.timetable.asset_condition.objects
    (watcher,) = asset.watchers
    assert isinstance(watcher.trigger, ModelPackageApprovalTrigger)  # no queue URL configured
    assert registry.get_task("start_rollout").trigger_dag_id == "sagemaker_canary_rollout"
    assert registry.get_task("start_rollout").skip_when_already_exists is True
    assert registry.get_task("claim_rollout").upstream_task_ids == {"wait_for_approval"}


def test_update_registry_sits_between_the_outcome_and_the_report(dags) -> None:
    rollout = dags["sagemaker_canary_rollout"]
    update = rollout.get_task("update_registry")
    assert update.upstream_task_ids >= {"promote", "rollback"}
    assert "report" in update.downstream_task_ids
    assert update.trigger_rule == "none_failed_min_one_success"
