"""Run the project's DAGs with Airflow's own runner against the embedded local stack.

Shared by ``make demo``, ``make airflow`` and the end-to-end tests: the same environment (an
``aws_default`` connection pointing at the local stack, a SQLite metadata database under
``AIRFLOW_HOME``), the same way of running a DAG (``dag.test``), the same way of reading results;
and, for a person watching, progress lines on the terminal while Airflow's own log goes to a file.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import pluggy

from canary.plan import short_digest
from canary.rollout import layout
from canary.stage.progress import LOGGER as GATE_PROGRESS
from canary_airflow import ids
from local_sagemaker.stack import EmbeddedStack

PROJECT = Path(__file__).resolve().parents[3]
#: The provider's ``[aws] session_factory``, by name: importing it would import Airflow too early.
SESSION_FACTORY = "canary_airflow.aws_session.SharedLoaderSessionFactory"
SQL_ALCHEMY_CONN = "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"

#: Airflow's listener marker (``airflow.listeners.hookimpl``), made here because importing Airflow
#: reads its environment, and this module is imported before that is set (tests/e2e/conftest.py).
hookimpl = pluggy.HookimplMarker("airflow")

_MARKS = {"success": "+", "failed": "x"}  # any other state (skipped, upstream_failed): "-"


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
        # one botocore data loader per process, not per hook
        "AIRFLOW__AWS__SESSION_FACTORY": SESSION_FACTORY,
        layout.REPORTS_DIR_ENV: str(project_reports()),
    }


def project_reports() -> Path:
    """Where the local tools put reports and logs: the project's ``reports`` folder, unless
    ``CANARY_REPORTS_DIR`` says otherwise (the tests point it at a scratch folder)."""
    return layout.reports_dir(PROJECT / "reports")


def airflow_env(stack: EmbeddedStack) -> dict[str, str]:
    """:func:`airflow_settings` plus an ``aws_default`` connection to the local stack, with the
    CloudWatch period of the stack's profile."""
    stack_env = stack.env()
    extra = {
        "endpoint_url": stack.endpoint_url,
        "region_name": stack_env["AWS_DEFAULT_REGION"],
        ids.CLOUDWATCH_PERIOD_EXTRA: stack.profile.metrics_period,
    }
    connection = {"conn_type": "aws", "extra": extra}
    return {**stack_env, **airflow_settings(), "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(connection)}


def ensure_database(env: dict[str, str]) -> None:
    """Create or upgrade the metadata database once; a no-op when it is current.

    One marker per database (SQLite under the home, or the ``sql_alchemy_conn`` in ``env``),
    so switching a home between SQLite and PostgreSQL migrates the one not yet migrated.
    """
    database = env.get(SQL_ALCHEMY_CONN, "sqlite")
    digest = short_digest(database, 8)
    marker = Path(env["AIRFLOW_HOME"]) / f".migrated-{digest}"
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


def run_dag(
    dag_id: str,
    conf: dict[str, Any],
    logical_date: datetime | None = None,
    progress: TextIO | None = None,
) -> RunResult:
    """Run one DAG with ``dag.test`` in this process (the environment must already be set).

    ``logical_date`` places the run in time (the nightly DAG's "tonight"); default: now.
    ``progress``, if given, gets the run's :class:`RunProgress` lines as they happen.
    """
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    dag = bag.dags.get(dag_id)
    if dag is None:
        raise RuntimeError(f"DAG {dag_id!r} did not load: {bag.import_errors or 'no such DAG'}")
    started = time.perf_counter()
    dated = {"logical_date": logical_date} if logical_date else {}
    watch = RunProgress(progress) if progress else None
    with watch or nullcontext():
        dag_run = dag.test(run_conf=conf, **dated)
        if watch:
            watch.settled(dag_run.dag_id, dag_run.run_id)
    return collect(dag_run.dag_id, dag_run.run_id, time.perf_counter() - started)


class RunProgress:
    """One line per task instance as it ends and one per gate look, written to ``stream``.

    Tasks come from an Airflow listener (the hooks the task runner calls, in this process under
    ``dag.test``); looks from the gate's ``canary.progress`` logger, which still reaches Airflow's
    log too. Tasks the run settles without running them (skipped by a branch or a trigger rule,
    upstream failed) call no hook: :meth:`settled` finds them in the metadata database, before
    each task starts (so they show where they happened) and once the run is over.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.started: dict[str, float] = {}  # first start of each task instance that ran
        self.reported: set[str] = set()
        self.handler = logging.StreamHandler(stream)
        self.handler.setFormatter(logging.Formatter("%(message)s"))

    def __enter__(self) -> RunProgress:
        from airflow.sdk.listener import get_listener_manager

        get_listener_manager().add_listener(self)
        GATE_PROGRESS.addHandler(self.handler)
        return self

    def __exit__(self, *exc: object) -> None:
        from airflow.sdk.listener import get_listener_manager

        GATE_PROGRESS.removeHandler(self.handler)
        get_listener_manager().pm.unregister(self)

    @hookimpl
    def on_task_instance_running(self, previous_state: Any, task_instance: Any) -> None:
        self.settled(task_instance.dag_id, task_instance.run_id)
        # a rescheduled sensor runs once per poke: its time counts from the first
        started = time.monotonic()
        self.started.setdefault(_name(task_instance.task_id, task_instance.map_index), started)

    @hookimpl
    def on_task_instance_success(self, previous_state: Any, task_instance: Any) -> None:
        self._ended(task_instance)

    @hookimpl
    def on_task_instance_failed(self, previous_state: Any, task_instance: Any, error: Any) -> None:
        self._ended(task_instance)

    @hookimpl
    def on_task_instance_skipped(self, previous_state: Any, task_instance: Any) -> None:
        self._ended(task_instance)

    def settled(self, dag_id: str, run_id: str) -> None:
        """A line for each task instance of the run that finished without running, once."""
        from airflow.models import TaskInstance
        from airflow.utils.session import create_session
        from airflow.utils.state import State

        with create_session() as session:
            finished = session.query(TaskInstance).filter(
                TaskInstance.dag_id == dag_id,
                TaskInstance.run_id == run_id,
                TaskInstance.state.in_(State.finished),
            )
            for ti in finished.order_by(TaskInstance.end_date):
                name = _name(ti.task_id, ti.map_index)
                if name not in self.started:
                    self._write(name, str(ti.state), None)

    def _ended(self, ti: Any) -> None:
        name = _name(ti.task_id, ti.map_index)
        self._write(name, ti.state.value, time.monotonic() - self.started[name])

    def _write(self, name: str, state: str, seconds: float | None) -> None:
        """Each task instance once: a retried one only when it is finally done."""
        if name not in self.reported and state != "up_for_retry":
            self.reported.add(name)
            print(task_line(name, state, seconds), file=self.stream, flush=True)


def task_line(name: str, state: str, seconds: float | None) -> str:
    """``  + stage_1.set_weights            success     1.2 s``: aligned, so that a column of
    them reads like a table; plain ASCII, so it survives any terminal and log viewer. ``seconds``
    is None for a task that never ran."""
    took = "-" if seconds is None else f"{seconds:.1f} s"
    return f"  {_MARKS.get(state, '-')} {name:<30} {state:<8} {took:>8}"


@contextmanager
def airflow_output_to(path: Path) -> Iterator[TextIO]:
    """Send everything this process writes to stdout and stderr to ``path``; yield the terminal.

    Redirected at the file descriptors rather than by swapping ``sys.stdout``: Airflow's log
    handlers and structlog loggers hold on to the stream they were configured with, and
    subprocesses (``airflow db migrate``) inherit descriptors, not Python objects.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    terminal = os.fdopen(os.dup(1), "w", buffering=1)
    with path.open("a") as log, terminal:
        for fd in saved:
            os.dup2(log.fileno(), fd)
        try:
            yield terminal
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, original in saved.items():
                os.dup2(original, fd)
                os.close(original)


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
