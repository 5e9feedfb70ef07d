"""Fixtures for DAG runs: Airflow wired to the session's local stack, runs with Airflow's own
runner (``dag.test``) in this process, and the metadata database's record of every run.

Airflow reads its home when first imported; the root conftest fixes one home per session before
any test module imports Airflow, so every run of the session shares one migrated database.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from canary.plan import CleanupPolicy
from canary.rollout import layout
from canary_airflow import ids
from canary_airflow.dev.local_airflow import (
    PROJECT,
    SQL_ALCHEMY_CONN,
    RunResult,
    airflow_env,
    ensure_database,
)
from canary_airflow.dev.postgres import LocalPostgres
from canary_airflow.dev.standalone import StandaloneAirflow
from local_sagemaker.stack import EmbeddedStack, free_port
from tests.e2e.scheduler import PARALLELISM, REGISTRY_ROLLOUT, TIMEOUT_CHECK_SECONDS, Api

BUCKET = "canary-e2e-tests"

#: Small, fast rollouts that still let the gate decide on real traffic. One stage is enough
#: where a test is about wiring rather than the stage sequence; the p99 ceiling is loose because
#: a busy 2-core box is slow, not the challenger (the latency guardrail has its own tests). No
#: shadow stage: the tests about it ask for it (it is the form's and the demo's default).
FAST_ROLLOUT = {
    "bucket": BUCKET,
    "shadow": False,
    "gate_poke_interval_seconds": 1,
    "lock_poll_seconds": 1,
    "traffic_chunk_size": 500,
    "gate_max_p99_latency_ms": 5000.0,
    "cleanup": CleanupPolicy.DELETE_ALL.value,
}
ONE_STAGE = {**FAST_ROLLOUT, "stages": [[50, 50]]}


@pytest.fixture(scope="session")
def fast_rollout() -> Mapping[str, Any]:
    """Rollout fields for tests: small stages, quick gate looks, nothing left behind."""
    return MappingProxyType(FAST_ROLLOUT)


@pytest.fixture(scope="session")
def one_stage() -> Mapping[str, Any]:
    """:data:`FAST_ROLLOUT` with a single 50/50 stage, for tests about wiring."""
    return MappingProxyType(ONE_STAGE)


@pytest.fixture(scope="session")
def airflow_local(local_stack: EmbeddedStack) -> dict[str, str]:
    """Airflow's environment for this session: migrated database, AWS connection to the stack."""
    env = airflow_env(local_stack)
    os.environ.update(env)
    ensure_database(env)
    return env


@pytest.fixture(scope="session")
def run_dag(airflow_local: dict[str, str]) -> Callable[..., RunResult]:
    """:func:`canary_airflow.dev.local_airflow.run_dag`, once Airflow is wired to the stack."""
    from canary_airflow.dev.local_airflow import run_dag

    return run_dag


#: A rollout of the DAG by Airflow's runner: ``rollout(endpoint_name, **plan fields)``.
Rollout = Callable[..., RunResult]


@pytest.fixture
def rollout(run_dag) -> Rollout:
    def run(endpoint: str, **conf: Any) -> RunResult:
        return run_dag(ids.ROLLOUT_DAG, {"endpoint_name": endpoint, **conf})

    return run


@pytest.fixture(scope="session")
def dag_runs(airflow_local: dict[str, str]) -> Callable[[str], list[dict[str, Any]]]:
    """Every run of one DAG in the metadata database: run id, state and conf."""

    def runs(dag_id: str) -> list[dict[str, Any]]:
        from airflow.models import DagRun
        from airflow.utils.session import create_session

        with create_session() as session:
            return [
                {"run_id": r.run_id, "state": str(r.state), "conf": r.conf}
                for r in session.query(DagRun).filter_by(dag_id=dag_id)
            ]

    return runs


CHROMIUM = "/usr/bin/chromium"  # Debian's, installed by .ci/run; playwright downloads nothing
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
SCREENSHOTS = PROJECT / "reports" / "screenshots"  # kept after the run for people to look at


class Browser:
    """A real headless Chromium with a fresh profile, driven by playwright: log in as a person
    would, open pages, keep screenshots."""

    def __init__(self, context: Any) -> None:
        self.context = context

    def login(self, base_url: str, username: str, password: str) -> Any:
        """Through Airflow's own login page; returns the page, now on the UI's home."""
        page = self.context.new_page()
        page.goto(f"{base_url}/")
        page.wait_for_url("**/auth/login**")
        page.fill("input[name=username]", username)
        page.fill("input[name=password]", password)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{base_url}/")
        return page

    @staticmethod
    def screenshot(page: Any, name: str) -> Path:
        """Save what the page shows under ``reports/screenshots/<name>.png``."""
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One Chromium per test file (its profile, and so its login cookie, is shared). Not per
    session: playwright's sync API keeps an asyncio loop running in this thread while it lives,
    and a later file on the same worker that calls ``asyncio.run`` would fail."""
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            tempfile.mkdtemp(prefix="canary-chromium-"),
            executable_path=CHROMIUM,
            args=list(CHROMIUM_FLAGS),
            headless=True,
            viewport={"width": 1400, "height": 900},
        )
        context.set_default_timeout(60_000)
        yield Browser(context)
        context.close()


# -- the real scheduler (canary_airflow.dev.standalone) on PostgreSQL ----------------------------


@pytest.fixture(scope="module")
def scheduler_group(local_stack) -> str:
    """The group the standalone's registry watcher polls (unique to each standalone)."""
    import uuid

    return f"sched-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def postgres() -> Iterator[LocalPostgres]:
    """Airflow's metadata database: Debian's PostgreSQL in a throwaway cluster on loopback."""
    cluster = Path(tempfile.mkdtemp(prefix="canary-pg-"))
    cluster.chmod(0o755)  # the server runs as the postgres user, which must reach its data
    with LocalPostgres(cluster / "data", free_port()) as server:
        yield server
    shutil.rmtree(cluster, ignore_errors=True)


# Module scope, like the browser: a standalone Airflow (scheduler, dag processor, triggerer, API
# server) and its PostgreSQL keep both cores busy while they live, so they stop with the file
# that needs them instead of idling through the rest of the worker's files.
@pytest.fixture(scope="module")
def airflow_api(
    local_stack,
    tmp_path_factory: pytest.TempPathFactory,
    scheduler_group: str,
    one_stage,
    postgres: LocalPostgres,
) -> Iterator[Api]:
    home = tmp_path_factory.mktemp("standalone_home")
    reports = tmp_path_factory.mktemp("standalone_reports")
    env = airflow_env(local_stack)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            layout.REPORTS_DIR_ENV: str(reports),
            "CANARY_MODEL_PACKAGE_GROUP": scheduler_group,
            "CANARY_REGISTRY_POLL_SECONDS": "2",
            "CANARY_REGISTRY_ROLLOUT_CONF": json.dumps(REGISTRY_ROLLOUT | dict(one_stage)),
            "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "600",
            SQL_ALCHEMY_CONN: postgres.url,
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": str(PARALLELISM),
            "AIRFLOW__SCHEDULER__TRIGGER_TIMEOUT_CHECK_INTERVAL": str(TIMEOUT_CHECK_SECONDS),
            "AIRFLOW__DAG_PROCESSOR__DAG_FILE_PROCESSOR_TIMEOUT": "900",
        }
    )
    log = home / "standalone.log"
    airflow = StandaloneAirflow(env, free_port(), log_path=log)
    with airflow:
        yield Api(airflow.url, airflow.token(), airflow.admin_password(), log)
