"""Parsing a DAG file imports no numeric stack.

Why it matters: the dag-processor parses every file again and again, and on Airflow 3 every
task process parses its DAG file before it runs. numpy, pandas, scipy and statsmodels cost
about a second of CPU to import; the tasks that need them import them when they run. A parse that
pulled them in (through a module-level import of the telemetry, once) made every task of a
rollout about a second slower on the real scheduler. Checked in a fresh interpreter, since this
one has imported them long ago.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from canary_airflow import ids

DAGS = Path(__file__).parents[3] / "dags"
HEAVY = ("numpy", "pandas", "scipy", "statsmodels", "sklearn", "xgboost", "matplotlib", "pyarrow")
PARSE = """
import json, sys
from airflow.models.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
print(json.dumps({"dags": sorted(bag.dags), "errors": list(bag.import_errors),
                  "heavy": sorted(m for m in sys.argv[2:] if m in sys.modules)}))
"""


@pytest.mark.parametrize("dag_id", [ids.ROLLOUT_DAG, ids.NIGHTLY_DAG, ids.REGISTRY_DAG])
def test_a_dag_file_parses_without_the_numeric_stack(dag_id: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PARSE, str(DAGS / f"{dag_id}.py"), *HEAVY],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    parsed = json.loads(done.stdout.strip().splitlines()[-1])
    assert parsed["dags"] == [dag_id] and parsed["errors"] == []
    assert parsed["heavy"] == [], f"parsing {dag_id} imports {parsed['heavy']}"
