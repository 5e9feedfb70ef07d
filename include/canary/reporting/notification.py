"""What a person is told about a rollout: a decision's summary, as JSON and as Markdown.

One summary of a decision record feeds the SNS messages (stage verdict, approval request, final
outcome) and the approval task's subject and body, so the three say the same thing about the same
numbers. Pure functions: publishing is the orchestration layer's job.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from canary.plan import stage_title
from canary.rollout.outcome import RunOutcome

SUBJECT_LIMIT = 100  # SNS refuses longer subjects, and any that is not ASCII


class Event(StrEnum):
    """The kinds of message a rollout publishes (the ``event`` field and message attribute)."""

    STAGE_VERDICT = "stage_verdict"
    APPROVAL_REQUESTED = "approval_requested"
    OUTCOME = "outcome"


def decision_summary(record: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a decision record a person reads first: verdict, effect, guardrails, traffic."""
    primary = record.get("primary") or {}
    effect = None
    if primary:
        effect = {
            key: primary.get(key) for key in ("method", "diff", "ci_low", "ci_high", "margin", "z")
        }
    index = int(record.get("stage", 0))
    return {
        "stage": index + 1,  # 0 is the shadow stage
        "stage_name": stage_title(index),
        "verdict": record.get("verdict"),
        "reason": record.get("reason"),
        "weights": dict(record.get("weights") or {}),
        "effect": effect,
        "guardrails": {check["name"]: check["status"] for check in record.get("guardrails") or []},
        "requests": {
            name: variant.get("requests")
            for name, variant in (record.get("variants") or {}).items()
        },
        "look": len(record.get("looks") or []),
        "at": record.get("timestamp"),
    }


def summary_markdown(summary: Mapping[str, Any]) -> str:
    """The summary as Markdown bullets (the approval form's body renders Markdown)."""
    effect = summary.get("effect")
    if effect and effect.get("diff") is not None:
        estimate = (
            f"{_num(effect['diff'])} (interval {_num(effect['ci_low'])} to "
            f"{_num(effect['ci_high'])}; margin -{_num(effect['margin'])})"
        )
    else:
        estimate = "not estimated yet"
    guardrails = ", ".join(f"{name}: {status}" for name, status in summary["guardrails"].items())
    requests = ", ".join(f"{name} {count}" for name, count in summary["requests"].items())
    return "\n".join(
        [
            f"- **Verdict**: {summary['verdict']} ({summary['stage_name']}, "
            f"look {summary['look']})",
            f"- **Why**: {summary['reason']}",
            f"- **Challenger − champion**: {estimate}",
            f"- **Guardrails**: {guardrails or 'none checked'}",
            f"- **Requests so far**: {requests or 'none'}",
        ]
    )


def approval_subject(endpoint: str, summary: Mapping[str, Any], next_step: str) -> str:
    """The approval task's headline (also the SNS subject of the request)."""
    return _subject(f"Approve {endpoint}: {summary['stage_name']} passed; next {next_step}?")


def approval_body(summary: Mapping[str, Any], next_step: str, timeout_minutes: float) -> str:
    """The approval task's Markdown body: the gate's case, what Approve does, the default."""
    return (
        f"The gate of {summary['stage_name']} says **{summary['verdict']}**.\n\n"
        f"{summary_markdown(summary)}\n\n"
        f"**Approve** goes on to {next_step}. **Reject** rolls back to the champion and cleans "
        f"up. Unanswered within {_num(timeout_minutes)} minutes: Reject."
    )


def stage_subject(endpoint: str, summary: Mapping[str, Any]) -> str:
    return _subject(f"{endpoint}: {summary['stage_name']} {summary['verdict']}")


def outcome_subject(endpoint: str, outcome: RunOutcome) -> str:
    return _subject(f"{endpoint}: rollout {outcome.value.replace('_', ' ')}")


def message(event: Event, *, run_id: str, endpoint: str, **fields: Any) -> dict[str, Any]:
    """One notification's JSON: what happened, to which run and endpoint, and its details."""
    return {"event": event.value, "run_id": run_id, "endpoint": endpoint, **fields}


def _subject(text: str) -> str:
    text = text.encode("ascii", "replace").decode()
    return text if len(text) <= SUBJECT_LIMIT else text[: SUBJECT_LIMIT - 3] + "..."


def _num(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4g}"
