"""``make demo`` as a person runs it: a subprocess whose terminal shows one line per task and per
gate look, then the summary; Airflow's own log is in the run's folder, not on the screen."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from canary.rollout import layout
from canary.rollout.outcome import RunOutcome
from canary_airflow import ids


def test_demo_prints_progress_lines_and_keeps_airflows_log_aside(
    airflow_local: dict[str, str], tmp_path: Path, one_stage
) -> None:
    env = {**os.environ, **airflow_local, layout.REPORTS_DIR_ENV: str(tmp_path)}
    for stack_variable in ("AWS_ENDPOINT_URL", "AIRFLOW_CONN_AWS_DEFAULT"):
        env.pop(stack_variable, None)  # the demo starts its own local stack
    done = subprocess.run(
        [sys.executable, "-m", "canary_airflow.dev.demo", "--conf", json.dumps(dict(one_stage))],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    printed = dict(
        line.split(": ", 1) for line in lines if line.startswith(("report: ", "Airflow"))
    )
    report = json.loads(Path(printed["report"]).with_name("report.json").read_text())
    assert RunOutcome(report["outcome"]) is RunOutcome.PROMOTED

    looks = [line for line in lines if line.startswith("  stage 1 [50/50]  look ")]
    assert len(looks) == sum(1 for record in report["decisions"] if record["look"] is not None)
    tasks = [line.split()[1] for line in lines if line.startswith(("  + ", "  - ", "  x "))]
    for task_id in (ids.VALIDATE_PLAN, ids.gate_task(1), ids.approve_task(1), ids.CLEANUP):
        assert task_id in tasks
    assert not any("[DAG TEST]" in line or "INFO" in line for line in lines)

    airflow_log = Path(printed["Airflow's log"])
    assert airflow_log.parent == Path(printed["report"]).parent
    assert "[DAG TEST]" in airflow_log.read_text()
