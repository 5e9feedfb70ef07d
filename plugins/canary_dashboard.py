"""The "Canary rollouts" UI plugin: the dashboard app, a nav entry and a tab on every DAG run.

Thin on purpose: the app, its routes and its security live in ``canary_airflow.dashboard``
(installed with the project, so importable here). Airflow 3.3 shows a ``dag_run`` external view
on every DAG's runs (there is no per-DAG filter) and fills ``{DAG_ID}`` and ``{RUN_ID}`` in its
href, so the tab passes the DAG id and the page says when a run is not a canary rollout.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from canary_airflow.dashboard import TITLE, URL_PREFIX
from canary_airflow.dashboard.app import app


class CanaryDashboardPlugin(AirflowPlugin):
    name = "canary_dashboard"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": TITLE}]  # noqa: RUF012
    external_views = [  # noqa: RUF012 - Airflow reads these class attributes
        {
            "name": TITLE,
            "href": f"{URL_PREFIX}/",
            "destination": "nav",
            "url_route": "canary-rollouts",
        },
        {
            "name": "Canary",
            "href": f"{URL_PREFIX}/runs/{{RUN_ID}}?dag_id={{DAG_ID}}",
            "destination": "dag_run",
            "url_route": "canary-run",
        },
    ]
