"""Sample sizes and information: how many requests a stage needs, and how far along it is.

Why sample-size based information: the look schedule of a stage with a concurrent champion
depends only on request counts and the configured planning variance, never on noisy estimates,
so every poke of every run at the same counts sees the same boundaries (cacheable) and the DAG
can size a stage's traffic up front. Two stages cannot: a 0/100 stage adds the variance of the
champion estimate it carries, and a shadow stage estimates its paired variance as it goes
(:mod:`.paired`); both are known when the stage starts looking, not when the plan is made.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from canary.experiment.gates.config import MAX_LOOKS, GateConfig
from canary.experiment.gates.lattice import ExactTest, Problem, plan
from canary.experiment.gates.paired import paired_variance
from canary.experiment.gates.sequential import fixed_sample_drift


@lru_cache(maxsize=256)
def fixed_horizon_n(config: GateConfig) -> int:
    """Per-variant n of the fixed-horizon one-sided non-inferiority z test at a 50/50 split:
    n = (z_alpha + z_beta)^2 * 2 sigma^2 / delta^2 (sigma^2 the planning variance, true diff 0)."""
    drift = fixed_sample_drift(config.alpha, config.power)
    return math.ceil(drift**2 * 2 * config.variance / config.margin**2)


@lru_cache(maxsize=256)
def max_information(config: GateConfig) -> float:
    """Information (1/Var of the difference) at which the sequential design must end."""
    drift = fixed_sample_drift(config.alpha, config.power)
    return config.design.inflation * (drift / config.margin) ** 2


def information(
    n_champion: int, n_challenger: int, config: GateConfig, carried_var: float
) -> float:
    """Information of the difference from request counts. ``carried_var`` is the variance of a
    champion estimate carried from earlier stages (0/100 stage); else the champion is concurrent."""
    if n_challenger <= 0:
        return 0.0
    champion_var = carried_var if carried_var > 0 else _per(config.variance, n_champion)
    return 1.0 / (config.variance / n_challenger + champion_var)


def stage_max_information(config: GateConfig, carried_var: float) -> float:
    """The information at which this stage's last look happens.

    With a concurrent champion it is the design's maximum. Without one (0/100) the champion's
    carried variance bounds the reachable information, so the stage ends at the smaller of the
    design's maximum and what ``2 x cap`` challenger requests can reach (power is then lower,
    and the record says so)."""
    target = max_information(config)
    if carried_var <= 0:
        return target
    reachable = 1.0 / (config.variance / (2 * cap_per_variant(config)) + carried_var)
    return min(target, reachable)


@lru_cache(maxsize=256)
def cap_per_variant(config: GateConfig) -> int:
    """Maximum requests per variant of a 50/50 stage: inflation x n_fix."""
    return math.ceil(max_information(config) * 2 * config.variance)


@dataclass(frozen=True)
class StagePlan:
    """Planned maximum requests of a stage with weights (w0, w1)."""

    champion: int
    challenger: int
    total: int

    def to_dict(self) -> dict[str, int]:
        return {"champion": self.champion, "challenger": self.challenger, "total": self.total}


def planned_max_requests(
    config: GateConfig, weights: tuple[float, float], carried_var: float = 0.0
) -> StagePlan:
    """The most requests a stage with ``weights`` (champion, challenger) can need before its gate
    must decide; the DAG sizes the stage's traffic with it. ``carried_var`` is for 0/100 stages."""
    w0, w1 = _shares(weights)
    if w0 == 0:
        if carried_var <= 0:
            raise ValueError("carried_var: a 0/100 stage needs the champion's carried variance > 0")
        reach = stage_max_information(config, carried_var)
        n1 = math.ceil(config.variance / (1 / reach - carried_var))
        return StagePlan(0, n1, n1)
    total = math.ceil(max_information(config) * config.variance * (1 / w0 + 1 / w1))
    return StagePlan(math.ceil(w0 * total), math.ceil(w1 * total), total)


def planned_max_pairs(config: GateConfig) -> int:
    """The most pairs the shadow stage's gate can need: the design's maximum information times
    the paired variance (as the gate estimates it) at the most discordance it should meet. With
    both models about ``planning_rate`` accurate (the challenger up to the margin worse), they
    disagree in correctness on at most 2(1 − p) + δ of the requests."""
    disagree = min(1.0, 2 * (1 - config.planning_rate) + config.margin)
    return math.ceil(max_information(config) * float(paired_variance(disagree, 1, config.margin)))


def exact_problem(config: GateConfig) -> Problem | None:
    """The exact lattice test's problem for a 50/50 stage of 0/1 outcomes, or None where the
    score z serves: outcomes not planned as 0/1 (a planning variance), errors not rare
    (``exact_below_errors`` expected per variant by n_fix), or fewer pairs than one step or
    more decisions than MAX_LOOKS.
    Its last decision is the largest multiple of ``exact_step`` within the stage's cap, so a
    stage sized for the z design holds it."""
    p, step = config.planning_rate, config.exact_step
    errors = fixed_horizon_n(config) * (1 - p)
    if config.planning_variance is not None or p <= 0.5 or errors >= config.exact_below_errors:
        return None
    max_pairs = cap_per_variant(config) // step * step
    if not 1 <= max_pairs // step <= MAX_LOOKS:  # as many decisions as the z design may look
        return None
    return Problem(p, config.margin, step, max_pairs, config.alpha, 1 - config.power)


def exact_plan(config: GateConfig) -> ExactTest | None:
    """The exact test that judges this gate's 50/50 stages of 0/1 outcomes (planned once per
    machine, seconds: ``lattice.PLAN_CACHE``), or None for the z design: no problem applies,
    or its plan does not keep alpha with the power."""
    problem = exact_problem(config)
    if problem is None:
        return None
    test = plan(problem)
    return test if test.valid else None


def _shares(weights: tuple[float, float]) -> tuple[float, float]:
    if len(weights) != 2 or any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(
            f"weights: need two non-negative numbers with a positive sum, got {weights!r}"
        )
    if weights[1] <= 0:
        raise ValueError(f"weights: the challenger's weight must be > 0, got {weights!r}")
    s = float(sum(weights))
    return weights[0] / s, weights[1] / s


def _per(variance: float, n: int) -> float:
    return variance / n if n > 0 else math.inf
