"""Fixtures for how rollouts start: Airflow wired to the session's local stack, DAG runs in a
subprocess, and a model package group seeded with real demo artifacts.

DAG runs use Airflow's own ``dag.test`` in a child process with its own ``AIRFLOW_HOME``
(a temp dir, migrated once per session): Airflow freezes its configuration on first import, and
other test modules of the same session may already have imported it with another home.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from typing import Any

import pytest

from canary_airflow.dev.local_airflow import airflow_env, ensure_database
from local_sagemaker.stack import EmbeddedStack

BUCKET = "canary-trigger-tests"
RUN_TIMEOUT = 1800  # a whole canary rollout on a busy 2-core CI box stays well under this

#: Small, fast rollouts that still let the gate decide on real traffic.
FAST_ROLLOUT = {
    "bucket": BUCKET,
    "gate_poke_interval_seconds": 1,
    "traffic_chunk_size": 500,
    "cleanup": "delete_all",
}


@pytest.fixture
def fast_rollout() -> dict[str, Any]:
    """Rollout fields for tests: small stages, quick gate looks, nothing left behind."""
    return dict(FAST_ROLLOUT)


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory: pytest.TempPathFactory, local_stack: EmbeddedStack) -> dict:
    """Environment of a child Airflow wired to the local stack, its database migrated."""
    home = tmp_path_factory.mktemp("airflow_home")
    reports = tmp_path_factory.mktemp("reports")
    saved = {key: os.environ.get(key) for key in ("AIRFLOW_HOME", "CANARY_REPORTS_DIR")}
    os.environ.update({"AIRFLOW_HOME": str(home), "CANARY_REPORTS_DIR": str(reports)})
    try:
        env = airflow_env(local_stack.endpoint_url, local_stack.env())
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
    env["AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT"] = "600"  # parsing is slow on a loaded box
    env["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
    ensure_database(env)
    return env


@dataclass
class DagRunOutcome:
    """A finished run as the metadata database recorded it."""

    dag_id: str
    run_id: str
    state: str
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=list)

    def state_of(self, task_id: str) -> str | None:
        return self.tasks.get(task_id, {}).get("state")

    def xcom(self, task_id: str, key: str = "return_value") -> Any:
        return self.tasks.get(task_id, {}).get("xcom", {}).get(key)


_RUNNER = textwrap.dedent(
    """
    import json, os, sys
    from datetime import datetime, timezone
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models import DagRun
    from airflow.utils.session import create_session
    from canary_airflow.dev.local_airflow import collect

    dag_id, conf, logical = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    assert not bag.import_errors, bag.import_errors
    dag = bag.get_dag(dag_id)
    kwargs = {"logical_date": datetime.fromisoformat(logical)} if logical else {}
    run = dag.test(run_conf=conf, **kwargs)
    result = collect(run.dag_id, run.run_id, 0.0)
    with create_session() as session:
        runs = [
            {"dag_id": r.dag_id, "run_id": r.run_id, "state": str(r.state), "conf": r.conf}
            for r in session.query(DagRun)
        ]
    out = {"run_id": result.run_id, "state": result.state, "tasks": result.tasks, "runs": runs}
    with open(sys.argv[4], "w") as fh:
        json.dump(out, fh, default=str)
    """
)


@pytest.fixture(scope="session")
def run_dag(airflow_home: dict, tmp_path_factory: pytest.TempPathFactory):
    """Run a DAG once with ``dag.test`` in a child process; returns a :class:`DagRunOutcome`."""
    folder = tmp_path_factory.mktemp("runs")

    def run(dag_id: str, conf: dict[str, Any], logical_date: str = "") -> DagRunOutcome:
        out = folder / f"{dag_id}-{len(list(folder.iterdir()))}.json"
        log = out.with_suffix(".log")
        with log.open("wb") as stream:
            proc = subprocess.run(
                [sys.executable, "-c", _RUNNER, dag_id, json.dumps(conf), logical_date, str(out)],
                env={**os.environ, **airflow_home},
                stdout=stream,
                stderr=subprocess.STDOUT,
                timeout=RUN_TIMEOUT,
                check=False,
            )
        if proc.returncode != 0 or not out.is_file():
            tail = log.read_text(errors="replace")[-4000:]
            raise AssertionError(f"{dag_id} runner exited {proc.returncode}:\n{tail}")
        data = json.loads(out.read_text())
        return DagRunOutcome(dag_id, data["run_id"], data["state"], data["tasks"], data["runs"])

    return run


@pytest.fixture(scope="session")
def airflow_local(local_stack: EmbeddedStack) -> dict[str, str]:
    """Airflow's environment for this session: migrated database, AWS connection to the stack."""
    env = airflow_env(local_stack.endpoint_url, local_stack.env())
    os.environ.update(env)
    ensure_database(env)
    return env
