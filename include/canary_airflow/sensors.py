"""The gate sensor: holds a stage until the statistical gate decides.

It runs in ``reschedule`` mode, so between pokes it holds no worker slot: a stage waiting hours
for production traffic costs nothing. Within one poke, when the plan replays synthetic traffic,
the domain's :class:`canary.stage.StageGate` keeps feeding traffic and looking until it decides or
the poke's time budget runs out, so a demo stage decides in one poke instead of dozens.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue

from canary_airflow.aws import DEFAULT_CONN_ID
from canary_airflow.tasks import load_plan, stage_gate


class CanaryGateSensor(BaseSensorOperator):
    """Decide promote / rollback / halt for one rollout stage; ``continue`` keeps waiting.

    :param plan: the validated plan (templated; an XComArg of ``validate_plan``).
    :param stage: the stage's ``set_weights`` result: weights and when they took effect.
    :param poke_budget_seconds: the longest one poke keeps replaying and looking.
    """

    template_fields: Sequence[str] = ("plan", "stage")
    ui_color = "#fff3c4"

    def __init__(
        self,
        *,
        plan: Any,
        stage: Any,
        stage_index: int,
        aws_conn_id: str = DEFAULT_CONN_ID,
        poke_budget_seconds: float = 120.0,
        mode: str = "reschedule",
        poke_interval: float = 5.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(mode=mode, poke_interval=poke_interval, **kwargs)
        self.plan = plan
        self.stage = stage
        self.stage_index = stage_index
        self.aws_conn_id = aws_conn_id
        self.poke_budget_seconds = poke_budget_seconds

    def execute(self, context: Any) -> Any:
        self.poke_interval = load_plan(self.plan).gate.poke_interval_seconds
        return super().execute(context)

    def poke(self, context: Any) -> PokeReturnValue:
        gate = stage_gate(self.plan, self.stage, self.stage_index, self.aws_conn_id)
        decision = gate.hold(self.poke_budget_seconds)
        self.log.info(
            "stage %d gate: %s — %s", self.stage_index + 1, decision.verdict, decision.reason
        )
        done = decision.verdict != "continue"
        return PokeReturnValue(is_done=done, xcom_value=decision.record if done else None)
