"""The gate engine: one pure evaluation of a stage, (evidence, config, looks) -> (decision, looks).

How it stays valid under repeated pokes: the design plans ``config.looks`` analyses at equally
spaced information fractions of the stage's maximum information. Information comes from labelled
request counts and the planning variance (a 0/100 stage adds the carried champion's variance, a
shadow stage estimates its own: see below), so a poke takes a look only when the counts have
crossed the next planned fraction; every other poke answers "continue" without spending any error.
When a poke lands past a planned fraction (chunks of traffic overshoot), the look is taken at the
actual fraction and error spending recomputes the boundaries for the looks actually taken. The
looks taken so far are the only state; they are plain JSON so a rescheduled or deferred sensor can
keep them in XCom or S3 and pass them back.

A stage whose evidence is complete before its last planned look (``evidence.complete``: its
replay is spent and counted, so nothing more will come) takes its last look at once, at the
information reached: it spends all the alpha left and its futility bound meets its efficacy
bound, so it promotes or rolls back (with less power than planned; the look is marked
``early_last``) instead of waiting for its deadline. Valid because the traffic, not the
outcomes, chose that moment.

A shadow stage (``evidence.paired`` set: both models scored the same requests) runs the paired
test of :mod:`.paired` with the same looks, boundaries, guardrails and deadline. Its information
n / v is estimated from the discordant share, so a look is due when the estimate crosses the
next planned fraction and later looks can only move forward. No discordant pair yet is no
look, except the last, where the exact test judges it: under H0 p_disc >= delta, so seeing none
of n pairs has probability about (1 - delta)^n. The planned last look needs n >= I_max delta
(1 - delta) pairs (the variance floor), so there it is ~ exp(-I_max delta^2), a few in 10,000
with the default design (the record carries the bound), and it promotes; an early last look
(below) on fewer pairs may well roll back. No sample-ratio check either:
the challenger answers a copy of every sampled request the champion serves, so there is no split
between them to check.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from functools import lru_cache
from typing import Any

import numpy as np

from canary.experiment.gates.config import GateConfig
from canary.experiment.gates.decision import Decision, Verdict, _finite
from canary.experiment.gates.evidence import StageEvidence, VariantEvidence
from canary.experiment.gates.guardrails import (
    Check,
    Status,
    guardrail_checks,
    per_look_level,
    srm_per_look_level,
)
from canary.experiment.gates.lattice import PAST_CAP, PLAN_VERSION, PROMOTE, ROLLBACK, ExactTest
from canary.experiment.gates.noninferiority import (
    PrimaryResult,
    primary_statistic,
    score_z,
)
from canary.experiment.gates.paired import (
    EXACT_BELOW,
    PairedResult,
    paired_information,
    paired_statistic,
    variance_floor,
)
from canary.experiment.gates.sequential import FRACTION_DIGITS, Boundaries, expected_fraction
from canary.experiment.gates.sizing import (
    exact_plan,
    fixed_horizon_n,
    information,
    max_information,
    planned_max_requests,
    stage_max_information,
)
from canary.experiment.gates.srm import SrmResult, sample_ratio_mismatch
from canary.experiment.gates.walk import Answers, Walk, advance, seed
from canary.plan import DeadlinePolicy, Metric

#: The method an exact-test stage's record names (``design.method``).
EXACT_METHOD = "exact lattice test: Bayes sequential on pairs of answers, a decision per step"

#: What a stage still undecided at its deadline ends in, by the plan's policy.
ON_DEADLINE = {DeadlinePolicy.ROLLBACK: Verdict.ROLLBACK, DeadlinePolicy.HALT: Verdict.HALT}

Look = dict[str, Any]


#: Within this of a planned fraction counts as reaching it.
FRACTION_TOLERANCE = 1e-9
#: The least step between two looks' fractions (they are kept to FRACTION_DIGITS).
FRACTION_STEP = 10.0**-FRACTION_DIGITS


def is_final(fraction: Any) -> Any:
    """The last look: the information fraction has reached 1 (floats or arrays)."""
    return fraction >= 1.0 - FRACTION_TOLERANCE


def looks_passed(fraction: Any, looks: int) -> Any:
    """How many of the ``looks`` planned fractions (1/looks, 2/looks, ...) ``fraction`` has
    reached: a poke takes a look when this grows past the last look's (floats or arrays)."""
    return np.floor(fraction * looks + FRACTION_TOLERANCE)


def evaluate(
    evidence: StageEvidence, config: GateConfig, looks: list[Look] | None = None
) -> tuple[Decision, list[Look]]:
    """Decide this stage now. ``looks`` are the looks returned by the previous call (or None at
    the stage's start); the returned list includes a new look if one was taken."""
    looks = _checked_looks(looks, evidence.stage)
    carried_var = evidence.carried.variance if _uses_carried(evidence) else 0.0
    info = _information(evidence, config, carried_var)
    stage_max = stage_max_information(config, carried_var if evidence.paired is None else 0.0)
    fraction = min(info / stage_max, 1.0)
    exact = exact_test(evidence, config)
    base = _base_record(evidence, config, looks, info, stage_max, carried_var, exact)
    broken = _answered_none(evidence, config) or _test_changed(looks, exact)
    if broken is not None:
        return _deadline_or(evidence, config, *broken, base), looks
    if exact is None:
        blocked = _not_ready(evidence, config, fraction, looks)
    else:
        blocked = _exact_not_ready(evidence, config, exact, looks)
    if blocked is not None:
        return _deadline_or(evidence, config, Verdict.CONTINUE, blocked, base), looks
    if exact is not None:
        return _take_exact_look(evidence, config, exact, looks, base)
    return _take_look(evidence, config, looks, fraction, stage_max, base)


def exact_test(evidence: StageEvidence, config: GateConfig) -> ExactTest | None:
    """The exact lattice test that judges this stage, or None for the z design: only a 50/50
    stage of the accuracy metric (0/1 by the plan, not by what the outcomes happen to be),
    served to different requests without adaptive allocation, whose plan expects rare errors
    (``sizing.exact_problem``), and only a plan that keeps alpha."""
    ev = evidence
    if ev.paired is not None or ev.adaptive or not math.isclose(*ev.shares):
        return None
    return exact_plan(config) if config.metric is Metric.ACCURACY else None


def _test_changed(looks: list[Look], exact: ExactTest | None) -> tuple[Verdict, str] | None:
    """A halt when the stage's looks were taken by another test than the one its gate would
    run now (the gate's settings or this code changed mid-stage): the error they spent cannot
    carry into another test's, so a person decides."""
    if not looks:
        return None
    kept = looks[-1].get("exact")
    then = kept.get("test") if kept else None
    now = _identity(exact) if exact else None
    if then == now:
        return None
    return Verdict.HALT, (
        f"the stage's test changed between looks: {len(looks)} look(s) by {_test_name(then)}, "
        f"now {_test_name(now)}; the error they spent cannot carry into another test"
    )


def _identity(test: ExactTest) -> dict[str, Any]:
    """What makes an exact test the one its looks spent error on: its problem and the
    planning's version (a stage's looks all come from one)."""
    return {"plan_version": PLAN_VERSION, **asdict(test.problem)}


def _test_name(identity: dict[str, Any] | None) -> str:
    if identity is None:
        return "the z design"
    step, last = identity.get("step"), identity.get("max_pairs")
    return f"the exact test (a decision every {step} pairs to {last})"


def _take_look(
    ev: StageEvidence,
    config: GateConfig,
    looks: list[Look],
    fraction: float,
    stage_max: float,
    base: dict[str, Any],
) -> tuple[Decision, list[Look]]:
    """Run every check at a new look and combine them: halt > rollback > promote > continue."""
    srm = None if ev.paired else _srm(ev, config)
    checks = guardrail_checks(ev, config)
    paired = paired_statistic(ev.paired, config.margin, config.alpha) if ev.paired else None
    if ev.paired is None:
        primary = primary_statistic(ev, config.margin, config.alpha)
    else:  # a shadow stage without pairs has no statistic (never the unpaired one)
        primary = paired.primary if paired else None
    early = ev.complete and not is_final(fraction)
    if early and primary is None:  # nothing to test, now or later: no look, the deadline ends it
        why = "the stage's traffic is spent with too few labelled answers for a test"
        return _deadline_or(ev, config, Verdict.CONTINUE, why, base), looks
    if early:
        fraction = _after_last(looks, fraction, _sample_size(ev))
    fractions = (*[lk["fraction"] for lk in looks], fraction)
    share = stage_max / max_information(config)
    last = early or is_final(fraction)
    bounds = config.design.boundaries_at(fractions, last, share)
    verdict, reason = _combine(srm, checks, primary, bounds, last)
    if early:
        reason += f"; last look early: the stage's traffic is spent at fraction {fraction:.3f}"
    look = _look_record(len(looks) + 1, fraction, ev, primary, bounds, verdict, early)
    record = {
        **base,
        "look": look,
        "srm": srm.to_dict() if srm else _SRM_NOT_APPLICABLE,
        "guardrails": [c.to_dict() for c in checks],
        "guardrail_per_look_p": per_look_level(config),
        "primary": primary.to_dict() if primary else None,
        "boundaries": {
            "fractions": list(bounds.fractions),
            "efficacy": list(bounds.efficacy),
            "futility": list(bounds.futility),
            "drift_under_alternative": list(bounds.drift),
        },
    }
    if ev.paired is not None:
        record["paired"] = _paired_record(ev, paired, config)
    new_looks = [*looks, look]
    record["looks"] = new_looks
    return _deadline_or(ev, config, verdict, reason, record), new_looks


def _exact_not_ready(
    ev: StageEvidence, config: GateConfig, test: ExactTest, looks: list[Look]
) -> str | None:
    """Why the exact test takes no look on this poke, or None when one is due: its next
    decision is reached, or the stage's traffic is spent."""
    waiting = _waiting_for_traffic(ev, config)
    if waiting is not None:
        return waiting
    if looks and Verdict(looks[-1]["verdict"]) is not Verdict.CONTINUE:
        return "the exact test's walk already ended"
    walked = _walked(looks)
    behind = walked.behind(*_answers(ev))
    if behind is not None:  # a read that lags (metrics, Data Capture): the next poke catches up
        return f"waiting for the evidence to catch up: {behind}"
    nxt = walked.pairs + test.problem.step
    reach = min(ev.champion.outcomes.n, ev.challenger.outcomes.n)
    if reach >= nxt or ev.complete:
        return None
    return f"next decision of the exact test at {nxt} pairs of labelled answers; now {reach}"


def _take_exact_look(
    ev: StageEvidence, config: GateConfig, test: ExactTest, looks: list[Look], base: dict[str, Any]
) -> tuple[Decision, list[Look]]:
    """Walk the stage's counts over the exact test's decisions (:mod:`.walk`); the guardrails
    and the sample-ratio test come first, at a level spread over its decisions."""
    walk, action = advance(test, _walked(looks), *_answers(ev), seed(ev.stage, ev.started_at))
    if walk.pairs == 0:  # spent before its first decision: no test, as the z design, no look
        why = (
            f"the stage's traffic is spent with fewer labelled pairs than one decision of the "
            f"exact test ({test.problem.step}): no test, the deadline ends the stage"
        )
        return _deadline_or(ev, config, Verdict.CONTINUE, why, base), looks
    decisions = len(test.problem.decisions)
    srm, checks = _srm(ev, config, decisions), guardrail_checks(ev, config, decisions)
    verdict, reason = _safety(srm, checks) or _exact_verdict(test, walk, action, ev.complete)
    primary = primary_statistic(ev, config.margin, config.alpha)
    look = _exact_look_record(len(looks) + 1, ev, test, walk, verdict, config.margin)
    new_looks = [*looks, look]
    record = {
        **base,
        "look": look,
        "srm": srm.to_dict(),
        "guardrails": [c.to_dict() for c in checks],
        "guardrail_per_look_p": per_look_level(config, decisions),
        "primary": primary.to_dict() if primary else None,
        "looks": new_looks,
    }
    return _deadline_or(ev, config, verdict, reason, record), new_looks


def _walked(looks: list[Look]) -> Walk:
    """Where the exact test's walk stands after the looks taken so far."""
    return Walk.of(looks[-1].get("exact") if looks else None)


def _answers(ev: StageEvidence) -> tuple[Answers, Answers]:
    """Each variant's labelled answers and errors: what the walk draws its pairs from."""
    return tuple(  # type: ignore[return-value]
        Answers(v.outcomes.n, v.outcomes.n - round(v.outcomes.total))
        for v in (ev.champion, ev.challenger)
    )


def _exact_verdict(
    test: ExactTest, walk: Walk, action: int | None, complete: bool
) -> tuple[Verdict, str]:
    """The verdict of the walk's last decision, with the counts and thresholds behind it.
    Traffic spent before a decision rolls back: a promote the test has not decided would
    spend alpha it does not have."""
    problem = test.problem
    up, down = test.thresholds(walk.pairs, walk.champion_errors)
    at = (
        f"{walk.pairs} pairs (errors: champion {walk.champion_errors}, "
        f"challenger {walk.challenger_errors})"
    )
    if action == PROMOTE:
        return Verdict.PROMOTE, f"non-inferior by the exact test at {at}; promotes at <= {up}"
    if action == ROLLBACK:
        return Verdict.ROLLBACK, f"the exact test rolls back at {at}; rolls back at >= {down}"
    if action == PAST_CAP:
        return Verdict.HALT, (
            f"errors past the exact test's lattice at {at}: it keeps {problem.errors_cap} per "
            f"variant, far more than planning rate {problem.rate} expects; re-plan the gate"
        )
    if complete:
        return Verdict.ROLLBACK, (
            f"not shown non-inferior: the stage's traffic is spent at {at}, before the exact "
            f"test decided (its last decision is at {problem.max_pairs} pairs)"
        )
    return Verdict.CONTINUE, (
        f"between the exact test's thresholds at {at}; next decision at "
        f"{walk.pairs + problem.step} pairs"
    )


def _exact_look_record(
    index: int, ev: StageEvidence, test: ExactTest, walk: Walk, verdict: Verdict, margin: float
) -> Look:
    """A look of the exact test, on the z scale the charts draw: the score z of the pairs the
    decision used, and as bounds the z at its thresholds (promote at or above ``efficacy``,
    roll back at or below ``futility``), with the walk, the thresholds, and which test it was
    (``test``: a stage's looks all come from one)."""
    pairs, e0 = walk.pairs, walk.champion_errors
    up, down = test.thresholds(pairs, e0)

    def z(challenger_errors: int | None) -> float | None:
        if challenger_errors is None or pairs < 2:
            return None
        return score_z(pairs - e0, pairs, pairs - challenger_errors, pairs, margin)

    look = _look_base(index, pairs / test.problem.max_pairs, ev, verdict, early_last=False)
    look |= {
        "z": z(walk.challenger_errors),
        "efficacy": z(up),
        "futility": z(down),
        "exact": {**walk.to_dict(), "promote_at_most": up, "rollback_at_least": down,
                  "test": _identity(test)},
    }  # fmt: skip
    return _finite(look)


_SRM_NOT_APPLICABLE = {
    "status": "not_applicable",
    "reason": "paired (shadow) stage: both models score every request, there is no split to check",
}


def _paired_record(
    ev: StageEvidence, paired: PairedResult | None, config: GateConfig
) -> dict[str, Any]:
    """What the report draws for a shadow stage: the 2x2 table and how the look was tested."""
    table = ev.paired
    assert table is not None
    n_last = max_information(config) * variance_floor(config.margin)
    return {
        "table": table.table(ev.champion.name, ev.challenger.name),
        "n_pairs": table.n,
        "discordant": table.discordant,
        "p_disc_hat": table.p_disc if table.n else None,
        "variance_hat": paired.variance_hat if paired else None,
        "variance_floor": variance_floor(config.margin),
        "method": paired.method if paired else None,
        "exact_below_discordant": EXACT_BELOW,
        "p_value": paired.p_value if paired else None,
        "max_information": max_information(config),
        "n_pairs_for_last_look_now": max_information(config) * paired.variance_hat
        if paired
        else None,
        "null_p_no_discordant_at_planned_last_look": (1 - config.margin) ** n_last,
    }


def _srm(ev: StageEvidence, config: GateConfig, looks: int | None = None) -> SrmResult:
    """The sample-ratio test at the level of one of ``looks`` looks (the design's if None)."""
    return sample_ratio_mismatch(
        (ev.champion.requests, ev.challenger.requests),
        ev.expected_shares or ev.shares,
        srm_per_look_level(config, looks),
    )


def _safety(srm: SrmResult | None, checks: list[Check]) -> tuple[Verdict, str] | None:
    """The verdict of the guardrails and the sample-ratio test, which come before any test of
    quality, or None when they pass. A ceiling judges the challenger on its own, so it holds
    however the traffic was split; a sample ratio mismatch only voids comparisons with the
    champion."""
    failed = [c for c in checks if c.status is Status.FAIL]
    ceilings = [c for c in failed if c.name.ceiling]
    if ceilings:
        return Verdict.ROLLBACK, _guardrail_reason(ceilings[0])
    if srm is not None and srm.mismatch:
        return Verdict.HALT, (
            f"sample ratio mismatch: observed {srm.observed} vs expected "
            f"({srm.expected[0]:.0f}, {srm.expected[1]:.0f}), chi-square p={srm.p_value:.2g} "
            f"< {srm.threshold:.2g}"
        )
    if failed:
        return Verdict.ROLLBACK, _guardrail_reason(failed[0])
    return None


def _combine(
    srm: SrmResult | None,
    checks: list[Check],
    primary: PrimaryResult | None,
    bounds: Boundaries,
    final: bool,
) -> tuple[Verdict, str]:
    safety = _safety(srm, checks)
    if safety is not None:
        return safety
    if primary is None:
        return (
            Verdict.CONTINUE,
            "no primary statistic yet (too few labelled outcomes, or no spread)",
        )
    b, a = bounds.efficacy[-1], bounds.futility[-1]
    summary = (
        f"diff={primary.diff:+.4f} (CI {primary.ci_low:+.4f}..{primary.ci_high:+.4f}), "
        f"z={primary.z:.3f}, margin={primary.margin}"
    )
    if primary.z >= b:
        return (
            Verdict.PROMOTE,
            f"non-inferior: z={primary.z:.3f} >= efficacy bound {b:.3f}; {summary}",
        )
    if primary.z <= a:
        why = "not shown non-inferior at the last look" if final else "futility/harm bound crossed"
        return Verdict.ROLLBACK, f"{why}: z={primary.z:.3f} <= {a:.3f}; {summary}"
    return Verdict.CONTINUE, f"between bounds ({a:.3f} < z < {b:.3f}); {summary}"


def _guardrail_reason(check: Check) -> str:
    return (
        f"guardrail {check.name} failed: challenger {_fmt(check.challenger)} vs limit "
        f"{_fmt(check.limit)} (champion {_fmt(check.champion)}), "
        f"p={_fmt(check.p_value)} < {_fmt(check.threshold)}"
    )


def _answered_none(ev: StageEvidence, config: GateConfig) -> tuple[Verdict, str] | None:
    """The verdict on a challenger that answered none of at least ``min_requests`` requests.
    Information counts only answered, labelled requests, so for it no look (and no guardrail)
    would ever come: the stage would wait for its deadline. Rolled back, unless the champion
    answered none either: then the experiment (payload, dataset, endpoint) is broken, not the
    challenger, and the stage halts. A fact, not a test: it spends no error."""
    if not _failed_all(ev.challenger, config):
        return None
    if _failed_all(ev.champion, config):
        return Verdict.HALT, (
            f"both variants failed every request ({_failures(ev.champion)}; "
            f"{_failures(ev.challenger)}): the payload, the dataset or the endpoint is broken"
        )
    return Verdict.ROLLBACK, f"the challenger failed every request: {_failures(ev.challenger)}"


def _failed_all(variant: VariantEvidence, config: GateConfig) -> bool:
    """At least ``min_requests`` requests, every one counted as an error, and no labelled
    answer (so metrics read a moment apart can never make a partial failure look total)."""
    failed = variant.errors
    return (
        variant.requests >= config.min_requests
        and failed >= variant.requests
        and variant.outcomes.n == 0
    )


def _failures(v: VariantEvidence) -> str:
    return f"{v.name} {v.requests} requests, {v.errors_5xx} 5XX, {v.errors_4xx} 4XX"


def _waiting_for_traffic(ev: StageEvidence, config: GateConfig) -> str | None:
    """Why a stage is too young for any look, or None."""
    need = config.min_requests
    if ev.challenger.requests < need or (ev.shares[0] > 0 and ev.champion.requests < need):
        return (
            f"waiting for traffic: {ev.champion.requests}/{ev.challenger.requests} requests "
            f"(champion/challenger), need {need} each"
        )
    return None


def _not_ready(
    ev: StageEvidence, config: GateConfig, fraction: float, looks: list[Look]
) -> str | None:
    """Why no look is taken on this poke, or None when one is due."""
    waiting = _waiting_for_traffic(ev, config)
    if waiting is not None:
        return waiting
    if ev.paired is None and _uses_carried(ev) is False and ev.shares[0] == 0:
        return "no concurrent champion and no carried champion estimate: cannot compare"
    last = looks[-1]["fraction"] if looks else 0.0
    if is_final(last):
        return "the last look was already taken"
    due = looks_passed(fraction, config.looks) > looks_passed(last, config.looks)
    if is_final(fraction) or ev.complete:
        return None
    if due and ev.paired is not None and ev.paired.discordant == 0:
        return (
            f"no discordant pair in {ev.paired.n} pairs yet: the models agree on every request "
            f"so far (information fraction {fraction:.3f}; judged only at the last look)"
        )
    if due:
        return None
    nxt = (looks_passed(last, config.looks) + 1) / config.looks
    return f"next look at information fraction {nxt:.3f}; now {fraction:.3f}"


def _after_last(looks: list[Look], fraction: float, n: int) -> float:
    """Where an early last look goes: one more look after every look taken (so the alpha they
    spent stays spent; when to take it was decided by the traffic, not by the outcomes), at
    the larger of the information reached and the previous look's grown with the sample
    (``n`` over its own). An estimate that barely moved (a paired variance estimate that grew)
    would place the look just after the previous one, assume the two statistics nearly
    identical and leak alpha; the larger fraction assumes them less alike, which never does.
    Its price: with arms that grew unevenly, ``n`` overstates the information and the last
    look spends a little less than it could. Only the same counts go just after it."""
    if not looks:
        return fraction
    last = looks[-1]
    grown = last["fraction"] * n / max(_sample_size(last), 1)
    return min(1.0, max(fraction, grown, last["fraction"] + FRACTION_STEP))


def _sample_size(source: StageEvidence | Look) -> int:
    """Pairs (shadow stage) or labelled answers of both variants, of evidence or a look."""
    if isinstance(source, StageEvidence):
        if source.paired is not None:
            return source.paired.n
        return source.champion.outcomes.n + source.challenger.outcomes.n
    if "n_pairs" in source:
        return int(source["n_pairs"])
    return int(source["n_champion"]) + int(source["n_challenger"])


def _deadline_or(
    ev: StageEvidence, config: GateConfig, verdict: Verdict, reason: str, record: dict[str, Any]
) -> Decision:
    """A stage still undecided at its deadline ends by the configured policy."""
    if verdict is Verdict.CONTINUE and ev.elapsed_minutes > config.max_stage_minutes:
        verdict = ON_DEADLINE[config.on_deadline]
        reason = (
            f"stage deadline of {config.max_stage_minutes} min passed "
            f"({ev.elapsed_minutes:.1f} min) without a decision; "
            f"policy: {config.on_deadline.value}. "
            f"Last state: {reason}"
        )
    # looks and config are finite already (looks made so once, when recorded): skip the copy
    fixed = {"looks": record.pop("looks"), "config": record.pop("config")}
    record = {**_finite(record), **fixed, "verdict": verdict.value, "reason": reason}
    return Decision(verdict, reason, record)


def _information(ev: StageEvidence, config: GateConfig, carried_var: float) -> float:
    if ev.paired is not None:
        t = ev.paired
        return float(paired_information(t.discordant, t.n, config.margin))
    return information(ev.champion.outcomes.n, ev.challenger.outcomes.n, config, carried_var)


def _uses_carried(ev: StageEvidence) -> bool:
    return ev.shares[0] == 0 and ev.carried is not None


def _checked_looks(looks: list[Look] | None, stage: int) -> list[Look]:
    looks = list(looks or [])
    for i, lk in enumerate(looks):
        if not isinstance(lk, dict) or "fraction" not in lk:
            raise ValueError(f"looks.{i}: not a look record (needs 'fraction')")
        if lk.get("stage", stage) != stage:
            raise ValueError(f"looks.{i}: belongs to stage {lk.get('stage')}, not {stage}")
    return looks


def _look_base(
    index: int, fraction: float, ev: StageEvidence, verdict: Verdict, early_last: bool
) -> Look:
    """What every look records, whichever test took it: where, when, on what, and its verdict."""
    return {
        "stage": ev.stage,
        "look": index,
        "fraction": round(fraction, FRACTION_DIGITS),
        "n_champion": ev.champion.outcomes.n,
        "n_challenger": ev.challenger.outcomes.n,
        "verdict": verdict.value,
        "at": ev.observed_at.isoformat(),
        "early_last": early_last,
    }


def _look_record(
    index: int,
    fraction: float,
    ev: StageEvidence,
    primary: PrimaryResult | None,
    bounds: Boundaries,
    verdict: Verdict,
    early_last: bool,
) -> Look:
    look = _look_base(index, fraction, ev, verdict, early_last)
    look |= {
        "z": primary.z if primary else None,
        "efficacy": bounds.efficacy[-1],
        "futility": bounds.futility[-1],
    }
    if ev.paired is not None:
        look |= {
            "n_pairs": ev.paired.n,
            "champion_only": ev.paired.champion_only,
            "challenger_only": ev.paired.challenger_only,
            "method": primary.method if primary else None,
        }
    return _finite(look)


def _z_design(config: GateConfig) -> dict[str, Any]:
    """The z design's choices and expected sizes, for the record."""
    design = config.design
    return {
        "method": "group-sequential error spending (HSD), "
        f"{'binding' if config.binding_futility else 'non-binding'} beta-spending futility",
        "binding_futility": config.binding_futility,
        "planned_looks": config.looks,
        "alpha_gamma": config.alpha_gamma,
        "beta_gamma": config.beta_gamma,
        "inflation": design.inflation,
        "expected_fraction_at_alternative": expected_fraction(design, 1.0),
        "expected_fraction_at_null": expected_fraction(design, 0.0),
    }


def _base_record(
    ev: StageEvidence,
    config: GateConfig,
    looks: list[Look],
    info: float,
    stage_max: float,
    carried_var: float,
    exact: ExactTest | None,
) -> dict[str, Any]:
    weights = ev.weights
    sized = ev.paired is None and (weights[0] or carried_var)  # pairs: planned_max_pairs
    plan = planned_max_requests(config, weights, carried_var) if sized else None
    return {
        "stage": ev.stage,
        "weights": {ev.champion.name: weights[0], ev.challenger.name: weights[1]},
        "timestamp": ev.observed_at.isoformat(),
        "stage_started_at": ev.started_at.isoformat(),
        "elapsed_minutes": ev.elapsed_minutes,
        "variants": {v.name: _variant_summary(v) for v in (ev.champion, ev.challenger)},
        "carried_champion": ev.carried.to_dict() if ev.carried else None,
        "adaptive_allocation": ev.adaptive,
        "information": info,
        "information_fraction": min(info / stage_max, 1.0) if stage_max else 0.0,
        "evidence_complete": ev.complete,
        "design": {
            "alpha": config.alpha,
            "power": config.power,
            "margin": config.margin,
            **(
                {"method": EXACT_METHOD, "planned_looks": len(exact.problem.decisions)}
                if exact
                else _z_design(config)
            ),
            "n_fix_per_variant": fixed_horizon_n(config),
            "max_requests": plan.to_dict() if plan else None,
            "stage_max_information": stage_max,
            "stage_power_limited": stage_max < max_information(config) * (1 - 1e-9),
        },
        "exact_test": _exact_summary(exact) if exact else None,
        "config": _config_dict(config),
        "looks": looks,
    }


def _exact_summary(test: ExactTest) -> dict[str, Any]:
    """What the record says of the exact test that judges the stage (exact figures)."""
    p = test.problem
    return {
        "step_pairs": p.step,
        "max_pairs": p.max_pairs,
        "errors_cap": p.errors_cap,
        "power": test.alternative.promote,
        "expected_pairs_at_alternative": test.alternative.mean_pairs,
        "least_expected_pairs_of_any_test": test.bound,
        "false_promotion_at_most": test.worst_false_promotion,
        "null_accuracies_checked": sorted(test.nulls),
    }


@lru_cache(maxsize=64)
def _config_dict(config: GateConfig) -> dict[str, Any]:
    return config.to_dict()


def _variant_summary(v: VariantEvidence) -> dict[str, Any]:
    o = v.outcomes
    return {
        "requests": v.requests,
        "errors_4xx": v.errors_4xx,
        "errors_5xx": v.errors_5xx,
        "labelled": o.n,
        "quality_mean": o.mean if o.n else None,
        "latency_p99_ms": v.latency_p99_ms,
        "latency_summary": asdict(v.latency) if v.latency else None,
    }


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"
