"""Progress lines: one per gate look (from the engine's real records) and one per task."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from canary.experiment.gates import (
    GateConfig,
    Outcomes,
    StageEvidence,
    VariantEvidence,
    Verdict,
    evaluate,
)
from canary.experiment.gates.decision import Decision
from canary.stage.progress import LOGGER, announce, look_line
from canary_airflow.dev.local_airflow import task_line

CONFIG = GateConfig(margin=0.05, planning_rate=0.85)
START = datetime(2025, 1, 1, tzinfo=UTC)


def evidence(n: int, correct: int, minutes: float = 1.0) -> StageEvidence:
    """Stage index 1 (the second stage) at 25/75, ``n`` labelled requests per variant."""
    champion = VariantEvidence("Champion", n, outcomes=Outcomes(n, correct, correct))
    challenger = VariantEvidence("Challenger", n, outcomes=Outcomes(n, correct, correct))
    return StageEvidence(
        1, (25, 75), champion, challenger, START, START + timedelta(minutes=minutes)
    )


def test_a_look_reads_as_one_line() -> None:
    look = {"stage": 0, "look": 3, "n_champion": 1200, "n_challenger": 1187}
    look |= {"z": 1.8412, "efficacy": 2.1, "futility": -0.4}
    record = {"stage": 0, "weights": {"Champion": 50, "Challenger": 50}, "look": look}
    record["design"] = {"planned_looks": 10}
    assert look_line(Decision(Verdict.CONTINUE, "between bounds", record)) == (
        "  stage 1 [50/50]  look 3/10  requests 1200/1187  "
        "z=1.84 vs promote >= 2.10 / rollback <= -0.40  -> continue"
    )


def test_engine_records_have_what_the_line_needs() -> None:
    decision, looks = evaluate(evidence(400, 340), CONFIG)
    assert len(looks) == 1, "400 requests each must be enough for a first look"
    line = look_line(decision)
    assert line is not None
    assert line.startswith(f"  stage 2 [25/75]  look 1/{CONFIG.looks}  requests 400/400  z=")
    assert line.endswith(f"  -> {decision.verdict}")


def test_an_exact_test_look_shows_the_pairs_it_walked() -> None:
    """A 50/50 stage with rare errors is judged by the exact test: its line says how many
    pairs the decision used and their errors, out of its own number of decisions."""
    config = GateConfig(margin=0.05, planning_rate=0.95, exact_step=10)
    champion = VariantEvidence("Champion", 64, outcomes=Outcomes(64, 61, 61))
    challenger = VariantEvidence("Challenger", 57, outcomes=Outcomes(57, 55, 55))
    ev = StageEvidence(1, (50, 50), champion, challenger, START, START + timedelta(minutes=1))
    decision, looks = evaluate(ev, config)
    walk = looks[-1]["exact"]
    decisions = decision.record["exact_test"]["max_pairs"] // config.exact_step
    line = look_line(decision)
    assert line is not None
    assert line.startswith(
        f"  stage 2 [50/50]  look 1/{decisions}  requests 64/57, exact test at "
        f"{walk['pairs']} pairs (errors {walk['champion_errors']}/{walk['challenger_errors']})  z="
    )


def test_an_early_last_look_says_why_it_is_the_last() -> None:
    """A stage whose traffic is spent ends at this look, not at the planned number."""
    decision, _ = evaluate(replace(evidence(400, 340), complete=True), CONFIG)
    line = look_line(decision)
    assert line is not None and decision.verdict is not Verdict.CONTINUE
    assert line.startswith("  stage 2 [25/75]  look 1 (last: traffic spent)  requests 400/400")


def test_a_poke_without_a_look_says_nothing() -> None:
    decision, looks = evaluate(evidence(5, 4), CONFIG)
    assert decision.verdict is Verdict.CONTINUE and looks == []
    assert look_line(decision) is None


def test_a_deadline_decision_without_a_look_still_shows() -> None:
    decision, _ = evaluate(evidence(5, 4, minutes=CONFIG.max_stage_minutes + 1), CONFIG)
    assert decision.verdict is Verdict.ROLLBACK
    assert look_line(decision) == "  stage 2 [25/75]  no new look  -> rollback"


def test_statistics_not_computed_yet_read_n_a() -> None:
    look = {"stage": 0, "look": 1, "n_champion": 3, "n_challenger": 2}
    look |= {"z": None, "efficacy": None, "futility": -1.0}
    record = {"stage": 0, "weights": {"a": 0.5, "b": 0.5}, "look": look}
    record["design"] = {"planned_looks": 5}
    line = look_line(Decision(Verdict.CONTINUE, "no primary statistic", record))
    assert line is not None and "[50/50]" in line  # weights as shares of traffic
    assert "z=n/a vs promote >= n/a / rollback <= -1.00" in line


def test_announce_logs_on_the_progress_logger(caplog: pytest.LogCaptureFixture) -> None:
    decision, _ = evaluate(evidence(400, 340), CONFIG)
    with caplog.at_level(logging.INFO, logger=LOGGER.name):
        announce(decision)
        announce(evaluate(evidence(5, 4), CONFIG)[0])  # took no look: nothing to say
    assert [r.getMessage() for r in caplog.records] == [look_line(decision)]


def test_task_lines_align_and_say_when_a_task_never_ran() -> None:
    ran = task_line("stage_1.set_weights", "success", 1.23)
    never = task_line("promote", "skipped", None)
    assert ran == "  + stage_1.set_weights            success     1.2 s"
    assert never.split() == ["-", "promote", "skipped", "-"]
    assert len(ran) == len(never)
    assert task_line("deploy_endpoint", "failed", 0.4).startswith("  x deploy_endpoint ")
