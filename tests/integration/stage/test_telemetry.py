"""Telemetry against the real local stack: CloudWatch counts + Data Capture joined with labels."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from canary.experiment.gates import GateConfig, Verdict, evaluate
from canary.plan import SHADOW_STAGE, RolloutPlan
from canary.rollout.layout import capture_uri, ground_truth_prefix, ground_truth_uri
from canary.stage.evidence import EvidenceSource
from canary.stage.telemetry import StageSource, collect_stage_evidence
from canary.stage.window import StageWindow
from tests.integration.deployed import deployed, model


@dataclass
class Sent:
    """What the test sent: per inference id the variant that answered, its score, the label
    (None: the label never arrives) and the features."""

    rows: dict[str, tuple[str, float, int | None, np.ndarray]]

    def correct(self, scores: dict[str, float]) -> int:
        """How many of the labelled requests in ``scores`` (by inference id) it gets right."""
        labels = {i: row[2] for i, row in self.rows.items() if row[2] is not None}
        return sum(int((score >= 0.5) == (labels[i] == 1)) for i, score in scores.items()
                   if i in labels)  # fmt: skip


def _send(local_stack, plan: RolloutPlan, n: int) -> Sent:
    """``n`` requests with inference ids, and their labels (every tenth never arrives) in
    Model Monitor's ground-truth layout."""
    rt, s3 = local_stack.client("sagemaker-runtime"), local_stack.client("s3")
    rng = np.random.default_rng(11)
    rows, truth = {}, []
    for i in range(n):
        x = rng.normal(size=3)
        label = int(x[0] + rng.normal(scale=0.5) > 0)
        resp = rt.invoke_endpoint(EndpointName=plan.endpoint_name, ContentType="text/csv",
                                  Body=",".join(map(str, x)), InferenceId=f"id-{i}")  # fmt: skip
        score = float(resp["Body"].read().decode().strip())
        arrives = i % 10 != 0
        rows[f"id-{i}"] = (resp["InvokedProductionVariant"], score, label if arrives else None, x)
        if arrives:
            meta = {"eventId": f"id-{i}"}
            truth.append({"groundTruthData": {"data": str(label), "encoding": "CSV"},
                          "eventMetadata": meta, "eventVersion": "0"})  # fmt: skip
    s3.put_object(Bucket=plan.bucket, Key=f"{ground_truth_prefix(plan)}/2025/01/01/00/l.jsonl",
                  Body="\n".join(json.dumps(t) for t in truth).encode())  # fmt: skip
    local_stack.flush()
    return Sent(rows)


def test_collects_counts_and_joined_outcomes_from_the_local_stack(
    local_stack, make_deployer
) -> None:
    with deployed(make_deployer, shadow=False) as plan:
        started = datetime.now(UTC) - timedelta(seconds=1)
        sent = _send(local_stack, plan, 80)
        source = StageSource(plan.endpoint_name, plan.variants, capture_uri(plan),
                             ground_truth_uri(plan))  # fmt: skip
        # 5 expected errors per variant by n_fix: the exact test judges, a decision per 10 pairs
        config = GateConfig(margin=0.05, planning_rate=0.97, min_requests=10, exact_step=10)
        ev = collect_stage_evidence(local_stack.client("cloudwatch"), local_stack.client("s3"),
                                    source, stage=0, weights=(50, 50), started_at=started,
                                    config=config)  # fmt: skip
    served = {v: [r for r in sent.rows.values() if r[0] == v] for v in plan.variants}
    labelled = [r for r in sent.rows.values() if r[2] is not None]
    assert ev.champion.requests == len(served["Champion"])
    assert ev.challenger.requests == len(served["Challenger"])
    assert ev.champion.requests + ev.challenger.requests == 80
    assert ev.champion.outcomes.n + ev.challenger.outcomes.n == len(labelled)
    assert ev.champion.errors_5xx == ev.challenger.errors_5xx == 0
    assert ev.champion.latency is not None and ev.champion.latency.mean_ms > 0
    # the p99 comes from a call of its own (Statistics and ExtendedStatistics never together)
    assert ev.champion.latency.p99_ms is not None
    assert 0 < ev.champion.latency.p99_ms <= ev.champion.latency.max_ms
    for variant, evidence in zip(plan.variants, (ev.champion, ev.challenger), strict=True):
        scores = {i: r[1] for i, r in sent.rows.items() if r[0] == variant}
        assert evidence.outcomes.total == sent.correct(scores)
    decision, _ = evaluate(ev, config)
    record = json.loads(json.dumps(decision.record))
    assert record["srm"]["observed"] == [ev.champion.requests, ev.challenger.requests]
    assert record["srm"]["mismatch"] is False and decision.verdict is not Verdict.HALT
    reach = min(ev.champion.outcomes.n, ev.challenger.outcomes.n) // 10 * 10
    walked = record["look"]["exact"]["pairs"]  # every decision the counts reach, or the first
    assert walked == reach or (walked < reach and decision.verdict is not Verdict.CONTINUE)
    assert record["variants"]["Champion"]["requests"] == len(served["Champion"])


def test_a_shadow_stage_pairs_the_served_and_the_captured_answers(
    local_stack, make_deployer
) -> None:
    """Real traffic in the shadow stage: the champion answers every caller, the challenger's
    answers are only in Data Capture; the evidence pairs them by inference id with the labels,
    and the challenger's counts and latency come from its own CloudWatch metrics."""
    with deployed(make_deployer, shadow=True) as plan:
        started = datetime.now(UTC) - timedelta(seconds=1)
        sent = _send(local_stack, plan, 60)
        window = StageWindow(SHADOW_STAGE, plan.stage_weights(SHADOW_STAGE), started.timestamp())
        source = EvidenceSource(local_stack.client("cloudwatch"), local_stack.client("s3"), plan,
                                window, GateConfig.of(plan.gate))  # fmt: skip
        ev = source.collect(None, None)
    assert {variant for variant, *_ in sent.rows.values()} == {"Champion"}
    assert (ev.champion.requests, ev.challenger.requests) == (60, 60)  # every request mirrored
    assert ev.challenger.latency is not None and ev.challenger.latency.count == 60
    labelled = [i for i, r in sent.rows.items() if r[2] is not None]
    assert ev.paired is not None and ev.paired.n == len(labelled) == ev.challenger.outcomes.n
    champion = {i: r[1] for i, r in sent.rows.items()}
    challenger = dict(zip(sent.rows, model(1).predict_proba(
        np.array([r[3] for r in sent.rows.values()]))[:, 1], strict=True))  # fmt: skip
    assert ev.paired.both_correct + ev.paired.champion_only == sent.correct(champion)
    assert ev.paired.both_correct + ev.paired.challenger_only == sent.correct(challenger)


def test_bad_source_names_the_field() -> None:
    with pytest.raises(ValueError, match="capture_uri"):
        StageSource("e", ("a", "b"), "capture", "s3://b/t")
