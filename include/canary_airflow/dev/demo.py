"""``make demo``: one whole canary rollout, for real, on this machine, with no AWS account.

Starts the embedded local stack, runs the ``sagemaker_canary_rollout`` DAG with Airflow's own
runner (``dag.test``) on two generated churn models (the challenger genuinely a little better),
prints a line per task and per gate look as they happen, then a one-screen summary and the
report's path, stops the stack, and exits 0 when the run succeeded. Airflow's own log (hundreds
of lines) goes to ``airflow.log`` next to the report.

    python -m canary_airflow.dev.demo                        # promote the better challenger
    python -m canary_airflow.dev.demo --challenger demo:worse  # watch the gate roll it back
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from canary_airflow import ids
from canary_airflow.dev.local_airflow import (
    RunResult,
    airflow_env,
    airflow_output_to,
    ensure_database,
    project_reports,
)
from canary_airflow.ids import ROLLOUT_DAG
from local_sagemaker.stack import EmbeddedStack


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--challenger", default="demo:challenger", help="challenger source")
    parser.add_argument("--champion", default="demo:champion", help="champion source")
    parser.add_argument(
        "--conf",
        default="{}",
        help="extra rollout fields as JSON, e.g. '{\"gate_margin\": 0.02}'",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    conf = {
        "champion_source": args.champion,
        "challenger_source": args.challenger,
        **json.loads(args.conf),
    }
    reports = project_reports()
    reports.mkdir(parents=True, exist_ok=True)
    log = reports / "airflow.log"
    print(f"rolling out {args.challenger} against {args.champion}; Airflow's log: {log}")
    result = run(conf, reports, log)
    report = result.xcom(ids.REPORT)
    print_outcome(result, report, _beside_report(log, report), time.perf_counter() - started)
    return 0 if result.state == "success" else 1


def run(conf: dict[str, Any], reports: Path, log: Path) -> RunResult:
    """The rollout on the local stack: progress lines to the terminal, Airflow's output to ``log``
    (this run's alone: a previous run's log went to its own folder or is replaced)."""
    log.unlink(missing_ok=True)
    with (
        airflow_output_to(log) as terminal,
        EmbeddedStack(log_path=reports / "local-stack.log") as stack,
    ):
        env = airflow_env(stack)
        os.environ.update(env)
        ensure_database(env)
        from canary_airflow.dev.local_airflow import run_dag  # Airflow reads its env on import

        return run_dag(ROLLOUT_DAG, conf, progress=terminal)


def print_outcome(result: RunResult, report: str | None, log: Path, total: float) -> None:
    """The run's summary (the report's ``summary.txt``), where its records are, and the time."""
    summary = Path(report).with_name("summary.txt") if report else None
    if summary and summary.is_file():
        print(f"\n{summary.read_text()}")
    print(f"DAG run {result.run_id}: {result.state}")
    failed = [task for task in result.tasks if result.state_of(task) == "failed"]
    if failed:
        print(f"failed tasks (their logs are in Airflow's log): {', '.join(failed)}")
    print(f"report: {report or 'not written'}")
    print(f"Airflow's log: {log}")
    overhead = total - result.task_seconds
    print(
        f"wall time {total:.1f} s: dag run {result.wall_seconds:.1f} s, of which inside tasks "
        f"{result.task_seconds:.1f} s; Airflow and start-up overhead {overhead:.1f} s"
    )


def _beside_report(log: Path, report: str | None) -> Path:
    """Move the run's Airflow log into the run's folder (the report's), with the run's other
    records; a run that wrote no report leaves it where it is."""
    if not report:
        return log
    return log.replace(Path(report).with_name(log.name))


if __name__ == "__main__":
    sys.exit(main())
