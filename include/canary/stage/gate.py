"""One rollout stage held by its gate: feed it traffic, gather the evidence, let the gate decide.

This is the rollout step's side of the Argo-Rollouts/Flagger split: the gate
(:mod:`canary.experiment.gates`) only judges evidence; this package decides where the evidence
comes from (:mod:`.evidence`), sends the synthetic traffic (:mod:`.traffic`) and keeps the
stage's state between looks (:mod:`.state`), so a sensor can call :meth:`StageGate.hold` again
after a reschedule, in another process, and carry on where the last poke stopped.
"""

from __future__ import annotations

import time
from dataclasses import asdict, replace
from functools import cached_property
from typing import Any

import pandas as pd

from canary.experiment.gates.config import GateConfig
from canary.experiment.gates.decision import Decision, Verdict
from canary.experiment.gates.engine import evaluate
from canary.experiment.gates.evidence import CarriedEstimate, StageEvidence
from canary.plan import RolloutPlan
from canary.stage.evidence import EvidenceSource, carried_champion
from canary.stage.progress import announce
from canary.stage.state import CHAMPION, SETTLING, StageState
from canary.stage.traffic import StageTraffic
from canary.stage.window import StageWindow


class StageGate:
    """The look loop of one stage of one run: replay a chunk, look, until the gate decides."""

    def __init__(self, aws: Any, plan: RolloutPlan, window: StageWindow, run_key: str) -> None:
        self.plan, self.window = plan, window
        self.config = GateConfig.of(plan.gate)
        self.state = StageState(aws.s3, plan, run_key, window)
        self.evidence = EvidenceSource(aws.cloudwatch, aws.s3, plan, window, self.config)
        carried = self.carried
        self.traffic = StageTraffic(
            aws, plan, window, run_key, self.config, carried.variance if carried else 0.0
        )

    @cached_property
    def carried(self) -> CarriedEstimate | None:
        return carried_champion(self.state)

    def hold(self, budget_seconds: float) -> Decision:
        """Replay and look until the gate decides, a poke sends nothing more (the traffic is
        spent, or there is no replay) or the budget is spent; the sensor pokes again later. Once
        the stage's traffic (:attr:`StageTraffic.gate_cap`) is spent and counted, the gate's
        last look comes at once (``StageEvidence.complete``).
        A stage that has decided stays decided: a retry gets the recorded decision back."""
        decided = self.state.decided()
        if decided is not None:
            return decided
        deadline = time.monotonic() + budget_seconds
        looks = self.state.looks()
        replaying = self.plan.traffic.enabled
        if replaying:
            self.window.wait_for_start()
        session = self.traffic.gate_session() if replaying else None
        frame = self.traffic.results() if replaying else None
        cap = self.traffic.gate_cap if replaying else 0
        while True:
            sent_chunk = False
            if session is not None and session.cursor < cap:
                size = min(self.plan.traffic.chunk_size, cap - session.cursor)
                frame = pd.concat([frame, session.run_chunk(size).frame], ignore_index=True)
                sent_chunk = True
            spent = session is not None and session.cursor >= cap
            evidence = self.evidence.collect(frame, self.carried, spent)
            if spent and not evidence.complete:
                evidence = replace(evidence, complete=self._settled(evidence))
            decision, looks = evaluate(evidence, self.config, looks)
            final = decision.verdict is not Verdict.CONTINUE
            if final:  # before the record that marks the stage decided: later stages carry it
                self.state.save(CHAMPION, asdict(evidence.champion.outcomes))
            self.state.record(decision, looks)
            announce(decision)
            if final:
                return decision
            if not sent_chunk or time.monotonic() > deadline:
                return decision

    def _settled(self, evidence: StageEvidence) -> bool:
        """A spent stage whose counts have not moved for ``gate_settle_seconds`` gets no more:
        a shadow copy that Data Capture never shows (a retried request reuses its inference id)
        must not hold it to its deadline. Taking the last look then keeps alpha however long
        the wait, since the wait does not depend on the answers; it only spares power."""
        pairs = evidence.paired.n if evidence.paired is not None else 0
        counts = [evidence.challenger.requests, pairs]
        return self.state.unchanged_for(SETTLING, counts, self.plan.gate.settle_seconds)
