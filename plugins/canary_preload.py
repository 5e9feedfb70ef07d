"""Preload the gate's numeric stack into Airflow's own processes: no UI, no routes.

Why: a gate sensor reschedules, so each of its pokes is a new task process, and the
LocalExecutor forks task processes from the scheduler, which imports every plugin. Importing
numpy, pandas, scipy and statsmodels here, once, lets every poke, replay and report start with
them instead of importing them again (about a second of CPU each). The DAG files themselves
import none of it (tests/integration/dags), so a parse stays light wherever no plugin ran
first: the dag-processor's, and a task's on an executor that does not fork from a scheduler.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

import canary.stage.gate  # noqa: F401 - the preload itself: the gate and its evidence


class CanaryTaskPreload(AirflowPlugin):
    name = "canary_task_preload"
