"""A shadow's answers come only from Data Capture: how a captured answer becomes scores."""

from __future__ import annotations

import math

from canary.stage.telemetry import captured_scores


def test_captured_scores_read_one_score_per_row() -> None:
    assert captured_scores("0.25\n0.75\n") == [0.25, 0.75]
    assert captured_scores("0.1,0.9") == [0.1, 0.9]


def test_a_captured_answer_that_is_no_number_is_an_unusable_score_not_a_failed_look() -> None:
    """A shadow answering garbage must be judged (its answers count as the worst), not crash
    the look that reads it; its row count is kept, so it still joins its labels."""
    scores = captured_scores("0.3\nerror: model crashed\nnan\ninf\n")
    assert scores[0] == 0.3 and len(scores) == 4
    assert all(math.isnan(score) for score in scores[1:])
