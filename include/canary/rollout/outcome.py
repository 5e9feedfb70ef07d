"""How a rollout run ended: one vocabulary for the tasks, cleanup, the registry and the report."""

from __future__ import annotations

from enum import StrEnum


class RunOutcome(StrEnum):
    PROMOTED = "promoted"  # every stage's gate passed: the challenger serves alone
    ROLLED_BACK = "rolled_back"  # a gate found the challenger worse (or a guardrail failed)
    HALTED = "halted"  # a stage ran out of time without a decision under on_deadline=halt
    FAILED = "failed"  # a task failed before any gate concluded
