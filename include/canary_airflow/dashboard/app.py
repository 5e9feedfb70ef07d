"""The dashboard's routes: a FastAPI app that Airflow's API server mounts at ``/canary``.

Security: the app itself depends on :data:`require_rollout_reader`, so every route (pages,
JSON, static files, report files) needs an authenticated Airflow user (the Bearer token, or the
UI's ``_token`` cookie) allowed to read the rollout DAG's runs; anonymous calls get 401, users
without access 403. The check uses ``get_auth_manager()``, which works from a mounted app (the
sub-app's ``request.app.state`` has no auth manager). A browser asking for a page without being
logged in is sent to Airflow's login page and back. No docs or OpenAPI routes: nothing open.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Final

from airflow.api_fastapi.app import API_ROOT_PATH, get_auth_manager
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.common.db.common import SessionDep
from airflow.api_fastapi.core_api.security import requires_access_dag
from fastapi import Depends, FastAPI, HTTPException, Query, Request, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException as StarletteHTTPException

from canary.rollout import layout
from canary_airflow import ids
from canary_airflow.dashboard import TITLE, page, records
from canary_airflow.dashboard.shaping import (
    Links,
    RunRecords,
    is_rollout,
    plan_of,
    rollout_detail,
    rollout_summary,
)

STATIC_DIR: Final = Path(__file__).parent / "static"
LINKS: Final = Links(root=API_ROOT_PATH or "/")
DEFAULT_LIMIT: Final = 50
Limit = Annotated[int, Query(ge=1, le=500, description="how many runs, newest first")]

require_rollout_reader = requires_access_dag(
    method="GET", access_entity=DagAccessEntity.RUN, param_dag_id=ids.ROLLOUT_DAG
)

app = FastAPI(
    title=TITLE,
    dependencies=[Depends(require_rollout_reader)],
    docs_url=None,
    redoc_url=None,
    openapi_url=None,
)


@app.exception_handler(StarletteHTTPException)
async def login_or_error(request: Request, error: StarletteHTTPException) -> Response:
    """A browser that is not logged in goes to the login page; every other caller gets the
    error as JSON."""
    if error.status_code == status.HTTP_401_UNAUTHORIZED and wants_html(request):
        login = get_auth_manager().get_url_login(next_url=request.url.path)
        return RedirectResponse(login, status_code=status.HTTP_303_SEE_OTHER)
    return await http_exception_handler(request, error)


def wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


# -- JSON ---------------------------------------------------------------------------------------
@app.get("/api/rollouts")
def list_rollouts(session: SessionDep, limit: Limit = DEFAULT_LIMIT) -> list[dict[str, Any]]:
    """The rollout DAG's runs, newest first, one summary each."""
    return [rollout_summary(run, LINKS) for run in _summaries(session, limit)]


@app.get("/api/rollouts/{run_id}")
def get_rollout(run_id: str, session: SessionDep) -> dict[str, Any]:
    """One rollout in full: stages, weight timeline, per-variant metrics, gate looks."""
    return rollout_detail(_run(session, run_id), LINKS)


# -- pages --------------------------------------------------------------------------------------
@app.get("/", response_class=HTMLResponse)
def rollouts_page(session: SessionDep, limit: Limit = DEFAULT_LIMIT) -> str:
    rows = [rollout_summary(run, LINKS) for run in _summaries(session, limit)]
    return page.rollouts_page(rows, LINKS)


@app.get("/runs/{run_id}", response_class=HTMLResponse)
def run_page(run_id: str, session: SessionDep, dag_id: str | None = None) -> Response:
    """One run's page; the DAG-run tab passes ``dag_id``, as it shows on every DAG's runs."""
    if not is_rollout(dag_id):
        text = f"{dag_id} is not the {ids.ROLLOUT_DAG} DAG: this run has no canary to show."
        return HTMLResponse(page.message_page("Not a canary rollout run", text, LINKS))
    try:
        run = _run(session, run_id)
    except HTTPException as missing:
        text = f"No run {run_id!r} of {ids.ROLLOUT_DAG}."
        body = page.message_page("No such rollout", text, LINKS)
        return HTMLResponse(body, status_code=missing.status_code)
    return HTMLResponse(page.run_page(rollout_detail(run, LINKS), LINKS))


@app.get("/runs/{run_id}/report/{name}")
def report_file(run_id: str, name: str, session: SessionDep) -> Response:
    """A file of the run's report (the HTML page, its charts, report.json), read from S3."""
    if name not in report_files():
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no report file {name!r}")
    plan = plan_of(_records(session, run_id))
    body = None
    if plan is not None:
        key = layout.report_key(plan, layout.run_key(run_id), name)
        try:
            body = records.read_bytes(records.s3_client(plan.region), plan.bucket, key)
        except records.S3_ERRORS as error:
            raise HTTPException(status.HTTP_502_BAD_GATEWAY, f"S3: {error}") from error
    if body is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"run {run_id!r} has no report yet")
    return Response(body, media_type=report_files()[name], headers=REPORT_HEADERS)


#: A report is read from the bucket its run's plan named, which the person who triggered the
#: run chose: served on Airflow's own origin, a planted page could run script as the viewer.
#: The report has no script; it may show only its own charts and inline styles.
REPORT_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; img-src 'self' data:; "
    "style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'self'",
    "X-Content-Type-Options": "nosniff",
}


@app.get("/static/{name}")
def static_file(name: str) -> Response:
    """The page's CSS and script, shipped in this package (behind the same check as the rest)."""
    media_type = page.STATIC_FILES.get(name)
    if media_type is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no static file {name!r}")
    return Response((STATIC_DIR / name).read_bytes(), media_type=media_type)


# -- helpers ------------------------------------------------------------------------------------
def report_files() -> dict[str, str]:
    """The report's files by name, with their media types."""
    from canary.reporting.report import CHART_FILES, DATA_FILE, PAGE_FILE  # pandas: lazily

    charts = dict.fromkeys(CHART_FILES.values(), "image/png")
    return {PAGE_FILE: "text/html", DATA_FILE: "application/json", **charts}


def _summaries(session: Session, limit: int) -> list[RunRecords]:
    return [records.with_live_gate(run) for run in records.rollout_runs(session, limit)]


def _records(session: Session, run_id: str) -> RunRecords:
    found = records.rollout_runs(session, limit=1, run_id=run_id)
    if not found:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no run {run_id!r} of {ids.ROLLOUT_DAG}")
    return found[0]


def _run(session: Session, run_id: str) -> RunRecords:
    return records.with_everything(_records(session, run_id))
