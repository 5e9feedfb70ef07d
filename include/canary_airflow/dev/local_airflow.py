"""Run the project's DAGs with Airflow's own runner against the embedded local stack.

Shared by ``make demo``, ``make airflow`` and the end-to-end tests: the same environment (an
``aws_default`` connection pointing at the local stack, a SQLite metadata database under
``AIRFLOW_HOME``), the same way of running a DAG (``dag.test``), the same way of reading results.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[3]


def airflow_settings() -> dict[str, str]:
    """This project's Airflow settings. Airflow fixes some of them (the DAG bundle's folder) when
    its configuration first loads, so they must be in the environment before Airflow is imported.
    """
    home = os.environ.get("AIRFLOW_HOME", str(PROJECT / ".airflow"))
    return {
        "AIRFLOW_HOME": home,
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # a busy laptop can take longer than the 30 s default just to import the providers
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "300",
        "CANARY_REPORTS_DIR": os.environ.get("CANARY_REPORTS_DIR", str(PROJECT / "reports")),
    }


def airflow_env(endpoint_url: str, stack_env: dict[str, str]) -> dict[str, str]:
    """:func:`airflow_settings` plus an ``aws_default`` connection to the local stack."""
    connection = {
        "conn_type": "aws",
        "extra": {"endpoint_url": endpoint_url, "region_name": stack_env["AWS_DEFAULT_REGION"]},
    }
    return {**stack_env, **airflow_settings(), "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(connection)}


def ensure_database(env: dict[str, str]) -> None:
    """Create or upgrade the metadata database once; a no-op when it is current."""
    marker = Path(env["AIRFLOW_HOME"]) / ".migrated"
    if marker.is_file():
        return
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
        env={**os.environ, **env},
        check=True,
        stdout=subprocess.DEVNULL,
    )
    marker.touch()


@dataclass
class RunResult:
    """What one DAG run did: its state, each task's state and duration, and its XComs."""

    run_id: str
    state: str
    wall_seconds: float
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def task_seconds(self) -> float:
        """Time spent inside tasks: the work itself, as opposed to Airflow's own overhead."""
        return sum(task["seconds"] for task in self.tasks.values())

    def xcom(self, task_id: str, key: str = "return_value") -> Any:
        return self.tasks.get(task_id, {}).get("xcom", {}).get(key)

    def state_of(self, task_id: str) -> str | None:
        return self.tasks.get(task_id, {}).get("state")


def run_dag(dag_id: str, conf: dict[str, Any], logical_date: datetime | None = None) -> RunResult:
    """Run one DAG with ``dag.test`` in this process (the environment must already be set).

    ``logical_date`` places the run in time (the nightly DAG's "tonight"); default: now.
    """
    import time

    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    dag = bag.dags.get(dag_id)
    if dag is None:
        raise RuntimeError(f"DAG {dag_id!r} did not load: {bag.import_errors or 'no such DAG'}")
    started = time.perf_counter()
    dated = {"logical_date": logical_date} if logical_date else {}
    dag_run = dag.test(run_conf=conf, **dated)
    return collect(dag_run.dag_id, dag_run.run_id, time.perf_counter() - started)


def collect(dag_id: str, run_id: str, wall_seconds: float) -> RunResult:
    """Read a finished run's task states, durations and XComs from the metadata database."""
    from airflow.models import DagRun, TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        dag_run = session.query(DagRun).filter_by(dag_id=dag_id, run_id=run_id).one()
        result = RunResult(run_id, str(dag_run.state), wall_seconds)
        for ti in session.query(TaskInstance).filter_by(dag_id=dag_id, run_id=run_id):
            seconds = (ti.end_date - ti.start_date).total_seconds() if ti.end_date else 0.0
            entry = {"state": str(ti.state), "seconds": seconds, "xcom": {}}
            result.tasks[_name(ti.task_id, ti.map_index)] = entry
        rows = session.query(XComModel).filter_by(dag_id=dag_id, run_id=run_id)
        for row in rows:
            value = XComModel.deserialize_value(row)
            entry = result.tasks.setdefault(_name(row.task_id, row.map_index), {"xcom": {}})
            entry["xcom"][row.key] = value
    return result


def _name(task_id: str, map_index: int) -> str:
    """Mapped task instances are told apart as ``task_id[map_index]``."""
    return task_id if map_index < 0 else f"{task_id}[{map_index}]"
