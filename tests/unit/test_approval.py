"""What a person is asked and told: the decision summary, the approval's text, rejections."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from canary.experiment.gates import GateConfig, Outcomes, StageEvidence, VariantEvidence, evaluate
from canary.plan import DEFAULT_PLAN
from canary.reporting import notification as news
from canary.rollout.outcome import RunOutcome
from canary_airflow.approval import answer, next_step, rejection

START = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def record() -> dict:
    """A real decision record: the engine's verdict on a challenger clearly not worse."""
    champion = VariantEvidence("Champion", 4000, outcomes=Outcomes(4000, 3600, 3600))
    challenger = VariantEvidence("Challenger", 4000, outcomes=Outcomes(4000, 3700, 3700))
    evidence = StageEvidence(0, (50, 50), champion, challenger, START, START + timedelta(minutes=3))
    decision, _ = evaluate(evidence, GateConfig(margin=0.03, planning_rate=0.9))
    return decision.record


def test_summary_carries_verdict_effect_guardrails_and_traffic(record: dict) -> None:
    summary = news.decision_summary(record)
    assert summary["stage"] == 1
    assert summary["verdict"] == record["verdict"] == "promote"
    assert summary["effect"]["diff"] == pytest.approx(0.025)
    assert summary["effect"]["ci_low"] < 0.025 < summary["effect"]["ci_high"]
    assert summary["guardrails"] == {c["name"]: c["status"] for c in record["guardrails"]}
    assert summary["requests"] == {"Champion": 4000, "Challenger": 4000}
    assert summary["look"] == len(record["looks"]) == 1


def test_approval_text_says_what_each_answer_does(record: dict) -> None:
    summary = news.decision_summary(record)
    step = next_step(DEFAULT_PLAN, 1)
    subject = news.approval_subject("churn-canary", summary, step)
    body = news.approval_body(summary, step, 45)
    assert subject == "Approve churn-canary: stage 1 passed; next stage 3 (0/100)?"
    assert subject.isascii() and len(subject) <= news.SUBJECT_LIMIT
    assert "**Reject** rolls back" in body and "45 minutes: Reject" in body
    assert news.summary_markdown(summary) in body
    assert next_step(DEFAULT_PLAN, 2) == "the promotion (challenger at 100 %)"


def test_subjects_fit_sns() -> None:
    long = news.outcome_subject("e" * 63, RunOutcome.ROLLED_BACK)
    assert long.isascii() and len(long) <= news.SUBJECT_LIMIT
    assert news.outcome_subject("churn", RunOutcome.ROLLED_BACK) == "churn: rollout rolled back"


def test_a_rejection_names_who_or_the_timeout() -> None:
    nobody_asked = answer(needed=False, approved=True)
    approved = answer(needed=True, approved=True, by="ana", at="t")
    assert rejection([nobody_asked, approved, None]) is None
    assert rejection([approved, answer(needed=True, approved=False, by="bo", at="t")]) == (
        "stage 2: bo rejected the promotion"
    )
    timed_out = answer(needed=True, approved=False, by=None, at="t")
    assert "nobody answered" in rejection([timed_out])


def test_the_next_step_names_its_split_as_shares_of_traffic() -> None:
    """Weights are relative: (1, 3) is the stage where the challenger serves 75 %, as the
    report and the dashboard name it, not "1/3"."""
    from canary.plan import parse_plan
    from canary_airflow.approval import next_step

    plan = parse_plan({"stages": [[9, 1], [3, 1], [1, 3]]})
    assert next_step(plan, 1) == "stage 3 (25/75)"
    assert next_step(plan, 2) == "the promotion (challenger at 100 %)"
