"""A person approves a stage's promotion: the standard provider's HITL approval, made a gate step.

Each stage ends with :class:`StageApprovalOperator`. When the plan asks for a person here
(:meth:`canary.plan.RolloutPlan.needs_approval`) and the gate promoted, it waits in Airflow's
``awaiting_input`` state with the decision's summary as subject and Markdown body, answered on
the Required Actions page or over the REST API (``.../hitlDetails``); otherwise it records that
no one was asked and succeeds at once. Unanswered by ``approval_timeout_minutes``, the scheduler
answers Reject (the default).

Why Reject does not skip downstream tasks as the provider's ``ApprovalOperator`` does: a rejected
rollout must still reach ``conclude``, which rolls back, and teardown; the answer travels as this
task's XCom and the next stage and ``conclude`` read it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator, HITLOperator

from canary.experiment.gates.decision import promoted
from canary.plan import RolloutPlan, stage_label
from canary.reporting import notification as news
from canary_airflow import ids
from canary_airflow.notify import base_url, publish


class StageApprovalOperator(ApprovalOperator):
    """Approve or Reject the promotion of stage ``stage_index`` (a no-op when none is needed).

    :param plan: the validated plan (templated; an XComArg of ``validate_plan``).
    """

    template_fields = (*ApprovalOperator.template_fields, "plan")
    ui_color = "#d7ecff"

    def __init__(self, *, plan: Any, stage_index: int, **kwargs: Any) -> None:
        super().__init__(
            subject="Approve the rollout's next step",  # replaced by the gate's summary
            defaults=self.REJECT,
            **kwargs,
        )
        self.plan = plan
        self.stage_index = stage_index

    def execute(self, context: Any) -> Any:
        rollout = RolloutPlan.model_validate(self.plan)
        record = context["ti"].xcom_pull(task_ids=ids.gate_task(self.stage_index + 1))
        passed = promoted(record)
        if not (passed and rollout.needs_approval(self.stage_index)):
            return answer(needed=False, approved=passed)
        summary = news.decision_summary(record)
        step = next_step(rollout, self.stage_index)
        self.subject = news.approval_subject(rollout.endpoint_name, summary, step)
        self.body = news.approval_body(summary, step, rollout.approval_timeout_minutes)
        self.response_timeout = timedelta(minutes=rollout.approval_timeout_minutes)
        publish(
            rollout,
            news.Event.APPROVAL_REQUESTED,
            self.subject,
            context["run_id"],
            summary=summary,
            next_step=step,
            timeout_minutes=rollout.approval_timeout_minutes,
            required_action=self.generate_link_to_ui_from_context(
                context=context, base_url=base_url()
            ),
        )
        return super().execute(context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        """Record the answer; unlike the provider's operator, skip nothing (see module doc)."""
        response = HITLOperator.execute_complete(self, context=context, event=event)
        user = response["responded_by_user"]
        return answer(
            needed=True,
            approved=response["chosen_options"] == [self.APPROVE],
            by=user["name"] if user else None,
            at=response["responded_at"].isoformat(),
        )


def answer(
    *, needed: bool, approved: bool, by: str | None = None, at: str | None = None
) -> dict[str, Any]:
    """An approval task's XCom: was a person asked, did the step go ahead, who answered, when.

    ``by`` is None when a person was asked but nobody answered in time (Reject by default).
    """
    return {"needed": needed, "approved": approved, "by": by, "at": at}


def next_step(plan: RolloutPlan, index: int) -> str:
    """What Approve lets happen after stage ``index``, in words."""
    if index + 1 < len(plan.stages):
        return f"stage {index + 2} ({stage_label(plan.stages[index + 1])})"
    return "the promotion (challenger at 100 %)"


def rejection(answers: list[dict[str, Any] | None]) -> str | None:
    """Why the rollout stops on a person's word, or None when no one rejected a step."""
    for number, given in enumerate(answers, start=1):
        if given and given["needed"] and not given["approved"]:
            who = given["by"]
            if who:
                return f"stage {number}: {who} rejected the promotion"
            return f"stage {number}: nobody answered the approval in time (Reject by default)"
    return None
