"""Where a stage's evidence comes from: the replay's own results, or the endpoint's telemetry.

With replayed traffic the client knows each request's score, label, latency and propensity, but
not which variant answered an error (SageMaker's error responses do not say): the counts come
from CloudWatch, once it has counted what the replay sent. With real traffic everything comes
from Data Capture, ground truth and CloudWatch (:mod:`canary.stage.telemetry`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from canary.experiment.gates.config import GateConfig
from canary.experiment.gates.evidence import (
    CarriedEstimate,
    LatencySummary,
    Outcomes,
    PairedOutcomes,
    StageEvidence,
    VariantEvidence,
    champion_estimate,
)
from canary.experiment.gates.frame import evidence_from_frame
from canary.plan import SHADOW_STAGE, RolloutPlan
from canary.rollout.layout import capture_uri, ground_truth_uri
from canary.stage import shadow, telemetry, traffic
from canary.stage.state import CHAMPION, StageState
from canary.stage.window import StageWindow

log = logging.getLogger(__name__)

# CloudWatch may lag the traffic (a flush interval locally, a minute or two on AWS): how long a
# look waits for it to count what the replay sent, and how often it asks.
METRICS_CATCH_UP_SECONDS = 180.0
METRICS_POLL_SECONDS = 0.5


class MetricsLagError(RuntimeError):
    """CloudWatch has not counted the stage's traffic in time (the gate's task retries)."""


@dataclass(frozen=True)
class EvidenceSource:
    """Builds one stage's :class:`StageEvidence` for the gate, at the moment it looks."""

    cloudwatch: Any
    s3: Any
    plan: RolloutPlan
    window: StageWindow
    config: GateConfig

    def collect(
        self, frame: pd.DataFrame | None, carried: CarriedEstimate | None, spent: bool = False
    ) -> StageEvidence:
        """Evidence from the replay's ``frame`` when traffic is replayed, else from telemetry.
        ``spent``: the replay has sent all the stage's traffic; the evidence is then complete
        once every answer it will give is counted (:func:`_all_copies_captured`; else the
        gate waits for the counts to settle, ``StageGate._settled``)."""
        now = datetime.now(UTC)
        started = self.window.opened_at
        if frame is None:
            answers = telemetry.StageAnswers.read(self.s3, self._source(), started)
            evidence = self._from_telemetry(started, max(now, started), carried, answers)
            if not self.window.shadow:
                return evidence
            champion, challenger = (answers.captured[v] for v in self.plan.variants)
            return self._paired(evidence, champion, challenger, answers.labels)
        evidence = evidence_from_frame(
            frame.assign(stage=self.window.index),
            stage=self.window.index,
            weights=self.window.pair(self.plan),
            variants=self.plan.variants,
            config=self.config,
            carried=carried,
            started_at=started,
            observed_at=max(now, started),
            paired=self._no_pairs_yet(),
        )
        answered = int((frame["status"] > 0).sum())  # status 0: no response reached us
        evidence = self._served_counts(evidence, answered)
        if not self.window.shadow:
            return replace(evidence, complete=spent)
        served, labels = shadow.served_answers(frame)
        mirrored = telemetry.captured_predictions(
            self.s3, self._source(), self.plan.variants[1], started
        )
        paired = self._paired(evidence, served, mirrored, labels)
        return replace(paired, complete=spent and _all_copies_captured(evidence, mirrored))

    def _no_pairs_yet(self) -> PairedOutcomes | None:
        """A shadow stage's evidence is paired; its pairs are joined in :meth:`_paired`."""
        return PairedOutcomes() if self.window.shadow else None

    def _paired(
        self,
        evidence: StageEvidence,
        champion: shadow.Answers,
        challenger: shadow.Answers,
        labels: shadow.Answers,
    ) -> StageEvidence:
        """The shadow stage's evidence: the champion's answers paired with the shadow's."""
        pairs = shadow.pair_answers(champion, challenger, labels)
        return shadow.shadow_evidence(evidence, pairs, self.config.threshold)

    def _source(self) -> telemetry.StageSource:
        return telemetry.StageSource(
            endpoint_name=self.plan.endpoint_name,
            variants=self.plan.variants,
            capture_uri=capture_uri(self.plan),
            ground_truth_uri=ground_truth_uri(self.plan),
        )

    def _from_telemetry(
        self,
        started: datetime,
        now: datetime,
        carried: CarriedEstimate | None,
        answers: telemetry.StageAnswers,
    ) -> StageEvidence:
        return telemetry.collect_stage_evidence(
            self.cloudwatch,
            self.s3,
            self._source(),
            stage=self.window.index,
            weights=self.window.pair(self.plan),
            started_at=started,
            config=self.config,
            now=now,
            carried=carried,
            paired=self._no_pairs_yet(),
            answers=answers,
        )

    def _served_counts(self, evidence: StageEvidence, answered: int) -> StageEvidence:
        """Requests and errors per variant as the endpoint counted them (CloudWatch).

        SageMaker's error responses do not name the variant that failed, so a client routed by
        endpoint weights cannot attribute its 4XX/5XX; the endpoint's own metrics can. They are
        the only source of counts (mixing them with the client's would skew the split), and
        the gate waits until they account for the ``answered`` requests, so rates and the sample
        ratio are never judged on a lagging view of the traffic or a partial period. The stage's
        window starts on a whole period, so no earlier request is in these counts either.
        """
        variants = (evidence.champion, evidence.challenger)
        weights = self.window.pair(self.plan)
        deadline = time.monotonic() + METRICS_CATCH_UP_SECONDS
        while True:  # counts only: latency is read once they have caught up
            metrics = [self._counts(variant.name, evidence.started_at) for variant in variants]
            # a shadow's invocations are copies: only the serving variants answered callers
            counted = sum(m["invocations"] for m, w in zip(metrics, weights, strict=True) if w > 0)
            if counted >= answered or time.monotonic() > deadline:
                break
            time.sleep(METRICS_POLL_SECONDS)
        if counted < answered:
            raise MetricsLagError(
                f"CloudWatch counts {counted} of the {answered} requests answered in this stage "
                f"after {METRICS_CATCH_UP_SECONDS:.0f} s; no look is taken on a partial count"
            )
        champion, challenger = (
            replace(
                variant,
                requests=m["invocations"],
                errors_4xx=m["errors_4xx"],
                errors_5xx=m["errors_5xx"],
                # a shadow (weight 0) answered no caller: only the endpoint timed it
                latency=variant.latency if w > 0 else self._latency(variant.name, evidence),
            )
            for variant, m, w in zip(variants, metrics, weights, strict=True)
        )
        return replace(evidence, champion=champion, challenger=challenger)

    def _counts(self, variant: str, since: datetime) -> dict[str, int]:
        return telemetry.variant_counts(
            self.cloudwatch, self.plan.endpoint_name, variant, since, datetime.now(UTC)
        )

    def _latency(self, variant: str, evidence: StageEvidence) -> LatencySummary | None:
        return telemetry.variant_latency(
            self.cloudwatch,
            self.plan.endpoint_name,
            variant,
            evidence.started_at,
            datetime.now(UTC),
        )


def _all_copies_captured(evidence: StageEvidence, mirrored: shadow.Answers) -> bool:
    """Every copy the shadow answered (its CloudWatch invocations less its errors) has reached
    Data Capture. Until then more pairs may come, so a spent shadow stage waits for them; a
    count that lags only makes the last look come sooner, never depends on the answers."""
    copies = evidence.challenger
    return len(mirrored) >= copies.requests - copies.errors


def carried_champion(state: StageState) -> CarriedEstimate | None:
    """The champion's quality over earlier stages, for a stage where it gets no traffic."""
    plan, window = state.plan, state.window
    if window.pair(plan)[0] > 0:
        return None
    before = [index for index in plan.stage_indices if index < window.index]
    if _shadow_rows_replayed_again(plan):
        before = [index for index in before if index != SHADOW_STAGE]
    earlier = {index: state.load(CHAMPION, None, stage=index) for index in before}
    opened = window.opened_at  # may lie ahead: a period boundary
    stages = [
        StageEvidence(
            stage=index,
            weights=(1.0, 1.0),
            champion=VariantEvidence(plan.variants[0], outcomes=Outcomes(**outcomes)),
            challenger=VariantEvidence(plan.variants[1]),
            started_at=opened,
            observed_at=opened,
        )
        for index, outcomes in earlier.items()
        if outcomes and outcomes["n"] > 1
    ]
    return champion_estimate(stages) if stages else None


def _shadow_rows_replayed_again(plan: RolloutPlan) -> bool:
    """Whether the canary stages replay rows the shadow stage already sent. The shadow stage
    measured the champion on the same kind of traffic (it served every request), so its
    outcomes join the carried estimate; but canary stages replayed in mapped shards start
    their slices of users afresh, on rows the shadow stage sent, and a row counted twice
    would understate the estimate's variance."""
    return traffic.gate_slice(plan, shadow=False) != traffic.gate_slice(plan, shadow=True)
