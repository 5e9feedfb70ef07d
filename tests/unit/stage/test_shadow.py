"""The shadow stage's pairs: both answers to each labelled request, joined by inference id."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from canary.experiment.gates.evidence import (
    LatencySummary,
    Outcomes,
    PairedOutcomes,
    StageEvidence,
    VariantEvidence,
)
from canary.stage.shadow import pair_answers, served_answers, shadow_evidence

OPENED = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def test_only_requests_both_models_answered_and_that_have_a_label_pair_up() -> None:
    champion = {"a": [0.9], "b": [0.2], "c": [0.7], "gone": [0.1]}
    challenger = {"a": [0.8], "b": [0.6], "c": [0.3], "late": [0.9]}  # "late": no label yet
    labels = {"a": [1.0], "b": [0.0], "c": [1.0], "late": [1.0], "gone": [0.0]}
    pairs = pair_answers(champion, challenger, labels)
    assert pairs.labels.tolist() == [1.0, 0.0, 1.0]
    # a: both right; b: only the champion (0.6 says churn, the label says not); c: only champion
    assert pairs.outcomes(0.5) == PairedOutcomes(both_correct=1, champion_only=2)


def test_a_request_answered_with_different_row_counts_is_an_error_naming_it() -> None:
    with pytest.raises(ValueError, match="'x'"):
        pair_answers({"x": [0.1, 0.2]}, {"x": [0.3]}, {"x": [0.0, 1.0]})


def test_the_served_answers_are_the_labelled_successes_of_the_replay() -> None:
    """A labelled 200 whose body was no number (e) stays, as a wrong answer, as the
    challenger's unusable answers do: dropping only the champion's would bias the test."""
    frame = pd.DataFrame(
        {
            "inference_id": ["a", "b", "c", "d", "e"],
            "status": [200, 500, 200, 200, 200],
            "score": [0.9, np.nan, 0.4, 0.7, np.nan],
            "label": [1, None, 0, None, 1],
        }
    )
    scores, labels = served_answers(frame)
    assert scores.keys() == {"a", "c", "e"} and np.isnan(scores["e"][0])
    assert (scores["a"], scores["c"]) == ([0.9], [0.4])
    assert labels == {"a": [1.0], "c": [0.0], "e": [1.0]}


def test_the_challenger_keeps_its_metrics_and_both_take_their_scores_from_the_pairs() -> None:
    latency = LatencySummary(count=4, mean_ms=30.0, max_ms=80.0, p99_ms=79.0)
    served = StageEvidence(
        stage=-1,
        weights=(1.0, 0.0),
        champion=VariantEvidence("Champion", 3, outcomes=Outcomes(3, 2.0, 2.0)),
        challenger=VariantEvidence("Challenger", 4, errors_5xx=2, latency=latency),
        started_at=OPENED,
        observed_at=OPENED,
        paired=PairedOutcomes(),
    )
    pairs = pair_answers({"a": [0.9], "b": [0.2]}, {"a": [0.1], "b": [0.1]}, {"a": [1], "b": [0]})
    evidence = shadow_evidence(served, pairs, 0.5)
    shadow = evidence.challenger
    assert (shadow.requests, shadow.errors_5xx, shadow.latency) == (4, 2, latency)
    assert (shadow.outcomes.n, shadow.outcomes.total) == (2, 1.0)  # right on "b" only
    assert evidence.paired == PairedOutcomes(both_correct=1, champion_only=1)
    champion = evidence.champion  # its outcomes stay those of every request it served
    assert (champion.requests, champion.outcomes) == (3, served.champion.outcomes)
    # both models' scores of the same labelled requests: the AUC guardrail's paired test
    assert champion.scores.tolist() == [0.9, 0.2] and shadow.scores.tolist() == [0.1, 0.1]
    assert champion.labels.tolist() == shadow.labels.tolist() == [1, 0]
