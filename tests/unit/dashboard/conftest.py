"""Rollout runs as the dashboard reads them, built from real decision records.

The records come from the project's gate engine (``canary.experiment.gates.evaluate``) on
seeded evidence, JSON round-tripped as XCom and S3 keep them, so the shapes under test are the
ones a real run produces.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from canary.experiment.gates import (
    GateConfig,
    LatencySummary,
    Outcomes,
    PairedOutcomes,
    StageEvidence,
    VariantEvidence,
    Verdict,
    evaluate,
)
from canary.plan import SHADOW_NUMBER, SHADOW_STAGE, RolloutPlan
from canary.rollout.outcome import RunOutcome
from canary_airflow import ids
from canary_airflow.dashboard.shaping import ApprovalRequest, RunRecords, StageFiles, TaskRecord

START = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
RUN_ID = "manual__2026-03-01T10:00:00+00:00"
PLAN = RolloutPlan(stages=((50, 50), (25, 75)), shadow=False)  # the shadow: its own runs
SHADOW_PLAN = PLAN.model_copy(update={"shadow": True})
CHAMPION, CHALLENGER = PLAN.variants


def gate_records(index: int, seed: int, p1: float = 0.9) -> list[dict[str, Any]]:
    """Every decision record of stage ``index``'s gate, one per poke, until it decides."""
    config = GateConfig.of(PLAN.gate)
    weights = PLAN.stages[index]
    rng = np.random.default_rng(seed)
    started = START + timedelta(hours=index)
    looks: list[dict[str, Any]] = []
    per_poke = [round(120 * w / sum(weights)) for w in weights]  # traffic split as weighted
    records, pokes, k0, k1 = [], 0, 0, 0
    while True:
        pokes += 1
        k0, k1 = k0 + rng.binomial(per_poke[0], 0.88), k1 + rng.binomial(per_poke[1], p1)
        evidence = StageEvidence(
            index,
            weights,
            _variant(CHAMPION, pokes * per_poke[0], k0, 70.0),
            _variant(CHALLENGER, pokes * per_poke[1], k1, 90.0),
            started,
            started + timedelta(minutes=pokes),
        )
        decision, looks = evaluate(evidence, config, looks)
        records.append(json.loads(decision.to_json()))
        if decision.verdict is not Verdict.CONTINUE:
            return records


def shadow_records(looks: int, seed: int) -> list[dict[str, Any]]:
    """The shadow gate's records over its first ``looks`` pokes: 150 pairs a poke, the
    each model right where the other is wrong on 5 % (a gate that keeps looking)."""
    config = GateConfig.of(SHADOW_PLAN.gate)
    weights = SHADOW_PLAN.stages[0][0], 0  # the champion serves all; the shadow answers copies
    rng = np.random.default_rng(seed)
    records, recorded = [], []
    discordant = np.zeros(2, dtype=int)
    for poke in range(1, looks + 1):
        n = 150 * poke
        discordant += rng.multinomial(150, [0.05, 0.05, 0.90])[:2]
        champion_only, challenger_only = (int(k) for k in discordant)
        both = int(0.85 * (n - discordant.sum()))
        table = PairedOutcomes(both, champion_only, challenger_only,
                               n - both - champion_only - challenger_only)  # fmt: skip
        evidence = StageEvidence(
            SHADOW_STAGE,
            weights,
            _variant(CHAMPION, n, both + champion_only, 70.0),
            _variant(CHALLENGER, n, both + challenger_only, 90.0),
            START,
            START + timedelta(minutes=poke),
            paired=table,
        )
        decision, recorded = evaluate(evidence, config, recorded)
        records.append(json.loads(decision.to_json()))
    return records


def _variant(name: str, n: int, correct: int, p99: float) -> VariantEvidence:
    latency = LatencySummary(count=n, mean_ms=p99 / 3, max_ms=2 * p99, p99_ms=p99)
    return VariantEvidence(
        name, n, errors_5xx=n // 100, outcomes=Outcomes(n, correct), latency=latency
    )


def set_weights(index: int) -> dict[str, Any]:
    weights = dict(zip(PLAN.variants, map(float, PLAN.stages[index]), strict=True))
    started = (START + timedelta(hours=index)).timestamp()
    return {"endpoint": PLAN.endpoint_name, "weights": weights, "started_at": started}


@pytest.fixture(scope="session")
def plan() -> RolloutPlan:
    """The runs' plan: two stages, 50/50 then 25/75."""
    return PLAN


@pytest.fixture(scope="session")
def stage_records() -> list[list[dict[str, Any]]]:
    """Both stages' records; with these seeds each gate promotes after a few looks."""
    return [gate_records(0, seed=1), gate_records(1, seed=2)]


def _looked(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [record for record in records if record.get("look")]


@pytest.fixture()
def finished_run(stage_records: list[list[dict[str, Any]]]) -> RunRecords:
    """Both stages promoted, the challenger took all traffic, the report was written."""
    end = START + timedelta(hours=3)
    return RunRecords(
        dag_id=ids.ROLLOUT_DAG,
        run_id=RUN_ID,
        state="success",
        start_date=START,
        end_date=end,
        xcoms={
            ids.VALIDATE_PLAN: PLAN.model_dump(mode="json"),
            **{ids.stage_task(i + 1, ids.SET_WEIGHTS): set_weights(i) for i in range(2)},
            **{ids.gate_task(i + 1): stage_records[i][-1] for i in range(2)},
            ids.PROMOTE: {"outcome": RunOutcome.PROMOTED.value, "winner": CHALLENGER},
        },
        tasks={
            ids.PROMOTE: TaskRecord("success", end - timedelta(minutes=5), end),
            ids.ROLLBACK: TaskRecord("skipped"),
            ids.REPORT: TaskRecord("success", end, end),
        },
        report={
            "variants": {CHAMPION: {"requests": 10}, CHALLENGER: {"requests": 30}},
            "decisions": [r for records in stage_records for r in _looked(records)],
        },
    )


def looking_run(
    run_id: str, plan: RolloutPlan, xcoms: dict[str, Any], number: int, looking: list[dict]
) -> RunRecords:
    """A running run whose stage ``number`` gate is still looking: its records only in S3."""
    newest = looking[-1]
    files = StageFiles(newest=newest, looks=newest["looks"], look_records=_looked(looking))
    return RunRecords(
        dag_id=ids.ROLLOUT_DAG,
        run_id=run_id,
        state="running",
        start_date=START,
        xcoms={ids.VALIDATE_PLAN: plan.model_dump(mode="json"), **xcoms},
        tasks={ids.gate_task(number): TaskRecord("up_for_reschedule", START)},
        stage_files={number: files},
    )


@pytest.fixture()
def running_run(stage_records: list[list[dict[str, Any]]]) -> RunRecords:
    """Stage 1 promoted; stage 2's gate is still looking (its records are only in S3)."""
    xcoms = {
        ids.stage_task(1, ids.SET_WEIGHTS): set_weights(0),
        ids.gate_task(1): stage_records[0][-1],
        ids.stage_task(2, ids.SET_WEIGHTS): set_weights(1),
    }
    return looking_run("manual__running", PLAN, xcoms, 2, stage_records[1][:-1])


@pytest.fixture()
def shadow_run() -> RunRecords:
    """A run in its shadow stage: the endpoint mirrors to the challenger, the gate still looks."""
    window = {
        "endpoint": SHADOW_PLAN.endpoint_name,
        "weights": SHADOW_PLAN.stage_weights(SHADOW_STAGE),
        "started_at": START.timestamp(),
    }
    looking = shadow_records(looks=3, seed=6)  # with this seed no look decides
    xcoms = {ids.shadow_task(ids.ENTER_STAGE): window}
    return looking_run("manual__shadow", SHADOW_PLAN, xcoms, SHADOW_NUMBER, looking)


@pytest.fixture()
def make_awaiting(running_run: RunRecords) -> Callable[..., RunRecords]:
    """The running run with stage 1's approval asked, answered or not."""

    def make(responded_at: datetime | None = None, state: str = "awaiting_input") -> RunRecords:
        task_id = ids.approve_task(1)
        request = ApprovalRequest(
            subject="Approve stage 2 of churn-canary?", responded_at=responded_at
        )
        return RunRecords(
            **{
                **running_run.__dict__,
                "tasks": {**running_run.tasks, task_id: TaskRecord(state, START)},
                "approvals": {task_id: request},
            }
        )

    return make
