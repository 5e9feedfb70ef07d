"""From a run's records (plain data read out of Airflow and S3) to what the dashboard shows.

Pure functions of plain data: nothing here touches a database, S3 or the network, so the JSON
shapes and every rule behind them (which record is the newest, when a run has an outcome, when an
approval is pending) are tested in milliseconds. :mod:`.records` fills :class:`RunRecords`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from airflow.utils.state import DagRunState, TaskInstanceState
from pydantic import ValidationError

from canary.plan import MAX_STAGES, RolloutPlan, stage_index
from canary.rollout.outcome import RunOutcome
from canary_airflow import ids
from canary_airflow.dashboard import URL_PREFIX

# the DAG has a group per possible stage, and the shadow stage's (number 0) before them
STAGE_NUMBERS = range(ids.SHADOW_NUMBER, MAX_STAGES + 1)
CONCLUSIONS = (ids.PROMOTE, ids.ROLLBACK)
FINISHED = frozenset({DagRunState.SUCCESS, DagRunState.FAILED})


@dataclass(frozen=True)
class TaskRecord:
    """One (unmapped) task instance: its state and when it ran."""

    state: str | None
    start_date: datetime | None = None
    end_date: datetime | None = None


@dataclass(frozen=True)
class ApprovalRequest:
    """An approval task's Human-in-the-loop detail: what was asked, and the answer if any."""

    subject: str
    responded_at: datetime | None = None
    chosen_options: Sequence[str] | None = None
    responded_by: str | None = None


@dataclass(frozen=True)
class StageFiles:
    """What one stage's gate keeps in S3: its newest decision record, its looks, and the
    decision records taken at those looks (the per-look variant metrics)."""

    newest: Mapping[str, Any] | None = None
    looks: Sequence[Mapping[str, Any]] = ()
    look_records: Sequence[Mapping[str, Any]] = ()


@dataclass(frozen=True)
class RunRecords:
    """Everything the dashboard knows about one DAG run, as plain data.

    ``xcoms`` and ``tasks`` are keyed by task id (unmapped instances, ``return_value`` only);
    ``approvals`` by approval task id; ``stage_files`` by stage number (0: the shadow stage);
    ``report`` is the run's ``report.json`` when it exists.
    """

    dag_id: str
    run_id: str
    state: str | None
    start_date: datetime | None = None
    end_date: datetime | None = None
    xcoms: Mapping[str, Any] = field(default_factory=dict)
    tasks: Mapping[str, TaskRecord] = field(default_factory=dict)
    approvals: Mapping[str, ApprovalRequest] = field(default_factory=dict)
    stage_files: Mapping[int, StageFiles] = field(default_factory=dict)
    report: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Links:
    """URLs the pages and the JSON point at, under Airflow's root path (``[api] base_url``)."""

    root: str = "/"

    def run_page(self, run_id: str) -> str:
        return f"{self._app()}/runs/{quote(run_id, safe='')}"

    def rollouts(self) -> str:
        return f"{self._app()}/"

    def static(self, name: str) -> str:
        return f"{self._app()}/static/{quote(name, safe='')}"

    def report(self, run_id: str, name: str) -> str:
        return f"{self.run_page(run_id)}/report/{quote(name, safe='')}"

    def required_actions(self, dag_id: str, run_id: str, task_id: str) -> str:
        """Airflow's Required Actions page of one task instance, where a person answers."""
        parts = (quote(part, safe="") for part in (dag_id, run_id, task_id))
        return self.airflow("dags/{}/runs/{}/tasks/{}/required_actions".format(*parts))

    def airflow(self, path: str) -> str:
        return f"{self.root.rstrip('/')}/{path}"

    def _app(self) -> str:
        return f"{self.root.rstrip('/')}{URL_PREFIX}"


def plan_of(run: RunRecords) -> RolloutPlan | None:
    """The run's validated plan, or None before ``validate_plan`` succeeded."""
    raw = run.xcoms.get(ids.VALIDATE_PLAN)
    if not isinstance(raw, Mapping):
        return None
    try:
        return RolloutPlan.model_validate(raw)
    except ValidationError:
        return None


def decision_of(run: RunRecords, number: int) -> Mapping[str, Any] | None:
    """Stage ``number``'s newest decision record: the gate's XCom once it decided, else the
    newest record its gate left in S3 while looking."""
    decided = run.xcoms.get(ids.gate_task(number))
    if decided:
        return decided
    return run.stage_files.get(number, StageFiles()).newest


def current_stage(run: RunRecords) -> int | None:
    """The last stage whose weights took effect (its ``set_weights`` returned; the shadow
    stage's window opened, number 0)."""
    started = [n for n in STAGE_NUMBERS if _window(run, n)]
    return max(started, default=None)


def _window(run: RunRecords, number: int) -> Mapping[str, Any] | None:
    """When stage ``number``'s weights took effect and what they are, once they did."""
    task = ids.ENTER_STAGE if number == ids.SHADOW_NUMBER else ids.SET_WEIGHTS
    window = run.xcoms.get(ids.stage_task(number, task))
    return window if isinstance(window, Mapping) else None


def plan_numbers(plan: RolloutPlan) -> list[int]:
    """The stage numbers a plan runs, in order (0: its shadow stage)."""
    return [index + 1 for index in plan.stage_indices]


def conclusion(run: RunRecords) -> Mapping[str, Any] | None:
    """What ``promote`` or ``rollback`` returned: ``{"outcome": ..., "winner": ...}``."""
    return next((run.xcoms[t] for t in CONCLUSIONS if run.xcoms.get(t)), None)


def outcome(run: RunRecords) -> RunOutcome | None:
    """How the run ended; None while it runs. A finished run that never concluded failed."""
    concluded = conclusion(run)
    if concluded:
        return RunOutcome(concluded["outcome"])
    return RunOutcome.FAILED if _run_state(run) in FINISHED else None


def current_weights(run: RunRecords, plan: RolloutPlan | None) -> dict[str, float] | None:
    """Traffic shares now (fractions of 1). Teardown has the last word: the variant it left
    serving alone, or none when it deleted or restored the endpoint (a failed run's stage
    weights no longer hold once it ran). Before it, the winner's 100 % once concluded, else
    the weights the current stage set."""
    torn_down = run.xcoms.get(ids.CLEANUP)
    if isinstance(torn_down, Mapping) and plan is not None:
        winner = torn_down.get("winner")
        return _alone(plan, winner) if winner else None
    concluded = conclusion(run)
    if concluded and plan is not None:
        return _alone(plan, concluded["winner"])
    stage = current_stage(run)
    window = _window(run, stage) if stage is not None else None
    return shares(window["weights"]) if window else None


def _alone(plan: RolloutPlan, winner: str) -> dict[str, float]:
    """The shares when ``winner`` serves all traffic."""
    return {variant: 1.0 if variant == winner else 0.0 for variant in plan.variants}


def shares(weights: Mapping[str, float]) -> dict[str, float]:
    """Weights as fractions of all traffic (SageMaker's weights are relative)."""
    total = sum(weights.values())
    return {v: (w / total if total else 0.0) for v, w in weights.items()}


def pending_approval(run: RunRecords, links: Links) -> dict[str, Any] | None:
    """The approval a person has to give now: a task awaiting input with no answer yet."""
    for task_id, request in run.approvals.items():
        task = run.tasks.get(task_id)
        awaiting = task is not None and _ti_state(task) is TaskInstanceState.AWAITING_INPUT
        if awaiting and request.responded_at is None:
            return {
                "task_id": task_id,
                "subject": request.subject,
                "link": links.required_actions(run.dag_id, run.run_id, task_id),
            }
    return None


def waiting_for_endpoint(run: RunRecords) -> bool:
    """Whether the run is queued behind another rollout of its endpoint: its lock task claims
    the lease, which takes a moment unless another run holds it (then it waits, up to
    ``lock_wait_minutes``). Also true while a first claim creates the lock table, or while the
    claim waits for an endpoint mid-update to settle: the endpoint is not the run's yet."""
    task = run.tasks.get(ids.LOCK_ENDPOINT)
    return task is not None and _ti_state(task) is TaskInstanceState.RUNNING


def last_verdict(run: RunRecords, plan: RolloutPlan | None) -> dict[str, Any] | None:
    """The newest gate decision of the run: the highest stage that has a record."""
    numbers = plan_numbers(plan) if plan else STAGE_NUMBERS
    for number in reversed(numbers):
        record = decision_of(run, number)
        if record:
            return {"stage": number, "verdict": record["verdict"], "reason": record.get("reason")}
    return None


def rollout_summary(run: RunRecords, links: Links) -> dict[str, Any]:
    """One row of the rollouts table (``GET /api/rollouts``)."""
    plan = plan_of(run)
    ended = outcome(run)
    return {
        "run_id": run.run_id,
        "dag_id": run.dag_id,
        "endpoint": plan.endpoint_name if plan else None,
        "champion": _variant(plan, "champion"),
        "challenger": _variant(plan, "challenger"),
        "state": run.state,
        "outcome": ended.value if ended else None,
        "current_stage": current_stage(run),
        "stage_count": len(plan.stages) if plan else None,
        "current_weights": current_weights(run, plan),
        "last_verdict": last_verdict(run, plan),
        "pending_approval": pending_approval(run, links),
        "waiting_for_endpoint": waiting_for_endpoint(run),
        "start_date": _iso(run.start_date),
        "end_date": _iso(run.end_date),
        "link": links.run_page(run.run_id),
        "report_link": report_link(run, links),
        "running": _run_state(run) not in FINISHED,
    }


def report_link(run: RunRecords, links: Links) -> str | None:
    """The run's report page (served from S3 by the dashboard) once the report task wrote it."""
    from canary.reporting.report import PAGE_FILE  # pandas and matplotlib: only when needed

    task = run.tasks.get(ids.REPORT)
    done = task is not None and _ti_state(task) is TaskInstanceState.SUCCESS
    return links.report(run.run_id, PAGE_FILE) if done else None


def _variant(plan: RolloutPlan | None, role: str) -> dict[str, str] | None:
    if plan is None:
        return None
    spec = getattr(plan, role)
    return {"variant": spec.variant_name, "source": spec.source}


def rollout_detail(run: RunRecords, links: Links) -> dict[str, Any]:
    """One run in full (``GET /api/rollouts/{run_id}``): the summary, each stage with its record,
    the weight timeline, per-variant metrics per look and the gate statistic per look."""
    plan = plan_of(run)
    return {
        **rollout_summary(run, links),
        "stages": stage_rows(run, plan),
        "weights_timeline": weights_timeline(run, plan),
        "variant_metrics": variant_metrics(run),
        "report_variants": (run.report or {}).get("variants"),
        "gate": gate_looks(run, plan),
    }


def stage_rows(run: RunRecords, plan: RolloutPlan | None) -> list[dict[str, Any]]:
    """Per planned stage: its planned weights, gate state, decision record and approval."""
    if plan is None:
        return []
    rows = []
    for index in plan.stage_indices:
        number = index + 1
        gate = run.tasks.get(ids.gate_task(number))
        rows.append(
            {
                "number": number,
                "planned_weights": shares(plan.stage_weights(index)),
                "gate_state": gate.state if gate else None,
                "decision": decision_of(run, number),
                "approval": run.xcoms.get(ids.approve_task(number)),
            }
        )
    return rows


def weights_timeline(run: RunRecords, plan: RolloutPlan | None) -> list[dict[str, Any]]:
    """Traffic shares over time: each stage's ``set_weights`` (when the weights took effect), its
    decision records, and the conclusion's 100 %; sorted by time."""
    points = []
    for number in STAGE_NUMBERS:
        applied = _window(run, number)
        if applied:
            at = datetime.fromtimestamp(applied["started_at"], UTC)
            points.append(_weight_point(at, applied["weights"], number, ids.SET_WEIGHTS))
        for record in _stage_records(run, number):
            at = _parse_time(record.get("timestamp"))
            if at and record.get("weights"):
                points.append(_weight_point(at, record["weights"], number, ids.GATE))
    points += _conclusion_point(run, plan)
    return sorted(points, key=lambda point: point["at"])


def _conclusion_point(run: RunRecords, plan: RolloutPlan | None) -> list[dict[str, Any]]:
    concluded = conclusion(run)
    if not concluded or plan is None:
        return []
    task = next((run.tasks[t] for t in CONCLUSIONS if t in run.tasks and run.xcoms.get(t)), None)
    if task is None or task.end_date is None:
        return []
    return [_weight_point(task.end_date, current_weights(run, plan) or {}, None, ids.CONCLUDE)]


def _weight_point(
    at: datetime, weights: Mapping[str, float], stage: int | None, source: str
) -> dict[str, Any]:
    return {"at": at.isoformat(), "stage": stage, "weights": shares(weights), "source": source}


def _stage_records(run: RunRecords, number: int) -> list[Mapping[str, Any]]:
    """Stage ``number``'s decision records, oldest first and each once: those taken at looks
    (report.json or S3) and the newest one (XCom or S3)."""
    index = stage_index(number)
    reported = [r for r in (run.report or {}).get("decisions", []) if r.get("stage") == index]
    files = run.stage_files.get(number, StageFiles())
    newest = decision_of(run, number)
    candidates = [*reported, *files.look_records, *([newest] if newest else [])]
    unique = {str(record.get("timestamp")): record for record in candidates}
    return sorted(unique.values(), key=lambda record: str(record.get("timestamp")))


def variant_metrics(run: RunRecords) -> list[dict[str, Any]]:
    """Per look, per variant: requests, error rate (4XX + 5XX), p99 latency, quality. Taken from
    the decision records made at looks (plus each stage's newest record)."""
    rows = []
    for number in STAGE_NUMBERS:
        for record in _stage_records(run, number):
            look = (record.get("look") or {}).get("look")
            for variant, metrics in (record.get("variants") or {}).items():
                rows.append(
                    {"stage": number, "look": look, "at": record.get("timestamp")}
                    | {"variant": variant}
                    | _variant_numbers(metrics)
                )
    return rows


def _variant_numbers(metrics: Mapping[str, Any]) -> dict[str, Any]:
    requests = metrics.get("requests") or 0
    errors = (metrics.get("errors_4xx") or 0) + (metrics.get("errors_5xx") or 0)
    return {
        "requests": requests,
        "error_rate": errors / requests if requests else None,
        "latency_p99_ms": metrics.get("latency_p99_ms"),
        "quality_mean": metrics.get("quality_mean"),
    }


def gate_looks(run: RunRecords, plan: RolloutPlan | None) -> list[dict[str, Any]]:
    """Per stage: the gate statistic ``z`` against its efficacy and futility boundaries at every
    look taken so far (the newest record's ``looks``, or ``looks.json`` while looking)."""
    numbers = plan_numbers(plan) if plan else STAGE_NUMBERS
    stages = []
    for number in numbers:
        record = decision_of(run, number) or {}
        looks = record.get("looks") or run.stage_files.get(number, StageFiles()).looks
        if looks or plan:
            stages.append({"stage": number, "looks": [_look(look) for look in looks]})
    return stages


#: What a look record says: where it is, the counts, z against its two bounds, the verdict.
LOOK_FIELDS = (
    "stage",
    "look",
    "fraction",
    "n_champion",
    "n_challenger",
    "n_pairs",  # the shadow stage's paired test: pairs and the discordant ones
    "champion_only",
    "challenger_only",
    "z",
    "efficacy",
    "futility",
    "verdict",
    "at",
)


def _look(look: Mapping[str, Any]) -> dict[str, Any]:
    return {key: look.get(key) for key in LOOK_FIELDS}


def is_rollout(dag_id: str | None) -> bool:
    """Whether a DAG's runs are canary rollouts (the DAG-run tab shows on every DAG)."""
    return dag_id in (None, ids.ROLLOUT_DAG)


def _run_state(run: RunRecords) -> DagRunState | None:
    return DagRunState(run.state) if run.state else None


def _ti_state(task: TaskRecord) -> TaskInstanceState | None:
    return TaskInstanceState(task.state) if task.state else None


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None
