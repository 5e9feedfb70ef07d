"""Which stage, at which weights, since when: what every part of a stage's gate is told."""

from __future__ import annotations

from dataclasses import dataclass

from canary.plan import RolloutPlan


@dataclass(frozen=True)
class StageWindow:
    """Which stage, at which weights, since when (the moment the weights took effect)."""

    index: int
    weights: dict[str, float]
    started_at: float

    @property
    def name(self) -> str:
        return f"stage-{self.index + 1}"

    def pair(self, plan: RolloutPlan) -> tuple[float, float]:
        """The weights as (champion, challenger)."""
        champion, challenger = plan.variants
        return float(self.weights[champion]), float(self.weights[challenger])
