"""``make airflow``: Airflow (scheduler, triggerer, dag-processor, API server) on this machine,
wired to the embedded local stack, so rollouts can be started from the trigger form.

    python -m canary_airflow.standalone --port 8080 --aws-port 4566

Starts the local stack, then ``airflow standalone`` with the API server bound to 127.0.0.1, prints
the UI's URL and where the generated admin password is, and stops both on Ctrl-C.
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
from pathlib import Path
from typing import Any

from canary_airflow.local_airflow import PROJECT, airflow_env, ensure_database
from local_sagemaker.stack import LocalStack

HOST = "127.0.0.1"
PASSWORD_FILE = "simple_auth_manager_passwords.json.generated"
ADMIN = "admin"


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
        "PYTHONUNBUFFERED": "1",
    }


class StandaloneAirflow:
    """``airflow standalone`` as a child process group; ``stop`` ends every process it spawned."""

    def __init__(
        self, env: dict[str, str], port: int, log_path: Path | None = None, ready_timeout=600.0
    ) -> None:
        self.port = port
        self.env = standalone_env(env, port)
        self.log_path = log_path
        self.ready_timeout = ready_timeout
        self._proc: subprocess.Popen | None = None
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
        ensure_database(self.env)
        self._log = open(self.log_path, "ab") if self.log_path else None  # noqa: SIM115
        out = self._log or None
        self._proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "airflow"), "standalone"],
            env={**os.environ, **self.env},
            stdout=out,
            stderr=subprocess.STDOUT if out else None,
            start_new_session=True,  # its own process group: stop() reaches every component
        )
        self._wait_healthy()
        return self

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(f"airflow standalone exited with {self._proc.returncode}")
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
        """The admin password ``airflow standalone`` generated (never printed by us)."""
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
        """Ctrl-C to standalone (it stops its components), then make sure the group is gone."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            _signal_group(proc, signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    _signal_group(proc, signal.SIGKILL)
                    proc.wait()
        if proc is not None:
            _signal_group(proc, signal.SIGKILL)  # stragglers of our own group, if any
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
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    reports = Path(os.environ.get("CANARY_REPORTS_DIR", PROJECT / "reports"))
    reports.mkdir(parents=True, exist_ok=True)
    with LocalStack(port=args.aws_port, log_path=reports / "local-stack.log") as stack:
        env = airflow_env(stack.endpoint_url, stack.env())
        print(f"local AWS stack: {stack.endpoint_url}", flush=True)
        airflow = StandaloneAirflow(env, args.port, log_path=reports / "airflow-standalone.log")
        try:
            airflow.start()
            print(f"Airflow UI: {airflow.url}  (user: {ADMIN})", flush=True)
            print(f"admin password: in {airflow.password_file}", flush=True)
            print(
                f"logs: {reports / 'airflow-standalone.log'}; Ctrl-C stops everything", flush=True
            )
            while airflow._proc is not None and airflow._proc.poll() is None:
                time.sleep(1.0)
        except KeyboardInterrupt:
            print("stopping Airflow and the local stack ...", flush=True)
        finally:
            airflow.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
