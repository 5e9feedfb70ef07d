"""Gather one rollout run's record (requests, decisions, outcome) and write its report.

The report must work after any ending, including a failure halfway through: whatever the run
left in S3 is shown, and what it did not get to is simply absent.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from canary.models.evaluation import evaluate_variants
from canary.plan import RolloutPlan
from canary.replay import load_results
from canary.reporting.report import (
    RolloutSummary,
    invocations_from_results,
    summary_text,
    write_report,
)
from canary.rollout.layout import gates_prefix, replay_location, report_key
from canary.rollout.outcome import RunOutcome
from canary.stage.state import decision_of

INVOCATION_BUCKET = "5s"


def write_run_report(
    s3: Any,
    plan: RolloutPlan,
    run_key: str,
    outcome: RunOutcome,
    models: dict[str, str],
    out_dir: Path,
    rejected: str | None = None,
) -> Path:
    """Write ``report.html``, its charts and ``summary.txt`` to ``out_dir`` and copy them to S3.
    ``rejected``: why a person stopped the rollout, if one did."""
    summary = run_summary(s3, plan, run_key, outcome, models, rejected)
    path = write_report(summary, out_dir)
    (out_dir / "summary.txt").write_text(summary_text(summary), encoding="utf-8")
    for item in sorted(out_dir.iterdir()):
        if item.is_file():
            key = report_key(plan, run_key, item.name)
            s3.upload_file(str(item), plan.bucket, key)
    return path


def run_summary(
    s3: Any,
    plan: RolloutPlan,
    run_key: str,
    outcome: RunOutcome,
    models: dict[str, str],
    rejected: str | None = None,
) -> RolloutSummary:
    results = load_results(s3, replay_location(plan, run_key))
    decisions = decision_records(s3, plan, run_key)
    champion, challenger = plan.variants
    return RolloutSummary(
        run_id=run_key,
        endpoint_name=plan.endpoint_name,
        champion_variant=champion,
        challenger_variant=challenger,
        champion_model=models.get("champion", "not created"),
        challenger_model=models.get("challenger", "not created"),
        stages=[tuple(map(float, stage)) for stage in plan.stages],
        outcome=outcome,
        variant_results=evaluate_variants(results).table() if len(results) else pd.DataFrame(),
        invocations=invocations_from_results(results, INVOCATION_BUCKET)
        if len(results)
        else pd.DataFrame(columns=["timestamp", "variant", "invocations"]),
        decisions=decisions,
        shadow=plan.shadow,
        started_at=_time(results["timestamp"].min()) if len(results) else None,
        ended_at=datetime.now(UTC),
        rejected=rejected,
    )


def decision_records(s3: Any, plan: RolloutPlan, run_key: str) -> list[dict[str, Any]]:
    """Every decision record the run's gates wrote, oldest first."""
    records = []
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=plan.bucket, Prefix=gates_prefix(plan, run_key)):
        for item in page.get("Contents", []):
            if decision_of(item["Key"]) is not None:
                body = s3.get_object(Bucket=plan.bucket, Key=item["Key"])["Body"].read()
                records.append(json.loads(body))
    return sorted(records, key=lambda record: str(record.get("timestamp", "")))


def _time(value: Any) -> datetime | None:
    stamp = pd.to_datetime(value, utc=True)
    return None if pd.isna(stamp) else stamp.to_pydatetime()
