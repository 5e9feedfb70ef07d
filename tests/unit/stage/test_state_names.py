"""The names a stage's decision records are filed under: what writes them and what reads them
back (the dashboard, a test waiting for a look) agree through one pair of functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from canary.experiment.gates import Verdict
from canary.stage.state import DECISIONS, decision_name, decision_of


@pytest.mark.parametrize("verdict", list(Verdict))
def test_a_decision_name_gives_back_its_time_and_verdict(verdict: Verdict) -> None:
    at = datetime(2026, 12, 6, 3, 4, 5, 678901, tzinfo=UTC)
    name = decision_name(at, verdict)
    assert name.startswith(DECISIONS)
    assert decision_of(f"bucket-prefix/run/gates/stage-1/{name}") == (at, verdict)


def test_names_sort_in_the_order_written() -> None:
    at = datetime(2026, 12, 6, 9, 59, 59, 999999, tzinfo=UTC)
    written = [at + timedelta(microseconds=step) for step in (0, 1, 2, 10**6, 10**9)]
    names = [decision_name(moment, Verdict.CONTINUE) for moment in written]
    assert sorted(names) == names


@pytest.mark.parametrize(
    "key",
    [
        "p/decisions/not-a-record.json",
        "p/looks.json",
        "p/decisions/20261206T0-promote.json",
        "p/decisions/20261206T030405678901Z-maybe.json",
    ],
)
def test_any_other_key_is_no_decision(key: str) -> None:
    assert decision_of(key) is None
