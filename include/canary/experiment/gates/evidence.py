"""What a gate looks at: per-variant evidence of one rollout stage.

Why sufficient statistics plus optional arrays: the primary test needs only (n, sum, sum of
squares) of the per-request outcome, which CloudWatch-scale telemetry and a fast simulation can
provide cheaply; the richer checks (Mann-Whitney on latency, DeLong on AUC, IPW) use the
per-request arrays when a source has them and say "not checked" when it does not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

Weights = tuple[float, float]


@dataclass(frozen=True)
class Outcomes:
    """Sufficient statistics of one variant's per-request quality outcome (labelled, status 200).

    ``binary`` outcomes are 0/1 (accuracy, conversion); otherwise a real-valued reward where
    higher is better (e.g. negative Brier score)."""

    n: int = 0
    total: float = 0.0
    total_sq: float = 0.0
    binary: bool = True

    def __post_init__(self) -> None:
        if self.n < 0:
            raise ValueError(f"outcomes.n: must be >= 0, got {self.n}")
        if self.binary and not 0 <= self.total <= self.n:
            raise ValueError(
                f"outcomes.total: binary successes must lie in [0, n], got {self.total}"
            )

    @classmethod
    def of(cls, values: np.ndarray, binary: bool) -> Outcomes:
        """Summarise an array of per-request outcomes."""
        v = np.asarray(values, dtype=float)
        if not np.all(np.isfinite(v)):
            raise ValueError("outcomes: values must be finite")
        return cls(len(v), float(v.sum()), float(np.square(v).sum()), binary)

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else float("nan")

    @property
    def variance(self) -> float:
        """Unbiased sample variance (NaN below two observations)."""
        if self.n < 2:
            return float("nan")
        return max(self.total_sq - self.total**2 / self.n, 0.0) / (self.n - 1)


@dataclass(frozen=True)
class LatencySummary:
    """Aggregated latency when per-request values are unavailable (CloudWatch ModelLatency)."""

    count: int
    mean_ms: float
    max_ms: float
    p99_ms: float | None = None


@dataclass(frozen=True)
class VariantEvidence:
    """One variant's evidence since the stage began.

    ``requests`` counts every invocation (errors included); ``outcomes`` only labelled successes.
    Optional per-request arrays: ``latencies_ms``; ``scores``/``labels`` (AUC); ``values``/
    ``propensities`` (the outcome and logged assignment probability of each labelled request, for
    IPW under adaptive allocation)."""

    name: str
    requests: int = 0
    errors_4xx: int = 0
    errors_5xx: int = 0
    outcomes: Outcomes = field(default_factory=Outcomes)
    latencies_ms: np.ndarray | None = None
    latency: LatencySummary | None = None
    scores: np.ndarray | None = None
    labels: np.ndarray | None = None
    values: np.ndarray | None = None
    propensities: np.ndarray | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("name: a variant needs a name")
        for attr in ("requests", "errors_4xx", "errors_5xx"):
            if getattr(self, attr) < 0:
                raise ValueError(f"{self.name}.{attr}: must be >= 0, got {getattr(self, attr)}")
        if self.errors > self.requests:
            raise ValueError(f"{self.name}.requests: fewer requests than errors")

    @property
    def errors(self) -> int:
        """Requests answered with an error (4XX or 5XX)."""
        return self.errors_4xx + self.errors_5xx

    @property
    def latency_p99_ms(self) -> float | None:
        """Observed p99 from per-request values, else the CloudWatch p99 if there is one."""
        if self.latencies_ms is not None and len(self.latencies_ms):
            return float(np.quantile(self.latencies_ms, 0.99))
        return self.latency.p99_ms if self.latency else None


def is_binary(values: np.ndarray) -> bool:
    """Whether there are outcomes and every one is 0 or 1."""
    return bool(len(values)) and bool(np.isin(values, (0.0, 1.0)).all())


def smoothed_bernoulli_variance(successes: float, n: int) -> float:
    """p(1 - p) at the rate moved half a success toward 1/2, (k + 1/2) / (n + 1): never 0, and
    below what one opposite outcome would give. Where an observed 0/1 spread of 0 (every
    outcome alike) would claim a rate known exactly."""
    smoothed = (successes + 0.5) / (n + 1)
    return smoothed * (1 - smoothed)


@dataclass(frozen=True)
class CarriedEstimate:
    """The champion's quality measured in earlier stages, carried into a stage without a
    concurrent control (0/100): its mean, the variance of that mean, and the n behind it."""

    mean: float
    variance: float
    n: int
    binary: bool = False  # pooled 0/1 outcomes: mean * n of n champion requests were right

    def __post_init__(self) -> None:
        if not (np.isfinite(self.mean) and self.variance > 0 and self.n > 0):
            raise ValueError(
                f"carried: need a finite mean, variance > 0 and n > 0, got {self.mean}, "
                f"{self.variance}, {self.n}"
            )

    def to_dict(self) -> dict[str, float | bool]:
        return {"mean": self.mean, "variance": self.variance, "n": self.n, "binary": self.binary}


@dataclass(frozen=True)
class PairedOutcomes:
    """The 2x2 agreement table of a shadow stage: both models scored the SAME labelled requests.

    Why a table and not two :class:`Outcomes`: the requests are shared, so the difference of the
    accuracies depends only on the discordant pairs, and its variance p_disc - diff^2 is far
    smaller than the unpaired 2 p (1 - p) when the models mostly agree. ``champion_only`` counts
    requests the champion got right and the challenger wrong; ``challenger_only`` the reverse."""

    both_correct: int = 0
    champion_only: int = 0
    challenger_only: int = 0
    neither: int = 0

    def __post_init__(self) -> None:
        for attr in ("both_correct", "champion_only", "challenger_only", "neither"):
            if getattr(self, attr) < 0:
                raise ValueError(f"paired.{attr}: must be >= 0, got {getattr(self, attr)}")

    @classmethod
    def of(cls, champion_correct: np.ndarray, challenger_correct: np.ndarray) -> PairedOutcomes:
        """Tabulate two boolean arrays over the same requests (element i is request i)."""
        a = np.asarray(champion_correct, dtype=bool)
        b = np.asarray(challenger_correct, dtype=bool)
        if a.shape != b.shape or a.ndim != 1:
            raise ValueError(
                f"paired: need two 1-d arrays over the same requests, got {a.shape}, {b.shape}"
            )
        return cls(
            int(np.sum(a & b)), int(np.sum(a & ~b)), int(np.sum(~a & b)), int(np.sum(~a & ~b))
        )

    @property
    def n(self) -> int:
        return self.both_correct + self.champion_only + self.challenger_only + self.neither

    @property
    def discordant(self) -> int:
        return self.champion_only + self.challenger_only

    @property
    def diff(self) -> float:
        """Challenger accuracy minus champion accuracy on the shared requests."""
        return (self.challenger_only - self.champion_only) / self.n if self.n else float("nan")

    @property
    def p_disc(self) -> float:
        """Share of requests on which the two models disagree."""
        return self.discordant / self.n if self.n else float("nan")

    def table(self, champion: str, challenger: str) -> dict[str, dict[str, int]]:
        """The 2x2 table keyed by model and outcome, for decision records."""
        return {
            f"{champion}_correct": {
                f"{challenger}_correct": self.both_correct,
                f"{challenger}_wrong": self.champion_only,
            },
            f"{champion}_wrong": {
                f"{challenger}_correct": self.challenger_only,
                f"{challenger}_wrong": self.neither,
            },
        }


@dataclass(frozen=True)
class StageEvidence:
    """Everything one gate evaluation sees. ``expected_shares`` overrides the weights as the SRM
    expectation (from logged propensities when allocation is adaptive); ``adaptive`` switches the
    primary estimate to IPW. ``paired`` makes it a shadow stage: both models scored the same
    requests and the gate tests the paired difference (the variants still carry requests, 5XX
    and latency for the guardrails, the shadow's from its own metrics). ``complete``: no more
    evidence will come (the stage's replay is spent and all of it is counted), so the gate
    takes its last look now, at the information reached, instead of waiting for a deadline."""

    stage: int
    weights: Weights
    champion: VariantEvidence
    challenger: VariantEvidence
    started_at: datetime
    observed_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    carried: CarriedEstimate | None = None
    expected_shares: Weights | None = None
    adaptive: bool = False
    paired: PairedOutcomes | None = None
    complete: bool = False

    def __post_init__(self) -> None:
        w = self.weights
        if self.paired is not None:  # a shadow stage: the champion serves, the challenger mirrors
            if len(w) != 2 or w[0] <= 0 or w[1] != 0:
                raise ValueError(f"weights: a paired stage serves (champion > 0, 0), got {w!r}")
        elif len(w) != 2 or min(w) < 0 or w[1] <= 0:
            raise ValueError(f"weights: need (champion >= 0, challenger > 0), got {w!r}")
        if self.observed_at < self.started_at:
            raise ValueError("observed_at: earlier than started_at")

    @property
    def shares(self) -> Weights:
        """Configured traffic shares (normalised weights)."""
        s = float(sum(self.weights))
        return self.weights[0] / s, self.weights[1] / s

    @property
    def elapsed_minutes(self) -> float:
        return (self.observed_at - self.started_at).total_seconds() / 60.0


def champion_estimate(stages: list[StageEvidence]) -> CarriedEstimate:
    """Pool the champion's outcomes over earlier stages into the estimate a 0/100 stage carries.

    Why pooled sufficient statistics: the stages are disjoint request sets from the same champion,
    so their union is one larger sample; the variance of its mean is s^2 / n. A 0/1 champion
    right (or wrong) on every request has s^2 = 0, which would claim its accuracy is known
    exactly: it is carried with :func:`smoothed_bernoulli_variance` instead. (The carried score
    test uses the counts.)"""
    n = sum(s.champion.outcomes.n for s in stages)
    if n < 2:
        raise ValueError("stages: no champion outcomes to carry forward")
    pooled = Outcomes(
        n,
        sum(s.champion.outcomes.total for s in stages),
        sum(s.champion.outcomes.total_sq for s in stages),
        all(s.champion.outcomes.binary for s in stages),
    )
    variance = pooled.variance
    if pooled.binary and variance == 0:
        variance = smoothed_bernoulli_variance(pooled.total, n)
    return CarriedEstimate(pooled.mean, variance / n, n, pooled.binary)
