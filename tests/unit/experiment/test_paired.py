"""The shadow stage's paired test against references: statsmodels' McNemar (the fixed-sample
case at no margin), a numerical maximum of the restricted likelihood (Tango's closed form), and
full enumeration of the trinomial (the exact unconditional p-value and its size)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize, stats
from statsmodels.stats.contingency_tables import mcnemar

from canary.experiment.gates.evidence import PairedOutcomes
from canary.experiment.gates.paired import (
    EXACT,
    EXACT_BELOW,
    GAMMA_SHARE,
    TANGO,
    exact_p_value,
    paired_information,
    paired_statistic,
    paired_z,
    tango_interval,
    tango_restricted_q,
    tango_z,
    variance_floor,
)

# (both_correct, champion_only, challenger_only, neither): a spread of agreement tables
TABLES = [(850, 40, 60, 50), (700, 90, 30, 180), (160, 20, 40, 40), (30, 3, 9, 0), (400, 25, 25, 0)]


@pytest.mark.parametrize("table", TABLES)
def test_tango_at_no_margin_is_mcnemars_statistic(table: tuple[int, int, int, int]) -> None:
    both, c, b, neither = table
    n = sum(table)
    chi2 = mcnemar([[both, c], [b, neither]], exact=False, correction=False).statistic
    z = float(tango_z(b, c, n, 0.0))
    assert z**2 == pytest.approx(chi2, rel=1e-12)
    assert math.copysign(1, z) == math.copysign(1, b - c) or b == c


@pytest.mark.parametrize("table", [t for t in TABLES if t[1] + t[2] >= EXACT_BELOW])
def test_fixed_sample_p_value_is_mcnemars_one_sided(table: tuple[int, int, int, int]) -> None:
    """With no margin and enough discordant pairs, one look is McNemar's test, one-sided."""
    both, c, b, neither = table
    result = paired_statistic(PairedOutcomes(both, c, b, neither), margin=0.0, alpha=0.05)
    assert result is not None and result.method == TANGO
    two_sided = mcnemar([[both, c], [b, neither]], exact=False, correction=False).pvalue
    one_sided = two_sided / 2 if b > c else 1 - two_sided / 2
    assert result.p_value == pytest.approx(one_sided, rel=1e-9)


def _constrained_mle_q(b: int, c: int, n: int, theta0: float) -> float:
    """P(champion only) maximising the trinomial likelihood under theta = theta0, found by scipy:
    P(challenger only) = q + theta0 and P(champion only) = q."""

    def negative_log_likelihood(q: float) -> float:
        p_b, p_c = q + theta0, q
        return -(b * math.log(p_b) + c * math.log(p_c) + (n - b - c) * math.log(1 - p_b - p_c))

    low, high = max(0.0, -theta0) + 1e-12, (1 - theta0) / 2 - 1e-12
    best = optimize.minimize_scalar(
        negative_log_likelihood, bounds=(low, high), method="bounded", options={"xatol": 1e-11}
    )
    return best.x


@pytest.mark.parametrize(("b", "c", "n", "theta0"), [(60, 40, 1000, -0.02), (9, 3, 42, -0.1)])
def test_restricted_q_is_the_maximum_of_the_constrained_likelihood(
    b: int, c: int, n: int, theta0: float
) -> None:
    """Tango's closed form must be where scipy finds the constrained likelihood's maximum."""
    closed = float(tango_restricted_q(b, c, n, theta0))
    assert closed == pytest.approx(_constrained_mle_q(b, c, n, theta0), abs=1e-9)


def test_interval_ends_are_where_the_statistic_meets_the_quantile() -> None:
    b, c, n = 40, 20, 160
    low, high = tango_interval(b, c, n, 0.95)
    q = stats.norm.isf(0.025)
    assert float(tango_z(b, c, n, low)) == pytest.approx(q, abs=1e-6)
    assert float(tango_z(b, c, n, high)) == pytest.approx(-q, abs=1e-6)
    assert low < (b - c) / n < high


def _null_tail(z_obs: float, n: int, margin: float, p_disc: float) -> float:
    """P(Tango z >= z_obs) under theta = -margin, P(discordant) = p_disc: every (b, c) summed."""
    pb, pc = (p_disc - margin) / 2, (p_disc + margin) / 2
    b, c = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
    ok = b + c <= n
    pmf = np.where(
        ok, stats.multinomial.pmf(np.stack([b, c, n - b - c], -1), n, [pb, pc, 1 - pb - pc]), 0
    )
    z = np.where(ok, tango_z(b, c, n, -margin), -np.inf)
    return float(pmf[z >= z_obs - 1e-12].sum())


@pytest.mark.parametrize(("b", "c", "n"), [(3, 1, 60), (6, 2, 40), (2, 0, 80)])
def test_exact_p_value_is_the_enumerated_worst_null_tail(b: int, c: int, n: int) -> None:
    """Berger-Boos: the largest null tail over p_disc in the Clopper-Pearson range, plus gamma.
    Summing the trinomial over every table checks the per-m binomial shortcut."""
    margin, gamma = 0.02, 0.001
    z_obs = float(tango_z(b, c, n, -margin))
    upper = float(stats.beta.ppf(1 - gamma, b + c + 1, n - b - c))
    grid = np.linspace(margin, upper, 48)
    worst = max(_null_tail(z_obs, n, margin, p) for p in grid)
    assert exact_p_value(b, c, n, margin, gamma) == pytest.approx(worst + gamma, rel=1e-6)


def test_exact_test_keeps_its_level_at_the_margin() -> None:
    """The size of 'exact p <= level' at theta = -margin, by enumeration: never above level,
    whatever p_disc (the nuisance the test does not know)."""
    n, margin, level = 40, 0.05, 0.05
    rejections = [
        (b, c)
        for b in range(n + 1)
        for c in range(n + 1 - b)
        if b + c < EXACT_BELOW and exact_p_value(b, c, n, margin, 0.001) <= level
    ]
    assert rejections  # the test can reject at this n
    for p_disc in (margin, 0.06, 0.1, 0.2, 0.4):  # from the null's edge: every discordance lost
        pb, pc = (p_disc - margin) / 2, (p_disc + margin) / 2
        size = sum(
            stats.multinomial.pmf([b, c, n - b - c], n, [pb, pc, 1 - pb - pc])
            for b, c in rejections
        )
        assert size <= level


def test_no_discordant_pair_is_judged_at_the_edge_of_the_null() -> None:
    """At theta = -delta the least discordance is p_disc = delta, where no discordant pair
    among n has probability (1 - delta)^n: 0.0503 at n = 148, so 0 of 148 is no evidence at
    alpha = 0.05 (the grid once started just past the edge, and gave 0.0494)."""
    margin, gamma, n = 0.02, 0.001, 148
    at_edge = (1 - margin) ** n
    assert at_edge > 0.05
    assert exact_p_value(0, 0, n, margin, gamma) == pytest.approx(at_edge + gamma, rel=1e-9)


def test_small_discordant_counts_use_the_exact_test_and_none_is_evidence_only_when_many() -> None:
    """No discordant pair among n is likely under the null when n is small ((1 - delta)^n):
    the exact p-value says so, where an infinite z would promote on 5 agreeing pairs."""
    few = paired_statistic(PairedOutcomes(90, 2, 5, 3), margin=0.02, alpha=0.05)
    assert few is not None and few.method == EXACT
    assert few.p_value == pytest.approx(exact_p_value(5, 2, 100, 0.02, GAMMA_SHARE * 0.05))
    assert few.z == pytest.approx(stats.norm.isf(few.p_value))
    none = paired_statistic(PairedOutcomes(95, 0, 0, 5), margin=0.02, alpha=0.05)
    assert none is not None and none.method == EXACT
    assert none.p_value == pytest.approx(0.98**100, rel=0.05)  # the least favourable null
    many = paired_statistic(PairedOutcomes(950, 0, 0, 50), margin=0.02, alpha=0.05)
    assert many is not None and many.p_value == pytest.approx(GAMMA_SHARE * 0.05)  # gamma alone
    assert paired_statistic(PairedOutcomes(), margin=0.02, alpha=0.05) is None


def test_looks_at_once_get_each_looks_own_statistic() -> None:
    """The bench simulates the gate with paired_z over many looks; each look must get what the
    engine's paired_statistic gives it alone: exact (none discordant, few) and Tango at once."""
    tables = [(95, 0, 0, 5), (90, 2, 5, 3), *TABLES]
    b = np.array([t[2] for t in tables])
    c = np.array([t[1] for t in tables])
    n = np.array([sum(t) for t in tables])
    zs = paired_z(b, c, n, margin=0.02, alpha=0.05)
    alone = [paired_statistic(PairedOutcomes(*t), margin=0.02, alpha=0.05) for t in tables]
    assert [r.method for r in alone[:3]] == [EXACT, EXACT, TANGO]
    assert zs.tolist() == [r.z for r in alone]
    assert zs.tolist() == pytest.approx([_reference_z(*look) for look in zip(b, c, n, strict=True)])


def _reference_z(b: int, c: int, n: int) -> float:
    """The module docstring's rule, look by look, from the statistics themselves."""
    if b + c < EXACT_BELOW:
        return float(
            stats.norm.isf(exact_p_value(int(b), int(c), int(n), 0.02, GAMMA_SHARE * 0.05))
        )
    return float(tango_z(b, c, n, -0.02))


@pytest.mark.parametrize(("m", "n"), [(10, 100), (100, 1000), (80, 800)])
def test_information_is_on_the_statistics_scale_at_no_difference(m: int, n: int) -> None:
    """Information is n over Var(D) at the restricted maximum (scipy's) of the even split of the
    discordant count, and there the statistic is (theta_hat + margin) sqrt(information): the
    drift the design plans for at its alternative."""
    margin = 0.02
    q = _constrained_mle_q(m // 2, m // 2, n, -margin)
    info = float(paired_information(m, n, margin))
    assert info == pytest.approx(n / (2 * q - margin - margin**2), rel=1e-7)
    z = float(tango_z(m // 2, m // 2, n, -margin))
    assert z == pytest.approx(margin * math.sqrt(info), rel=1e-9)


def test_no_discordant_pair_is_finite_information() -> None:
    """With no discordant pair the restricted variance is margin (1 - margin), the least of any
    null distribution: the information is n / floor, not infinite."""
    info = paired_information(np.array([0, 0]), np.array([100, 5000]), 0.02)
    assert info == pytest.approx(np.array([100, 5000]) / variance_floor(0.02))
