"""A client of the real scheduler's REST API, for the tests that run Airflow's own components
(``canary_airflow.dev.standalone``): trigger, wait for a task or a run, read states, XComs and
logs, and kill a task's process as a crashed worker would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from airflow.utils.state import DagRunState, TaskInstanceState

from canary.plan import ApprovalMode
from canary_airflow.ids import ROLLOUT_DAG

RUN_DEADLINE = 600.0  # seconds; a bound, not a performance claim (below pytest's timeout)
PARK_DEADLINE = 300.0  # seconds for the scheduler to take a parked task's exit; a bound too
TEARDOWN_ENDED = {TaskInstanceState.SUCCESS, TaskInstanceState.FAILED, TaskInstanceState.SKIPPED}
PARALLELISM = 8  # LocalExecutor slots: three rollouts at once, each with mapped replay tasks
#: Registry rollouts ask a person at every stage, and nobody answers: Reject by default.
REGISTRY_ROLLOUT = {"approval": ApprovalMode.EVERY_STAGE.value, "approval_timeout_minutes": 0.2}
#: How often the scheduler answers timed-out HITL questions (Airflow's default: 15 s).
TIMEOUT_CHECK_SECONDS = 3
KILL_POLL_SECONDS = 0.02  # how often the kill helpers look for a task's process
TAKEN_UP = {TaskInstanceState.SCHEDULED, TaskInstanceState.QUEUED, TaskInstanceState.RUNNING}
#: A task in one of these states has no process of its first try to kill, and never will.
NO_FIRST_TRY = {
    *TEARDOWN_ENDED,
    TaskInstanceState.UPSTREAM_FAILED,
    TaskInstanceState.UP_FOR_RETRY,
    TaskInstanceState.REMOVED,
}


class Api:
    """A small REST v2 client with the simple auth manager's JWT (and the admin's password, for
    the browser's login page), and the components' combined log (``log``)."""

    def __init__(self, base: str, token: str, password: str, log: Path) -> None:
        self.base, self.token, self.password, self.log = base, token, password, log

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

    def wait_for_task(
        self, dag_id: str, run_id: str, task_id: str, state: str, poll: float = 2.0
    ) -> None:
        """Until the task instance is in ``state`` (or the run ended: then the test fails)."""
        end = time.monotonic() + RUN_DEADLINE
        while time.monotonic() < end:
            states = self.task_states(dag_id, run_id)
            if states.get(task_id) == state:
                return
            run = self.call("GET", f"dags/{dag_id}/dagRuns/{run_id}")
            assert run["state"] not in {DagRunState.SUCCESS, DagRunState.FAILED}, states
            time.sleep(poll)
        raise AssertionError(f"{task_id} of {run_id} never reached {state}")

    def wait_until_parked(self, dag_id: str, run_id: str, task_id: str) -> None:
        """Until a HITL task waits for a person AND the scheduler has taken its worker's exit.
        Airflow 3.3 fails a HITL task answered in between (the executor's late "success" meets
        a task already queued to resume: "finished with state success, but ... queued"), the
        same race as apache/airflow#72716 for deferrals; a person never answers that fast."""
        self.wait_for_task(dag_id, run_id, task_id, TaskInstanceState.AWAITING_INPUT)
        try_number = self.task(dag_id, run_id, task_id)["try_number"]
        event = (
            "Received executor event with state success for task instance TaskInstanceKey("
            f"dag_id={dag_id!r}, task_id={task_id!r}, run_id={run_id!r}, try_number={try_number},"
        ).encode()
        end = time.monotonic() + PARK_DEADLINE
        with self.log.open("rb") as log:
            seen = log.read()  # then only what the components wrote since
            while event not in seen:
                state = self.task(dag_id, run_id, task_id)["state"]
                assert state == TaskInstanceState.AWAITING_INPUT, (
                    f"{task_id} left its park: {state}"
                )
                assert time.monotonic() < end, f"the scheduler never logged {task_id}'s park"
                time.sleep(0.5)
                seen = seen[-len(event) :] + log.read()

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


def _task_pids(ti_id: str) -> list[str]:
    """The processes running one try of a task instance (their titles name its id)."""
    found = subprocess.run(
        ["pgrep", "-f", f"airflow worker -- {ti_id}"], capture_output=True, text=True, check=False
    )
    return found.stdout.split()


def _kill(pids: list[str]) -> None:
    for pid in pids:
        os.kill(int(pid), signal.SIGKILL)


def kill_task_process(api: Api, run_id: str, task_id: str) -> None:
    """SIGKILL the process running a task instance. A rescheduling sensor has none between
    two pokes: its next poke's process is waited for (PARK_DEADLINE), unless the task ends."""
    end = time.monotonic() + PARK_DEADLINE
    while not (pids := _task_pids((task := api.task(ROLLOUT_DAG, run_id, task_id))["id"])):
        assert task["state"] not in TEARDOWN_ENDED, f"{task_id} ended ({task['state']}) unkilled"
        assert time.monotonic() < end, f"no process ran {task_id} for {PARK_DEADLINE:.0f} s"
        time.sleep(KILL_POLL_SECONDS)
    _kill(pids)


def kill_first_try_at_start(api: Api, run_id: str, task_id: str) -> None:
    """SIGKILL a task's first try as soon as a process runs it, for a task too short to catch
    once it reports running (a weight shift on the instant stack ends within a second). Once
    the scheduler has taken the task up, its process is looked for every KILL_POLL_SECONDS: the
    process loads the DAG for about a second before it calls AWS, so the kill lands before or
    during the task's work. The first try's id is known before then; the title names it."""
    end = time.monotonic() + RUN_DEADLINE
    while (task := api.task(ROLLOUT_DAG, run_id, task_id))["state"] not in TAKEN_UP:
        assert task["state"] not in NO_FIRST_TRY and time.monotonic() < end, task
        time.sleep(0.1)
    assert task["try_number"] <= 1, task
    asked = time.monotonic()
    while not (pids := _task_pids(task["id"])):
        if time.monotonic() - asked > 1:  # fail plainly, not at the deadline, if it slipped by
            state = api.task(ROLLOUT_DAG, run_id, task_id)["state"]
            assert state not in NO_FIRST_TRY, f"{task_id} ended ({state}) before any kill"
            asked = time.monotonic()
        assert time.monotonic() < end, f"no process ever ran {task_id}"
        time.sleep(KILL_POLL_SECONDS)
    _kill(pids)
