"""A PostgreSQL server of our own for Airflow's metadata database: Debian's binaries, a data
directory we choose, loopback only.

Used by the real-scheduler tests (a throwaway cluster per session) and by
``make airflow DB=postgres`` (a cluster kept under ``AIRFLOW_HOME``). PostgreSQL refuses to run
as root, so as root every command runs as the ``postgres`` user that Debian's package creates,
which then owns the data directory. Trust authentication is safe here only because the server
listens on 127.0.0.1 and its socket directory is private to that user.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from canary_airflow.dev.standalone import HOST

DEBIAN_BINARIES = Path("/usr/lib/postgresql")
SERVICE_USER = "postgres"
DATABASE = "airflow"


def binaries() -> Path:
    """The newest installed PostgreSQL's ``bin`` directory (``apt-get install postgresql``)."""
    found = sorted(DEBIAN_BINARIES.glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if not found:
        raise RuntimeError("PostgreSQL is not installed: apt-get install postgresql")
    return found[-1].parent


class LocalPostgres:
    """``initdb`` once, ``start`` on a loopback port, ``stop``; ``url`` is for SQLAlchemy."""

    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir, self.port = data_dir, port
        self.bin = binaries()
        self.as_root = os.geteuid() == 0

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://{SERVICE_USER}@{HOST}:{self.port}/{DATABASE}"

    def start(self) -> LocalPostgres:
        """Create the cluster if it is new, start it, create the database if it is missing."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.as_root:
            shutil.chown(self.data_dir, SERVICE_USER, SERVICE_USER)
        if not (self.data_dir / "PG_VERSION").is_file():
            self._run("initdb", "-D", str(self.data_dir), "-U", SERVICE_USER, "-A", "trust")
        options = f"-c listen_addresses={HOST} -p {self.port} -k {self.data_dir}"
        log = self.data_dir / "server.log"
        self._run("pg_ctl", "-D", str(self.data_dir), "-o", options, "-l", str(log), "-w", "start")
        exists = self._run(
            "psql", *self._client(), "-tAc", f"SELECT 1 FROM pg_database WHERE datname='{DATABASE}'"
        )
        if exists.strip() != "1":
            self._run("createdb", *self._client(), DATABASE)
        return self

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop", check=False)

    def __enter__(self) -> LocalPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _client(self) -> tuple[str, ...]:
        return ("-h", HOST, "-p", str(self.port), "-U", SERVICE_USER)

    def _run(self, program: str, *args: str, check: bool = True) -> str:
        command = [str(self.bin / program), *args]
        if self.as_root:
            command = ["runuser", "-u", SERVICE_USER, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, check=False, cwd="/")
        if check and done.returncode != 0:
            raise RuntimeError(f"{program} failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout
