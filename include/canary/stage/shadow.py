"""The shadow stage's evidence: both models' answers to the same requests, paired by inference id.

Why pairs: in the shadow stage the champion serves every request and the challenger, a SageMaker
shadow variant, answers a copy that only Data Capture keeps. Both answers to one request share its
inference id, so each labelled request gives one pair (champion right?, challenger right?) and the
gate tests the paired difference: each model's own noise no longer counts twice.

The challenger's requests, errors and latency come from its own CloudWatch metrics (a shadow's
failures never reach a caller); its outcomes are those of the pairs. A request whose copy is not
captured yet (capture flushes lag) simply joins a later look: lag does not depend on how either
model answered. A request the shadow failed (4XX/5XX) never pairs, and that does depend on the
challenger: its failures fall out of the comparison, and only the error-rate guardrails (and the
rollback of a challenger that fails every request) judge them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from canary.experiment.gates.evidence import Outcomes, PairedOutcomes, StageEvidence
from canary.experiment.rewards import correct

Answers = Mapping[str, list[float]]  # inference id -> one score per row of the request


@dataclass(frozen=True)
class Pairs:
    """The labelled rows both models answered: scores side by side with their labels."""

    champion: np.ndarray
    challenger: np.ndarray
    labels: np.ndarray

    def outcomes(self, threshold: float) -> PairedOutcomes:
        """The 2×2 agreement table of correct / incorrect."""
        return PairedOutcomes.of(
            correct(self.champion, self.labels, threshold),
            correct(self.challenger, self.labels, threshold),
        )


def pair_answers(champion: Answers, challenger: Answers, labels: Answers) -> Pairs:
    """Rows of the requests both models answered and that have a label, in one order."""
    rows: list[tuple[float, float, float]] = []
    for inference_id in sorted(champion.keys() & challenger.keys() & labels.keys()):
        served, shadow = champion[inference_id], challenger[inference_id]
        truth = labels[inference_id]
        if not len(served) == len(shadow) == len(truth):
            raise ValueError(
                f"inference id {inference_id!r}: {len(served)} champion, {len(shadow)} challenger "
                f"answers and {len(truth)} labels"
            )
        rows += zip(served, shadow, truth, strict=True)
    table = np.array(rows, dtype=float).reshape(-1, 3)
    return Pairs(table[:, 0], table[:, 1], table[:, 2])


def served_answers(frame: pd.DataFrame) -> tuple[Answers, Answers]:
    """The champion's answers and the labels, by inference id, from the replay's results.
    An answer without a usable score (NaN) stays: it pairs as a wrong answer of the champion's,
    as the challenger's unusable answers pair as wrong ones (``rewards.correct``); dropping only
    the champion's would bias the paired test against the challenger."""
    ok = frame[(frame["status"] == 200) & frame["label"].notna()]
    ids = ok["inference_id"].astype(str)
    scores = dict(zip(ids, ([s] for s in ok["score"].astype(float)), strict=True))
    labels = dict(zip(ids, ([float(v)] for v in ok["label"].astype(float)), strict=True))
    return scores, labels


def shadow_evidence(evidence: StageEvidence, pairs: Pairs, threshold: float) -> StageEvidence:
    """``evidence`` (both variants' counts and latency from their CloudWatch metrics) completed
    with what the pairs say: the shadow challenger's outcomes, the 2×2 table, and both models'
    scores of the same labelled requests (the AUC guardrail's paired DeLong test). The
    champion's outcomes stay those of every request it served."""
    right = correct(pairs.challenger, pairs.labels, threshold).astype(float)
    labels = pairs.labels.astype(int)
    challenger = replace(
        evidence.challenger,
        outcomes=Outcomes.of(right, binary=True),
        scores=pairs.challenger,
        labels=labels,
    )
    champion = replace(evidence.champion, scores=pairs.champion, labels=labels)
    return replace(
        evidence, champion=champion, challenger=challenger, paired=pairs.outcomes(threshold)
    )
