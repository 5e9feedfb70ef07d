"""The plugin declares the app and its views, and every route of the app is behind Airflow's
authentication: no route without the rollout-reader dependency, anonymous calls refused."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from canary_airflow.dashboard import URL_PREFIX
from canary_airflow.dashboard.app import app, require_rollout_reader

PLUGIN = Path(__file__).parents[3] / "plugins" / "canary_dashboard.py"


@pytest.fixture(scope="module")
def plugin() -> ModuleType:
    spec = importlib.util.spec_from_file_location("canary_dashboard", PLUGIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_plugin_mounts_the_app(plugin: ModuleType) -> None:
    cls = plugin.CanaryDashboardPlugin
    assert cls.name == "canary_dashboard"
    assert cls.fastapi_apps == [{"app": app, "url_prefix": URL_PREFIX, "name": "Canary rollouts"}]


def test_plugin_has_a_nav_entry_and_a_dag_run_tab(plugin: ModuleType) -> None:
    views = {view["destination"]: view for view in plugin.CanaryDashboardPlugin.external_views}
    assert views["nav"]["href"] == f"{URL_PREFIX}/"
    assert views["nav"]["name"] == "Canary rollouts"
    # Airflow fills {RUN_ID} and {DAG_ID}; the tab shows on every DAG, the page tells them apart
    assert views["dag_run"]["href"] == f"{URL_PREFIX}/runs/{{RUN_ID}}?dag_id={{DAG_ID}}"
    routes = [view["url_route"] for view in views.values()]
    assert all(routes) and len(set(routes)) == len(routes)  # the UI shows only routed views


def test_every_route_requires_the_rollout_reader() -> None:
    routes = [route for route in app.routes]
    assert routes and all(isinstance(route, APIRoute) for route in routes)  # no open docs
    for route in routes:
        calls = [dependency.call for dependency in route.dependant.dependencies]
        assert require_rollout_reader in calls, route.path


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/api/rollouts",
        "/api/rollouts/r1",
        "/runs/r1",
        "/runs/r1/report/report.html",
        "/static/dashboard.css",
    ],
)
def test_anonymous_calls_are_refused(path: str) -> None:
    with TestClient(app) as client:
        response = client.get(path, headers={"Accept": "application/json"})
    assert response.status_code == 401
    assert response.json() == {"detail": "Not authenticated"}


@pytest.fixture(scope="module")
def auth_manager() -> None:
    """Airflow's configured auth manager, as the API server initialises it at start-up."""
    from airflow.api_fastapi.app import init_auth_manager

    init_auth_manager()


@pytest.mark.usefixtures("auth_manager")
def test_an_invalid_token_is_forbidden() -> None:
    with TestClient(app) as client:
        response = client.get("/api/rollouts", headers={"Authorization": "Bearer not-a-jwt"})
    assert response.status_code == 403


@pytest.mark.usefixtures("auth_manager")
def test_a_browser_that_is_not_logged_in_goes_to_the_login_page() -> None:
    with TestClient(app, follow_redirects=False) as client:
        response = client.get("/runs/r1", headers={"Accept": "text/html,*/*"})
    assert response.status_code == 303
    login = urlsplit(response.headers["location"])
    assert login.path.startswith("/auth/") and "login" in login.path
    assert parse_qs(login.query)["next"] == ["/runs/r1"]
