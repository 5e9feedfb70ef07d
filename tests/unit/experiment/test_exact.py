"""The exact lattice test in the gate: when it judges a stage, how the engine walks a stage's
counts over its decisions, and what the records say.

Why a Monte Carlo check here: the walk draws the order of each poke's answers, and the claim
that makes it valid (the drawn sequence has the law the test was planned on, whatever the
pokes) is a claim about a distribution; it is checked against the plan's exact figure.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import numpy as np
import pytest

from canary.experiment.gates import GateConfig, Outcomes, Verdict, evaluate
from canary.experiment.gates.lattice import CONTINUE, PROMOTE, ROLLBACK, forward
from canary.experiment.gates.sizing import exact_plan, exact_problem
from canary.experiment.gates.walk import Answers, Walk, advance
from canary.plan import Metric
from tests.unit.experiment.streams import counts_evidence, poked_until_decided

# 95 % accuracy, margin 0.05: about 12 errors per variant by n_fix; a decision every 10 pairs.
CONFIG = GateConfig(margin=0.05, planning_rate=0.95, exact_step=10)


def test_the_exact_test_judges_only_stages_with_rare_errors() -> None:
    """Expected errors per variant by n_fix below ``exact_below_errors``: 0.97 / 0.02 (about
    29) gets it, the plan's default 0.9 / 0.03 (125) keeps the z design, as do a planning
    variance (outcomes not 0/1) and a threshold of 0."""
    assert exact_problem(GateConfig(margin=0.02, planning_rate=0.97)) is not None
    assert exact_problem(GateConfig(margin=0.03, planning_rate=0.9)) is None
    assert exact_problem(replace_config(CONFIG, planning_variance=0.05)) is None
    assert exact_problem(replace_config(CONFIG, exact_below_errors=0)) is None
    problem = exact_problem(CONFIG)
    assert problem is not None and problem.max_pairs % problem.step == 0


def replace_config(config: GateConfig, **changes: object) -> GateConfig:
    return GateConfig.model_validate({**config.model_dump(), **changes})


def test_the_plan_keeps_alpha_on_every_null_and_has_the_power() -> None:
    test = exact_plan(CONFIG)
    assert test is not None and test.valid
    assert test.worst_false_promotion <= CONFIG.alpha
    assert test.alternative.promote >= CONFIG.power
    assert min(test.nulls) < CONFIG.planning_rate - CONFIG.margin < max(test.nulls)
    assert test.bound <= test.alternative.mean_pairs


def test_models_better_than_planned_are_promoted_too() -> None:
    """Planned at 0.95, the test keeps its power for two models both right 97, 99 or 99.9 %
    of the time (exact, on the lattice): a plan weighed only at 0.95, with nulls up to 0.999,
    would take nearly faultless models for a null and roll them back."""
    test = exact_plan(CONFIG)
    assert test is not None and test.least_power >= CONFIG.power
    assert min(test.better) > CONFIG.planning_rate
    rates = (0.97, 0.99, 0.999)
    for rate, seen in zip(rates, forward(test.problem, test.policy, [(q, q) for q in rates]),
                          strict=True):  # fmt: skip
        assert seen.promote >= CONFIG.power, rate


def test_its_regions_are_intervals_so_the_thresholds_say_what_it_does() -> None:
    """At every decision and champion error count n pairs can reach, promote exactly at
    challenger errors up to one threshold and roll back exactly from another on: what
    records and charts show."""
    test = exact_plan(CONFIG)
    assert test is not None
    for n in test.problem.decisions:
        reach = range(min(n, test.problem.errors_cap) + 1)
        for e0 in reach:
            up, down = test.thresholds(n, e0)
            expected = [
                PROMOTE if up is not None and e1 <= up
                else ROLLBACK if down is not None and e1 >= down
                else CONTINUE
                for e1 in reach
            ]  # fmt: skip
            assert [test.action(n, e0, e1) for e1 in reach] == expected, (n, e0)


def _walk_stream(rng: np.random.Generator, point: tuple[float, float], pokes: list[int]) -> int:
    """One stream's outcome through ``advance`` with pokes of the given sizes per variant
    (cycled): the action that ended it."""
    test = exact_plan(CONFIG)
    assert test is not None
    walk, n, errors = Walk(), 0, [0, 0]
    stage_seed = (0, int(rng.integers(1 << 62)))
    while True:
        for size in pokes:
            n += size
            drawn = rng.binomial(size, 1 - np.array(point))
            errors = [e + int(d) for e, d in zip(errors, drawn, strict=True)]
            answers = [Answers(n, e) for e in errors]
            walk, action = advance(test, walk, *answers, stage_seed)
            if action not in (None, CONTINUE):
                return action


def test_a_walk_over_uneven_pokes_keeps_the_planned_false_promotion_rate() -> None:
    """Pokes of 7, 23 and 41 answers per variant (never on a decision): the drawn arrangement
    gives each decision the law it was planned on, so the false promotion rate at the least
    favourable null is the plan's exact figure, within 4 Monte Carlo standard errors."""
    test = exact_plan(CONFIG)
    assert test is not None
    null = next(iter(test.nulls))  # the least favourable null comes first
    runs, rng = 4000, np.random.default_rng(13)
    point = (null, null - CONFIG.margin)
    promoted = sum(_walk_stream(rng, point, [7, 23, 41]) == PROMOTE for _ in range(runs))
    expected = test.nulls[null].promote
    se = np.sqrt(expected * (1 - expected) / runs)
    assert abs(promoted / runs - expected) < 4 * se


def test_a_good_challenger_is_promoted_and_the_record_shows_the_walk() -> None:
    decision, _, looks = poked_until_decided(CONFIG, 0.95, 0.97, seed=1, chunk=25)
    assert decision.verdict is Verdict.PROMOTE
    record, last = decision.record, looks[-1]
    assert record["exact_test"]["false_promotion_at_most"] <= CONFIG.alpha
    assert record["exact_test"]["step_pairs"] == CONFIG.exact_step
    walk = last["exact"]
    assert walk["pairs"] % CONFIG.exact_step == 0 and walk["pairs"] <= last["n_champion"]
    assert walk["challenger_errors"] <= walk["promote_at_most"]
    assert last["z"] >= last["efficacy"]
    assert [look["look"] for look in looks] == list(range(1, len(looks) + 1))


def test_a_clearly_worse_challenger_is_rolled_back() -> None:
    decision, _, looks = poked_until_decided(CONFIG, 0.95, 0.8, seed=2, chunk=25)
    assert decision.verdict is Verdict.ROLLBACK
    walk = looks[-1]["exact"]
    assert walk["challenger_errors"] >= walk["rollback_at_least"]
    assert looks[-1]["z"] <= looks[-1]["futility"]


def test_no_look_before_the_next_decision_and_a_retried_poke_decides_the_same() -> None:
    first, looks = evaluate(counts_evidence(30, 30, 30, 30), CONFIG, [])
    assert first.verdict is Verdict.CONTINUE and looks[-1]["exact"]["pairs"] == 30
    decision, same = evaluate(counts_evidence(39, 38, 45, 44), CONFIG, looks)
    assert decision.verdict is Verdict.CONTINUE and same == looks
    assert "next decision of the exact test at 40 pairs of labelled answers; now 39" in (
        decision.reason
    )
    ev = counts_evidence(64, 61, 57, 55)
    once, after = evaluate(ev, CONFIG, looks)
    again, retried = evaluate(ev, CONFIG, looks)
    assert retried == after and again.verdict is once.verdict and len(after) == 2


def test_error_rates_far_above_the_planned_halt_the_stage() -> None:
    """A walk past the lattice's cap (error rates far above the planned: reachable only where
    the policy goes on at many errors) has no rule, and the stage halts for a person
    instead of guessing."""
    test = exact_plan(CONFIG)
    assert test is not None
    cap = test.problem.errors_cap
    _, looks = evaluate(counts_evidence(30, 30, 30, 30), CONFIG, [])  # a look of this test
    looks[-1]["exact"] |= {"pairs": 2 * cap, "champion_errors": 0, "challenger_errors": cap + 1}
    n = 2 * cap + CONFIG.exact_step
    decision, _ = evaluate(counts_evidence(n, n, n, n - cap - 1), CONFIG, looks)
    assert decision.verdict is Verdict.HALT
    assert "past the exact test's lattice" in decision.reason


def test_evidence_that_goes_back_is_refused_naming_the_variant() -> None:
    test = exact_plan(CONFIG)
    assert test is not None
    walked = Walk(pairs=20, champion_errors=1, challenger_errors=2)
    with pytest.raises(ValueError, match="challenger: 1 errors of 60 answers, fewer than the 2"):
        advance(test, walked, Answers(60, 1), Answers(60, 1), (0, 0))


def test_counts_that_lag_behind_the_walk_wait_for_the_next_poke() -> None:
    """A read that lags (fewer errors counted than an earlier look walked) is no look and no
    crash: the stage waits, and its deadline still applies."""
    _, looks = evaluate(counts_evidence(60, 56, 60, 55), CONFIG, [])
    walk = looks[-1]["exact"]
    assert walk["challenger_errors"] > 0
    decision, same = evaluate(counts_evidence(60, 56, 60, 60), CONFIG, looks)
    assert decision.verdict is Verdict.CONTINUE and same == looks
    assert decision.reason.startswith("waiting for the evidence to catch up: challenger: 0 errors")


def test_a_stage_whose_test_changed_between_looks_halts() -> None:
    """Looks taken by the z design cannot carry into the exact test, nor the other way: the
    error they spent belongs to their test (a gate setting or this code changed mid-stage)."""
    z_only = replace_config(CONFIG, exact_below_errors=0)
    ev = counts_evidence(100, 95, 100, 95)
    _, z_looks = evaluate(ev, z_only, [])
    _, exact_looks = evaluate(ev, CONFIG, [])
    assert z_looks and exact_looks
    stricter = replace_config(CONFIG, alpha=0.025)  # same step and last decision, other test
    changes = [(CONFIG, z_looks, "the exact test"), (z_only, exact_looks, "the z design"),
               (stricter, exact_looks, "the exact test")]  # fmt: skip
    for config, looks, now in changes:
        decision, kept = evaluate(ev, config, looks)
        assert decision.verdict is Verdict.HALT and kept == looks
        assert f"now {now}" in decision.reason


def test_no_look_after_the_walk_ended() -> None:
    decision, _, looks = poked_until_decided(CONFIG, 0.95, 0.8, seed=2, chunk=25)
    assert decision.verdict is Verdict.ROLLBACK
    n = looks[-1]["n_champion"] + 50
    again, same = evaluate(counts_evidence(n, n, n, n), CONFIG, looks)
    assert again.verdict is Verdict.CONTINUE and same == looks
    assert again.reason == "the exact test's walk already ended"


def test_only_the_accuracy_metric_gets_the_exact_test() -> None:
    """Whether outcomes are 0/1 is the plan's metric's to say, not the data's: a reward that
    happens to be 0 or 1 on every request so far keeps the z design."""
    reward = replace_config(CONFIG, metric=Metric.REWARD)
    assert evaluate(counts_evidence(100, 95, 100, 97), reward, [])[0].record["exact_test"] is None


def test_a_stage_spent_before_its_first_decision_is_left_to_its_deadline() -> None:
    """Fewer labelled pairs than one decision: no test to judge by, as with the z design
    without a statistic; the plan's deadline policy ends the stage."""
    few = counts_evidence(35, 35, 35, 35, complete=True)  # 35 requests each, 8 labelled
    few = replace(few, challenger=replace(few.challenger, outcomes=Outcomes(8, 8.0, 8.0)))
    decision, looks = evaluate(few, CONFIG, [])
    assert decision.verdict is Verdict.CONTINUE and looks == []  # no look: nothing to judge
    assert "fewer labelled pairs than one decision" in decision.reason
    late = replace(
        few, observed_at=few.started_at + timedelta(minutes=CONFIG.max_stage_minutes + 1)
    )
    assert evaluate(late, CONFIG, looks)[0].verdict is Verdict.ROLLBACK


def test_a_stage_spent_before_its_test_decided_is_rolled_back() -> None:
    """Traffic spent early: the test has not shown non-inferiority, and a promote on what it
    has not decided would spend alpha it does not have."""
    decision, looks = evaluate(counts_evidence(35, 35, 34, 34, complete=True), CONFIG, [])
    assert decision.verdict is Verdict.ROLLBACK
    assert "before the exact test decided" in decision.reason
    assert looks[-1]["exact"]["pairs"] == 30


def test_other_stages_keep_the_z_design() -> None:
    """25/75 and adaptive stages, and outcomes that are not 0/1, are judged by the z design."""
    uneven = counts_evidence(100, 95, 300, 290, weights=(25, 75))
    decision, _ = evaluate(uneven, CONFIG, [])
    assert decision.record["exact_test"] is None
    even = evaluate(counts_evidence(100, 95, 100, 97), CONFIG, [])[0]
    assert even.record["exact_test"] is not None
