"""The "Canary rollouts" dashboard: a FastAPI app the Airflow API server mounts (a UI plugin).

Rooms: ``records`` reads Airflow's own rows (DagRun, TaskInstance, XCom, HITL) and the run's S3
records into plain data; ``shaping`` turns that data into the JSON the API serves and the pages
show (pure, tested without a database); ``charts`` draws inline SVG; ``page`` renders HTML;
``app`` holds the routes, every one behind Airflow's own authentication.
"""

from __future__ import annotations

from typing import Final

TITLE: Final = "Canary rollouts"
URL_PREFIX: Final = "/canary"  # where the API server mounts the app (the plugin's url_prefix)
