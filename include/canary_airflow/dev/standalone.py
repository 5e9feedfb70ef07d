"""``make airflow``: Airflow (scheduler, triggerer, dag-processor, API server) on this machine,
wired to the embedded local stack, so rollouts can be started from the trigger form.

    python -m canary_airflow.dev.standalone --port 8080 --aws-port 4566 [--db postgres]

Starts the local stack, then the four components ``airflow standalone`` would run (api-server,
scheduler, dag-processor, triggerer) as one process group, prints the UI's URL and where the
generated admin password is, and stops everything on Ctrl-C. Why not ``airflow standalone``
itself: it starts the scheduler's and triggerer's log servers, which bind every interface
(``host=""``, not configurable); with a LocalExecutor the API server reads task logs from disk,
so we run those components with ``--skip-serve-logs`` and the API server on 127.0.0.1 only.
:class:`StandaloneAirflow` is also what the real-scheduler tests start.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from canary_airflow.dev.local_airflow import (
    PROJECT,
    SQL_ALCHEMY_CONN,
    airflow_env,
    ensure_database,
    project_reports,
)
from local_sagemaker.stack import EmbeddedStack, free_port

HOST = "127.0.0.1"
PASSWORD_FILE = "simple_auth_manager_passwords.json.generated"
ADMIN = "admin"
DATABASES = ("sqlite", "postgres")


def standalone_env(base: dict[str, str], port: int) -> dict[str, str]:
    """``airflow_env`` plus what a multi-process Airflow on loopback needs."""
    bin_dir = str(Path(sys.executable).parent)
    return {
        **base,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "AIRFLOW__API__HOST": HOST,
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://{HOST}:{port}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://{HOST}:{port}/execution/",
        # one secret shared by every component of this launch, so their tokens verify
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN}:admin",
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": base.get(
            "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT", "300"
        ),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        # Airflow 3.3 can fail a deferred task whose trigger fires before the scheduler drains
        # the worker's defer-exit event (apache/airflow#72716, fix pending in #72767); the local
        # stack's triggers fire at once. Our deferrable operators are idempotent: a retry heals.
        "AIRFLOW__CORE__DEFAULT_TASK_RETRIES": base.get("AIRFLOW__CORE__DEFAULT_TASK_RETRIES", "2"),
        "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "5",
        "PYTHONUNBUFFERED": "1",
    }


COMPONENTS = (
    ("api-server", "--host", HOST),
    ("scheduler", "--skip-serve-logs"),
    ("dag-processor",),
    ("triggerer", "--skip-serve-logs"),
)


class StandaloneAirflow:
    """Airflow's components as child processes in our own process group; ``stop`` ends them all."""

    def __init__(
        self, env: dict[str, str], port: int, log_path: Path | None = None, ready_timeout=600.0
    ) -> None:
        self.port = port
        self.env = standalone_env(env, port)
        self.log_path = log_path
        self.ready_timeout = ready_timeout
        self._procs: list[subprocess.Popen] = []
        self._log: Any = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def home(self) -> Path:
        return Path(self.env["AIRFLOW_HOME"])

    @property
    def password_file(self) -> Path:
        return self.home / PASSWORD_FILE

    def start(self) -> StandaloneAirflow:
        """Migrate the database, start every component, wait until all report healthy."""
        ensure_database(self.env)
        self._log = open(self.log_path, "ab") if self.log_path else None  # noqa: SIM115
        airflow = str(Path(sys.executable).parent / "airflow")
        for command in COMPONENTS:
            extra = ["--port", str(self.port)] if command[0] == "api-server" else []
            self._procs.append(
                subprocess.Popen(
                    [airflow, *command, *extra],
                    env={**os.environ, **self.env},
                    stdout=self._log,
                    stderr=subprocess.STDOUT if self._log else None,
                    start_new_session=True,  # own group: stop() reaches its children too
                )
            )
        self._wait_healthy()
        return self

    @property
    def running(self) -> bool:
        return bool(self._procs) and all(proc.poll() is None for proc in self._procs)

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if not self.running:
                codes = [proc.poll() for proc in self._procs]
                self.stop()
                raise RuntimeError(f"an Airflow component exited early (exit codes {codes})")
            if self._healthy():
                return
            time.sleep(1.0)
        self.stop()
        raise RuntimeError(f"Airflow did not become healthy on {self.url} in time")

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/api/v2/monitor/health", timeout=5) as resp:
                health = json.loads(resp.read())
        except (OSError, ValueError):
            return False
        parts = ("metadatabase", "scheduler", "triggerer", "dag_processor")
        return all((health.get(part) or {}).get("status") == "healthy" for part in parts)

    def admin_password(self) -> str:
        """The admin password the simple auth manager generated (never printed by us)."""
        return json.loads(self.password_file.read_text())[ADMIN]

    def token(self) -> str:
        """A JWT for the REST API from the simple auth manager."""
        body = json.dumps({"username": ADMIN, "password": self.admin_password()}).encode()
        request = urllib.request.Request(
            f"{self.url}/auth/token",
            data=body,
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())["access_token"]

    def stop(self) -> None:
        """SIGTERM to every component (each shuts down cleanly on it), SIGKILL what lingers.

        Not SIGINT: a process started from a background shell inherits SIGINT as ignored, and
        not every component installs its own handler for it.
        """
        procs, self._procs = self._procs, []
        for proc in procs:
            _signal_group(proc, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=45)
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait()
            _signal_group(proc, signal.SIGKILL)  # stragglers of that group, if any
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> StandaloneAirflow:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)  # the group this module created with start_new_session


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8080, help="Airflow UI / API port")
    parser.add_argument("--aws-port", type=int, default=4566, help="local AWS stack port")
    parser.add_argument(
        "--db",
        choices=DATABASES,
        default=DATABASES[0],
        help="metadata database: SQLite under AIRFLOW_HOME, or a PostgreSQL server of our own "
        "(Debian's, data in AIRFLOW_HOME/postgres, loopback only)",
    )
    return parser.parse_args(argv)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def metadata_database(kind: str) -> Iterator[dict[str, str]]:
    """The environment that points Airflow at its metadata database, for as long as it runs."""
    if kind == "sqlite":
        yield {}
        return
    from canary_airflow.dev.postgres import LocalPostgres  # it imports this module

    home = Path(os.environ.get("AIRFLOW_HOME", PROJECT / ".airflow"))
    with LocalPostgres(home / "postgres", free_port()) as postgres:
        print(f"PostgreSQL: {postgres.url}", flush=True)
        yield {SQL_ALCHEMY_CONN: postgres.url}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Ctrl-C, and also SIGTERM or a SIGINT a background shell would ignore: stop everything
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    reports = project_reports()
    reports.mkdir(parents=True, exist_ok=True)
    with (
        EmbeddedStack(port=args.aws_port, log_path=reports / "local-stack.log") as stack,
        metadata_database(args.db) as database,
    ):
        env = airflow_env(stack) | database
        print(f"local AWS stack: {stack.endpoint_url}", flush=True)
        airflow = StandaloneAirflow(env, args.port, log_path=reports / "airflow.log")
        try:
            airflow.start()
            print(f"Airflow UI: {airflow.url}  (user: {ADMIN})", flush=True)
            print(f"admin password: in {airflow.password_file}", flush=True)
            print(f"logs: {reports / 'airflow.log'}; Ctrl-C stops everything", flush=True)
            while airflow.running:
                time.sleep(1.0)
        except KeyboardInterrupt:
            print("stopping Airflow and the local stack ...", flush=True)
        finally:
            airflow.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
