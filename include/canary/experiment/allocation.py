"""Choosing a production variant per user: weighted sampling and three bandit strategies.

Why this shape: every choice is made by drawing from an explicit probability vector over the
variants. That vector *is* the propensity the gate needs for inverse-propensity weighting, so the
logged propensity is exact by construction rather than reconstructed after the fact:

* ``WeightedSampling``: the stage weights, drawn with a deterministic hash of (salt, stage, user)
  so any process (a shard, a retried Airflow task) puts a user on the same variant without state.
* ``EpsilonGreedy(epsilon)``: ``1 - epsilon`` on the best observed mean, ``epsilon`` uniformly.
* ``UCB1``: the arm with the highest ``mean + sqrt(2 ln t / n)``. Deterministic, so on its own the
  unchosen arm has propensity 0 and IPW is impossible; an ``exploration_floor``
  (``EXPLORATION_FLOOR``) mixes in a uniform draw so every eligible arm keeps propensity
  ``>= floor / K``.
* ``ThompsonSampling``: Beta(1 + successes, 1 + failures) posteriors. Drawing one value per arm and
  taking the argmax picks arm k with probability ``P(theta_k is max)``; we compute that probability
  by Gauss–Legendre quadrature of ``f_k(x) * prod_j F_j(x)`` and draw from it, which is the same
  policy with an honest propensity.

Warm-up: a bandit uses the stage weights until every eligible variant (weight > 0) has at least
``warmup`` rewarded invocations. Sticky users: a bandit stores each user's assignment per stage; the
weighted strategy needs no storage because its hash is deterministic. The state (arm statistics,
assignments, the random generator) is a JSON-ready dict so it survives across chunks and task runs.
"""

from __future__ import annotations

import hashlib
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache, lru_cache
from typing import Any, ClassVar

import numpy as np
from scipy import special

from canary.plan import AllocationStrategy, TrafficSpec

Weights = Mapping[str, float]
#: The share mixed uniformly into UCB1's and Thompson's choice, so no arm's propensity is 0.
EXPLORATION_FLOOR = 0.02
EPSILON = TrafficSpec.model_fields["epsilon"].default  # the plan's, as the form shows it


class AssignmentSource(StrEnum):
    """What chose a user's variant."""

    HASH = "hash"  # the configured weights, by a hash of the user
    WARMUP = "warmup"  # uniform while an arm has fewer than ``warmup`` rewards
    STRATEGY = "strategy"  # the bandit's probabilities
    STICKY = "sticky"  # the variant the user already had in this stage


@dataclass(frozen=True)
class Assignment:
    """A user's variant and the probability with which it was chosen (``source`` says by what)."""

    variant: str
    propensity: float
    source: AssignmentSource


@dataclass
class ArmStats:
    """Rewarded invocations and reward total per variant (rewards in [0, 1])."""

    pulls: dict[str, int] = field(default_factory=dict)
    reward_sum: dict[str, float] = field(default_factory=dict)

    def record(self, variant: str, reward: float) -> None:
        """Feed back one reward; Thompson's Beta posterior needs it inside [0, 1]."""
        if not 0.0 <= reward <= 1.0 or math.isnan(reward):
            raise ValueError(f"reward: must lie in [0, 1] for the bandit, got {reward!r}")
        self.pulls[variant] = self.pulls.get(variant, 0) + 1
        self.reward_sum[variant] = self.reward_sum.get(variant, 0.0) + float(reward)

    def arrays(self, arms: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Pulls and reward sums in the order of ``arms``."""
        n = np.array([self.pulls.get(a, 0) for a in arms], dtype=float)
        s = np.array([self.reward_sum.get(a, 0.0) for a in arms], dtype=float)
        return n, s

    def merged(self, other: ArmStats) -> ArmStats:
        """Sum of two shards' statistics (shards see disjoint requests)."""
        out = ArmStats(dict(self.pulls), dict(self.reward_sum))
        for k, v in other.pulls.items():
            out.pulls[k] = out.pulls.get(k, 0) + v
        for k, v in other.reward_sum.items():
            out.reward_sum[k] = out.reward_sum.get(k, 0.0) + v
        return out


def normalise_weights(weights: Weights) -> tuple[list[str], np.ndarray]:
    """Sorted variant names and their shares; rejects negative, non-finite or all-zero weights."""
    if not weights:
        raise ValueError("weights: at least one variant is required")
    arms, shares = _normalised(tuple(sorted((str(k), v) for k, v in weights.items())))
    return list(arms), shares.copy()


@lru_cache(maxsize=256)
def _normalised(items: tuple[tuple[str, Any], ...]) -> tuple[tuple[str, ...], np.ndarray]:
    """Cached: stage weights are the same for every request of a stage (the hot path)."""
    arms = tuple(a for a, _ in items)
    w = np.empty(len(items))
    for i, (a, x) in enumerate(items):
        try:
            w[i] = float(x)
        except (TypeError, ValueError):
            raise ValueError(f"weights[{a!r}]: must be a number, got {x!r}") from None
        if not np.isfinite(w[i]) or w[i] < 0:
            raise ValueError(f"weights[{a!r}]: must be a finite number >= 0, got {x!r}")
    if w.sum() <= 0:
        raise ValueError("weights: at least one variant needs a weight > 0")
    return arms, w / w.sum()


def _best_set(values: np.ndarray, eligible: np.ndarray) -> np.ndarray:
    """Uniform distribution over the eligible arms tied (to 1e-12) for the maximum value."""
    v = np.where(eligible, values, -np.inf)
    ties = eligible & (v >= v.max() - 1e-12)
    return ties / ties.sum()


class AllocationPolicy(ABC):
    """A rule that turns stage weights and arm statistics into a probability vector.

    One subclass implements each :class:`canary.plan.AllocationStrategy` a plan can name.
    """

    strategy: ClassVar[AllocationStrategy]
    #: Sticky by deterministic hash instead of stored assignments.
    hashed: ClassVar[bool] = False

    def __init__(self, exploration_floor: float = 0.0) -> None:
        if not 0.0 <= exploration_floor <= 1.0:
            raise ValueError(f"exploration_floor: must lie in [0, 1], got {exploration_floor!r}")
        self.exploration_floor = float(exploration_floor)

    @abstractmethod
    def _policy(self, base: np.ndarray, n: np.ndarray, s: np.ndarray) -> np.ndarray:
        """Probability vector over arms, zero where ``base`` (the stage weights) is zero."""

    def probabilities(self, base: np.ndarray, n: np.ndarray, s: np.ndarray) -> np.ndarray:
        """The policy mixed with the exploration floor over the eligible arms."""
        pi = self._policy(base, n, s)
        eligible = base > 0
        if self.exploration_floor > 0:
            pi = (
                1 - self.exploration_floor
            ) * pi + self.exploration_floor * eligible / eligible.sum()
        return pi / pi.sum()

    def params(self) -> dict[str, Any]:
        """Constructor arguments, for serialising the strategy with the state."""
        return {"exploration_floor": self.exploration_floor}

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.strategy.value, "params": self.params()}


class WeightedSampling(AllocationPolicy):
    """The stage weights as they are: the plain canary split."""

    strategy = AllocationStrategy.WEIGHTED
    hashed = True

    def __init__(self) -> None:
        super().__init__(0.0)

    def params(self) -> dict[str, Any]:
        return {}

    def _policy(self, base: np.ndarray, n: np.ndarray, s: np.ndarray) -> np.ndarray:
        return base


class EpsilonGreedy(AllocationPolicy):
    """Best observed mean with probability ``1 - epsilon``, uniform exploration otherwise."""

    strategy = AllocationStrategy.EPSILON_GREEDY

    def __init__(self, epsilon: float = EPSILON, exploration_floor: float = 0.0) -> None:
        super().__init__(exploration_floor)
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon: must lie in [0, 1], got {epsilon!r}")
        self.epsilon = float(epsilon)

    def _policy(self, base: np.ndarray, n: np.ndarray, s: np.ndarray) -> np.ndarray:
        eligible = base > 0
        means = np.where(n > 0, s / np.maximum(n, 1), np.inf)  # untried arms first
        greedy = _best_set(means, eligible)
        return (1 - self.epsilon) * greedy + self.epsilon * eligible / eligible.sum()

    def params(self) -> dict[str, Any]:
        return {"epsilon": self.epsilon, **super().params()}


class UCB1(AllocationPolicy):
    """Auer et al. (2002) UCB1: optimism in the face of uncertainty; deterministic between ties."""

    strategy = AllocationStrategy.UCB1

    def __init__(self, exploration_floor: float = EXPLORATION_FLOOR) -> None:
        super().__init__(exploration_floor)

    def _policy(self, base: np.ndarray, n: np.ndarray, s: np.ndarray) -> np.ndarray:
        eligible = base > 0
        if np.any(eligible & (n == 0)):
            return _best_set((n == 0).astype(float), eligible)
        t = n[eligible].sum()
        ucb = s / np.maximum(n, 1) + np.sqrt(2 * np.log(t) / np.maximum(n, 1))
        return _best_set(ucb, eligible)


_TAILS = np.array([1e-12, 1 - 1e-12])


@cache
def _legendre(nodes: int) -> tuple[np.ndarray, np.ndarray]:
    return np.polynomial.legendre.leggauss(nodes)


def _composite_nodes(
    alpha: np.ndarray, beta: np.ndarray, nodes: int, quantiles: tuple[float, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Legendre nodes on segments split at the arms' quantiles, so steep CDFs are resolved."""
    qs = np.asarray(quantiles)
    edges = np.unique(special.betaincinv(alpha[:, None], beta[:, None], qs[None, :]))
    x0, w0 = _legendre(nodes)
    half = 0.5 * np.diff(edges)[:, None]
    mid = 0.5 * (edges[1:] + edges[:-1])[:, None]
    return (half * x0 + mid).ravel(), (half * w0).ravel()


def _prob_integral(
    alpha: np.ndarray, beta: np.ndarray, k: int, x: np.ndarray, w: np.ndarray
) -> float:
    """``int f_k(x) * prod_{j != k} F_j(x) dx`` on the given quadrature rule."""
    logf = (alpha[k] - 1) * np.log(x) + (beta[k] - 1) * np.log1p(-x)
    logf -= special.betaln(alpha[k], beta[k])
    others = np.ones_like(x)
    for j in range(len(alpha)):
        if j != k:
            others *= special.betainc(alpha[j], beta[j], x)
    return float(np.dot(w, np.exp(logf) * others))


def prob_best_beta(alpha: object, beta: object) -> np.ndarray:
    """P(theta_k is the largest) for independent Beta(alpha_k, beta_k), by quadrature.

    Why not one Gauss–Legendre rule on [0, 1]: a posterior with thousands of observations is a
    spike a few thousandths wide (and its CDF a near-step), which a global rule cannot see.

    Two arms (the rollout case, on every Thompson step, so it must be cheap): one integral over
    the *narrower* posterior's central mass, where its density lives; the wider arm's CDF is
    smooth on that scale, so 48 nodes are exact to ~1e-9 (tested against scipy's adaptive quad).
    The other arm is the complement. More arms: a composite rule split at every arm's quantiles.
    """
    a, b = np.asarray(alpha, float), np.asarray(beta, float)
    if len(a) == 2:
        k = int(np.argmax(a + b))
        lo, hi = special.betaincinv(a[k], b[k], _TAILS)
        x0, w0 = _legendre(48)
        x, w = 0.5 * (hi - lo) * x0 + 0.5 * (hi + lo), 0.5 * (hi - lo) * w0
        out = np.empty(2)
        out[k] = _prob_integral(a, b, k, x, w)
        out[1 - k] = 1.0 - out[k]
        return np.clip(out, 0.0, 1.0)
    x, w = _composite_nodes(a, b, 24, (1e-12, 1e-4, 0.05, 0.5, 0.95, 1 - 1e-4, 1 - 1e-12))
    return np.array([_prob_integral(a, b, k, x, w) for k in range(len(a))])


class ThompsonSampling(AllocationPolicy):
    """Probability matching on Beta(1 + successes, 1 + failures) posteriors."""

    strategy = AllocationStrategy.THOMPSON

    def __init__(self, exploration_floor: float = EXPLORATION_FLOOR) -> None:
        super().__init__(exploration_floor)

    def _policy(self, base: np.ndarray, n: np.ndarray, s: np.ndarray) -> np.ndarray:
        eligible = base > 0
        idx = np.flatnonzero(eligible)
        pi = np.zeros(len(base))
        if len(idx) == 1:
            pi[idx] = 1.0
            return pi
        p = prob_best_beta(1 + s[idx], 1 + n[idx] - s[idx])
        pi[idx] = np.clip(p, 0.0, None)
        return pi / pi.sum()


POLICIES: dict[AllocationStrategy, type[AllocationPolicy]] = {
    cls.strategy: cls for cls in (WeightedSampling, EpsilonGreedy, UCB1, ThompsonSampling)
}


def make_policy(strategy: AllocationStrategy | str, **params: Any) -> AllocationPolicy:
    """The policy that implements ``strategy`` (``weighted``, ``epsilon_greedy``, ...)."""
    try:
        strategy = AllocationStrategy(strategy)
    except ValueError:
        known = ", ".join(member.value for member in AllocationStrategy)
        raise ValueError(f"strategy: unknown {strategy!r}, expected one of {known}") from None
    try:
        return POLICIES[strategy](**params)
    except TypeError as exc:
        raise ValueError(f"strategy params for {strategy.value}: {exc}") from None


def hash_uniform(*parts: str) -> float:
    """A uniform number in [0, 1) from sha256 of the parts: stable across processes and machines."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def _pick(probs: np.ndarray, u: float) -> int:
    """Inverse-CDF draw that never lands on a zero-probability arm."""
    cdf = np.cumsum(probs)
    cdf[-1] = 1.0
    k = int(np.searchsorted(cdf, u, side="right"))
    while probs[k] == 0:  # only reachable through float ties at a boundary
        k -= 1
    return k


class Allocator:
    """Assigns users to variants with a policy, remembers them, and learns from rewards."""

    def __init__(
        self,
        policy: AllocationPolicy,
        *,
        warmup: int = 0,
        salt: str = "",
        seed: int | None = None,
        stats: ArmStats | None = None,
    ) -> None:
        if warmup < 0:
            raise ValueError(f"warmup: must be >= 0, got {warmup!r}")
        self.policy = policy
        self.warmup = int(warmup)
        self.salt = salt
        self.stats = stats or ArmStats()
        self.assignments: dict[str, dict[str, list]] = {}
        self.rng = np.random.default_rng(seed)

    def _warming(self, base: np.ndarray, n: np.ndarray) -> bool:
        return self.warmup > 0 and bool(np.any((base > 0) & (n < self.warmup)))

    def probabilities(self, weights: Weights) -> dict[str, float]:
        """The distribution a *new* user is drawn from right now (also what weight sync writes)."""
        arms, probs, _ = self._distribution(weights)
        return dict(zip(arms, probs.tolist(), strict=True))

    def _distribution(self, weights: Weights) -> tuple[list[str], np.ndarray, str]:
        arms, base = normalise_weights(weights)
        if self.policy.hashed:
            return arms, base, AssignmentSource.HASH
        n, s = self.stats.arrays(arms)
        if self._warming(base, n):
            return arms, base, AssignmentSource.WARMUP
        return arms, self.policy.probabilities(base, n, s), AssignmentSource.STRATEGY

    def assign(self, user_id: str, stage: str, weights: Weights) -> Assignment:
        """The user's variant for this stage: stored if seen before, else drawn now and stored."""
        stored = self.assignments.get(stage, {}).get(user_id)
        if stored is not None:
            return Assignment(stored[0], stored[1], AssignmentSource.STICKY)
        arms, probs, source = self._distribution(weights)
        if source is AssignmentSource.HASH:
            u = hash_uniform(self.salt, stage, user_id)
            k = _pick(probs, u)
            return Assignment(arms[k], float(probs[k]), source)
        k = _pick(probs, float(self.rng.random()))
        self.assignments.setdefault(stage, {})[user_id] = [arms[k], float(probs[k])]
        return Assignment(arms[k], float(probs[k]), source)

    def record(self, variant: str, reward: float) -> None:
        """Feed one reward back (the bandit learns as the replay goes)."""
        self.stats.record(variant, reward)

    def state_dict(self) -> dict[str, Any]:
        """JSON-ready state: strategy, warm-up, arm statistics, sticky assignments, RNG."""
        return {
            "strategy": self.policy.to_dict(),
            "warmup": self.warmup,
            "salt": self.salt,
            "stats": {"pulls": self.stats.pulls, "reward_sum": self.stats.reward_sum},
            "assignments": self.assignments,
            "rng": self.rng.bit_generator.state,
        }

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> Allocator:
        """Rebuild an allocator exactly where ``state_dict`` left it."""
        try:
            spec = state["strategy"]
            alloc = cls(
                make_policy(spec["name"], **spec.get("params", {})),
                warmup=state["warmup"],
                salt=state.get("salt", ""),
                stats=ArmStats(
                    {k: int(v) for k, v in state["stats"]["pulls"].items()},
                    {k: float(v) for k, v in state["stats"]["reward_sum"].items()},
                ),
            )
        except KeyError as exc:
            raise ValueError(f"allocator state: missing field {exc.args[0]!r}") from None
        alloc.assignments = {s: dict(users) for s, users in state.get("assignments", {}).items()}
        if "rng" in state:
            alloc.rng.bit_generator.state = state["rng"]
        return alloc
