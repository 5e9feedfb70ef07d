"""Sample ratio mismatch: did the traffic split the way it was configured?

Why it halts rather than rolls back: a split that does not match the weights (or, with adaptive
allocation, the logged propensities) means the experiment itself is broken (routing bug, dropped
logs, a crashing variant whose requests vanish) and no comparison of the variants can be trusted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from scipy import special


@dataclass(frozen=True)
class SrmResult:
    """Observed vs expected request counts and the chi-square test of the split."""

    observed: tuple[int, int]
    expected: tuple[float, float]
    statistic: float
    p_value: float
    threshold: float
    mismatch: bool

    def to_dict(self) -> dict:
        return asdict(self)


def sample_ratio_mismatch(
    observed: tuple[int, int], shares: tuple[float, float], threshold: float = 0.001
) -> SrmResult:
    """Pearson chi-square goodness of fit of the (champion, challenger) counts to ``shares``.

    A variant with zero share that received traffic is a mismatch outright (the chi-square is
    undefined there)."""
    if min(observed) < 0:
        raise ValueError(f"observed: counts must be >= 0, got {observed}")
    if min(shares) < 0 or abs(sum(shares) - 1) > 1e-6:
        raise ValueError(f"shares: must be >= 0 and sum to 1, got {shares}")
    total = sum(observed)
    expected = (shares[0] * total, shares[1] * total)
    if total == 0:
        return SrmResult(observed, expected, 0.0, 1.0, threshold, False)
    if min(shares) == 0:
        stray = observed[0] if shares[0] == 0 else observed[1]
        p = 0.0 if stray else 1.0
        return SrmResult(
            observed, expected, float("inf") if stray else 0.0, p, threshold, p < threshold
        )
    statistic, p = pearson_chisquare(observed, expected)
    return SrmResult(observed, expected, statistic, p, threshold, p < threshold)


def pearson_chisquare(
    observed: tuple[int, int], expected: tuple[float, float]
) -> tuple[float, float]:
    """Pearson's X^2 with one degree of freedom and its p-value.

    Same numbers as ``scipy.stats.chisquare`` (the tests assert it), computed directly because that
    function's array machinery costs ~1 ms per call and the gate runs it on every look of every
    simulated stream in the benchmark."""
    statistic = sum((o - e) ** 2 / e for o, e in zip(observed, expected, strict=True))
    return float(statistic), float(special.chdtrc(1, statistic))
