"""Read a rollout run's records: Airflow's rows (DagRun, TaskInstance, XCom, HITL) and S3.

Airflow's metadata database is the source of truth for what a run did; S3 adds what a gate is
doing right now (its newest decision record and looks, before its XCom exists) and the report.
S3 is a bonus: any failure to reach it is logged and the page shows what Airflow has.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from functools import lru_cache
from typing import Any

from airflow.exceptions import AirflowException
from airflow.models import DagRun, TaskInstance
from airflow.models.hitl import HITLDetail
from airflow.models.xcom import XCOM_RETURN_KEY, XComModel
from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from sqlalchemy import select
from sqlalchemy.orm import Session

from canary.aws_errors import is_missing
from canary.plan import RolloutPlan, stage_index
from canary.rollout import layout
from canary.stage.state import DECISIONS, LOOKS, decision_of
from canary_airflow import ids
from canary_airflow.dashboard.shaping import (
    STAGE_NUMBERS,
    ApprovalRequest,
    RunRecords,
    StageFiles,
    TaskRecord,
    current_stage,
    plan_numbers,
    plan_of,
)
from canary_airflow.ids import DEFAULT_CONN_ID

log = logging.getLogger(__name__)

#: The tasks whose ``return_value`` the dashboard reads.
TASK_IDS: tuple[str, ...] = (
    ids.VALIDATE_PLAN,
    ids.PROMOTE,
    ids.ROLLBACK,
    ids.REPORT,
    ids.CLEANUP,
    *(
        ids.stage_task(number, task)
        for number in STAGE_NUMBERS
        for task in (ids.SET_WEIGHTS, ids.GATE, ids.APPROVE)
    ),
    ids.shadow_task(ids.ENTER_STAGE),  # the shadow stage's window
)
#: A page must not hang on S3: short timeouts, one retry.
S3_CONFIG = Config(connect_timeout=3, read_timeout=5, retries={"max_attempts": 2})
S3_ERRORS = (BotoCoreError, ClientError, AirflowException, ValueError)


# -- Airflow's records ----------------------------------------------------------------------------
def rollout_runs(session: Session, limit: int, run_id: str | None = None) -> list[RunRecords]:
    """The rollout DAG's runs, newest first (or just ``run_id``), with their tasks and XComs."""
    query = select(DagRun).where(DagRun.dag_id == ids.ROLLOUT_DAG)
    if run_id is not None:
        query = query.where(DagRun.run_id == run_id)
    runs = session.scalars(query.order_by(DagRun.run_after.desc(), DagRun.id.desc()).limit(limit))
    runs = list(runs)
    run_ids = [run.run_id for run in runs]
    xcoms = _xcoms(session, run_ids)
    tasks = _tasks(session, run_ids)
    approvals = _approvals(session, run_ids)
    return [
        RunRecords(
            dag_id=run.dag_id,
            run_id=run.run_id,
            state=str(run.state) if run.state else None,
            start_date=run.start_date,
            end_date=run.end_date,
            xcoms=xcoms.get(run.run_id, {}),
            tasks=tasks.get(run.run_id, {}),
            approvals=approvals.get(run.run_id, {}),
        )
        for run in runs
    ]


def _xcoms(session: Session, run_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    rows = session.scalars(
        select(XComModel).where(
            XComModel.dag_id == ids.ROLLOUT_DAG,
            XComModel.run_id.in_(run_ids),
            XComModel.task_id.in_(TASK_IDS),
            XComModel.key == XCOM_RETURN_KEY,
            XComModel.map_index == -1,
        )
    )
    found: dict[str, dict[str, Any]] = {}
    for row in rows:
        found.setdefault(row.run_id, {})[row.task_id] = XComModel.deserialize_value(row)
    return found


def _tasks(session: Session, run_ids: Sequence[str]) -> dict[str, dict[str, TaskRecord]]:
    rows = session.execute(
        select(
            TaskInstance.run_id,
            TaskInstance.task_id,
            TaskInstance.state,
            TaskInstance.start_date,
            TaskInstance.end_date,
        ).where(
            TaskInstance.dag_id == ids.ROLLOUT_DAG,
            TaskInstance.run_id.in_(run_ids),
            TaskInstance.map_index == -1,
        )
    )
    found: dict[str, dict[str, TaskRecord]] = {}
    for run_id, task_id, state, start, end in rows:
        found.setdefault(run_id, {})[task_id] = TaskRecord(
            str(state) if state else None, start, end
        )
    return found


def _approvals(session: Session, run_ids: Sequence[str]) -> dict[str, dict[str, ApprovalRequest]]:
    rows = session.execute(
        select(HITLDetail, TaskInstance.run_id, TaskInstance.task_id)
        .join(TaskInstance, HITLDetail.ti_id == TaskInstance.id)
        .where(TaskInstance.dag_id == ids.ROLLOUT_DAG, TaskInstance.run_id.in_(run_ids))
    )
    found: dict[str, dict[str, ApprovalRequest]] = {}
    for detail, run_id, task_id in rows:
        found.setdefault(run_id, {})[task_id] = ApprovalRequest(
            subject=detail.subject,
            responded_at=detail.responded_at,
            chosen_options=detail.chosen_options,
            responded_by=detail.responded_by_user_name,
        )
    return found


# -- S3 -------------------------------------------------------------------------------------------
def with_live_gate(run: RunRecords) -> RunRecords:
    """``run`` plus the newest record of its current gate while that gate is still looking (the
    table's "last verdict" of a running rollout)."""
    stage = current_stage(run)
    if stage is None or run.xcoms.get(ids.gate_task(stage)):
        return run
    return _with_s3(run, lambda s3, plan: _files(s3, plan, run, [stage], looks=False))


def with_everything(run: RunRecords) -> RunRecords:
    """``run`` plus its report once it exists, else every planned stage's gate files."""

    def read(s3: Any, plan: RolloutPlan) -> RunRecords:
        key = layout.report_key(plan, layout.run_key(run.run_id), _data())
        report = read_json(s3, plan.bucket, key)
        if report is not None:
            return replace(run, report=report)
        return _files(s3, plan, run, plan_numbers(plan), looks=True)

    return _with_s3(run, read)


def _with_s3(run: RunRecords, read: Callable[[Any, RolloutPlan], RunRecords]) -> RunRecords:
    plan = plan_of(run)
    if plan is None:
        return run
    try:
        return read(s3_client(plan.region), plan)
    except S3_ERRORS as error:
        log.warning("canary dashboard: S3 records of %s unavailable: %s", run.run_id, error)
        return run


def _files(
    s3: Any, plan: RolloutPlan, run: RunRecords, numbers: Iterable[int], looks: bool
) -> RunRecords:
    files = {n: stage_files(s3, plan, run.run_id, n, looks=looks) for n in numbers}
    return replace(run, stage_files=files)


def _data() -> str:
    from canary.reporting.report import DATA_FILE  # pandas and matplotlib: only when needed

    return DATA_FILE


def stage_files(s3: Any, plan: RolloutPlan, run_id: str, number: int, looks: bool) -> StageFiles:
    """Stage ``number``'s gate files: the newest decision record and, with ``looks``, the looks
    and the record taken at each of them."""
    key, index = layout.run_key(run_id), stage_index(number)
    decisions = layout.stage_state_key(plan, key, index, DECISIONS)
    keys = sorted(_keys(s3, plan.bucket, decisions))
    newest = cached_record(s3, plan.bucket, keys[-1]) if keys else None
    if not looks:
        return StageFiles(newest=newest)
    taken = read_json(s3, plan.bucket, layout.stage_state_key(plan, key, index, LOOKS)) or []
    records = [cached_record(s3, plan.bucket, k) for k in look_record_keys(keys, taken)]
    return StageFiles(newest=newest, looks=taken, look_records=records)


def look_record_keys(keys: Sequence[str], looks: Iterable[Mapping[str, Any]]) -> list[str]:
    """The decision file written at each look: the first one stamped at or after the look's
    ``at`` (a record is written right after the evaluation that took the look)."""
    stamped = sorted((named[0], k) for k in keys if (named := decision_of(k)) is not None)
    chosen = []
    for look in looks:
        at = datetime.fromisoformat(str(look["at"]))
        match = next((k for stamp, k in stamped if stamp >= at), None)
        if match is not None and match not in chosen:
            chosen.append(match)
    return chosen


def _keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


@lru_cache(maxsize=4096)
def cached_record(s3: Any, bucket: str, key: str) -> Any:
    """A decision record; each is written once under a unique key, so it is read once."""
    return read_json(s3, bucket, key)


def read_json(s3: Any, bucket: str, key: str) -> Any:
    """A JSON object from S3, or None when there is no such key."""
    body = read_bytes(s3, bucket, key)
    return None if body is None else json.loads(body)


def read_bytes(s3: Any, bucket: str, key: str) -> bytes | None:
    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as error:
        if is_missing(error):
            return None
        raise


@lru_cache(maxsize=8)
def s3_client(region: str) -> Any:
    """An S3 client of the ``aws_default`` connection (the one the rollout's tasks use)."""
    hook = AwsBaseHook(
        aws_conn_id=DEFAULT_CONN_ID, client_type="s3", region_name=region, config=S3_CONFIG
    )
    return hook.conn
