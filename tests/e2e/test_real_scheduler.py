"""Airflow's own scheduler, triggerer, dag-processor and API server (``airflow standalone``) on
loopback, wired to the local stack: rollouts are started through the REST API (v2) and by a
registry approval (the AssetWatcher in the triggerer), approved by a person in a real Chromium
(the Required Actions page) and over the REST API, followed on the dashboard plugin, and judged
through the REST API."""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any

import pytest
from airflow.utils.state import DagRunState, TaskInstanceState

from canary.experiment.gates.decision import Verdict
from canary.models import registry as reg
from canary.plan import ApprovalMode
from canary.reporting.notification import Event
from canary.rollout.outcome import RunOutcome
from canary_airflow.dev.postgres import LocalPostgres
from canary_airflow.dev.standalone import ADMIN
from canary_airflow.ids import (
    CREATE_MODEL,
    PROMOTE,
    REGISTRY_DAG,
    ROLLBACK,
    ROLLOUT_DAG,
    UPDATE_REGISTRY,
    approve_task,
    gate_task,
)
from tests.e2e.scheduler import Api

# A container environment value under a name Airflow's masker does not guess is secret: in no
# log, masked where Airflow shows rendered fields. (The run's conf and XComs still hold it, as
# they hold the whole plan: whoever may read the run sees them.)
SECRET = "flavour-7d2a61"


def test_people_approve_each_stage_and_follow_it_on_the_dashboard(
    airflow_api: Api, browser, local_stack, seed_group, unique_name, one_stage, sns_inbox
) -> None:
    """Triggered over REST; a person logs in through the real login page, sees the pending
    approval on the dashboard, approves stage 1 on the Required Actions page; stage 2 is
    approved over the REST API; the run promotes and crowns the package, every step is
    published to SNS, and the dashboard shows the finished rollout with its charts."""
    group = seed_group(champion="champion", challenger="challenger")
    conf = {
        **one_stage,
        "stages": [[50, 50], [25, 75]],
        "approval": ApprovalMode.EVERY_STAGE.value,
        "notify_topic_arn": sns_inbox.topic_arn,
        "endpoint_name": f"ui-{unique_name}",
        "champion_source": group.packages["champion"],
        "challenger_source": group.packages["challenger"],
        "challenger_environment": {"MODEL_FLAVOUR": SECRET},
    }
    airflow_api.wait_for_dag(ROLLOUT_DAG)
    run_id = f"ui-{unique_name}"
    created = airflow_api.call(
        "POST",
        f"dags/{ROLLOUT_DAG}/dagRuns",
        {"dag_run_id": run_id, "logical_date": None, "conf": conf},
    )
    assert created["state"] in {DagRunState.QUEUED, DagRunState.RUNNING}
    page = browser.login(airflow_api.base, ADMIN, airflow_api.password)

    # stage 1: the dashboard lists the pending approval; its link opens the Required Actions page
    airflow_api.wait_until_parked(ROLLOUT_DAG, run_id, approve_task(1))  # Api says why
    [listed] = [r for r in rollouts(airflow_api) if r["run_id"] == run_id]
    assert listed["pending_approval"]["task_id"] == approve_task(1)
    page.goto(f"{airflow_api.base}/canary/")
    page.locator(f"[data-run-id='{run_id}'] a[href*='required_actions']").click()
    page.get_by_role("button", name="Approve", exact=True).wait_for()
    browser.screenshot(page, "required-action")
    page.get_by_role("button", name="Approve", exact=True).click()

    # stage 2: answered over the REST API
    airflow_api.wait_until_parked(ROLLOUT_DAG, run_id, approve_task(2))
    hitl = f"dags/{ROLLOUT_DAG}/dagRuns/{run_id}/taskInstances/{approve_task(2)}/-1/hitlDetails"
    airflow_api.call("PATCH", hitl, {"chosen_options": ["Approve"]})

    run = airflow_api.wait_for_run(ROLLOUT_DAG, run_id)
    states = airflow_api.task_states(ROLLOUT_DAG, run_id)
    assert run["state"] == DagRunState.SUCCESS, states
    assert (
        states[PROMOTE] == TaskInstanceState.SUCCESS
        and states[ROLLBACK] == TaskInstanceState.SKIPPED
    )
    promoted = airflow_api.xcom(ROLLOUT_DAG, run_id, PROMOTE)
    assert RunOutcome(promoted["outcome"]) is RunOutcome.PROMOTED
    answers = [airflow_api.xcom(ROLLOUT_DAG, run_id, approve_task(n)) for n in (1, 2)]
    assert [(a["needed"], a["approved"], a["by"]) for a in answers] == [(True, True, ADMIN)] * 2
    record = airflow_api.xcom(ROLLOUT_DAG, run_id, UPDATE_REGISTRY)
    assert record["demoted"] == [group.packages["champion"]]
    sm = local_stack.client("sagemaker")
    assert reg.find_champion(sm, group.name) == group.packages["challenger"]
    events = [(Event(m["event"]), m["body"]["run_id"]) for m in sns_inbox.messages()]
    assert [event for event, _ in events] == [
        Event.STAGE_VERDICT,
        Event.APPROVAL_REQUESTED,
        Event.STAGE_VERDICT,
        Event.APPROVAL_REQUESTED,
        Event.OUTCOME,
    ]
    assert {run for _, run in events} == {run_id}

    # the dashboard: the finished rollout's row, then its page with the three charts
    [finished] = [r for r in rollouts(airflow_api) if r["run_id"] == run_id]
    assert RunOutcome(finished["outcome"]) is RunOutcome.PROMOTED
    assert finished["pending_approval"] is None
    assert Verdict(finished["last_verdict"]["verdict"]) is Verdict.PROMOTE
    page.goto(f"{airflow_api.base}/canary/")
    page.locator(f"[data-run-id='{run_id}']").wait_for()
    browser.screenshot(page, "dashboard")
    page.locator(f"[data-run-id='{run_id}'] a[href*='/canary/runs/']").first.click()
    for chart in ("weights", "gate", "variants"):
        page.locator(f"[data-chart='{chart}']").first.wait_for()
    browser.screenshot(page, "dashboard-run")
    detail = airflow_api.fetch("GET", f"/canary/api/rollouts/{run_id}")
    assert [Verdict(s["decision"]["verdict"]) for s in detail["stages"]] == [Verdict.PROMOTE] * 2
    # the run's report, read from the plan's bucket: no script may run, its charts still show
    report = page.goto(f"{airflow_api.base}{finished['report_link']}")
    assert "script-src" not in report.headers["content-security-policy"]
    assert report.headers["content-security-policy"].startswith("default-src 'none'")
    charts = page.locator("img")
    assert charts.count() >= 3
    assert all(img.evaluate("i => i.complete && i.naturalWidth > 0") for img in charts.all())

    # the environment reached the model's request masked, and no component's or task's log has it
    model = airflow_api.call(
        "GET", f"dags/{ROLLOUT_DAG}/dagRuns/{run_id}/taskInstances/{CREATE_MODEL['challenger']}"
    )
    rendered = model["rendered_fields"]["config"]["PrimaryContainer"]["Environment"]
    assert rendered == {"MODEL_FLAVOUR": "***"}
    logs = [path for path in airflow_api.log.parent.rglob("*") if path.is_file()]
    assert logs and not [path for path in logs if SECRET.encode() in path.read_bytes()]


def rollouts(api: Api) -> list[dict[str, Any]]:
    return api.fetch("GET", "/canary/api/rollouts")


@pytest.mark.parametrize("path", ["/canary/api/rollouts", "/canary/", "/canary/runs/any"])
def test_the_dashboard_refuses_anonymous_calls(airflow_api: Api, path: str) -> None:
    with pytest.raises(urllib.error.HTTPError) as refused:
        airflow_api.fetch("GET", path, token=False)
    assert refused.value.code in {401, 403}


def test_registry_approval_starts_the_rollout_through_the_watcher(
    airflow_api: Api, local_stack, seed_group, scheduler_group: str
) -> None:
    """Approve a version: the triggerer's registry watcher, the asset-scheduled
    model_registry_rollout run, its claim and trigger, and the rollout itself, all for real.
    Its plan asks a person to approve the promotion and nobody answers: the scheduler's timeout
    answers Reject, the rollout rolls back, and the registry says why."""
    airflow_api.wait_for_dag(REGISTRY_DAG)
    airflow_api.wait_for_dag(ROLLOUT_DAG)
    group = seed_group(champion="champion", name=scheduler_group)
    approved = seed_group(challenger="challenger", name=scheduler_group).packages["challenger"]
    sm = local_stack.client("sagemaker")
    version = sm.describe_model_package(ModelPackageName=approved)["ModelPackageVersion"]
    run_id = f"registry__{scheduler_group}-v{version}"

    run = airflow_api.wait_for_run(ROLLOUT_DAG, run_id)

    states = airflow_api.task_states(ROLLOUT_DAG, run_id)
    assert run["state"] == DagRunState.SUCCESS, states
    assert run["conf"]["challenger_source"] == approved
    assert run["conf"]["champion_source"] == group.packages["champion"]
    registry_runs = airflow_api.call("GET", f"dags/{REGISTRY_DAG}/dagRuns")["dag_runs"]
    assert [r["run_type"] for r in registry_runs] == ["asset_triggered"]
    assert run["conf"]["stages"] == [[50, 50]]  # CANARY_REGISTRY_ROLLOUT_CONF reached it
    gate = airflow_api.xcom(ROLLOUT_DAG, run_id, gate_task(1))
    assert Verdict(gate["verdict"]) is Verdict.PROMOTE  # the better challenger passed its gate
    unanswered = airflow_api.xcom(ROLLOUT_DAG, run_id, approve_task(1))
    assert (unanswered["needed"], unanswered["approved"], unanswered["by"]) == (True, False, None)
    rolled_back = airflow_api.xcom(ROLLOUT_DAG, run_id, ROLLBACK)
    assert RunOutcome(rolled_back["outcome"]) is RunOutcome.ROLLED_BACK
    assert "nobody answered" in rolled_back["rejected"]
    package = sm.describe_model_package(ModelPackageName=approved)
    assert package["CustomerMetadataProperties"][reg.ROLLOUT_KEY] == run_id
    assert package["ModelApprovalStatus"] == reg.REJECTED
    assert package["ApprovalDescription"] == rolled_back["rejected"]
    assert reg.find_champion(sm, scheduler_group) == group.packages["champion"]


def test_the_scheduler_keeps_its_records_in_postgresql(
    airflow_api: Api, postgres: LocalPostgres
) -> None:
    """The runs above are rows of our PostgreSQL server, not of a SQLite file."""
    import sqlalchemy

    airflow_api.wait_for_dag(ROLLOUT_DAG)
    engine = sqlalchemy.create_engine(postgres.url)
    with engine.connect() as db:
        dags = db.execute(sqlalchemy.text("SELECT dag_id FROM dag")).scalars().all()
        version = db.execute(sqlalchemy.text("SELECT version()")).scalar()
    engine.dispose()
    assert ROLLOUT_DAG in dags and version.startswith("PostgreSQL")
