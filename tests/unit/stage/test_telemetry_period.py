"""How a stage's CloudWatch metrics are read: never more data points than one call may return."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from canary.stage.telemetry import MAX_DATAPOINTS, period_for
from canary.stage.window import PERIOD

START = datetime(2026, 12, 6, tzinfo=UTC)


@pytest.mark.parametrize(
    ("span", "period"),
    [(timedelta(minutes=30), 60), (timedelta(days=1), 60), (timedelta(days=7), 420)],
)
def test_a_long_stage_is_read_in_longer_periods(span: timedelta, period: int) -> None:
    """A stage may run a week; 60 s periods over more than a day would be refused."""
    got = period_for(START, START + span)
    assert got == period and got % PERIOD == 0
    assert span.total_seconds() / got <= MAX_DATAPOINTS
