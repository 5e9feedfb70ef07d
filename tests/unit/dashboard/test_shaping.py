"""The JSON shapes: what a row and a run's detail say, from real decision records."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest

from canary.experiment.gates import Verdict
from canary.plan import SHADOW_NUMBER, RolloutPlan
from canary.rollout import layout
from canary.rollout.outcome import RunOutcome
from canary.stage.state import DECISIONS, decision_name
from canary_airflow import ids
from canary_airflow.dashboard import records
from canary_airflow.dashboard.shaping import (
    Links,
    RunRecords,
    TaskRecord,
    is_rollout,
    plan_of,
    rollout_detail,
    rollout_summary,
)

LINKS = Links()
ANSWERED = datetime(2026, 3, 1, 11, 0, tzinfo=UTC)


def test_finished_run_summary_says_promoted_with_the_winner_at_full_traffic(
    plan: RolloutPlan,
    finished_run: RunRecords,
) -> None:
    champion, challenger = plan.variants
    row = rollout_summary(finished_run, LINKS)
    assert RunOutcome(row["outcome"]) is RunOutcome.PROMOTED
    assert row["endpoint"] == plan.endpoint_name
    assert row["champion"] == {"variant": champion, "source": plan.champion.source}
    assert row["challenger"]["variant"] == challenger
    assert row["current_stage"] == 2 and row["stage_count"] == 2
    assert row["current_weights"] == {champion: 0.0, challenger: 1.0}
    last = row["last_verdict"]
    assert last["stage"] == 2 and Verdict(last["verdict"]) is Verdict.PROMOTE
    assert last["reason"] == finished_run.xcoms[ids.gate_task(2)]["reason"]
    assert row["pending_approval"] is None and row["running"] is False
    assert (
        row["report_link"]
        == f"/canary/runs/{quote(finished_run.run_id, safe='')}/report/report.html"
    )


def test_running_run_shows_the_live_gate_and_the_stage_weights(
    plan: RolloutPlan, running_run: RunRecords
) -> None:
    champion, challenger = plan.variants
    row = rollout_summary(running_run, LINKS)
    assert row["outcome"] is None and row["running"] is True
    assert row["current_stage"] == 2
    assert row["current_weights"] == {champion: 0.25, challenger: 0.75}
    assert Verdict(row["last_verdict"]["verdict"]) is Verdict.CONTINUE
    assert row["last_verdict"]["reason"] == running_run.stage_files[2].newest["reason"]
    assert row["report_link"] is None


def test_a_run_in_its_shadow_stage_shows_the_champion_serving_all_and_the_shadow_gate(
    shadow_run: RunRecords,
) -> None:
    """The shadow stage has no ``set_weights``: its window is ``enter``'s, and no user is
    served by the challenger while its gate looks."""
    row = rollout_summary(shadow_run, LINKS)
    assert row["current_stage"] == SHADOW_NUMBER and row["running"] is True
    assert row["current_weights"] == champion_serves_all(shadow_run)
    newest = shadow_run.stage_files[SHADOW_NUMBER].newest
    assert Verdict(row["last_verdict"]["verdict"]) is Verdict.CONTINUE
    assert (row["last_verdict"]["stage"], row["last_verdict"]["reason"]) == (
        SHADOW_NUMBER,
        newest["reason"],
    )


def test_a_shadow_stage_detail_has_its_paired_looks_first(shadow_run: RunRecords) -> None:
    detail = rollout_detail(shadow_run, LINKS)
    assert [row["number"] for row in detail["stages"]] == [SHADOW_NUMBER, 1, 2]
    shadow_looks = shadow_run.stage_files[SHADOW_NUMBER].looks
    [gate, *later] = detail["gate"]
    assert gate["stage"] == SHADOW_NUMBER and len(gate["looks"]) == len(shadow_looks)
    assert [look["n_pairs"] for look in gate["looks"]] == [look["n_pairs"] for look in shadow_looks]
    assert all(not stage["looks"] for stage in later)
    first = detail["weights_timeline"][0]
    assert (first["stage"], first["weights"]) == (SHADOW_NUMBER, champion_serves_all(shadow_run))


def champion_serves_all(run: RunRecords) -> dict[str, float]:
    champion, challenger = plan_of(run).variants
    return {champion: 1.0, challenger: 0.0}


def test_a_finished_run_that_never_concluded_failed(running_run: RunRecords) -> None:
    failed = RunRecords(**{**running_run.__dict__, "state": "failed"})
    assert RunOutcome(rollout_summary(failed, LINKS)["outcome"]) is RunOutcome.FAILED


def test_a_run_without_a_valid_plan_still_has_a_row() -> None:
    run = RunRecords(
        dag_id=ids.ROLLOUT_DAG,
        run_id="r",
        state="failed",
        xcoms={ids.VALIDATE_PLAN: {"stages": [[0, 100]]}},
    )
    assert plan_of(run) is None
    row = rollout_summary(run, LINKS)
    assert row["endpoint"] is None and row["current_weights"] is None
    assert rollout_detail(run, LINKS)["stages"] == []


def test_pending_approval_links_to_the_required_actions_page(
    make_awaiting: Callable[..., RunRecords],
) -> None:
    run = make_awaiting()
    pending = rollout_summary(run, LINKS)["pending_approval"]
    task_id = ids.approve_task(1)
    assert pending["task_id"] == task_id
    assert pending["subject"] == run.approvals[task_id].subject
    assert pending["link"] == (
        f"/dags/{ids.ROLLOUT_DAG}/runs/{quote(run.run_id, safe='')}/tasks/{task_id}"
        "/required_actions"
    )


@pytest.mark.parametrize(
    ("lock_state", "waiting"), [("running", True), ("success", False), (None, False)]
)
def test_a_run_queued_behind_another_rollout_says_it_waits_for_the_endpoint(
    running_run: RunRecords, lock_state: str | None, waiting: bool
) -> None:
    """While its lock runs (another run holds the endpoint's lease) a run is waiting, not at a
    stage; once the lease is its own, or before the lock ran, it is not."""
    tasks = {**running_run.tasks, ids.LOCK_ENDPOINT: TaskRecord(lock_state, None)}
    run = dataclasses.replace(running_run, tasks=tasks)
    assert rollout_summary(run, LINKS)["waiting_for_endpoint"] is waiting


@pytest.mark.parametrize(("responded", "state"), [(ANSWERED, "awaiting_input"), (None, "success")])
def test_an_answered_or_finished_approval_is_not_pending(
    make_awaiting: Callable[..., RunRecords], responded: datetime | None, state: str
) -> None:
    run = make_awaiting(responded_at=responded, state=state)
    assert rollout_summary(run, LINKS)["pending_approval"] is None


def test_links_keep_airflows_root_path(make_awaiting: Callable[..., RunRecords]) -> None:
    row = rollout_summary(make_awaiting(), Links(root="/airflow/"))
    assert row["link"] == "/airflow/canary/runs/manual__running"
    assert row["pending_approval"]["link"].startswith("/airflow/dags/")


def test_detail_has_each_planned_stage_with_its_record(
    plan: RolloutPlan, finished_run: RunRecords
) -> None:
    champion, challenger = plan.variants
    detail = rollout_detail(finished_run, LINKS)
    assert [s["number"] for s in detail["stages"]] == [1, 2]
    assert detail["stages"][1]["planned_weights"] == {champion: 0.25, challenger: 0.75}
    assert detail["stages"][0]["decision"] == finished_run.xcoms[ids.gate_task(1)]
    assert detail["report_variants"] == finished_run.report["variants"]


def test_gate_looks_are_the_records_looks_per_stage(finished_run: RunRecords) -> None:
    gate = rollout_detail(finished_run, LINKS)["gate"]
    for stage in gate:
        record = finished_run.xcoms[ids.gate_task(stage["stage"])]
        assert [lk["z"] for lk in stage["looks"]] == [lk["z"] for lk in record["looks"]]
        assert [lk["efficacy"] for lk in stage["looks"]] == [
            lk["efficacy"] for lk in record["looks"]
        ]
        assert Verdict(stage["looks"][-1]["verdict"]) is Verdict.PROMOTE


def test_a_looking_gate_shows_its_looks_from_s3(running_run: RunRecords) -> None:
    gate = {s["stage"]: s["looks"] for s in rollout_detail(running_run, LINKS)["gate"]}
    assert len(gate[2]) == len(running_run.stage_files[2].looks) > 0


def test_weights_timeline_is_ordered_and_ends_at_the_conclusion(
    plan: RolloutPlan, finished_run: RunRecords
) -> None:
    champion, challenger = plan.variants
    timeline = rollout_detail(finished_run, LINKS)["weights_timeline"]
    times = [datetime.fromisoformat(p["at"]) for p in timeline]
    assert times == sorted(times)
    assert timeline[0]["source"] == ids.SET_WEIGHTS
    assert timeline[0]["weights"] == {champion: 0.5, challenger: 0.5}
    assert timeline[-1]["source"] == ids.CONCLUDE
    assert timeline[-1]["weights"] == {champion: 0.0, challenger: 1.0}


def test_variant_metrics_per_look_carry_error_rate_and_p99(
    plan: RolloutPlan, finished_run: RunRecords
) -> None:
    champion = plan.champion.variant_name
    rows = rollout_detail(finished_run, LINKS)["variant_metrics"]
    looked = finished_run.report["decisions"]
    assert len(rows) == 2 * len(looked)  # one row per variant per look
    first = next(r for r in rows if r["variant"] == champion)
    source = looked[0]["variants"][champion]
    assert first["error_rate"] == pytest.approx(source["errors_5xx"] / source["requests"])
    assert first["latency_p99_ms"] == source["latency_p99_ms"]
    assert first["stage"] == 1 and first["look"] == 1


def test_run_key_is_the_report_folder_of_a_run() -> None:
    run_id = "manual__2026-12-03T10:00:54.073356+00:00"
    digest = hashlib.sha256(run_id.encode()).hexdigest()[:8]
    assert layout.run_key(run_id) == f"manual__2026-12-03T10-00-54.073356-00-00-{digest}"


def test_a_long_run_id_keeps_its_key_within_a_tag_and_a_file_name() -> None:
    """Airflow accepts run ids of 250 characters; a key that long would overflow the run's
    tag (256) with anything added, and ids that differ only at their end must not share one."""
    one, other = "x" * 249 + "a", "x" * 249 + "b"
    keys = {layout.run_key(one), layout.run_key(other)}
    assert len(keys) == 2
    assert all(len(key) == layout.RUN_KEY_MAX_LENGTH for key in keys)


@pytest.mark.parametrize(("one", "other"), [("a:b", "a-b"), ("..", "--"), (".", "-")])
def test_run_keys_are_one_to_one_and_never_a_relative_folder(one: str, other: str) -> None:
    """Airflow accepts ``..`` as a run id; as a folder it would be the reports folder's
    parent, where a report's upload would take every file from."""
    assert layout.run_key(one) != layout.run_key(other)
    for key in (layout.run_key(one), layout.run_key(other)):
        reports = Path("reports").resolve()
        assert (reports / key).resolve().parent == reports


def test_only_the_rollout_dag_is_a_rollout() -> None:
    assert is_rollout(ids.ROLLOUT_DAG) and is_rollout(None)
    assert not is_rollout(ids.NIGHTLY_DAG)


def test_look_records_are_the_first_files_written_at_or_after_each_look() -> None:
    at = datetime(2026, 3, 1, 10, 0, 0, tzinfo=UTC)
    keys = [
        f"p/{decision_name(at - timedelta(seconds=1), Verdict.CONTINUE)}",
        f"p/{decision_name(at + timedelta(milliseconds=3), Verdict.CONTINUE)}",
        f"p/{decision_name(at + timedelta(seconds=9), Verdict.PROMOTE)}",
        f"p/{DECISIONS}not-a-record.json",
    ]
    looks = [{"at": at.isoformat()}, {"at": (at + timedelta(seconds=8)).isoformat()}]
    assert records.look_record_keys(keys, looks) == [keys[1], keys[2]]


@pytest.mark.parametrize("kept", [True, False])
def test_after_teardown_the_weights_are_what_teardown_left(
    running_run: RunRecords, kept: bool
) -> None:
    """A run that failed in stage 2: its stage weights no longer hold once cleanup ran. It left
    the champion serving alone (keep_winner), or deleted or restored the endpoint (none of
    the rollout's variants serve)."""
    champion = plan_of(running_run).variants[0]
    failed = dataclasses.replace(
        running_run,
        state="failed",
        xcoms={**running_run.xcoms, ids.CLEANUP: {"winner": champion if kept else None}},
    )
    expected = champion_serves_all(running_run) if kept else None
    assert rollout_summary(failed, LINKS)["current_weights"] == expected
