"""Allocation strategies: split, stickiness, warm-up, convergence, honest propensities."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import integrate, stats

from canary.experiment.allocation import (
    UCB1,
    Allocator,
    AssignmentSource,
    EpsilonGreedy,
    ThompsonSampling,
    WeightedSampling,
    make_policy,
    prob_best_beta,
)

WEIGHTS = {"Champion": 0.25, "Challenger": 0.75}


def test_weighted_split_matches_stage_weights() -> None:
    """20 000 hashed users fall 25/75: chi-square goodness of fit does not reject."""
    alloc = Allocator(WeightedSampling(), salt="run-1")
    picks = [alloc.assign(f"user-{i}", "stage-2", WEIGHTS) for i in range(20_000)]
    counts = [sum(a.variant == v for a in picks) for v in ("Champion", "Challenger")]
    expected = [0.25 * 20_000, 0.75 * 20_000]
    assert stats.chisquare(counts, expected).pvalue > 0.001
    assert {a.propensity for a in picks if a.variant == "Challenger"} == {0.75}
    assert {a.source for a in picks} == {AssignmentSource.HASH}


def test_zero_weight_variant_is_never_chosen_by_any_strategy() -> None:
    weights = {"Champion": 0.0, "Challenger": 1.0}
    for strategy in (WeightedSampling(), EpsilonGreedy(0.3), UCB1(), ThompsonSampling()):
        alloc = Allocator(strategy, seed=3)
        for i in range(200):
            a = alloc.assign(f"u{i}", "s", weights)
            assert a.variant == "Challenger"
            alloc.record(a.variant, 1.0)


def test_weighted_users_are_sticky_within_a_stage_and_across_processes() -> None:
    """The hash needs no stored state: a fresh allocator (another shard) agrees."""
    a, b = Allocator(WeightedSampling(), salt="x"), Allocator(WeightedSampling(), salt="x")
    first = [a.assign(f"u{i}", "s1", WEIGHTS).variant for i in range(500)]
    assert first == [a.assign(f"u{i}", "s1", WEIGHTS).variant for i in range(500)]
    assert first == [b.assign(f"u{i}", "s1", WEIGHTS).variant for i in range(500)]
    other_stage = [a.assign(f"u{i}", "s2", WEIGHTS).variant for i in range(500)]
    assert first != other_stage  # a new stage re-draws users


def test_bandit_assignment_is_stored_and_survives_json_round_trip() -> None:
    alloc = Allocator(ThompsonSampling(), seed=7)
    first = {f"u{i}": alloc.assign(f"u{i}", "s1", WEIGHTS) for i in range(50)}
    for i in range(50):
        alloc.record(first[f"u{i}"].variant, float(i % 2))
    restored = Allocator.from_state_dict(json.loads(json.dumps(alloc.state_dict())))
    for user, a in first.items():
        again = restored.assign(user, "s1", WEIGHTS)
        assert (again.variant, again.propensity, again.source) == (
            a.variant,
            a.propensity,
            AssignmentSource.STICKY,
        )
    assert restored.stats.pulls == alloc.stats.pulls
    # the random stream continues where it stopped, so chunks reproduce a single run
    assert restored.rng.random() == alloc.rng.random()


def test_warmup_uses_stage_weights_until_every_variant_has_enough_invocations() -> None:
    alloc = Allocator(EpsilonGreedy(0.0), warmup=30, seed=1)
    sources = []
    for i in range(400):
        a = alloc.assign(f"u{i}", "s", WEIGHTS)
        if a.source == "warmup":
            assert a.propensity == WEIGHTS[a.variant]
        sources.append(a.source)
        alloc.record(a.variant, 1.0 if a.variant == "Champion" else 0.0)
    first_strategy = sources.index("strategy")
    assert set(sources[:first_strategy]) == {"warmup"}
    assert first_strategy >= 60  # two variants x 30 rewarded invocations at least
    # with epsilon 0 the greedy choice after warm-up is the rewarding arm, with propensity 1
    last = alloc.assign("new-user", "s", WEIGHTS)
    assert (last.variant, last.propensity) == ("Champion", 1.0)


@pytest.mark.parametrize(
    "strategy", [EpsilonGreedy(0.1), UCB1(), ThompsonSampling()], ids=lambda s: s.strategy.value
)
def test_bandit_concentrates_on_the_better_arm(strategy) -> None:
    """Bernoulli 0.6 vs 0.8: the last third of 3 000 users mostly goes to the better arm."""
    rng = np.random.default_rng(11)
    truth = {"Champion": 0.6, "Challenger": 0.8}
    alloc = Allocator(strategy, warmup=20, seed=5)
    chosen = []
    for i in range(3_000):
        a = alloc.assign(f"u{i}", "s", {"Champion": 0.5, "Challenger": 0.5})
        alloc.record(a.variant, float(rng.random() < truth[a.variant]))
        chosen.append(a.variant)
    share = np.mean([c == "Challenger" for c in chosen[2_000:]])
    assert share > 0.8


def test_ucb1_floor_keeps_every_propensity_positive() -> None:
    alloc = Allocator(UCB1(exploration_floor=0.04), seed=2)
    props = []
    for i in range(500):
        a = alloc.assign(f"u{i}", "s", WEIGHTS)
        alloc.record(a.variant, 1.0 if a.variant == "Challenger" else 0.0)
        props.append(a.propensity)
    assert min(props) == pytest.approx(0.02)  # floor / K
    assert max(props) == pytest.approx(0.98)


@pytest.mark.parametrize(
    ("alpha", "beta"),
    [((1, 1), (1, 1)), ((3, 9), (5, 2)), ((19, 5402), (3, 5227)), ((851, 881), (151, 121))],
)
def test_thompson_probability_matches_adaptive_quadrature(alpha, beta) -> None:
    """P(arm 0 best) = int f0 F1 against scipy's adaptive quad split at arm 1's quantiles."""
    p = prob_best_beta(np.array(alpha, float), np.array(beta, float))
    lo, hi = stats.beta.ppf([1e-13, 1 - 1e-13], alpha[0], beta[0])
    pts = np.clip(stats.beta.ppf([0.001, 0.5, 0.999], alpha[1], beta[1]), lo, hi)
    ref = integrate.quad(
        lambda x: stats.beta.pdf(x, alpha[0], beta[0]) * stats.beta.cdf(x, alpha[1], beta[1]),
        lo,
        hi,
        points=pts,
        limit=500,
        epsabs=1e-14,
    )[0]
    assert p[0] == pytest.approx(ref, abs=1e-8)
    assert p.sum() == pytest.approx(1.0)


def test_thompson_probability_matches_argmax_of_posterior_draws_three_arms() -> None:
    """What Thompson sampling literally does (draw, argmax) agrees within 4 Monte Carlo SE."""
    alpha, beta = np.array([12.0, 40.0, 7.0]), np.array([9.0, 30.0, 6.0])
    p = prob_best_beta(alpha, beta)
    n = 200_000
    draws = np.random.default_rng(0).beta(alpha, beta, size=(n, 3))
    freq = np.bincount(draws.argmax(axis=1), minlength=3) / n
    se = np.sqrt(p * (1 - p) / n)
    assert np.all(np.abs(freq - p) < 4 * se)


def test_bad_input_names_the_field() -> None:
    with pytest.raises(ValueError, match=r"weights\['B'\]"):
        Allocator(WeightedSampling()).assign("u", "s", {"A": 1.0, "B": -1.0})
    with pytest.raises(ValueError, match="strategy: unknown 'greedy'"):
        make_policy("greedy")
    with pytest.raises(ValueError, match="epsilon"):
        make_policy("epsilon_greedy", epsilon=2)
    with pytest.raises(ValueError, match="reward"):
        Allocator(UCB1()).record("A", 3.0)


def test_fixed_split_pseudo_regret_matches_its_expectation() -> None:
    """A 50/50 split gives up half the gap per request: 0.5 * 0.03 * 2 000 = 30 ± MC error."""
    from bench.simulation import pseudo_regret

    means = {"Champion": 0.85, "Challenger": 0.88}
    runs = [pseudo_regret("weighted", {}, means, 2_000, seed) for seed in range(20)]
    se = np.std(runs, ddof=1) / np.sqrt(len(runs))
    assert abs(np.mean(runs) - 30.0) < 4 * se
