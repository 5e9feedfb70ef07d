"""Which stage, at which weights, since when: what every part of a stage's gate is told."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from canary.plan import SHADOW_STAGE, RolloutPlan, stage_name

PERIOD = 60  # seconds: CloudWatch's standard period for SageMaker endpoint metrics


@dataclass(frozen=True)
class StageWindow:
    """Which stage, at which weights, since when (the moment the weights took effect)."""

    index: int
    weights: dict[str, float]
    started_at: float

    @property
    def replay_stage(self) -> str:
        """The replay's name for this window of the stage (its cursors, results and inference
        ids). Per window, not per stage: a cleared stage opens a new window and judges only
        what is sent in it, so its replay must start afresh too (rows no window sent yet,
        counted from nothing), not find its traffic already spent by an earlier window."""
        return f"{stage_name(self.index)}_{int(self.started_at)}"

    @property
    def opened_at(self) -> datetime:
        """When the window opened, as the evidence and the decision records stamp it."""
        return datetime.fromtimestamp(self.started_at, UTC)

    @property
    def shadow(self) -> bool:
        """The shadow stage: the champion serves, the challenger only answers a copy."""
        return self.index == SHADOW_STAGE

    def pair(self, plan: RolloutPlan) -> tuple[float, float]:
        """The weights as (champion, challenger)."""
        champion, challenger = plan.variants
        return float(self.weights[champion]), float(self.weights[challenger])

    def wait_for_start(self) -> None:
        """Sleep until the window opens: synthetic traffic sent before it would not be judged
        (its CloudWatch period also holds the previous stage's requests)."""
        time.sleep(max(0.0, self.started_at - time.time()))


def first_whole_period(at: float, period: float) -> float:
    """The start of the first CloudWatch period that begins at or after ``at`` (epoch seconds)."""
    return math.ceil(at / period) * period
