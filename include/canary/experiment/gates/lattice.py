"""The exact test of a 50/50 stage of 0/1 outcomes with rare errors, and the bound no test beats.

Why: where each variant expects few errors by n_fix (p = 0.97, delta = 0.02: 29), the score z is
far from normal; the group-sequential design on it needs 0.742 n_fix at no difference where
issue 13 asks 0.69. On the lattice of (pairs, champion errors, challenger errors), with a
decision every ``step`` pairs up to ``max_pairs``, a test's errors are the probabilities of
promoting at null points (a, a - margin) and of rolling back at the alternative (p, p). For
multipliers lambda >= 0, the test that minimises

    E_1[N] + sum_j lambda_j P_0j(promote) + lambda_1 P_1(roll back)

is found by backward induction, and weak duality turns its value into a lower bound on E_1[N]
of every test with P_0j(promote) <= alpha and P_1(promote) >= 1 - beta: the value minus
alpha sum lambda_j minus beta lambda_1. :func:`plan` maximises that bound over the weights of the
least favourable null and of a miss, then weighs also each null of a grid where the test would
promote more than alpha, until it keeps alpha on every one: the gate's exact test
(``engine``; :mod:`.walk` feeds it a stage's counts). Its sizes, power and false promotions
are computed forward, exactly. No library computes optimal sequential tests for two binomials,
so ``tests/unit/experiment/test_lattice.py`` checks the induction against every policy of a
small lattice. Values are kept relative to the alternative's likelihood, so they stay O(1).

Between two decisions each variant's error count moves by a binomial of ``step`` trials,
independently of the other's, so one step of the induction (or of the forward pass) is two
products with a banded matrix: a plan takes seconds, not the minute of a pair-by-pair walk.
"""

from __future__ import annotations

import math
import os
import stat
import tempfile
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
from scipy import linalg, optimize, special, stats
from threadpoolctl import threadpool_limits

from canary.plan import short_digest

PROMOTE, ROLLBACK, CONTINUE = 1, -1, 0
PAST_CAP = 2  # not in a policy: an error count past the lattice's cap, where the test has no rule
Policy: TypeAlias = dict[int, np.ndarray]  # at each decision: an action per (e0, e1)


@dataclass(frozen=True)
class Problem:
    """Both models right at ``rate`` under the alternative; nulls at (a, a - margin)."""

    rate: float
    margin: float
    step: int  # pairs between decisions
    max_pairs: int  # the last decision (a multiple of ``step``)
    alpha: float = 0.05
    beta: float = 0.2

    def __post_init__(self) -> None:
        if self.step < 1:
            raise ValueError(f"step: must be at least 1, got {self.step}")
        if self.max_pairs < self.step or self.max_pairs % self.step:
            raise ValueError(
                f"max_pairs: must be a positive multiple of step {self.step}, got {self.max_pairs}"
            )

    @property
    def errors_cap(self) -> int:
        """Errors per variant the lattice keeps: the alternatives and the nulls near them
        make at most 1 - rate + 2 margin errors per request, so 10 standard deviations above
        that is never reached there; lower null accuracies (checked down to NULLS_BELOW
        under) can leave it, and the gate halts where they do. States past it count as free
        in the bound (a smaller minimum keeps it a bound) and as a miss in the gate's policy;
        forward passes report the mass that leaves."""
        q = min(1.0, 1 - self.rate + 2 * self.margin)
        n = self.max_pairs
        return min(n, math.ceil(n * q + 10 * math.sqrt(n * q * (1 - q)) + 10))

    @property
    def decisions(self) -> range:
        """The pair counts at which the test decides."""
        return range(self.step, self.max_pairs + 1, self.step)


@dataclass(frozen=True)
class Operating:
    """A policy's exact behaviour at one point: P(promote), E[pairs], mass lost past the cap."""

    promote: float
    mean_pairs: float
    lost: float


def _kernel(problem: Problem, rate: float) -> np.ndarray:
    """K[i, j]: the probability that a variant right at ``rate`` goes from i to j errors over
    one step of pairs (what passes the cap is lost)."""
    size = problem.errors_cap + 1
    pmf = stats.binom.pmf(np.arange(problem.step + 1), problem.step, 1 - rate)
    row = np.zeros(size)
    row[: min(size, len(pmf))] = pmf[:size]
    return linalg.toeplitz(np.r_[row[0], np.zeros(size - 1)], row)


#: Largest log likelihood ratio one variant's factor keeps, so that the product of two stays
#: finite (e^700). Past it a state is so null-like that no weight the plan gives a miss
#: competes; a weighted sum may still overflow to inf, which only says the same.
LOG_RATIO_CEILING = 350.0


def _weighted_ratio(
    problem: Problem, points: list[tuple[float, float]], weights: np.ndarray, n: int
) -> np.ndarray:
    """sum_j w_j L_j / L_1 over (champion errors, challenger errors) after n pairs, L_j the
    likelihood at point j (champion's rate, challenger's rate) and L_1 the alternative's. The
    ratio is one factor per variant, so the sum is a product of two (errors x points)
    matrices (zero with no points)."""
    p = problem.rate
    e = np.arange(problem.errors_cap + 1)[:, None]

    def factor(rates: np.ndarray) -> np.ndarray:
        log = (n - e) * np.log(rates / p) + e * np.log((1 - rates) / (1 - p))
        return np.exp(np.minimum(log, LOG_RATIO_CEILING))

    champion, challenger = (np.array([pt[i] for pt in points], dtype=float) for i in (0, 1))
    return (factor(champion[None, :]) * np.asarray(weights)) @ factor(challenger[None, :]).T


def backward(
    problem: Problem,
    nulls: tuple[float, ...],
    null_weights: np.ndarray,
    miss_weight: float,
    past_cap: float = 0.0,
    better: dict[float, float] | None = None,
) -> tuple[float, Policy]:
    """The least Lagrangian value (per unit of the alternative's likelihood at the start) and
    the policy that reaches it: at each decision, an array of PROMOTE / ROLLBACK / CONTINUE
    over (champion errors, challenger errors). ``past_cap`` is what a walk past the cap
    costs: nothing for the bound (a smaller minimum keeps it a bound); for the gate's policy,
    which halts there, a miss, so it never goes on near the cap to leave it. ``better``: equal
    accuracies above the planned whose miss also counts, in shares of the planned one's."""
    better = better or {}
    k = _kernel(problem, problem.rate)
    stays = k.sum(axis=1)
    leaves = past_cap * (1 - np.outer(stays, stays))
    nulls_at = null_points(problem, nulls)
    better_at, shares = [(q, q) for q in better], np.array(list(better.values()))
    value: np.ndarray | None = None
    policy: Policy = {}
    for n in reversed(problem.decisions):
        promote = _weighted_ratio(problem, nulls_at, null_weights, n)
        miss = miss_weight * (1 + _weighted_ratio(problem, better_at, shares, n))
        stop = np.minimum(promote, miss)
        go_on = np.inf if value is None else problem.step + k @ value @ k.T + leaves
        policy[n] = np.where(
            go_on <= stop, CONTINUE, np.where(promote <= miss, PROMOTE, ROLLBACK)
        ).astype(np.int8)
        value = np.minimum(stop, go_on)
    assert value is not None
    return float(problem.step + k[0] @ value @ k[0] + leaves[0, 0]), policy


def forward(problem: Problem, policy: Policy, points: list[tuple[float, float]]) -> list[Operating]:
    """What ``policy`` does at each point (champion's rate, challenger's rate), exactly."""
    return [_forward_one(problem, policy, point) for point in points]


def _forward_one(problem: Problem, policy: Policy, point: tuple[float, float]) -> Operating:
    """The mass over (e0, e1) carried from decision to decision, less what each stops."""
    k0, k1 = (_kernel(problem, rate) for rate in point)
    size = problem.errors_cap + 1
    mass = np.zeros((size, size))
    mass[0, 0] = 1.0
    promote = mean = stopped = 0.0
    for n in problem.decisions:
        mass = k0.T @ mass @ k1
        if n not in policy:
            continue
        promote += float(mass[policy[n] == PROMOTE].sum())
        stops = policy[n] != CONTINUE
        halted = float(mass[stops].sum())
        stopped += halted
        mean += n * halted
        mass = np.where(stops, 0.0, mass)
    return Operating(promote, mean, 1 - stopped)


@dataclass(frozen=True)
class Bound:
    """The weak-duality bound on E_1[pairs] at the weights of one null and of a miss."""

    value: float
    null_weight: float
    miss_weight: float


def dual_bound(problem: Problem, null: float) -> Bound:
    """Maximise the bound over the weights of the null (null, null - margin) and of a miss
    (Nelder-Mead on their logs). Any weights give a valid bound; the search only tightens it."""

    def bound(x: np.ndarray) -> float:
        w = np.exp(x)
        value, _ = backward(problem, (null,), w[:1], w[1])
        return value - problem.alpha * w[0] - problem.beta * w[1]

    x0 = np.log([4.0 * problem.max_pairs, problem.max_pairs])
    simplex = np.vstack([x0, x0 + np.eye(2)])  # first steps: a factor e in each weight
    found = optimize.minimize(
        lambda x: -bound(x), x0, method="Nelder-Mead",
        options={"initial_simplex": simplex, "xatol": 1e-3, "fatol": 1e-3 * problem.step},
    )  # fmt: skip
    return Bound(-float(found.fun), *np.exp(found.x).tolist())


def least_favourable_null(problem: Problem) -> float:
    """The null champion accuracy a nearest the alternative in Kullback-Leibler divergence:
    the point a one-null test weighs first."""

    p = problem.rate

    def kl(a: float) -> float:  # both variants' Bernoulli divergences, summed
        rates = np.array([a, a - problem.margin])
        return float(special.rel_entr(p, rates).sum() + special.rel_entr(1 - p, 1 - rates).sum())

    lo, hi = problem.margin + 1e-6, 1 - 1e-6
    return float(optimize.minimize_scalar(kl, bounds=(lo, hi), method="bounded").x)


#: How far below the alternative's rate less the margin the checked nulls reach.
NULLS_BELOW = 0.2
#: The highest null champion accuracy on the grids (the dense check goes on to 1 - 10^-6).
TOP_NULL = 0.999
#: The share of weight a null, or a better accuracy's miss, gets once it first binds.
FIRST_SHARE = 1e-4
#: Better accuracies, as shares of the way from the planned one to 1.
BETTER_SHARES = (0.25, 0.5, 0.75, 0.9)


def null_points(problem: Problem, nulls: tuple[float, ...]) -> list[tuple[float, float]]:
    """The (champion, challenger) rates of null champion accuracies: the challenger a margin
    worse."""
    return [(a, a - problem.margin) for a in nulls]


def null_grid(problem: Problem, points: int = 13) -> tuple[float, ...]:
    """Null champion accuracies to check the false promotion rate on: ``points`` from the
    alternative's rate minus the margin to TOP_NULL (a test weighed at the least favourable null
    promotes most often between it and 1), and four below, down to NULLS_BELOW lower, where
    it promotes less the lower a is (errors past the lattice's cap halt the gate: no promote)."""
    top = problem.rate - problem.margin
    low = max(problem.margin + 1e-3, top - NULLS_BELOW)
    below = np.linspace(low, top, 5)[:-1]
    return tuple(float(a) for a in np.r_[below, np.linspace(top, TOP_NULL, points)])


def better_grid(problem: Problem) -> tuple[float, ...]:
    """Equal accuracies above the planned where the power must hold too. Why: a test weighed
    at the planned accuracy alone, with nulls up to 0.999, takes two nearly faultless models
    for a null (a champion at 0.999 and a challenger at 0.979 explain few errors better than
    the planned 0.97 does) and rolls them back: power 0.44 at 0.99 for a plan at 0.97."""
    p = problem.rate
    return tuple(float(p + (1 - p) * share) for share in BETTER_SHARES)


@dataclass(frozen=True)
class ExactTest:
    """A planned exact test: its policy, the bound it is measured against and its behaviour at
    the alternative, at the better accuracies and at every null checked (exact, no Monte
    Carlo error)."""

    problem: Problem
    bound: float
    policy: Policy
    alternative: Operating
    nulls: dict[float, Operating]
    better: dict[float, Operating]

    @property
    def worst_false_promotion(self) -> float:
        """The most often it promotes at any null checked: what it claims for alpha."""
        return max(o.promote for o in self.nulls.values())

    @property
    def least_power(self) -> float:
        """The power at the planned accuracy and at every better one."""
        return min(o.promote for o in (self.alternative, *self.better.values()))

    @property
    def valid(self) -> bool:
        """Whether it keeps alpha at every null checked and has the power at the planned
        accuracy and above."""
        p = self.problem
        return self.worst_false_promotion <= p.alpha and self.least_power >= 1 - p.beta

    def action(self, pairs: int, champion_errors: int, challenger_errors: int) -> int:
        """What the test does at a decision: PROMOTE, ROLLBACK, CONTINUE, or PAST_CAP when an
        error count is past the lattice's cap (error rates far above the planned)."""
        if max(champion_errors, challenger_errors) > self.problem.errors_cap:
            return PAST_CAP
        return int(self.policy[pairs][champion_errors, challenger_errors])

    @cached_property
    def _thresholds(self) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """Per decision and champion error count: the most challenger errors that promote
        (-1: none) and the least that roll back (cap + 1: none), among the counts n pairs can
        reach (the policy's cells past n are never visited, and hold no rule)."""
        cap = self.problem.errors_cap
        out = {}
        for n, actions in self.policy.items():
            e1 = np.arange(cap + 1)[None, :]
            actions = np.where(e1 <= n, actions, CONTINUE)
            up = np.where(actions == PROMOTE, e1, -1).max(axis=1)
            down = np.where(actions == ROLLBACK, e1, cap + 1).min(axis=1)
            out[n] = (up, down)
        return out

    def thresholds(self, pairs: int, champion_errors: int) -> tuple[int | None, int | None]:
        """At a decision: promote when the challenger has at most the first number of errors,
        roll back at the second or more (None: not at this champion count, or no decision
        at ``pairs``, as before the first)."""
        cap = self.problem.errors_cap
        if pairs not in self._thresholds or champion_errors > cap:
            return None, None
        up, down = self._thresholds[pairs]
        a, b = int(up[champion_errors]), int(down[champion_errors])
        return (a if a >= 0 else None), (b if b <= cap else None)


#: Where plans outlive a process: the gate sensor starts a fresh one for every poke
#: (reschedule mode), and a plan takes seconds. One folder per user, its alone (0700).
PLAN_CACHE = Path(tempfile.gettempdir()) / f"canary-exact-plans-{os.getuid()}"
#: Bump when the planning changes in a way its constants below do not show.
PLAN_VERSION = 3


@lru_cache(maxsize=16)
def plan(problem: Problem) -> ExactTest:
    """The gate's exact test for ``problem``: planned here (:func:`planned`), or read from
    PLAN_CACHE. Only the policy, the bound and the nulls planning added are kept there; what
    the policy does at the alternative, the better accuracies and every null of the grids
    is computed again on every read (a fraction of a second), so a stale or forged file can
    never make the gate claim error rates its policy does not have."""
    folder = _cache_folder()
    key = repr(
        (PLAN_VERSION, NULLS_BELOW, TOP_NULL, FIRST_SHARE, BETTER_SHARES, DENSE_NULLS, ROUNDS)
    )
    path = folder / f"{short_digest(repr(problem) + key, 32)}.npz" if folder else None
    kept = _read(path, problem) if path else None
    if kept is None:
        bound, policy, nulls = planned(problem)
        if path:
            _keep(path, bound=bound, policy=np.stack([policy[n] for n in problem.decisions]),
                  nulls=np.asarray(nulls))  # fmt: skip
    else:
        bound, policy, nulls = kept
    checked = (least_favourable_null(problem), *null_grid(problem), *nulls)
    return _operating(problem, bound, policy, tuple(dict.fromkeys(checked)))


def _cache_folder() -> Path | None:
    """PLAN_CACHE, made (or narrowed to 0700) if need be, or None when it is not this user's
    folder (another user could plant plans in it): then every process plans for itself."""
    try:
        PLAN_CACHE.mkdir(mode=0o700, parents=True, exist_ok=True)
        found = PLAN_CACHE.lstat()
        if found.st_uid != os.getuid() or not stat.S_ISDIR(found.st_mode):
            return None
        if found.st_mode & 0o077:
            PLAN_CACHE.chmod(0o700)
    except OSError:
        return None
    return PLAN_CACHE


def _read(path: Path, problem: Problem) -> tuple[float, Policy, tuple[float, ...]] | None:
    """A kept plan of ``problem``, or None when there is none or it is unreadable, partial
    or of another shape (then it is planned again)."""
    cells = problem.errors_cap + 1
    try:
        with np.load(path, allow_pickle=False) as kept:
            bound, stacked, nulls = float(kept["bound"]), kept["policy"], kept["nulls"]
    except Exception:
        return None
    if stacked.shape != (len(problem.decisions), cells, cells) or nulls.ndim != 1:
        return None
    policy = dict(zip(problem.decisions, stacked.astype(np.int8), strict=True))
    return bound, policy, tuple(float(a) for a in nulls)


def _keep(path: Path, **arrays: Any) -> None:
    """Write a plan where other processes read it whole or not at all (a file of its own,
    then renamed over); a cache that cannot be written only costs the next process the
    planning."""
    partial = None
    try:
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".partial", delete=False) as out:
            partial = Path(out.name)
            np.savez_compressed(out, **arrays)
        os.replace(partial, path)
    except OSError:
        pass
    finally:
        if partial is not None and partial.exists():
            partial.unlink(missing_ok=True)


def _operating(
    problem: Problem, bound: float, policy: Policy, nulls: tuple[float, ...]
) -> ExactTest:
    """The exact test of ``policy``, with its behaviour computed on the lattice."""
    better = better_grid(problem)
    at = null_points(problem, nulls) + [(q, q) for q in (problem.rate, *better)]
    seen = forward(problem, policy, at)
    return ExactTest(
        problem, bound, policy, seen[len(nulls)],
        dict(zip(nulls, seen[: len(nulls)], strict=True)),
        dict(zip(better, seen[len(nulls) + 1 :], strict=True)),
    )  # fmt: skip


#: Null accuracies a plan is checked on before it is used, besides those it weighs.
DENSE_NULLS = 200


#: Rounds of re-weighing the nulls and better accuracies a plan gets to keep alpha and power.
ROUNDS = 16


def planned(problem: Problem) -> tuple[float, Policy, tuple[float, ...]]:
    """The bound on E_1[pairs], a test near it with the power (its policy), and the nulls
    it was checked on.

    The bound weighs the least favourable null and a miss. The test that attains it promotes
    a little more than alpha at nulls nearer 1 (0.053 at p = 0.97, delta = 0.02), and misses
    nearly faultless models, so the test returned also weighs each null that promotes more
    than alpha, at a share of the first's weight that grows fourfold while it does (the
    first's own by 2 %), and each better accuracy short of the power, at a share of the miss
    that grows fourfold while it is; the miss weight bisected to the power each time. Once
    it keeps both on its grids, it is checked on DENSE_NULLS more null accuracies up to
    1 - 10^-6, and the worst one over alpha, if any, joins the nulls it weighs. After
    ROUNDS it is returned as it is: ``ExactTest.valid`` says whether it keeps alpha and
    the power. One BLAS thread: the matrices are small, and threads only contend."""
    with threadpool_limits(1, user_api="blas"):
        first = least_favourable_null(problem)
        bound = dual_bound(problem, first)
        nulls = (first, *null_grid(problem))
        shares = np.r_[1.0, np.zeros(len(nulls) - 1)]
        better = dict.fromkeys(better_grid(problem), 0.0)
        for _ in range(ROUNDS):
            policy = _powered(problem, nulls, bound.null_weight * shares, bound.miss_weight, better)
            points = null_points(problem, nulls) + [(q, q) for q in better]
            promoted = forward(problem, policy, points)
            over = np.array([o.promote > problem.alpha for o in promoted[: len(nulls)]])
            under = dict(zip(better, [o.promote < 1 - problem.beta for o in promoted[len(nulls) :]],
                             strict=True))  # fmt: skip
            if not over.any() and not any(under.values()):
                worst, rate = dense_false_promotion(problem, policy, min(nulls))
                if rate <= problem.alpha:
                    break
                nulls, shares = (*nulls, worst), np.r_[shares, FIRST_SHARE]
                continue
            grown = np.r_[1.02 * shares[0], np.maximum(4 * shares[1:], FIRST_SHARE)]
            shares = np.where(over, grown, shares)
            better = {q: max(4 * s, FIRST_SHARE) if under[q] else s for q, s in better.items()}
    return bound.value, policy, nulls


def dense_false_promotion(problem: Problem, policy: Policy, low: float) -> tuple[float, float]:
    """The null accuracy, of DENSE_NULLS from ``low`` to 1 - 10^-6, where ``policy`` promotes
    most, and how often it promotes there."""
    dense = np.r_[np.linspace(low, TOP_NULL, DENSE_NULLS - 1), 1 - 1e-6]
    seen = forward(problem, policy, null_points(problem, tuple(dense)))
    worst = int(np.argmax([o.promote for o in seen]))
    return float(dense[worst]), seen[worst].promote


#: Steps of a factor e^0.5 the miss weight may move to bracket the power (e^20 each way).
WIDENINGS = 40


def _powered(
    problem: Problem,
    nulls: tuple[float, ...],
    weights: np.ndarray,
    miss: float,
    better: dict[float, float],
) -> Policy:
    """The Lagrangian test whose miss weight is the least (to 0.1 %) that gives the power."""
    alternative = [(problem.rate, problem.rate)]

    def at(log_miss: float) -> Policy:
        """The Lagrangian test at this miss weight (a walk past the cap costs a miss too)."""
        miss = math.exp(log_miss)
        return backward(problem, nulls, weights, miss, past_cap=miss, better=better)[1]

    def attempt(log_miss: float) -> Policy | None:
        """The test at this miss weight if it has the power, else None."""
        policy = at(log_miss)
        power = forward(problem, policy, alternative)[0].promote
        return policy if power >= 1 - problem.beta else None

    lo = hi = math.log(miss)
    for _ in range(WIDENINGS):
        if (powered := attempt(hi)) is not None:
            break
        hi += 0.5
    else:  # no miss weight gives the power: the plan comes back invalid (the z design judges)
        return at(hi)
    for _ in range(WIDENINGS):
        if attempt(lo) is None:
            break
        lo -= 0.5
    while hi - lo > 1e-3:
        mid = (lo + hi) / 2
        policy = attempt(mid)
        if policy is None:
            lo = mid
        else:
            hi, powered = mid, policy
    return powered
