"""Airflow's own scheduler, triggerer, dag-processor and API server (``airflow standalone``) on
loopback, wired to the local stack: rollouts are started through the REST API (v2) and by a
registry approval (the AssetWatcher in the triggerer), and judged through the REST API."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from airflow.utils.state import DagRunState, TaskInstanceState

from canary.models import registry as reg
from canary.rollout.outcome import RunOutcome
from canary_airflow.dev.local_airflow import airflow_env
from canary_airflow.dev.standalone import StandaloneAirflow
from canary_airflow.ids import PROMOTE, REGISTRY_DAG, ROLLBACK, ROLLOUT_DAG, UPDATE_REGISTRY
from local_sagemaker.stack import free_port

RUN_DEADLINE = 1800.0  # seconds; a bound, not a performance claim


class Api:
    """A small REST v2 client with the simple auth manager's JWT."""

    def __init__(self, base: str, token: str) -> None:
        self.base, self.token = base, token

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        request = urllib.request.Request(
            f"{self.base}/api/v2/{path}",
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
            method=method,
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read() or b"null")

    def wait_for_dag(self, dag_id: str, deadline: float = 600.0) -> None:
        """Until the dag-processor has parsed the DAG; then unpause it."""
        end = time.monotonic() + deadline
        while True:
            try:
                self.call("GET", f"dags/{dag_id}")
                break
            except urllib.error.HTTPError as error:
                if error.code != 404 or time.monotonic() > end:
                    raise
                time.sleep(2)
        assert self.call("PATCH", f"dags/{dag_id}", {"is_paused": False})["is_paused"] is False

    def wait_for_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        """Until the run is finished (or the bound is hit: then the test fails, naming it)."""
        end = time.monotonic() + RUN_DEADLINE
        while time.monotonic() < end:
            try:
                run = self.call("GET", f"dags/{dag_id}/dagRuns/{run_id}")
                if run["state"] in {DagRunState.SUCCESS, DagRunState.FAILED}:
                    return run
            except urllib.error.HTTPError as error:
                if error.code != 404:  # not created yet (registry path)
                    raise
            time.sleep(3)
        raise AssertionError(f"{dag_id} run {run_id} did not finish within {RUN_DEADLINE} s")

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        listed = self.call("GET", f"dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=100")
        return {ti["task_id"]: ti["state"] for ti in listed["task_instances"]}

    def xcom(self, dag_id: str, run_id: str, task_id: str) -> Any:
        path = f"dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value"
        return self.call("GET", path)["value"]


@pytest.fixture(scope="session")
def scheduler_group(local_stack) -> str:
    """The group the standalone's registry watcher polls (fixed per session, unique per run)."""
    import uuid

    return f"sched-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def airflow_api(
    local_stack, tmp_path_factory: pytest.TempPathFactory, scheduler_group: str, one_stage
) -> Iterator[Api]:
    home = tmp_path_factory.mktemp("standalone_home")
    reports = tmp_path_factory.mktemp("standalone_reports")
    env = airflow_env(local_stack.endpoint_url, local_stack.env())
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "CANARY_REPORTS_DIR": str(reports),
            "CANARY_MODEL_PACKAGE_GROUP": scheduler_group,
            "CANARY_REGISTRY_POLL_SECONDS": "2",
            "CANARY_REGISTRY_ROLLOUT_CONF": json.dumps(dict(one_stage)),
            "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "600",
            "AIRFLOW__DAG_PROCESSOR__DAG_FILE_PROCESSOR_TIMEOUT": "900",
        }
    )
    airflow = StandaloneAirflow(env, free_port(), log_path=home / "standalone.log")
    with airflow:
        yield Api(airflow.url, airflow.token())


def test_rollout_triggered_through_the_rest_api_promotes_and_crowns(
    airflow_api: Api, local_stack, seed_group, unique_name, one_stage
) -> None:
    group = seed_group(champion="champion", challenger="challenger")
    conf = {
        **one_stage,
        "endpoint_name": f"rest-{unique_name}",
        "champion_source": group.packages["champion"],
        "challenger_source": group.packages["challenger"],
    }
    airflow_api.wait_for_dag(ROLLOUT_DAG)
    run_id = f"rest-{unique_name}"
    created = airflow_api.call(
        "POST",
        f"dags/{ROLLOUT_DAG}/dagRuns",
        {"dag_run_id": run_id, "logical_date": None, "conf": conf},
    )
    assert created["state"] in {DagRunState.QUEUED, DagRunState.RUNNING}

    run = airflow_api.wait_for_run(ROLLOUT_DAG, run_id)

    states = airflow_api.task_states(ROLLOUT_DAG, run_id)
    assert run["state"] == DagRunState.SUCCESS, states
    assert (
        states[PROMOTE] == TaskInstanceState.SUCCESS
        and states[ROLLBACK] == TaskInstanceState.SKIPPED
    )
    promoted = airflow_api.xcom(ROLLOUT_DAG, run_id, PROMOTE)
    assert RunOutcome(promoted["outcome"]) is RunOutcome.PROMOTED
    record = airflow_api.xcom(ROLLOUT_DAG, run_id, UPDATE_REGISTRY)
    assert record["demoted"] == [group.packages["champion"]]
    sm = local_stack.client("sagemaker")
    assert reg.find_champion(sm, group.name) == group.packages["challenger"]


def test_registry_approval_starts_the_rollout_through_the_watcher(
    airflow_api: Api, local_stack, seed_group, scheduler_group: str
) -> None:
    """Approve a version: the triggerer's registry watcher, the asset-scheduled
    model_registry_rollout run, its claim and trigger, and the rollout itself, all for real."""
    airflow_api.wait_for_dag(REGISTRY_DAG)
    airflow_api.wait_for_dag(ROLLOUT_DAG)
    group = seed_group(champion="champion", name=scheduler_group)
    approved = seed_group(challenger="challenger", name=scheduler_group).packages["challenger"]
    sm = local_stack.client("sagemaker")
    version = sm.describe_model_package(ModelPackageName=approved)["ModelPackageVersion"]
    run_id = f"registry__{scheduler_group}-v{version}"

    run = airflow_api.wait_for_run(ROLLOUT_DAG, run_id)

    states = airflow_api.task_states(ROLLOUT_DAG, run_id)
    assert run["state"] == DagRunState.SUCCESS, states
    assert run["conf"]["challenger_source"] == approved
    assert run["conf"]["champion_source"] == group.packages["champion"]
    registry_runs = airflow_api.call("GET", f"dags/{REGISTRY_DAG}/dagRuns")["dag_runs"]
    assert [r["run_type"] for r in registry_runs] == ["asset_triggered"]
    assert run["conf"]["stages"] == [[50, 50]]  # CANARY_REGISTRY_ROLLOUT_CONF reached it
    outcome = airflow_api.xcom(ROLLOUT_DAG, run_id, UPDATE_REGISTRY)
    package = sm.describe_model_package(ModelPackageName=approved)
    assert package["CustomerMetadataProperties"][reg.ROLLOUT_KEY] == run_id
    if RunOutcome(outcome["outcome"]) is RunOutcome.PROMOTED:
        assert reg.find_champion(sm, scheduler_group) == approved
    else:  # the gate may keep the champion; then the registry says why
        assert package["ApprovalDescription"] == outcome["reason"]
