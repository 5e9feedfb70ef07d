"""The unpaired gate's sizing against the exact power of the test it runs: both binomials
enumerated, the Farrington-Manning score statistic (statsmodels, as the engine calls it) at
every pair of counts."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats import proportion

from canary.experiment.gates import GateConfig, fixed_horizon_n
from canary.experiment.gates.paired import paired_information
from canary.experiment.gates.sequential import fixed_sample_drift
from canary.experiment.gates.sizing import max_information, planned_max_pairs

MARGIN, ALPHA, POWER = 0.02, 0.05, 0.8


def _promote_probability(n: int, champion: float, challenger: float) -> float:
    """P(score z >= z_alpha) of the fixed-sample test with n per variant, by enumeration of the
    counts that carry all but 1e-12 of each binomial."""
    k0 = np.arange(*stats.binom.interval(1 - 1e-12, n, champion)).astype(int)
    k1 = np.arange(*stats.binom.interval(1 - 1e-12, n, challenger)).astype(int)
    grid0, grid1 = np.meshgrid(k0, k1, indexing="ij")
    with np.errstate(divide="ignore", invalid="ignore"):
        z = proportion.test_proportions_2indep(
            grid1, n, grid0, n, value=-MARGIN, method="score", compare="diff",
            alternative="larger",
        ).statistic  # fmt: skip
    mass = np.outer(stats.binom.pmf(k0, n, champion), stats.binom.pmf(k1, n, challenger))
    return float(mass[z >= stats.norm.isf(ALPHA)].sum())


@pytest.mark.parametrize("rate", [0.7, 0.9, 0.97, 0.99])
def test_fixed_sample_size_gives_the_score_test_its_power(rate: float) -> None:
    """At n_fix per variant the score test promotes an equally good challenger with the planned
    power (up to the counts' discreteness; Farrington and Manning's normal sizing errs on the
    high side at 0.99) and a challenger worse by the margin at most alpha."""
    n = fixed_horizon_n(GateConfig(alpha=ALPHA, power=POWER, margin=MARGIN, planning_rate=rate))
    assert POWER - 0.01 <= _promote_probability(n, rate, rate) <= POWER + 0.03
    assert _promote_probability(n, rate, rate - MARGIN) <= ALPHA + 0.003


@pytest.mark.parametrize(("rate", "short_by"), [(0.97, 0.01), (0.99, 0.1)])
def test_sizing_with_p_times_1_minus_p_falls_short_near_one(rate: float, short_by: float) -> None:
    """What the score test's own sizing mends: with the Wald variance 2p(1-p) the same test
    lacks power where the restricted variance exceeds it."""
    n = round(fixed_sample_drift(ALPHA, POWER) ** 2 * 2 * rate * (1 - rate) / MARGIN**2)
    assert _promote_probability(n, rate, rate) < POWER - short_by


@pytest.mark.parametrize(("rate", "margin"), [(0.9, 0.03), (0.97, 0.02), (0.7, 0.05)])
def test_planned_pairs_reach_the_shadow_gates_last_look(rate: float, margin: float) -> None:
    """At the most discordance the plan expects, 2(1 - p) + margin, the planned pairs carry the
    design's maximum information as the gate measures it, so the shadow stage's traffic cap
    never stops it before its last look."""
    config = GateConfig(margin=margin, planning_rate=rate)
    n = planned_max_pairs(config)
    discordant = round((2 * (1 - rate) + margin) * n)
    assert paired_information(discordant, n, margin) >= max_information(config) * (1 - 1e-3)
