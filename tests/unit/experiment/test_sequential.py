"""Group-sequential boundaries against published constants and the design's own error rates."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize

from canary.experiment.gates.sequential import (
    Spending,
    crossing_probabilities,
    expected_fraction,
    plan_design,
    pocock_constant,
    spending_boundaries,
)

# Jennison & Turnbull (2000), Table 2.1: two-sided alpha = 0.05, equally spaced looks.
POCOCK = {2: 2.178, 3: 2.289, 4: 2.361, 5: 2.413, 10: 2.555}
OBRIEN_FLEMING = {2: 1.977, 3: 2.004, 4: 2.024, 5: 2.040, 10: 2.087}


def _two_sided_constant(looks: int, shape) -> float:
    info = [(k + 1) / looks for k in range(looks)]

    def excess(c: float) -> float:
        upper = [c * shape(k + 1, looks) for k in range(looks)]
        up, low = crossing_probabilities(info, upper, [-u for u in upper], 0.0)
        return float(up.sum() + low.sum()) - 0.05

    return optimize.brentq(excess, 1.5, 4.0)


@pytest.mark.parametrize("looks", sorted(POCOCK))
def test_pocock_constants_match_jennison_turnbull(looks: int) -> None:
    assert _two_sided_constant(looks, lambda k, K: 1.0) == pytest.approx(POCOCK[looks], abs=6e-4)


@pytest.mark.parametrize("looks", sorted(OBRIEN_FLEMING))
def test_obrien_fleming_constants_match_jennison_turnbull(looks: int) -> None:
    c = _two_sided_constant(looks, lambda k, K: math.sqrt(K / k))
    assert c == pytest.approx(OBRIEN_FLEMING[looks], abs=6e-4)


def test_lan_demets_obrien_fleming_spending_matches_published_bounds() -> None:
    """One-sided alpha 0.025, three equally spaced looks: 3.710, 2.511, 1.993 (gsDesign sfLDOF)."""
    b = spending_boundaries(
        (1 / 3, 2 / 3, 1.0), 0.025, 0.1, 3.0, Spending("obf"), Spending("hsd", -2), False
    )
    assert b.efficacy == pytest.approx((3.710, 2.511, 1.993), abs=1e-3)


def test_efficacy_bounds_spend_exactly_alpha_under_the_null() -> None:
    fractions = (0.1, 0.25, 0.4, 0.7, 1.0)  # irregular looks, as overshooting pokes produce
    b = spending_boundaries(
        fractions, 0.05, 0.2, 2.6, Spending("hsd", 1), Spending("hsd", -1), True
    )
    up, _ = crossing_probabilities(list(fractions), list(b.efficacy), [-np.inf] * 5, 0.0)
    assert up.sum() == pytest.approx(0.05, abs=1e-6)
    spent = Spending("hsd", 1.0)
    assert np.cumsum(up) == pytest.approx([spent.spent(t, 0.05) for t in fractions], abs=1e-6)


def test_planned_design_has_requested_power_and_alpha() -> None:
    d = plan_design(0.05, 0.8, 10, Spending("hsd", 1.0), Spending("hsd", -1.0))
    b = d.boundaries
    up1, _ = crossing_probabilities(
        list(b.fractions), list(b.efficacy), list(b.futility), d.theta_max
    )
    up0, _ = crossing_probabilities(list(b.fractions), list(b.efficacy), list(b.futility), 0.0)
    assert up1.sum() == pytest.approx(0.8, abs=1e-4)
    assert up0.sum() <= 0.05 + 1e-6  # futility is non-binding: ignoring it could only add
    assert b.futility[-1] == b.efficacy[-1]
    assert 1.0 < d.inflation < 1.5
    assert d.inflation * expected_fraction(d, 1.0) < 0.75


def test_single_look_design_is_the_fixed_horizon_test() -> None:
    d = plan_design(0.05, 0.8, 1)
    assert d.inflation == pytest.approx(1.0)
    assert d.boundaries.efficacy[0] == pytest.approx(1.6449, abs=1e-4)


def test_pocock_constant_one_look_is_the_normal_quantile() -> None:
    assert pocock_constant(0.01, 1) == pytest.approx(2.3263, abs=1e-4)
    assert pocock_constant(0.01, 25) > pocock_constant(0.01, 5) > 2.3263


def test_bad_design_inputs_name_the_field() -> None:
    with pytest.raises(ValueError, match="alpha"):
        plan_design(0.7, 0.8, 5)
    with pytest.raises(ValueError, match="looks"):
        plan_design(0.05, 0.8, 0)
    with pytest.raises(ValueError, match=r"spending\.family"):
        Spending("linear")
