"""The exact lattice test (canary.experiment.gates.lattice): the gate's test where errors are rare.

Why: its bound is the evidence for what no test can beat at p = 0.97, delta = 0.02, and no
library computes optimal sequential tests for two binomials; so the backward induction is
checked against every policy of a small lattice, the forward pass against scipy's binomial,
and the bound against a test that keeps both error rates.
"""

from __future__ import annotations

import itertools
import stat

import numpy as np
import pytest
from scipy import stats

from canary.experiment.gates import lattice
from canary.experiment.gates.lattice import (
    CONTINUE,
    PROMOTE,
    ROLLBACK,
    Problem,
    backward,
    forward,
    plan,
)

TINY = Problem(rate=0.7, margin=0.2, step=1, max_pairs=2)
NULLS, NULL_WEIGHTS, MISS = (0.75,), np.array([10.0]), 12.5  # all three actions after one pair
CELLS = [(e0, e1) for e0 in range(2) for e1 in range(2)]  # errors after one pair
ENDS = [(e0, e1) for e0 in range(3) for e1 in range(3)]  # after two


def _path(point: tuple[float, float], errors: tuple[int, int], pairs: int) -> float:
    """The probability of one sequence of ``pairs`` pairs with these errors per variant."""
    out = 1.0
    for rate, e in zip(point, errors, strict=True):
        out *= rate ** (pairs - e) * (1 - rate) ** e
    return out


def _lagrangians(first: tuple[int, ...]) -> np.ndarray:
    """E_1[N] + weight P_0(promote) + miss P_1(roll back) of the policy that takes ``first``
    after one pair, for every one of the 512 choices after two pairs, summed over sequences
    with no use of the lattice module's code."""
    alt, null = (TINY.rate, TINY.rate), (NULLS[0], NULLS[0] - TINY.margin)
    stopped = 0.0
    reach = {m: dict.fromkeys(ENDS, 0.0) for m in (alt, null)}  # mass at two pairs
    for cell, action in zip(CELLS, first, strict=True):
        if action == PROMOTE:
            stopped += _path(alt, cell, 1) + NULL_WEIGHTS[0] * _path(null, cell, 1)
        elif action == ROLLBACK:
            stopped += (1 + MISS) * _path(alt, cell, 1)
        else:
            for step, m in itertools.product(CELLS, reach):
                end = (cell[0] + step[0], cell[1] + step[1])
                reach[m][end] += _path(m, end, 2)
    promote = np.array([2 * reach[alt][e] + NULL_WEIGHTS[0] * reach[null][e] for e in ENDS])
    roll_back = np.array([(2 + MISS) * reach[alt][e] for e in ENDS])
    choices = np.array(list(itertools.product((1, 0), repeat=len(ENDS))))  # 1: promote
    return stopped + choices @ promote + (1 - choices) @ roll_back


def test_backward_induction_is_the_least_over_every_policy() -> None:
    """81 choices after one pair x 512 after two: the least Lagrangian is the induction's."""
    least = min(
        _lagrangians(first).min()
        for first in itertools.product((CONTINUE, PROMOTE, ROLLBACK), repeat=len(CELLS))
    )
    value, policy = backward(TINY, NULLS, NULL_WEIGHTS, MISS)
    assert value == pytest.approx(least, rel=1e-12)
    assert set(policy) == {1, 2}
    assert set(policy[1][:2, :2].ravel()) == {CONTINUE, PROMOTE, ROLLBACK}


def test_forward_pass_is_the_binomial_probability_of_a_fixed_sample_rule() -> None:
    """One decision after 20 pairs: promote when the challenger errs at most once more."""
    problem = Problem(rate=0.9, margin=0.1, step=20, max_pairs=20)
    e = np.arange(21)
    rule = np.where(e[None, :] - e[:, None] <= 1, PROMOTE, ROLLBACK)
    points = [(0.9, 0.8), (0.9, 0.9), (0.95, 0.85)]
    for point, seen in zip(points, forward(problem, {20: rule}, points), strict=True):
        pmf0, pmf1 = (stats.binom.pmf(e, 20, 1 - rate) for rate in point)
        expected = sum(pmf0[a] * pmf1[b] for a in e for b in e if b - a <= 1)
        assert seen.promote == pytest.approx(expected, rel=1e-12)
        assert (seen.mean_pairs, seen.lost) == (pytest.approx(20), pytest.approx(0, abs=1e-12))


SMALL = Problem(rate=0.9, margin=0.15, step=5, max_pairs=70)  # n_fix ~ 49 pairs


def test_backward_value_is_the_lagrangian_of_its_own_policy() -> None:
    """Induction and forward pass agree on a policy with many decisions."""
    weights, miss = np.array([250.0]), 60.0
    value, policy = backward(SMALL, (0.93,), weights, miss)
    alt, null = forward(SMALL, policy, [(0.9, 0.9), (0.93, 0.78)])
    lagrangian = alt.mean_pairs + weights[0] * null.promote + miss * (1 - alt.promote)
    assert value == pytest.approx(lagrangian, rel=1e-9)


def test_the_bound_is_below_a_test_that_keeps_both_error_rates_and_near_it() -> None:
    """Weak duality: no test with the power and alpha at every grid null beats the bound."""
    test = plan(SMALL)
    (alt,) = forward(SMALL, test.policy, [(SMALL.rate, SMALL.rate)])
    assert alt == test.alternative
    assert alt.promote >= 1 - SMALL.beta
    assert test.worst_false_promotion <= SMALL.alpha
    assert test.valid
    assert test.bound <= alt.mean_pairs <= 1.05 * test.bound


def test_the_error_cap_loses_nothing_where_the_bench_looks_and_says_so_elsewhere() -> None:
    """A policy that samples to the end: the lattice keeps 5 % and 10 % error rates whole,
    and reports the mass of a 50 % error rate that walks past its cap."""
    problem = Problem(rate=0.95, margin=0.05, step=10, max_pairs=200)
    assert problem.errors_cap < problem.max_pairs
    cells = problem.errors_cap + 1
    policy = {200: np.full((cells, cells), ROLLBACK)}
    kept, past = forward(problem, policy, [(0.95, 0.9), (0.5, 0.5)])
    assert kept.lost == pytest.approx(0, abs=1e-12)
    assert kept.mean_pairs == pytest.approx(200)
    assert past.lost > 0.5


@pytest.fixture
def plans_kept_in(tmp_path, monkeypatch):
    """PLAN_CACHE in a fresh folder, and no plan remembered in this process."""
    monkeypatch.setattr(lattice, "PLAN_CACHE", tmp_path)
    plan.cache_clear()
    yield tmp_path
    plan.cache_clear()


def test_a_kept_plan_is_read_back_by_the_next_process(plans_kept_in) -> None:
    """A sensor's next poke is a new process: it reads the plan the last one kept."""
    first = plan(SMALL)
    (kept,) = plans_kept_in.glob("*.npz")
    written = kept.stat().st_ino  # planning again would write a new file and rename it over
    plan.cache_clear()
    again = plan(SMALL)
    assert kept.stat().st_ino == written
    assert all((again.policy[n] == first.policy[n]).all() for n in SMALL.decisions)
    assert (again.bound, again.alternative, again.nulls) == (first.bound, first.alternative,
                                                             first.nulls)  # fmt: skip


def test_a_kept_plan_cannot_claim_error_rates_its_policy_lacks(plans_kept_in) -> None:
    """A file that promotes everything at the first decision, put where the plan is kept,
    is judged by what it does: invalid, so the gate falls back to the z design."""
    plan(SMALL)
    (kept,) = plans_kept_in.glob("*.npz")
    cells = SMALL.errors_cap + 1
    promote_all = np.full((len(SMALL.decisions), cells, cells), PROMOTE, dtype=np.int8)
    with np.load(kept) as planned:
        nulls = planned["nulls"]
    np.savez_compressed(kept, bound=1.0, policy=promote_all, nulls=nulls)
    plan.cache_clear()
    forged = plan(SMALL)
    assert forged.worst_false_promotion == pytest.approx(1.0)
    assert not forged.valid


def test_an_unreadable_kept_plan_is_planned_again(plans_kept_in) -> None:
    """A partial or garbled file (a process killed mid-write elsewhere) costs a planning,
    never a crash of the sensor."""
    first = plan(SMALL)
    (kept,) = plans_kept_in.glob("*.npz")
    kept.write_bytes(kept.read_bytes()[:100])
    plan.cache_clear()
    again = plan(SMALL)
    assert all((again.policy[n] == first.policy[n]).all() for n in SMALL.decisions)
    assert np.load(kept)["policy"].shape[0] == len(SMALL.decisions)  # written whole again


def test_the_cache_folder_is_narrowed_to_its_owner(tmp_path, monkeypatch) -> None:
    """A folder others could write (made by an older version, or by hand) is narrowed to
    0700 before a plan is kept in it; a path that is not a folder of this user's is not
    used at all: every process then plans for itself."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.setattr(lattice, "PLAN_CACHE", shared)
    plan.cache_clear()
    try:
        assert plan(SMALL).valid
        assert stat.S_IMODE(shared.stat().st_mode) == 0o700 and list(shared.glob("*.npz"))
        not_a_folder = tmp_path / "file"
        not_a_folder.write_text("")
        monkeypatch.setattr(lattice, "PLAN_CACHE", not_a_folder)
        plan.cache_clear()
        assert plan(SMALL).valid and not_a_folder.read_text() == ""
    finally:
        plan.cache_clear()
