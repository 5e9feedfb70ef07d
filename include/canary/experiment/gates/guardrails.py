"""Guardrails: error rates, latency and AUC must not be significantly worse than allowed.

Why one-sided "harm" tests at a Pocock constant: a guardrail vetoes promotion and triggers a
rollback when the challenger is *significantly* worse than the champion plus a margin (relative
checks) or than an absolute ceiling. They are evaluated at every look of the stage, so each look
uses p < 1 - Phi(c), with c the Pocock constant for ``guardrail_alpha`` over the planned looks;
that keeps the false-rollback rate per guardrail at guardrail_alpha despite repeated looks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from functools import lru_cache

import numpy as np
from scipy import stats
from statsmodels.stats.proportion import test_proportions_2indep

from canary.experiment.gates.auc import compare_auc, compare_auc_paired, delong_auc
from canary.experiment.gates.config import GateConfig
from canary.experiment.gates.evidence import StageEvidence, VariantEvidence
from canary.experiment.gates.sequential import pocock_constant


class Status(StrEnum):
    """A guardrail's outcome at one look."""

    OK = "ok"
    FAIL = "fail"
    SKIPPED = "not_checked"


class Guardrail(StrEnum):
    """Each guardrail, by its name in decision records."""

    CEILING_5XX = "5xx_ceiling"
    CEILING_4XX = "4xx_ceiling"
    CEILING_P99 = "p99_latency_ceiling"
    VS_CHAMPION_5XX = "5xx_vs_champion"
    VS_CHAMPION_4XX = "4xx_vs_champion"
    LATENCY_VS_CHAMPION = "latency_vs_champion"
    AUC_VS_CHAMPION = "auc_vs_champion"

    @property
    def ceiling(self) -> bool:
        """A ceiling judges the challenger on its own, not against the champion."""
        return self in (Guardrail.CEILING_5XX, Guardrail.CEILING_4XX, Guardrail.CEILING_P99)


def _status(p: float, level: float) -> Status:
    return Status.FAIL if p < level else Status.OK


@dataclass(frozen=True)
class Check:
    """One guardrail's outcome with the numbers behind it."""

    name: Guardrail
    status: Status
    p_value: float | None = None
    threshold: float | None = None
    champion: float | None = None
    challenger: float | None = None
    limit: float | None = None
    detail: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


@lru_cache(maxsize=256)
def pocock_level(alpha: float, looks: int, sides: int = 1) -> float:
    """The p-value a test must fall below at each of ``looks`` looks for ``alpha`` over all
    of them (a Pocock constant, one- or two-sided)."""
    return float(sides * stats.norm.sf(pocock_constant(alpha / sides, looks)))


def per_look_level(config: GateConfig, looks: int | None = None) -> float:
    """The p-value a guardrail must beat at one look (Pocock-adjusted guardrail_alpha) of
    ``looks`` (the design's, ``config.looks``, unless the stage's test has another number:
    the exact test's decisions)."""
    return pocock_level(config.guardrail_alpha, looks or config.looks)


def srm_per_look_level(config: GateConfig, looks: int | None = None) -> float:
    """The p-value the sample-ratio test must fall below at one look: ``srm_alpha`` spread
    over the stage's looks, two-sided, so a healthy stage is halted by chance with probability
    ``srm_alpha`` over all its looks, not at each one (25 looks at 0.001 each halt about
    0.9 % of healthy stages)."""
    return pocock_level(config.srm_alpha, looks or config.looks, sides=2)


def guardrail_checks(
    evidence: StageEvidence, config: GateConfig, looks: int | None = None
) -> list[Check]:
    """All guardrails, at the level of one of ``looks`` looks (:func:`per_look_level`);
    relative ones only when the champion runs concurrently."""
    level = per_look_level(config, looks)
    ch = evidence.challenger
    checks = [
        _ceiling_rate(
            Guardrail.CEILING_5XX, ch.errors_5xx, ch.requests, config.max_5xx_rate, level
        ),
        _ceiling_rate(
            Guardrail.CEILING_4XX, ch.errors_4xx, ch.requests, config.max_4xx_rate, level
        ),
        _p99_ceiling(ch, config.max_p99_latency_ms, level),
    ]
    if evidence.shares[0] > 0:
        champ, m = evidence.champion, config.error_rate_margin
        checks += [
            _relative_rate(Guardrail.VS_CHAMPION_5XX, champ.errors_5xx, champ.requests,
                           ch.errors_5xx, ch.requests, m, level),
            _relative_rate(Guardrail.VS_CHAMPION_4XX, champ.errors_4xx, champ.requests,
                           ch.errors_4xx, ch.requests, m, level),
            _latency_shift(champ, ch, config.latency_margin, level),
            _auc(champ, ch, evidence.paired is not None, config.auc_margin, level),
        ]  # fmt: skip
    return checks


def _ceiling_rate(name: Guardrail, errors: int, n: int, ceiling: float, level: float) -> Check:
    """Exact binomial test of H0: rate <= ceiling against 'above the ceiling'."""
    if n == 0:
        return Check(name, Status.SKIPPED, limit=ceiling, detail="no requests")
    if ceiling >= 1 or errors == 0:  # p-value is exactly 1
        return Check(name, Status.OK, 1.0, level, challenger=errors / n, limit=ceiling)
    p = float(stats.binomtest(errors, n, ceiling, alternative="greater").pvalue)
    return Check(name, _status(p, level), p, level, challenger=errors / n, limit=ceiling)


def _relative_rate(
    name: Guardrail, e0: int, n0: int, e1: int, n1: int, margin: float, level: float
) -> Check:
    """Score test of H0: rate_1 - rate_0 <= margin against 'worse by more than the margin'."""
    if n0 == 0 or n1 == 0:
        return Check(name, Status.SKIPPED, limit=margin, detail="a variant has no requests")
    r0, r1 = e0 / n0, e1 / n1
    if r1 - r0 <= margin:
        return Check(name, Status.OK, 1.0, level, r0, r1, margin, "difference within margin")
    with np.errstate(divide="ignore", invalid="ignore"):  # ratio/odds side-results at r0 = 0
        res = test_proportions_2indep(
            e1, n1, e0, n0, value=margin, method="score", compare="diff", alternative="larger"
        )
    p = float(res.pvalue) if np.isfinite(res.pvalue) else 0.0
    return Check(name, _status(p, level), p, level, r0, r1, margin)


def _p99_ceiling(ch: VariantEvidence, ceiling_ms: float, level: float) -> Check:
    """Per-request latencies: exact quantile test of H0: p99 <= ceiling. Only a CloudWatch p99:
    compared as is (no sampling test is possible without per-request values)."""
    lat = ch.latencies_ms
    if lat is not None and len(lat) >= 2:
        res = stats.quantile_test(lat, q=ceiling_ms, p=0.99, alternative="greater")
        p = float(res.pvalue)
        p99 = float(np.quantile(lat, 0.99))
        return Check(Guardrail.CEILING_P99, _status(p, level), p, level, None, p99,
                     ceiling_ms, "exact binomial quantile test")  # fmt: skip
    if ch.latency is not None and ch.latency.p99_ms is not None:
        status = Status.FAIL if ch.latency.p99_ms > ceiling_ms else Status.OK
        return Check(Guardrail.CEILING_P99, status, None, None, None, ch.latency.p99_ms,
                     ceiling_ms, "CloudWatch p99, point comparison")  # fmt: skip
    return Check(
        Guardrail.CEILING_P99, Status.SKIPPED, limit=ceiling_ms, detail="no latency percentiles"
    )


def _latency_shift(
    champ: VariantEvidence, ch: VariantEvidence, margin: float, level: float
) -> Check:
    """Mann-Whitney of challenger latency vs champion latency x (1 + margin), 'greater'."""
    a, b = ch.latencies_ms, champ.latencies_ms
    if a is None or b is None or len(a) < 2 or len(b) < 2:
        return Check(
            Guardrail.LATENCY_VS_CHAMPION,
            Status.SKIPPED,
            limit=margin,
            detail="no per-request latency",
        )
    p = float(stats.mannwhitneyu(a, b * (1 + margin), alternative="greater").pvalue)
    medians = float(np.median(b)), float(np.median(a))
    status = _status(p, level)
    return Check(
        Guardrail.LATENCY_VS_CHAMPION, status, p, level, *medians, margin, "medians; Mann-Whitney"
    )


def _auc(
    champ: VariantEvidence, ch: VariantEvidence, paired: bool, margin: float | None, level: float
) -> Check:
    """DeLong test of H0: AUC_1 - AUC_0 >= -margin against 'worse'; ``paired`` when both
    models scored the same requests (the shadow stage), with DeLong's covariance term."""
    if margin is None:
        return Check(Guardrail.AUC_VS_CHAMPION, Status.SKIPPED, detail="auc_margin not set")
    if champ.scores is None or ch.scores is None:
        return Check(
            Guardrail.AUC_VS_CHAMPION, Status.SKIPPED, limit=margin, detail="no per-request scores"
        )
    try:
        if paired:
            cmp = compare_auc_paired(champ.scores, ch.scores, ch.labels, margin)
        else:
            cmp = compare_auc(
                delong_auc(champ.scores, champ.labels), delong_auc(ch.scores, ch.labels), margin
            )
    except (ValueError, TypeError) as exc:
        return Check(
            Guardrail.AUC_VS_CHAMPION, Status.SKIPPED, limit=margin, detail=f"not computable: {exc}"
        )
    status = _status(cmp.p_worse, level)
    test = "paired DeLong" if paired else "DeLong"
    return Check(Guardrail.AUC_VS_CHAMPION, status, cmp.p_worse, level, cmp.champion_auc,
                 cmp.challenger_auc, margin, f"{test} se={cmp.se:.4g}")  # fmt: skip
