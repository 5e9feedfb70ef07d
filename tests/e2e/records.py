"""A finished run's decision records, as its gates left them in XCom."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from canary.rollout.outcome import RunOutcome
from canary_airflow import ids
from canary_airflow.dev.local_airflow import RunResult


def gate_records(result: RunResult, stages: int, shadow: bool = False) -> list[dict[str, Any]]:
    """Each canary stage's decision record (None for a stage that never ran), the shadow
    stage's first when the run had one."""
    first = ids.SHADOW_NUMBER if shadow else 1
    return [result.xcom(ids.gate_task(number)) for number in range(first, stages + 1)]


def assert_on_whole_periods(records: list[dict[str, Any]], period: float) -> None:
    """Each stage's evidence starts on a CloudWatch period boundary (no earlier count in it)."""
    for record in records:
        started = datetime.fromisoformat(record["stage_started_at"]).timestamp()
        assert abs(started / period - round(started / period)) < 1e-6, (started, period)


def outcome(result: RunResult, task_id: str) -> tuple[RunOutcome, str]:
    record = result.xcom(task_id)
    return RunOutcome(record["outcome"]), record["winner"]
