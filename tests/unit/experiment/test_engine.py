"""The engine end to end on seeded streams: verdicts, looks as JSON state, records, deadlines."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import pytest

from canary.experiment.gates import (
    CarriedEstimate,
    GateConfig,
    Outcomes,
    PairedOutcomes,
    StageEvidence,
    VariantEvidence,
    Verdict,
    cap_per_variant,
    champion_estimate,
    evaluate,
    fixed_horizon_n,
    planned_max_requests,
)
from canary.experiment.gates.engine import FRACTION_STEP
from canary.experiment.gates.guardrails import Guardrail
from canary.experiment.gates.paired import EXACT
from tests.unit.experiment.streams import START, counts_evidence, poked_until_decided

# The z design's mechanics (looks at information fractions, early last looks): the exact
# test, which these rates would otherwise get (95 errors per variant by n_fix), is
# test_exact.py's.
CONFIG = GateConfig(margin=0.05, planning_rate=0.85, exact_below_errors=0)


def _stream(p0: float, p1: float, seed: int, chunk: int = 40, config: GateConfig = CONFIG):
    """A stream through the z design's CONFIG unless another is given."""
    return poked_until_decided(config, p0, p1, seed, chunk)


def test_empty_stage_continues_and_never_promotes() -> None:
    empty = StageEvidence(0, (50, 50), VariantEvidence("a"), VariantEvidence("b"), START, START)
    decision, looks = evaluate(empty, CONFIG)
    assert decision.verdict is Verdict.CONTINUE
    assert looks == []
    assert "waiting for traffic" in decision.reason


def test_labels_missing_means_continue_even_with_traffic() -> None:
    ev = StageEvidence(
        0, (50, 50), VariantEvidence("a", 500), VariantEvidence("b", 500), START, START
    )
    decision, looks = evaluate(ev, CONFIG)
    assert decision.verdict is Verdict.CONTINUE and looks == []


@pytest.mark.parametrize("seed", range(5))
def test_clearly_worse_challenger_is_rolled_back_never_promoted(seed: int) -> None:
    decision, n, _ = _stream(0.85, 0.85 - 3 * CONFIG.margin, seed)
    assert decision.verdict is Verdict.ROLLBACK
    assert n < fixed_horizon_n(CONFIG)
    assert decision.record["primary"]["z"] <= decision.record["look"]["futility"]


@pytest.mark.parametrize("seed", range(3))
def test_equal_challenger_is_promoted(seed: int) -> None:
    decision, n, looks = _stream(0.85, 0.85, 100 + seed)
    assert decision.verdict is Verdict.PROMOTE
    assert n <= cap_per_variant(CONFIG) + 40
    assert looks[-1]["z"] >= looks[-1]["efficacy"]


def test_poke_frequency_does_not_add_looks() -> None:
    """Poking again with the same counts takes no new look and spends no error."""
    cap = cap_per_variant(CONFIG)
    n = cap // CONFIG.looks + 1
    _, looks = evaluate(counts_evidence(n, int(0.85 * n), n, int(0.85 * n)), CONFIG, [])
    assert len(looks) == 1
    for _ in range(3):
        again, same = evaluate(counts_evidence(n, int(0.85 * n), n, int(0.85 * n)), CONFIG, looks)
        assert same == looks
        assert "next look" in again.reason


def test_record_answers_why_and_is_json() -> None:
    decision, _, _ = _stream(0.85, 0.70, 7)
    record = json.loads(decision.to_json())
    for key in ("stage", "weights", "variants", "primary", "boundaries", "guardrails", "srm",
                "design", "verdict", "reason", "timestamp", "looks", "config"):  # fmt: skip
        assert key in record, key
    assert record["verdict"] == "rollback"
    p = record["primary"]
    assert p["ci_low"] < p["diff"] < p["ci_high"]
    assert record["design"]["n_fix_per_variant"] == fixed_horizon_n(CONFIG)


def test_deadline_applies_the_configured_policy() -> None:
    ev = counts_evidence(10, 8, 10, 8, minutes=CONFIG.max_stage_minutes + 1)
    assert evaluate(ev, CONFIG)[0].verdict is Verdict.ROLLBACK
    halt = GateConfig(margin=0.05, on_deadline="halt")
    assert evaluate(ev, halt)[0].verdict is Verdict.HALT


def test_complete_evidence_takes_the_last_look_early_at_the_information_reached() -> None:
    """A stage whose replay cap is spent gets no more evidence: it decides at once, at its
    fraction, with the final bounds (futility meets efficacy), instead of at its deadline."""
    n = cap_per_variant(CONFIG) // 3
    ev = counts_evidence(n, int(0.85 * n), n, int(0.85 * n) - 5)
    waiting, looks = evaluate(ev, CONFIG, [])
    assert waiting.verdict is Verdict.CONTINUE and len(looks) == 1  # an interim look, no more
    again, same = evaluate(ev, CONFIG, looks)
    assert again.verdict is Verdict.CONTINUE and same == looks
    decision, last = evaluate(replace(ev, complete=True), CONFIG, looks)
    assert decision.verdict in (Verdict.PROMOTE, Verdict.ROLLBACK)
    assert decision.record["evidence_complete"] is True
    assert len(last) == 2 and last[-1]["efficacy"] == last[-1]["futility"]
    # the same counts as the interim look: one more look just after it, not a second look there
    assert last[-1]["fraction"] == pytest.approx(looks[0]["fraction"] + FRACTION_STEP, abs=1e-9)
    assert last[-1]["efficacy"] < looks[0]["efficacy"]
    assert last[-1]["early_last"] is True


def _shadow(pairs: int, champion_only: int, challenger_only: int, **kwargs) -> StageEvidence:
    both = int(0.9 * (pairs - champion_only - challenger_only))
    table = PairedOutcomes(both, champion_only, challenger_only,
                           pairs - both - champion_only - challenger_only)  # fmt: skip
    right = both + champion_only
    return counts_evidence(pairs, right, pairs, both + challenger_only, paired=table,
                           weights=(1, 0), **kwargs)  # fmt: skip


def test_an_early_last_look_after_more_pairs_counts_them_even_if_the_estimate_fell() -> None:
    """More pairs, but more of them discordant: the estimated fraction falls below the last
    look's. The early last look is placed as if the information grew with the pairs (placing it
    just after the last look would assume the two statistics nearly equal, and leak alpha)."""
    first, looks = evaluate(_shadow(60, 1, 1), CONFIG)
    assert first.verdict is Verdict.CONTINUE and len(looks) == 1
    decision, last = evaluate(_shadow(80, 12, 12, complete=True), CONFIG, looks)
    assert decision.record["information_fraction"] < looks[0]["fraction"] < 0.5
    assert last[-1]["fraction"] == pytest.approx(looks[0]["fraction"] * 80 / 60, abs=1e-6)
    assert last[-1]["early_last"] is True and looks[0]["early_last"] is False


def test_a_planned_last_look_is_not_early_even_with_complete_evidence() -> None:
    n = cap_per_variant(CONFIG)
    decision, looks = evaluate(counts_evidence(n, int(0.85 * n), n, int(0.85 * n), complete=True),
                               CONFIG)  # fmt: skip
    assert looks[-1]["fraction"] == 1.0 and looks[-1]["early_last"] is False
    assert decision.verdict is not Verdict.CONTINUE  # the planned last look decides


def test_complete_evidence_without_a_statistic_takes_no_look() -> None:
    """Traffic spent but no pair labelled: there is nothing to test, now or later. No look is
    recorded (each poke would add one), and the stage ends at its deadline."""
    empty = replace(_shadow(100, 0, 0), paired=PairedOutcomes(), complete=True)
    decision, looks = evaluate(empty, CONFIG)
    assert decision.verdict is Verdict.CONTINUE and looks == []
    assert decision.record["evidence_complete"] is True and "look" not in decision.record
    late = replace(empty, observed_at=START + timedelta(minutes=CONFIG.max_stage_minutes + 1))
    assert evaluate(late, CONFIG)[0].verdict is Verdict.ROLLBACK


@pytest.mark.parametrize(("pairs", "verdict"), [(40, Verdict.ROLLBACK), (100, Verdict.PROMOTE)])
def test_complete_evidence_ends_a_shadow_stage_with_no_discordant_pair(pairs, verdict) -> None:
    """No discordant pair waits for the last look; complete evidence makes this one the last,
    and the exact test judges it: 40 agreeing pairs are likely under the null (0.95^40 = 0.13),
    100 are not (0.006), both well before the stage's full information."""
    ev = _shadow(pairs, 0, 0)
    assert evaluate(ev, CONFIG)[0].verdict is Verdict.CONTINUE
    decision, looks = evaluate(replace(ev, complete=True), CONFIG)
    assert decision.verdict is verdict and len(looks) == 1 and looks[0]["fraction"] < 0.7
    assert decision.record["paired"]["method"] == EXACT


@pytest.mark.parametrize("shadow", [False, True])
def test_a_challenger_that_fails_every_request_is_rolled_back_without_a_look(shadow: bool) -> None:
    """It has no answered request, so no information and no look would ever come."""
    kwargs = {"paired": PairedOutcomes(), "weights": (1, 0)} if shadow else {}
    ev = counts_evidence(2500, 2250, 0, 0, **kwargs)
    broken = replace(ev, challenger=VariantEvidence("challenger", 2500, errors_5xx=2500))
    decision, looks = evaluate(broken, CONFIG)
    assert decision.verdict is Verdict.ROLLBACK and looks == []
    assert decision.reason == "the challenger failed every request: challenger 2500 requests, "\
        "2500 5XX, 0 4XX"  # fmt: skip
    one_answer = replace(ev, challenger=VariantEvidence("challenger", 2500, errors_5xx=2499))
    assert evaluate(one_answer, CONFIG)[0].verdict is Verdict.CONTINUE


def test_both_variants_failing_every_request_halts_without_blaming_the_challenger() -> None:
    """A broken payload or endpoint is not the challenger's fault: halt, not roll back."""
    failing = VariantEvidence("champion", 400, errors_4xx=400)
    ev = counts_evidence(0, 0, 0, 0)
    both = replace(ev, champion=failing, challenger=replace(failing, name="challenger"))
    decision, _ = evaluate(both, CONFIG)
    assert decision.verdict is Verdict.HALT and decision.reason.startswith("both variants failed")


def test_errors_counted_ahead_of_requests_never_pass_for_a_total_failure() -> None:
    """Metrics read a moment apart can count as many errors as requests while some requests
    were answered: with an answered, labelled request the challenger did not fail them all."""
    lagging = VariantEvidence("challenger", 500, errors_5xx=500, outcomes=Outcomes(3, 2, 2))
    ev = replace(counts_evidence(500, 450, 0, 0), challenger=lagging)
    assert evaluate(ev, CONFIG)[0].verdict is not Verdict.ROLLBACK


SRM_45_55_OF_10000 = (4500, 3825, 5500, 4675)


@pytest.mark.parametrize(
    ("counts", "options", "verdict", "reason"),
    [
        pytest.param(
            SRM_45_55_OF_10000,
            {},
            Verdict.HALT,
            "sample ratio mismatch",
            id="srm-halts-a-45-55-split-of-10000-configured-50-50",
        ),
        pytest.param(
            (300, 255, 300, 260),
            {"errors_5xx": (0, 30)},
            Verdict.ROLLBACK,
            "5xx",
            id="guardrail-5xx-ceiling-rolls-back-an-otherwise-good-challenger",
        ),
        pytest.param(
            SRM_45_55_OF_10000,
            {"errors_5xx": (0, 1100)},
            Verdict.ROLLBACK,
            Guardrail.CEILING_5XX,
            id="a-failed-ceiling-rolls-back-even-when-the-split-is-off",
        ),
        pytest.param(
            SRM_45_55_OF_10000,
            {"errors_5xx": (20, 40)},
            Verdict.HALT,
            "sample ratio mismatch",
            id="a-mismatched-split-halts-before-relative-comparisons",
        ),
        pytest.param(
            (0, 0, 2000, 2000),
            {"weights": (0, 100)},
            Verdict.CONTINUE,
            "carried",
            id="zero-hundred-stage-without-carried-estimate-never-promotes",
        ),
    ],
)
def test_one_look_verdict_and_its_reason(counts, options, verdict, reason) -> None:
    decision, _ = evaluate(counts_evidence(*counts, **options), CONFIG)
    assert decision.verdict is verdict
    assert reason in decision.reason


def test_srm_record_carries_the_chi_square_p_value() -> None:
    decision, _ = evaluate(counts_evidence(*SRM_45_55_OF_10000), CONFIG)
    assert decision.record["srm"]["p_value"] < 0.001


def test_zero_hundred_stage_uses_the_carried_champion_estimate() -> None:
    carried = CarriedEstimate(mean=0.85, variance=0.85 * 0.15 / 3000, n=3000, binary=True)
    n = planned_max_requests(CONFIG, (0, 100), carried.variance).challenger
    ev = counts_evidence(0, 0, n, int(0.86 * n), weights=(0, 100), carried=carried)
    decision, _ = evaluate(ev, CONFIG)
    assert decision.verdict is Verdict.PROMOTE
    assert decision.record["primary"]["method"] == "carried_champion_score"
    worse = counts_evidence(0, 0, n, int(0.70 * n), weights=(0, 100), carried=carried)
    assert evaluate(worse, CONFIG)[0].verdict is Verdict.ROLLBACK


def test_a_champion_right_on_every_request_is_carried_with_a_spread() -> None:
    """A 0/100 stage after a champion that never erred: the pooled variance is 0, which would
    claim its accuracy exactly known (and broke the stage). It is carried as half an error's
    worth, under one error's, and the stage sizes and judges the challenger against it."""
    earlier = [counts_evidence(n, n, n, n - 30) for n in (600, 900)]
    carried = champion_estimate(earlier)
    assert (carried.mean, carried.n, carried.binary) == (1.0, 1500, True)
    one_error = champion_estimate([counts_evidence(1500, 1499, 1500, 1470)])
    assert 0 < carried.variance < one_error.variance
    n = planned_max_requests(CONFIG, (0, 100), carried.variance).challenger
    worse = counts_evidence(0, 0, n, int(0.95 * n), weights=(0, 100), carried=carried)
    assert evaluate(worse, CONFIG)[0].verdict is Verdict.ROLLBACK


def test_sizing_scales_with_margin_and_weights() -> None:
    wide = GateConfig(margin=0.05, planning_rate=0.85)
    narrow = GateConfig(margin=0.02, planning_rate=0.85)
    # Farrington-Manning: (1.645 sqrt(v0) + 0.842 sqrt(0.1275))^2 * 2 / 0.02^2 with v0 the mean
    # variance at the null-restricted rates 0.83925 / 0.85925; 3942 with 0.1275 for v0 too
    assert fixed_horizon_n(narrow) == 3951
    assert cap_per_variant(narrow) / fixed_horizon_n(narrow) == pytest.approx(
        narrow.design.inflation, rel=1e-3
    )
    assert cap_per_variant(wide) < cap_per_variant(narrow)
    even, skewed = planned_max_requests(wide, (50, 50)), planned_max_requests(wide, (25, 75))
    assert skewed.total > even.total
    assert skewed.champion == pytest.approx(skewed.total / 4, abs=1)


def test_bad_inputs_name_the_field() -> None:
    with pytest.raises(ValueError, match="margin"):
        GateConfig(margin=-0.1)
    with pytest.raises(ValueError, match="metric"):
        GateConfig(metric="f1")
    with pytest.raises(ValueError, match="weights"):
        counts_evidence(10, 5, 10, 5, weights=(100, 0))
    with pytest.raises(ValueError, match=r"looks\.0"):
        evaluate(counts_evidence(10, 5, 10, 5), CONFIG, [{"nope": 1}])
    with pytest.raises(ValueError, match="alhpa"):  # a typo is an error, not a default
        GateConfig.model_validate({"alpha": 0.05, "alhpa": 0.1})
