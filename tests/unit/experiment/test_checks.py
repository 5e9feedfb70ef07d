"""Each check on known cases, against scipy/statsmodels/scikit-learn or published values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score
from statsmodels.stats import proportion
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from canary.experiment.gates import (
    CarriedEstimate,
    GateConfig,
    Outcomes,
    PairedOutcomes,
    StageEvidence,
    VariantEvidence,
    Verdict,
    evaluate,
)
from canary.experiment.gates.auc import compare_auc, compare_auc_paired, delong_auc
from canary.experiment.gates.guardrails import Check, Guardrail, Status, guardrail_checks
from canary.experiment.gates.noninferiority import primary_statistic
from canary.experiment.gates.srm import pearson_chisquare, sample_ratio_mismatch

START = datetime(2025, 1, 1, tzinfo=UTC)
CONFIG = GateConfig(margin=0.05)


def _stage(champ: VariantEvidence, chall: VariantEvidence, **kw) -> StageEvidence:
    return StageEvidence(0, kw.pop("weights", (50, 50)), champ, chall, START,
                         START + timedelta(minutes=1), **kw)  # fmt: skip


# --- sample ratio mismatch -------------------------------------------------------------------


def test_srm_fires_on_45_55_of_10000_configured_50_50() -> None:
    res = sample_ratio_mismatch((4500, 5500), (0.5, 0.5))
    assert res.mismatch and res.p_value < 1e-20
    assert not sample_ratio_mismatch((4950, 5050), (0.5, 0.5)).mismatch


@pytest.mark.parametrize("observed", [(4500, 5500), (2400, 7600), (10, 0), (313, 1000)])
def test_pearson_chisquare_equals_scipy(observed: tuple[int, int]) -> None:
    expected = (0.25 * sum(observed), 0.75 * sum(observed))
    ref = stats.chisquare(list(observed), f_exp=list(expected))
    assert pearson_chisquare(observed, expected) == pytest.approx((ref.statistic, ref.pvalue))


def test_srm_traffic_to_a_zero_weight_variant_is_a_mismatch() -> None:
    assert sample_ratio_mismatch((3, 900), (0.0, 1.0)).mismatch
    assert not sample_ratio_mismatch((0, 900), (0.0, 1.0)).mismatch


# --- DeLong ------------------------------------------------------------------------------------


def _hanley_mcneil() -> tuple[np.ndarray, np.ndarray]:
    """Hanley & McNeil (1982) CT ratings: 58 normal, 51 abnormal, 5-point scale."""
    neg = np.repeat([1, 2, 3, 4, 5], [33, 6, 6, 11, 2])
    pos = np.repeat([1, 2, 3, 4, 5], [3, 2, 2, 11, 33])
    return np.r_[pos, neg].astype(float), np.r_[np.ones(51), np.zeros(58)]


def _delong_by_definition(s: np.ndarray, y: np.ndarray) -> float:
    """DeLong et al. (1988) structural components with the psi kernel, O(m n) loops."""
    pos, neg = s[y == 1], s[y == 0]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    return v10.var(ddof=1) / len(pos) + v01.var(ddof=1) / len(neg)


def test_delong_matches_published_auc_and_definition() -> None:
    s, y = _hanley_mcneil()
    est = delong_auc(s, y)
    assert est.auc == pytest.approx(0.893, abs=5e-4)  # published AUC
    assert est.auc == pytest.approx(roc_auc_score(y, s))
    assert est.variance == pytest.approx(_delong_by_definition(s, y), rel=1e-12)
    # Hanley-McNeil's own SE (0.032) uses an exponential approximation; DeLong's is close to it.
    assert np.sqrt(est.variance) == pytest.approx(0.032, abs=0.002)


def test_delong_variance_agrees_with_a_bootstrap() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 400)
    s = rng.normal(y * 1.0, 1.0)
    est = delong_auc(s, y)
    boots = []
    for _ in range(600):
        idx = np.r_[rng.choice(np.flatnonzero(y == 1), (y == 1).sum()),
                    rng.choice(np.flatnonzero(y == 0), (y == 0).sum())]  # fmt: skip
        boots.append(roc_auc_score(y[idx], s[idx]))
    # sd of a variance estimate from 600 draws is ~ sqrt(2/599) ~ 6%: allow 20%
    assert np.var(boots, ddof=1) == pytest.approx(est.variance, rel=0.2)


# Two correlated scores of the same 60 requests (champion a, challenger b), with ties, and what
# R's pROC 1.18.0 (Debian r-cran-proc) says of them: roc(y, a / b, direction = "<"),
# roc.test(method = "delong", paired = TRUE): AUCs, Z = (AUC_a - AUC_b) / sd, var and cov.
PAIRED_Y = [1, 1, 1, 1, 0, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1, 0, 1, 1, 0, 1, 1, 0, 0, 1, 1, 0, 1, 0, 0,
            1, 1, 0, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 1, 0, 1, 1, 1, 1,
            0, 0]  # fmt: skip
PAIRED_A = [-0.07, 0.39, 0.57, 0.36, -0.09, 0.1, 0.21, 0.26, 0.22, -0.07, -0.01, 0.47, -0.06, 0.17,
            0.12, 0.19, 0.36, 0.42, 0.07, 0.13, 0.43, 0.35, -0.01, 0.46, 0.27, 0.26, 0.47, 0.22,
            0.09, 0.71, 0.21, -0.08, 0.15, 0.45, 0.14, -0.16, 0.48, 0.59, 0.44, -0.67, -0.24,
            -0.27, -0.3, 0.2, 0.45, 0.22, -0.18, 0.47, 0.02, 0.33, -0.17, 0.3, 0.41, -0.48, -0.1,
            0.57, 0.51, 0.17, -0.26, -0.05]  # fmt: skip
PAIRED_B = [-0.04, 0.46, 0.9, 0.51, 0.1, 0.25, 0.42, 0.42, -0.02, -0.11, 0.17, 0.62, 0.39, 0.44,
            0.07, 0.11, 0.35, 0.4, 0.36, 0.14, 0.58, 0.17, 0.12, 0.62, 0.44, 0.2, 0.75, 0.04,
            -0.04, 0.6, 0.57, -0.11, 0.16, 0.5, 0.69, -0.14, 0.71, 0.74, 0.55, -0.64, -0.24,
            -0.27, -0.57, 0.75, 0.5, 0.39, -0.17, 0.46, 0.16, 0.44, -0.06, 0.23, 0.58, -0.08,
            0.08, 0.78, 0.61, 0.5, -0.05, -0.03]  # fmt: skip
PROC_AUC_A, PROC_AUC_B, PROC_Z = 0.843171296296, 0.920138888889, -2.184097542867
PROC_VAR_A, PROC_VAR_B, PROC_COV = 0.00263647745705, 0.00116204023209, 0.00127833012231


def test_paired_delong_matches_r_proc() -> None:
    cmp = compare_auc_paired(np.array(PAIRED_A), np.array(PAIRED_B), np.array(PAIRED_Y))
    assert (cmp.champion_auc, cmp.challenger_auc) == pytest.approx((PROC_AUC_A, PROC_AUC_B))
    assert cmp.z == pytest.approx(-PROC_Z, rel=1e-9)  # pROC's Z is a - b; ours b - a
    assert cmp.se**2 == pytest.approx(PROC_VAR_A + PROC_VAR_B - 2 * PROC_COV, rel=1e-9)
    unpaired = compare_auc(
        delong_auc(np.array(PAIRED_A), np.array(PAIRED_Y)),
        delong_auc(np.array(PAIRED_B), np.array(PAIRED_Y)),
    )
    assert unpaired.se**2 == pytest.approx(PROC_VAR_A + PROC_VAR_B, rel=1e-9)
    assert cmp.se < unpaired.se  # the covariance of correlated models: a sharper test


def test_compare_auc_flags_a_clearly_worse_challenger() -> None:
    rng = np.random.default_rng(4)
    y0, y1 = rng.integers(0, 2, 800), rng.integers(0, 2, 800)
    good, bad = delong_auc(rng.normal(2.0 * y0, 1), y0), delong_auc(rng.normal(0.3 * y1, 1), y1)
    assert compare_auc(good, bad, 0.05).p_worse < 1e-6
    assert compare_auc(good, good, 0.05).p_worse > 0.5


def test_delong_rejects_one_class_labels() -> None:
    with pytest.raises(ValueError, match="labels"):
        delong_auc(np.arange(5.0), np.ones(5))


# --- primary statistic -------------------------------------------------------------------------


def test_welch_primary_matches_statsmodels() -> None:
    rng = np.random.default_rng(5)
    x0, x1 = rng.normal(1.0, 1.0, 300), rng.normal(0.95, 1.5, 200)
    ev = _stage(VariantEvidence("a", 300, outcomes=Outcomes.of(x0, False)),
                VariantEvidence("b", 200, outcomes=Outcomes.of(x1, False)))  # fmt: skip
    res = primary_statistic(ev, margin=0.1, alpha=0.05)
    ref_z, _ = CompareMeans(DescrStatsW(x1), DescrStatsW(x0)).ztest_ind(
        alternative="larger", usevar="unequal", value=-0.1
    )
    assert res.method == "welch_z" and res.z == pytest.approx(ref_z)


def test_carried_primary_adds_the_champion_variance() -> None:
    """Real-valued outcomes: a Wald z with the carried mean's variance added."""
    chall = VariantEvidence("b", 1000, outcomes=Outcomes(1000, 850, 850, binary=False))
    carried = CarriedEstimate(0.86, 0.0001, 5000)
    ev = _stage(VariantEvidence("a"), chall, weights=(0, 100), carried=carried)
    res = primary_statistic(ev, margin=0.03, alpha=0.05)
    se = np.sqrt(0.85 * 0.15 * 1000 / 999 / 1000 + 0.0001)
    assert res.method == "carried_champion_z"
    assert res.z == pytest.approx((0.85 - 0.86 + 0.03) / se)


def test_a_carried_binary_champion_is_score_tested_as_its_pooled_counts() -> None:
    """0/1 outcomes: the Farrington-Manning score test of the challenger's counts against the
    champion's pooled ones (4,300 of 5,000), as statsmodels computes it."""
    chall = VariantEvidence("b", 1000, outcomes=Outcomes(1000, 850, 850))
    carried = CarriedEstimate(0.86, 0.86 * 0.14 / 5000, 5000, binary=True)
    ev = _stage(VariantEvidence("a"), chall, weights=(0, 100), carried=carried)
    res = primary_statistic(ev, margin=0.03, alpha=0.05)
    ref = proportion.test_proportions_2indep(850, 1000, 4300, 5000, value=-0.03, method="score",
                                  compare="diff", alternative="larger")  # fmt: skip
    assert res.method == "carried_champion_score"
    assert res.z == pytest.approx(ref.statistic, rel=1e-12)
    assert (res.n_champion, res.n_challenger) == (5000, 1000)


def test_ipw_primary_recovers_truth_under_adaptive_allocation() -> None:
    """Allocation depends on a covariate that drives the reward: the naive mean is biased, the
    IPW (Hajek) estimate is not."""
    rng = np.random.default_rng(6)
    n = 20000
    x = rng.random(n) < 0.5
    p_chall = np.where(x, 0.9, 0.2)  # challenger mostly gets the easy requests
    to_chall = rng.random(n) < p_chall
    reward = (rng.random(n) < np.where(x, 0.95, 0.6)).astype(float)  # equal models, truth diff 0
    prop = np.where(to_chall, p_chall, 1 - p_chall)

    def variant(name: str, m: np.ndarray) -> VariantEvidence:
        return VariantEvidence(name, int(m.sum()), outcomes=Outcomes.of(reward[m], True),
                               values=reward[m], propensities=prop[m])  # fmt: skip

    ev = _stage(variant("a", ~to_chall), variant("b", to_chall), adaptive=True)
    res = primary_statistic(ev, margin=0.02, alpha=0.05)
    naive = reward[to_chall].mean() - reward[~to_chall].mean()
    assert res.method == "ipw_hajek"
    assert naive > 0.1  # the bias IPW must remove
    assert abs(res.diff) < 3 * (res.ci_high - res.ci_low) / (2 * 1.645)


def test_zero_observed_spread_is_floored_so_it_neither_decides_early_nor_never() -> None:
    """Both arms all right under adaptive allocation: the IPW standard error is 0. z = +inf
    would promote on 40 requests an arm, and no statistic would keep two perfect models waiting
    for the deadline. The binomial floor judges 40 all-right requests as weak evidence and
    20,000 as strong; an arm wrong on every request rolls back."""

    def variant(name: str, n: int, value: float) -> VariantEvidence:
        values = np.full(n, value)
        return VariantEvidence(name, n, outcomes=Outcomes.of(values, True), values=values,
                               propensities=np.full(n, 0.5))  # fmt: skip

    def z(n: int, challenger_value: float) -> float:
        stage = _stage(variant("a", n, 1.0), variant("b", n, challenger_value), adaptive=True)
        return primary_statistic(stage, margin=0.02, alpha=0.05).z

    p = 40.5 / 41  # (k + 1/2) / (n + 1)
    assert z(40, 1.0) == pytest.approx(0.02 / np.sqrt(2 * p * (1 - p) / 40))
    assert 0 < z(40, 1.0) < 1.645 < z(20_000, 1.0)
    assert z(20_000, 0.0) < -100
    config = GateConfig(margin=0.02, planning_rate=0.99)
    early = _stage(variant("a", 40, 1.0), variant("b", 40, 1.0), adaptive=True)
    assert evaluate(early, config, [])[0].verdict is Verdict.CONTINUE


# --- guardrails --------------------------------------------------------------------------------


def _lat_variant(name: str, lat: np.ndarray, e5: int = 0) -> VariantEvidence:
    return VariantEvidence(name, len(lat), errors_5xx=e5, latencies_ms=lat)


def _checks(champ: VariantEvidence, chall: VariantEvidence) -> dict:
    return {c.name: c for c in guardrail_checks(_stage(champ, chall), CONFIG)}


def test_guardrails_pass_on_identical_variants_and_fail_on_slow_or_erroring_ones() -> None:
    rng = np.random.default_rng(8)
    base = rng.gamma(4, 10, 2000)
    same = _checks(_lat_variant("a", base), _lat_variant("b", rng.gamma(4, 10, 2000)))
    assert all(c.status != Status.FAIL for c in same.values())
    slow = _checks(_lat_variant("a", base), _lat_variant("b", rng.gamma(4, 10, 2000) * 1.5))
    assert slow[Guardrail.LATENCY_VS_CHAMPION].status == Status.FAIL
    errs = _checks(_lat_variant("a", base, 2), _lat_variant("b", base, 80))
    assert (
        errs[Guardrail.VS_CHAMPION_5XX].status == Status.FAIL
        and errs[Guardrail.CEILING_5XX].status == Status.FAIL
    )


def test_p99_ceiling_uses_scipy_quantile_test() -> None:
    rng = np.random.default_rng(9)
    lat = rng.gamma(4, 10, 3000) + np.where(rng.random(3000) < 0.05, 600, 0)
    check = _checks(_lat_variant("a", lat), _lat_variant("b", lat))[Guardrail.CEILING_P99]
    ref = stats.quantile_test(lat, q=CONFIG.max_p99_latency_ms, p=0.99, alternative="greater")
    assert check.status == Status.FAIL and check.p_value == pytest.approx(ref.pvalue)
    fast = _lat_variant("b", lat[lat < 300])
    assert _checks(_lat_variant("a", lat), fast)[Guardrail.CEILING_P99].status == Status.OK


def test_the_shadow_stages_auc_guardrail_is_paired_and_catches_what_unpaired_misses() -> None:
    """Both models scored the same requests: DeLong's covariance term makes the test sharp
    enough to catch a challenger 0.1 worse in AUC (margin 0.05), which the unpaired test, at the
    guardrail's per-look level, would let pass."""
    rng = np.random.default_rng(11)
    y = rng.integers(0, 2, 1000)
    champion = 1.2 * y + rng.normal(0, 1, 1000)
    challenger = champion + rng.normal(0, 1.4, 1000)  # the same signal, noisier
    assert -0.12 < compare_auc_paired(champion, challenger, y).diff < -0.09

    def auc_check(paired: bool) -> Check:
        champ = VariantEvidence("a", 1000, scores=champion, labels=y)
        chall = VariantEvidence("b", 1000, scores=challenger, labels=y)
        table = PairedOutcomes(both_correct=800, champion_only=60, challenger_only=40)
        shadow = {"paired": table, "weights": (100, 0)}
        stage = _stage(champ, chall, **(shadow if paired else {}))
        return {c.name: c for c in guardrail_checks(stage, CONFIG)}[Guardrail.AUC_VS_CHAMPION]

    paired, unpaired = auc_check(True), auc_check(False)
    assert paired.status == Status.FAIL and paired.detail.startswith("paired DeLong")
    assert unpaired.status == Status.OK and unpaired.p_value > paired.p_value


def test_the_sample_ratio_test_halts_a_healthy_stage_at_srm_alpha_over_all_its_looks() -> None:
    """20,000 healthy 50/50 stages, 25 looks of 100 requests each, tested at the per-look
    level: about srm_alpha of them are halted over the whole stage (at 0.05 here, so the
    simulation can see it; se 0.0015), where srm_alpha at every look would halt 4 times as
    many."""
    from scipy import special

    from canary.experiment.gates.guardrails import srm_per_look_level

    config = GateConfig(srm_alpha=0.05, looks=25)
    rng = np.random.default_rng(7)
    n = np.arange(1, 26) * 100
    challenger = rng.binomial(100, 0.5, (20_000, 25)).cumsum(axis=1)
    statistic = (2 * challenger - n) ** 2 / n  # Pearson's X^2 of a 50/50 split
    p = special.chdtrc(1, statistic)
    halted = (p < srm_per_look_level(config)).any(axis=1).mean()
    assert abs(halted - 0.05) < 3 * 0.0015 + 0.005  # MC error and the counts' discreteness
    assert (p < config.srm_alpha).any(axis=1).mean() > 3 * 0.05
