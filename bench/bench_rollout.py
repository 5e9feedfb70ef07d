"""Orchestration speed: the demo's rollout with Airflow's runner, with the real scheduler, and
against the local stack's AWS profile.

In one run the same plan (the demo's shadow stage and three stages, ``delete_all``, a loose p99
ceiling so a busy box changes no verdict) is rolled out three times: with ``dag.test`` in this
process (what ``make demo`` does) on the instant stack; the same on a second stack under the
``aws`` profile (default time scale 0.1: a 4-minute update takes 24 s, CloudWatch shows a 6 s
period 9 s late); and triggered over the REST API of Airflow's own components
(``canary_airflow.dev.standalone``: scheduler, LocalExecutor, triggerer) on the instant stack.
Each wall time runs from the start of the run to its end (Airflow's start-up is reported apart).
Time inside tasks is what the rollout waits on (the stack, replayed traffic, the gate, and under
the profile AWS's own changes and CloudWatch's lag); the rest is Airflow's overhead (scheduling,
task start-up, imports in each task process).

Prints one JSON line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

PLAN = {"cleanup": "delete_all", "gate_max_p99_latency_ms": 5000.0}
CHILD = "BENCH_ROLLOUT_CHILD"  # Airflow reads its home once per process: measure in a fresh one
FINISHED = {"success", "failed"}
AWS_SCALE = 0.1


def _api(base: str, token: str, method: str, path: str, body: Any = None) -> Any:
    request = urllib.request.Request(
        f"{base}/api/v2/{path}",
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method=method,
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read() or b"null")


def with_runner(stack: Any, home: Path, endpoint: str) -> dict[str, float]:
    from canary_airflow.dev.local_airflow import airflow_env, ensure_database

    env = {**airflow_env(stack), "AIRFLOW_HOME": str(home)}
    os.environ.update(env)  # the AWS connection is read at run time: the second run's is its own
    ensure_database(env)
    from canary_airflow.dev.local_airflow import run_dag
    from canary_airflow.ids import ROLLOUT_DAG

    result = run_dag(ROLLOUT_DAG, {**PLAN, "endpoint_name": endpoint})
    return {
        "wall": result.wall_seconds,
        "tasks": result.task_seconds,
        "state": result.state,
        "decided_on": decided_on(result),
    }


def decided_on(result: Any) -> dict[str, int | None]:
    """On how many requests the shadow stage (pairs) and the 50/50 stage decided in this run,
    and the most each could have needed (the shadow's at the variance it saw)."""
    from canary_airflow import ids

    shadow, first = result.xcom(ids.SHADOW_GATE) or {}, result.xcom(ids.gate_task(1)) or {}
    look = first.get("look") or {}
    planned = (first.get("design") or {}).get("max_requests") or {}
    paired = shadow.get("paired") or {}
    most_pairs = paired.get("n_pairs_for_last_look_now")
    return {
        "shadow_pairs": paired.get("n_pairs"),
        "stage_1_requests": look.get("n_champion", 0) + look.get("n_challenger", 0) or None,
        "shadow_most_pairs": round(most_pairs) if most_pairs else None,
        "stage_1_most_requests": planned.get("total"),
    }


def with_scheduler(stack: Any, home: Path) -> dict[str, Any]:
    from canary_airflow.dev.local_airflow import airflow_env
    from canary_airflow.dev.standalone import StandaloneAirflow
    from canary_airflow.ids import ROLLOUT_DAG
    from local_sagemaker.stack import free_port

    env = {**airflow_env(stack), "AIRFLOW_HOME": str(home)}
    started = time.perf_counter()
    with StandaloneAirflow(env, free_port(), log_path=home / "standalone.log") as airflow:
        token = airflow.token()
        call = lambda method, path, body=None: _api(airflow.url, token, method, path, body)  # noqa: E731
        while True:  # until the dag-processor has parsed it
            try:
                call("PATCH", f"dags/{ROLLOUT_DAG}", {"is_paused": False})
                break
            except urllib.error.HTTPError:
                time.sleep(2)
        ready = time.perf_counter() - started
        run = {"dag_run_id": "bench-scheduler", "logical_date": None}
        begun = time.perf_counter()
        conf = {**PLAN, "endpoint_name": "bench-scheduler"}
        call("POST", f"dags/{ROLLOUT_DAG}/dagRuns", {**run, "conf": conf})
        path = f"dags/{ROLLOUT_DAG}/dagRuns/bench-scheduler"
        while (state := call("GET", path)["state"]) not in FINISHED:
            time.sleep(1)
        wall = time.perf_counter() - begun
        listed = call("GET", f"{path}/taskInstances?limit=100")["task_instances"]
        tasks = sum(ti["duration"] or 0.0 for ti in listed)
    return {"wall": wall, "tasks": tasks, "state": state, "start_up": ready}


def main() -> None:
    from canary.rollout import layout
    from canary_airflow.dev.local_airflow import airflow_output_to
    from local_sagemaker.profile import aws_env
    from local_sagemaker.stack import EmbeddedStack

    scratch = Path(tempfile.mkdtemp(prefix="bench-rollout-"))
    os.environ[layout.REPORTS_DIR_ENV] = str(scratch / "reports")
    with (
        airflow_output_to(scratch / "airflow.log") as terminal,  # one JSON line on the screen
        EmbeddedStack(log_path=scratch / "stack.log") as stack,
        EmbeddedStack(
            log_path=scratch / "aws-stack.log", profile_env=aws_env(AWS_SCALE)
        ) as aws_stack,
    ):
        runner = with_runner(stack, scratch / "runner", "bench-runner")
        aws = with_runner(aws_stack, scratch / "runner", "bench-aws")
        scheduler = with_scheduler(stack, scratch / "scheduler")
        print(json.dumps(figures(runner, scheduler, aws)), flush=True, file=terminal)


def figures(runner: dict[str, Any], scheduler: dict[str, Any], aws: dict[str, Any]) -> dict:
    return {
        "bench": "rollout",
        "plan": "demo: shadow, then 3 stages 50/50, 25/75, 0/100; delete_all",
        "runner_wall_s": round(runner["wall"], 1),
        "scheduler_wall_s": round(scheduler["wall"], 1),
        "aws_profile_wall_s": round(aws["wall"], 1),
        "scheduler_over_runner": round(scheduler["wall"] / runner["wall"], 2),
        "aws_profile_over_instant": round(aws["wall"] / runner["wall"], 2),
        "runner_inside_tasks_share": round(runner["tasks"] / runner["wall"], 2),
        "scheduler_inside_tasks_share": round(scheduler["tasks"] / scheduler["wall"], 2),
        "aws_profile_inside_tasks_share": round(aws["tasks"] / aws["wall"], 2),
        # what the profile's AWS adds inside tasks: its state changes and CloudWatch's lag
        "aws_profile_waiting_on_aws_s": round(aws["tasks"] - runner["tasks"], 1),
        "aws_time_scale": AWS_SCALE,
        "scheduler_start_up_s": round(scheduler["start_up"], 1),
        "states": [runner["state"], scheduler["state"], aws["state"]],
        # the shadow stage against the 50/50 stage of the same run (issue 13)
        "decided_on": {"runner": runner["decided_on"], "aws_profile": aws["decided_on"]},
        "cpus": os.cpu_count(),
    }


if __name__ == "__main__":
    if os.environ.get(CHILD):
        main()
    else:
        subprocess.run([sys.executable, __file__], env={**os.environ, CHILD: "1"}, check=True)
