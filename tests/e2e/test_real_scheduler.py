"""Airflow's own scheduler, triggerer, dag-processor and API server (``airflow standalone``) on
loopback, wired to the local stack: rollouts are started through the REST API (v2) and by a
registry approval (the AssetWatcher in the triggerer), approved by a person in a real Chromium
(the Required Actions page) and over the REST API, followed on the dashboard plugin, and judged
through the REST API."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow.utils.state import DagRunState, TaskInstanceState

from canary.experiment.gates.decision import Verdict
from canary.models import registry as reg
from canary.plan import ApprovalMode, CleanupPolicy
from canary.reporting.notification import Event
from canary.rollout.outcome import RunOutcome
from canary_airflow.dev.local_airflow import SQL_ALCHEMY_CONN, airflow_env
from canary_airflow.dev.postgres import LocalPostgres
from canary_airflow.dev.standalone import ADMIN, StandaloneAirflow
from canary_airflow.ids import (
    CLEANUP,
    LOCK_ENDPOINT,
    PROMOTE,
    REGISTRY_DAG,
    ROLLBACK,
    ROLLOUT_DAG,
    STAGE_ARTIFACTS,
    UPDATE_REGISTRY,
    approve_task,
    gate_task,
)
from local_sagemaker.stack import free_port
from tests.e2e.leftovers import assert_only_winner_left, serving

RUN_DEADLINE = 1800.0  # seconds; a bound, not a performance claim
TEARDOWN_ENDED = {TaskInstanceState.SUCCESS, TaskInstanceState.FAILED, TaskInstanceState.SKIPPED}
PARALLELISM = 8  # LocalExecutor slots: three rollouts at once, each with mapped replay tasks
#: Registry rollouts ask a person at every stage, and nobody answers: Reject by default.
REGISTRY_ROLLOUT = {"approval": ApprovalMode.EVERY_STAGE.value, "approval_timeout_minutes": 0.5}


class Api:
    """A small REST v2 client with the simple auth manager's JWT (and the admin's password, for
    the browser's login page)."""

    def __init__(self, base: str, token: str, password: str) -> None:
        self.base, self.token, self.password = base, token, password

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        return self.fetch(method, f"/api/v2/{path}", body)

    def fetch(
        self, method: str, path: str, body: dict[str, Any] | None = None, token: bool = True
    ) -> Any:
        """Any route of the API server (a plugin's too), as JSON; ``token=False``: anonymous."""
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(
            f"{self.base}{path}",
            data=json.dumps(body).encode() if body is not None else None,
            headers=headers,
            method=method,
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read() or b"null")

    def wait_for_task(self, dag_id: str, run_id: str, task_id: str, state: str) -> None:
        """Until the task instance is in ``state`` (or the run ended: then the test fails)."""
        end = time.monotonic() + RUN_DEADLINE
        while time.monotonic() < end:
            states = self.task_states(dag_id, run_id)
            if states.get(task_id) == state:
                return
            run = self.call("GET", f"dags/{dag_id}/dagRuns/{run_id}")
            assert run["state"] not in {DagRunState.SUCCESS, DagRunState.FAILED}, states
            time.sleep(2)
        raise AssertionError(f"{task_id} of {run_id} never reached {state}")

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

    def task(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        return self.call("GET", f"dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> str:
        path = f"dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}"
        content = self.call("GET", path)["content"]
        return json.dumps(content) if not isinstance(content, str) else content

    def xcom(self, dag_id: str, run_id: str, task_id: str) -> Any:
        path = f"dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value"
        return self.call("GET", path)["value"]


@pytest.fixture(scope="session")
def scheduler_group(local_stack) -> str:
    """The group the standalone's registry watcher polls (fixed per session, unique per run)."""
    import uuid

    return f"sched-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def postgres() -> Iterator[LocalPostgres]:
    """Airflow's metadata database: Debian's PostgreSQL in a throwaway cluster on loopback."""
    cluster = Path(tempfile.mkdtemp(prefix="canary-pg-"))
    cluster.chmod(0o755)  # the server runs as the postgres user, which must reach its data
    with LocalPostgres(cluster / "data", free_port()) as server:
        yield server
    shutil.rmtree(cluster, ignore_errors=True)


@pytest.fixture(scope="session")
def airflow_api(
    local_stack,
    tmp_path_factory: pytest.TempPathFactory,
    scheduler_group: str,
    one_stage,
    postgres: LocalPostgres,
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
            "CANARY_REGISTRY_ROLLOUT_CONF": json.dumps(REGISTRY_ROLLOUT | dict(one_stage)),
            "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "600",
            SQL_ALCHEMY_CONN: postgres.url,
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": str(PARALLELISM),
            "AIRFLOW__DAG_PROCESSOR__DAG_FILE_PROCESSOR_TIMEOUT": "900",
        }
    )
    airflow = StandaloneAirflow(env, free_port(), log_path=home / "standalone.log")
    with airflow:
        yield Api(airflow.url, airflow.token(), airflow.admin_password())


def test_people_approve_each_stage_and_follow_it_on_the_dashboard(
    airflow_api: Api, browser, local_stack, seed_group, unique_name, one_stage, sns_inbox
) -> None:
    """Triggered over REST; a person logs in through the real login page, sees the pending
    approval on the dashboard, approves stage 1 on the Required Actions page; stage 2 is
    approved over the REST API; the run promotes and crowns the package, every step is
    published to SNS, and the dashboard shows the finished rollout with its charts."""
    group = seed_group(champion="champion", challenger="challenger")
    conf = {
        **one_stage,
        "stages": [[50, 50], [25, 75]],
        "approval": ApprovalMode.EVERY_STAGE.value,
        "notify_topic_arn": sns_inbox.topic_arn,
        "endpoint_name": f"ui-{unique_name}",
        "champion_source": group.packages["champion"],
        "challenger_source": group.packages["challenger"],
    }
    airflow_api.wait_for_dag(ROLLOUT_DAG)
    run_id = f"ui-{unique_name}"
    created = airflow_api.call(
        "POST",
        f"dags/{ROLLOUT_DAG}/dagRuns",
        {"dag_run_id": run_id, "logical_date": None, "conf": conf},
    )
    assert created["state"] in {DagRunState.QUEUED, DagRunState.RUNNING}
    page = browser.login(airflow_api.base, ADMIN, airflow_api.password)

    # stage 1: the dashboard lists the pending approval; its link opens the Required Actions page
    airflow_api.wait_for_task(
        ROLLOUT_DAG, run_id, approve_task(1), TaskInstanceState.AWAITING_INPUT
    )
    [listed] = [r for r in rollouts(airflow_api) if r["run_id"] == run_id]
    assert listed["pending_approval"]["task_id"] == approve_task(1)
    page.goto(f"{airflow_api.base}/canary/")
    page.locator(f"[data-run-id='{run_id}'] a[href*='required_actions']").click()
    page.get_by_role("button", name="Approve", exact=True).wait_for()
    browser.screenshot(page, "required-action")
    page.get_by_role("button", name="Approve", exact=True).click()

    # stage 2: answered over the REST API
    airflow_api.wait_for_task(
        ROLLOUT_DAG, run_id, approve_task(2), TaskInstanceState.AWAITING_INPUT
    )
    hitl = f"dags/{ROLLOUT_DAG}/dagRuns/{run_id}/taskInstances/{approve_task(2)}/-1/hitlDetails"
    airflow_api.call("PATCH", hitl, {"chosen_options": ["Approve"]})

    run = airflow_api.wait_for_run(ROLLOUT_DAG, run_id)
    states = airflow_api.task_states(ROLLOUT_DAG, run_id)
    assert run["state"] == DagRunState.SUCCESS, states
    assert (
        states[PROMOTE] == TaskInstanceState.SUCCESS
        and states[ROLLBACK] == TaskInstanceState.SKIPPED
    )
    promoted = airflow_api.xcom(ROLLOUT_DAG, run_id, PROMOTE)
    assert RunOutcome(promoted["outcome"]) is RunOutcome.PROMOTED
    answers = [airflow_api.xcom(ROLLOUT_DAG, run_id, approve_task(n)) for n in (1, 2)]
    assert [(a["needed"], a["approved"], a["by"]) for a in answers] == [(True, True, ADMIN)] * 2
    record = airflow_api.xcom(ROLLOUT_DAG, run_id, UPDATE_REGISTRY)
    assert record["demoted"] == [group.packages["champion"]]
    sm = local_stack.client("sagemaker")
    assert reg.find_champion(sm, group.name) == group.packages["challenger"]
    events = [(Event(m["event"]), m["body"]["run_id"]) for m in sns_inbox.messages()]
    assert [event for event, _ in events] == [
        Event.STAGE_VERDICT,
        Event.APPROVAL_REQUESTED,
        Event.STAGE_VERDICT,
        Event.APPROVAL_REQUESTED,
        Event.OUTCOME,
    ]
    assert {run for _, run in events} == {run_id}

    # the dashboard: the finished rollout's row, then its page with the three charts
    [finished] = [r for r in rollouts(airflow_api) if r["run_id"] == run_id]
    assert RunOutcome(finished["outcome"]) is RunOutcome.PROMOTED
    assert finished["pending_approval"] is None
    assert Verdict(finished["last_verdict"]["verdict"]) is Verdict.PROMOTE
    page.goto(f"{airflow_api.base}/canary/")
    page.locator(f"[data-run-id='{run_id}']").wait_for()
    browser.screenshot(page, "dashboard")
    page.locator(f"[data-run-id='{run_id}'] a[href*='/canary/runs/']").first.click()
    for chart in ("weights", "gate", "variants"):
        page.locator(f"[data-chart='{chart}']").first.wait_for()
    browser.screenshot(page, "dashboard-run")
    detail = airflow_api.fetch("GET", f"/canary/api/rollouts/{run_id}")
    assert [Verdict(s["decision"]["verdict"]) for s in detail["stages"]] == [Verdict.PROMOTE] * 2


def rollouts(api: Api) -> list[dict[str, Any]]:
    return api.fetch("GET", "/canary/api/rollouts")


@pytest.mark.parametrize("path", ["/canary/api/rollouts", "/canary/", "/canary/runs/any"])
def test_the_dashboard_refuses_anonymous_calls(airflow_api: Api, path: str) -> None:
    with pytest.raises(urllib.error.HTTPError) as refused:
        airflow_api.fetch("GET", path, token=False)
    assert refused.value.code in {401, 403}


def test_registry_approval_starts_the_rollout_through_the_watcher(
    airflow_api: Api, local_stack, seed_group, scheduler_group: str
) -> None:
    """Approve a version: the triggerer's registry watcher, the asset-scheduled
    model_registry_rollout run, its claim and trigger, and the rollout itself, all for real.
    Its plan asks a person to approve the promotion and nobody answers: the scheduler's timeout
    answers Reject, the rollout rolls back, and the registry says why."""
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
    gate = airflow_api.xcom(ROLLOUT_DAG, run_id, gate_task(1))
    assert Verdict(gate["verdict"]) is Verdict.PROMOTE  # the better challenger passed its gate
    unanswered = airflow_api.xcom(ROLLOUT_DAG, run_id, approve_task(1))
    assert (unanswered["needed"], unanswered["approved"], unanswered["by"]) == (True, False, None)
    rolled_back = airflow_api.xcom(ROLLOUT_DAG, run_id, ROLLBACK)
    assert RunOutcome(rolled_back["outcome"]) is RunOutcome.ROLLED_BACK
    assert "nobody answered" in rolled_back["rejected"]
    package = sm.describe_model_package(ModelPackageName=approved)
    assert package["CustomerMetadataProperties"][reg.ROLLOUT_KEY] == run_id
    assert package["ModelApprovalStatus"] == reg.REJECTED
    assert package["ApprovalDescription"] == rolled_back["rejected"]
    assert reg.find_champion(sm, scheduler_group) == group.packages["champion"]


def test_rollouts_run_at_once_but_one_endpoint_has_one(
    airflow_api: Api, local_stack, unique_name, one_stage
) -> None:
    """Three rollouts triggered in the same second: two on one endpoint, one on another. The
    other endpoint's and exactly one of the pair run side by side; the second of the pair fails
    at lock_endpoint, naming the holder, before it touches anything."""
    airflow_api.wait_for_dag(ROLLOUT_DAG)
    shared, other = f"lock-{unique_name}", f"free-{unique_name}"
    runs = {f"{shared}-a": shared, f"{shared}-b": shared, f"{other}-c": other}
    for run_id, endpoint_name in runs.items():
        conf = {**one_stage, "endpoint_name": endpoint_name}
        body = {"dag_run_id": run_id, "logical_date": None, "conf": conf}
        airflow_api.call("POST", f"dags/{ROLLOUT_DAG}/dagRuns", body)

    ended = {run_id: airflow_api.wait_for_run(ROLLOUT_DAG, run_id)["state"] for run_id in runs}

    pair = [run_id for run_id in runs if runs[run_id] == shared]
    [winner] = [run_id for run_id in pair if ended[run_id] == DagRunState.SUCCESS]
    [loser] = [run_id for run_id in pair if run_id != winner]
    assert ended[loser] == DagRunState.FAILED and ended[f"{other}-c"] == DagRunState.SUCCESS
    refused = airflow_api.task_states(ROLLOUT_DAG, loser)
    assert refused[LOCK_ENDPOINT] == TaskInstanceState.FAILED
    assert refused[STAGE_ARTIFACTS] == TaskInstanceState.UPSTREAM_FAILED
    assert refused[CLEANUP] != TaskInstanceState.SUCCESS  # nothing of its own to clean up
    log = airflow_api.task_log(ROLLOUT_DAG, loser, LOCK_ENDPOINT)
    assert f"held by run {winner!r}" in log

    gates = [
        airflow_api.task(ROLLOUT_DAG, run_id, gate_task(1)) for run_id in (winner, f"{other}-c")
    ]
    first, second = sorted(gates, key=lambda ti: ti["start_date"])
    assert second["start_date"] < first["end_date"], "the two endpoints' gates overlapped"
    sm = local_stack.client("sagemaker")
    assert sm.list_endpoints(NameContains=shared)["Endpoints"] == []  # delete_all of the winner


def test_the_scheduler_keeps_its_records_in_postgresql(
    airflow_api: Api, postgres: LocalPostgres
) -> None:
    """The runs above are rows of our PostgreSQL server, not of a SQLite file."""
    import sqlalchemy

    airflow_api.wait_for_dag(ROLLOUT_DAG)
    engine = sqlalchemy.create_engine(postgres.url)
    with engine.connect() as db:
        dags = db.execute(sqlalchemy.text("SELECT dag_id FROM dag")).scalars().all()
        version = db.execute(sqlalchemy.text("SELECT version()")).scalar()
    engine.dispose()
    assert ROLLOUT_DAG in dags and version.startswith("PostgreSQL")


def kill_task_process(api: Api, run_id: str, task_id: str) -> None:
    """SIGKILL the process running a task instance (its title names the instance's id)."""
    ti_id = api.task(ROLLOUT_DAG, run_id, task_id)["id"]
    pids = subprocess.run(
        ["pgrep", "-f", f"airflow worker -- {ti_id}"], capture_output=True, text=True, check=False
    ).stdout.split()
    assert pids, f"no process runs {task_id}"
    for pid in pids:
        os.kill(int(pid), signal.SIGKILL)


def test_a_killed_gate_resumes_and_a_run_marked_failed_still_cleans_up(
    airflow_api: Api, local_stack, unique_name, one_stage
) -> None:
    """kill -9 of the gate's process mid-stage: its retry carries on from the looks in S3 and
    the stage promotes. Then a person marks the run failed over the REST API during stage 2:
    teardown still runs, the champion serves alone and nothing of the challenger is left."""
    airflow_api.wait_for_dag(ROLLOUT_DAG)
    endpoint_name = run_id = f"fault-{unique_name}"
    conf = {
        **one_stage,
        "stages": [[50, 50], [25, 75]],
        "cleanup": CleanupPolicy.KEEP_WINNER.value,
        "endpoint_name": endpoint_name,
        "traffic_chunk_size": 200,  # many short looks, so the kill lands mid-stage
    }
    body = {"dag_run_id": run_id, "logical_date": None, "conf": conf}
    airflow_api.call("POST", f"dags/{ROLLOUT_DAG}/dagRuns", body)

    airflow_api.wait_for_task(ROLLOUT_DAG, run_id, gate_task(1), TaskInstanceState.RUNNING)
    time.sleep(3)  # into the poke: it has replayed and looked at least once
    kill_task_process(airflow_api, run_id, gate_task(1))
    airflow_api.wait_for_task(ROLLOUT_DAG, run_id, gate_task(2), TaskInstanceState.RUNNING)
    gate = airflow_api.task(ROLLOUT_DAG, run_id, gate_task(1))
    assert gate["try_number"] >= 2 and gate["state"] == TaskInstanceState.SUCCESS
    assert (
        Verdict(airflow_api.xcom(ROLLOUT_DAG, run_id, gate_task(1))["verdict"]) is Verdict.PROMOTE
    )

    airflow_api.call("PATCH", f"dags/{ROLLOUT_DAG}/dagRuns/{run_id}", {"state": "failed"})
    deadline = time.monotonic() + RUN_DEADLINE
    while airflow_api.task_states(ROLLOUT_DAG, run_id)[CLEANUP] not in TEARDOWN_ENDED:
        assert time.monotonic() < deadline, "cleanup never ran"
        time.sleep(3)
    assert airflow_api.task_states(ROLLOUT_DAG, run_id)[CLEANUP] == TaskInstanceState.SUCCESS
    cleaned = airflow_api.xcom(ROLLOUT_DAG, run_id, CLEANUP)
    assert RunOutcome(cleaned["outcome"]) is RunOutcome.FAILED
    sm = local_stack.client("sagemaker")
    assert serving(sm, endpoint_name) == {"Champion": 1.0}
    assert_only_winner_left(sm, endpoint_name, "champion")
