"""Simulated bandit runs on Bernoulli arms: regret of a strategy, for benchmarks and docs.

Why here: the rollout's choice between a fixed split and a bandit is a trade-off between
learning (IPW needs exploration) and cost (traffic on the worse model). This measures the cost
with the *same* ``Allocator`` the replay uses, one user per request, immediate feedback.
Importable (not defined in a script) so that process pools can run seeds in parallel.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from canary.experiment.allocation import Allocator, make_policy


def pseudo_regret(
    strategy: str,
    params: Mapping[str, Any],
    means: Mapping[str, float],
    steps: int,
    seed: int,
    warmup: int = 0,
) -> float:
    """Sum over requests of (best mean - mean of the chosen arm): expected reward given up.

    Pseudo-regret (expected, not realised, rewards) removes the reward noise from the figure,
    so fewer seeds are needed for the same Monte Carlo error. Rewards drawn for feedback use a
    stream independent of the allocator's.
    """
    reward_seed, alloc_seed = np.random.SeedSequence(seed).spawn(2)
    rng = np.random.default_rng(reward_seed)
    alloc = Allocator(
        make_policy(strategy, **dict(params)),
        warmup=warmup,
        salt=f"sim-{seed}",
        seed=int(alloc_seed.generate_state(1)[0]),
    )
    weights = dict.fromkeys(means, 1.0)
    best = max(means.values())
    regret = 0.0
    uniforms = rng.random(steps)
    for t in range(steps):
        arm = alloc.assign(f"u{t}", "sim", weights).variant
        alloc.record(arm, float(uniforms[t] < means[arm]))
        regret += best - means[arm]
        alloc.assignments.clear()  # one request per user: nothing to keep sticky
    return regret


def run_seed(task: Sequence[Any]) -> float:
    """``pseudo_regret`` with one tuple argument, for ``Pool.map``."""
    return pseudo_regret(*task)
