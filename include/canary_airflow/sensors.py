"""Our sensors: the gate that holds a rollout stage, and the wait for a registry approval.

The gate sensor holds a stage until the statistical gate decides.

It runs in ``reschedule`` mode, so between pokes it holds no worker slot: a stage waiting hours
for production traffic costs nothing. Within one poke, when the plan replays synthetic traffic,
the domain's :class:`canary.stage.gate.StageGate` keeps feeding traffic and looking until it
decides or the poke's time budget runs out, so a demo stage decides in one poke instead of dozens.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue
from airflow.sdk.exceptions import AirflowSkipException

from canary.experiment.gates.decision import Verdict
from canary.models import registry as reg
from canary.plan import stage_title
from canary.reporting import notification as news
from canary_airflow.ids import DEFAULT_CONN_ID
from canary_airflow.notify import publish
from canary_airflow.tasks.canary_rollout import load_plan, stage_gate
from canary_airflow.triggers import REGISTRY_POLL_SECONDS, ModelPackageApprovalTrigger


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
        name = stage_title(self.stage_index)
        self.log.info("%s gate: %s — %s", name, decision.verdict, decision.reason)
        done = decision.verdict is not Verdict.CONTINUE
        if done:
            rollout = load_plan(self.plan)
            summary = news.decision_summary(decision.record)
            subject = news.stage_subject(rollout.endpoint_name, summary)
            publish(rollout, news.Event.STAGE_VERDICT, subject, context["run_id"], summary=summary)
        return PokeReturnValue(is_done=done, xcom_value=decision.record if done else None)


#: How long a run without an approval waits for one (minutes).
APPROVAL_WAIT_MINUTES = 60.0


class RegistryApprovalSensor(BaseSensorOperator):
    """The approved package versions this run should roll out.

    Taken, in order, from the run's conf (``package_arn``: a person asks for one version), from
    the asset events that scheduled the run (SQS messages of EventBridge approvals, or the
    registry poller's payload), or else by deferring to :class:`ModelPackageApprovalTrigger`
    until an approval shows up (skipped when none does before ``timeout``).
    """

    template_fields = ("group", "package_arn", "wait_minutes", "region_name")

    def __init__(
        self,
        *,
        group: str,
        package_arn: str = "",
        wait_minutes: float | str = APPROVAL_WAIT_MINUTES,
        poll_interval: float = REGISTRY_POLL_SECONDS,
        aws_conn_id: str = DEFAULT_CONN_ID,
        region_name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.group = group
        self.package_arn = package_arn
        self.wait_minutes = wait_minutes
        self.poll_interval = poll_interval
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name

    def execute(self, context: Any) -> list[str]:
        reg.check_group_name(self.group)
        arns = [self.package_arn] if self.package_arn else []
        arns = arns or approved_from_events(context.get("triggering_asset_events"), self.group)
        if arns:
            self.log.info("approved versions to roll out: %s", arns)
            return arns
        self.defer(
            trigger=ModelPackageApprovalTrigger(
                group=self.group,
                poll_interval=self.poll_interval,
                timeout=float(self.wait_minutes) * 60,
                aws_conn_id=self.aws_conn_id,
                region_name=self.region_name or None,
            ),
            method_name="execute_complete",
        )
        return []  # unreachable: defer raises

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> list[str]:
        if not event or event.get("status") != "approved" or not event.get("arns"):
            raise AirflowSkipException(f"no new approval in {self.group} before the timeout")
        return list(event["arns"])


def approved_from_events(events: Any, group: str) -> list[str]:
    """Package ARNs in the asset events that scheduled this run (SQS batches or poller events)."""
    arns: list[str] = []
    for asset_events in (events or {}).values():
        for event in asset_events:
            payload = (event.extra or {}).get("payload") or {}
            found = payload.get("arns") or reg.approved_arns_from_messages(
                payload.get("message_batch") or [], group
            )
            for arn in found:
                if arn not in arns:
                    arns.append(arn)
    return arns
