"""A stage's gate on the local stack: it replays, looks and decides, poke after poke."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from canary.experiment.gates.decision import Decision, Verdict
from canary.experiment.gates.engine import EXACT_METHOD
from canary.plan import SHADOW_STAGE, RolloutPlan
from canary.stage.gate import StageGate
from canary.stage.window import StageWindow
from canary_airflow.aws import AwsClients
from tests.integration.deployed import deployed

CAP = 300  # requests: far below the thousands of pairs the gate plans for at margin 0.02
POKES = 60  # a sensor's pokes, a second apart, before the test gives up


def _rows(path: str, n: int) -> str:
    """A labelled CSV for the replay: the models' three features, the label x0 + x1 / 2 +
    noise > 0, which the champion and the challenger get about equally right, each where the
    other fails on many requests: no boundary is near within the cap."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(n, 3))
    label = (x[:, 0] + x[:, 1] / 2 + rng.normal(scale=0.5, size=n) > 0).astype(int)
    pd.DataFrame({"x0": x[:, 0], "x1": x[:, 1], "x2": x[:, 2], "label": label}).to_csv(
        path, index=False
    )
    return path


def _poke_until_decided(plan: RolloutPlan, window: StageWindow) -> tuple[Decision, StageGate]:
    """What the stage's sensor does: a fresh gate each poke, until one decides."""
    for _ in range(POKES):
        gate = StageGate(AwsClients(), plan, window, "run")
        decision = gate.hold(budget_seconds=60)
        if decision.verdict is not Verdict.CONTINUE:
            return decision, gate
        time.sleep(1)
    raise AssertionError(f"undecided after {POKES} pokes: {decision.reason}")


@pytest.mark.parametrize("capture_percent", [100, 50])
def test_a_shadow_stage_whose_cap_is_spent_takes_its_last_look_early(
    make_deployer, aws_conn, tmp_path, capture_percent: int
) -> None:
    """Once the cap is spent and Data Capture holds every copy CloudWatch counts as answered,
    the gate decides at the information reached instead of waiting for its deadline (30
    minutes), and its last look spends all of alpha (copies still queued are in neither count:
    the look may come before the cap's last pairs). When Data Capture keeps only
    half the copies the counts never match: the stage decides once they have stopped moving
    (``gate_settle_seconds``, shortened here), on the pairs it has."""
    fields = {"traffic_dataset": _rows(str(tmp_path / "rows.csv"), 1000), "gate_settle_seconds": 2,
              "traffic_label_column": "label", "traffic_requests_per_stage": CAP,
              "traffic_chunk_size": 100}  # fmt: skip
    with deployed(make_deployer, True, capture_percent, **fields) as plan:
        window = StageWindow(SHADOW_STAGE, plan.stage_weights(SHADOW_STAGE), time.time() - 1)
        decision, gate = _poke_until_decided(plan, window)
        replayed = gate.traffic.results()
    record = decision.record
    assert decision.verdict in (Verdict.PROMOTE, Verdict.ROLLBACK)
    assert record["evidence_complete"] is True
    assert record["look"]["early_last"] is True and record["look"]["fraction"] < 1
    assert record["look"]["efficacy"] == record["look"]["futility"]
    assert len(replayed) == CAP and (replayed["status"] == 200).all()
    # copies still in the shadow's queue are in neither count yet: the look may come sooner
    answered = record["variants"][plan.variants[1]]["requests"]
    assert 0 < answered <= CAP
    pairs = record["paired"]["n_pairs"]
    assert pairs == answered if capture_percent == 100 else 0 < pairs < answered


def test_a_gate_without_replay_never_reads_the_replay_dataset(make_deployer, aws_conn) -> None:
    """With real traffic the replay's dataset need not exist where the gate runs: the gate
    reads the endpoint's telemetry only, and with no traffic yet it waits."""
    fields = {"traffic_enabled": False, "traffic_dataset": "/nowhere/rows.csv"}
    with deployed(make_deployer, shadow=False, **fields) as plan:
        window = StageWindow(0, plan.stage_weights(0), time.time() - 1)
        decision = StageGate(AwsClients(), plan, window, "run").hold(budget_seconds=5)
    assert decision.verdict is Verdict.CONTINUE
    assert decision.record["variants"][plan.variants[1]]["requests"] == 0
    assert "look" not in decision.record  # no look taken: it waits for traffic


def test_a_cleared_stage_replays_afresh_in_its_new_window(make_deployer, aws_conn, tmp_path):
    """Clearing a stage's tasks opens a new window. Its replay starts from nothing, on rows no
    window sent, and its gate judges only those: it neither finds the stage's traffic spent by
    the first window nor waits for CloudWatch to count the first window's requests as its own
    (it never would: they came before the new window opened)."""
    fields = {"traffic_dataset": _rows(str(tmp_path / "rows.csv"), 1000),
              "traffic_label_column": "label", "traffic_requests_per_stage": CAP,
              "traffic_chunk_size": 100, "gate_settle_seconds": 2}  # fmt: skip
    with deployed(make_deployer, False, **fields) as plan:
        weights = plan.stage_weights(0)
        opened = StageWindow(0, weights, time.time() - 1)
        _, first = _poke_until_decided(plan, opened)
        # the new window opens now, and on a later second than the first (windows are keyed
        # by their second): the gate waits for a start that lies ahead
        cleared = StageWindow(0, weights, max(time.time(), int(opened.started_at) + 1))
        decision, second = _poke_until_decided(plan, cleared)
        before, after = first.traffic.results(), second.traffic.results()
    assert decision.verdict is not Verdict.CONTINUE
    assert decision.record["stage_started_at"] == cleared.opened_at.isoformat()
    assert len(after) == CAP and (after["timestamp"] >= cleared.opened_at).all()
    assert set(after["inference_id"]).isdisjoint(before["inference_id"])
    look = decision.record["look"]
    assert look["n_champion"] + look["n_challenger"] <= CAP  # none of the first window's


def test_a_50_50_stage_with_rare_errors_is_judged_by_the_exact_test(
    make_deployer, aws_conn, tmp_path
) -> None:
    """Planned at 97 % accuracy with a margin of 0.05 (about 5 errors per variant by n_fix),
    the 50/50 stage's gate runs the exact lattice test: each poke's fresh gate walks on from
    the looks the last one kept, over no more pairs than both variants answered, and decides."""
    fields = {"traffic_dataset": _rows(str(tmp_path / "rows.csv"), 1000), "gate_margin": 0.05,
              "gate_planning_rate": 0.97, "traffic_label_column": "label",
              "traffic_requests_per_stage": CAP, "traffic_chunk_size": 100,
              "gate_settle_seconds": 2}  # fmt: skip
    with deployed(make_deployer, False, **fields) as plan:
        window = StageWindow(0, plan.stage_weights(0), time.time() - 1)
        decision, _ = _poke_until_decided(plan, window)
    record = decision.record
    assert decision.verdict in (Verdict.PROMOTE, Verdict.ROLLBACK)
    assert record["design"]["method"] == EXACT_METHOD
    assert record["exact_test"]["false_promotion_at_most"] <= plan.gate.alpha
    looks = record["looks"]
    walked = [look["exact"]["pairs"] for look in looks]
    step = record["exact_test"]["step_pairs"]
    assert walked == sorted(walked) and all(pairs % step == 0 for pairs in walked)
    last = looks[-1]
    assert last["exact"]["pairs"] <= min(last["n_champion"], last["n_challenger"])
    assert last["verdict"] == decision.verdict.value
