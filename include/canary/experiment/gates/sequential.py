"""Group-sequential boundaries by error spending, computed by recursive numerical integration.

Why this design: the gate is looked at repeatedly, so a fixed-horizon test would inflate the false
promotion rate. An error-spending design (Lan & DeMets 1983) keeps the one-sided type I error at
``alpha`` whatever the number and timing of looks, and a beta-spending futility boundary
(Pampallona, Tsiatis & Kim 2001) rolls a clearly worse challenger back early. No maintained Python
library computes these boundaries, so the recursion of Armitage, McPherson & Rowe (1969), in the
form of Jennison & Turnbull (2000, ch. 19), is written here and tested against their tables.

Scale: Z_k is the standardised statistic at look k with information I_k. Under drift ``theta``
the score S_k = Z_k sqrt(I_k) is Brownian motion: increments N(theta dI, dI), dI = I_k - I_{k-1}.

Binding or not: a non-binding futility bound leaves the efficacy bound as if futility did not
exist, so ignoring a futility crossing never inflates the false promotion rate; it wastes the
alpha of the null paths that futility stops. The gate's design is *binding* (Jennison & Turnbull
ch. 4 and 7, one-sided tests that stop to accept H0): the efficacy bound is computed on the paths
that are still running after the futility bound, so the whole alpha is spent and the same power
needs less information. That is honest only because the engine always acts on a futility
crossing: it rolls the stage back, and a rolled-back stage ends the rollout. Anything that let a
stage continue past a crossing would raise the false promotion rate above alpha.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

import numpy as np
from scipy import optimize, special, stats

FRACTION_DIGITS = 6  # look fractions are kept to 6 digits (records, cached boundaries)
GRID_POINTS = 301  # Simpson nodes per look; J&T's r=32 grid has ~190, this errs on the safe side.
TAIL = 9.0  # a continuation region is truncated at drift ± TAIL standard deviations.


class Family(StrEnum):
    """Error-spending families: Hwang, Shih & DeCani 1990 (parameter gamma: -4 is
    O'Brien-Fleming-like, 1 is Pocock-like), Kim & DeMets 1987's power family (total x
    t^gamma), and Lan & DeMets' O'Brien-Fleming and Pocock types."""

    HSD = "hsd"
    POWER = "power"
    OBF = "obf"
    POCOCK = "pocock"


@dataclass(frozen=True)
class Spending:
    """An error-spending function f(t) on information fraction t in [0, 1], with f(1) = total;
    ``family`` takes a :class:`Family` or its value."""

    family: Family = Family.HSD
    gamma: float = 0.0

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "family", Family(self.family))
        except ValueError:
            names = ", ".join(repr(f.value) for f in Family)
            raise ValueError(
                f"spending.family: must be one of {names}, got {self.family!r}"
            ) from None
        if self.family is Family.POWER and self.gamma <= 0:
            raise ValueError(f"spending.gamma: the power family needs gamma > 0, got {self.gamma}")

    def spent(self, t: float, total: float) -> float:
        """Cumulative error spent by fraction ``t`` (clipped to [0, 1])."""
        t = min(max(t, 0.0), 1.0)
        if t == 0.0:
            return 0.0
        if self.family is Family.OBF:
            z = stats.norm.isf(total / 2)
            return float(2 * stats.norm.sf(z / math.sqrt(t)))
        if self.family is Family.POCOCK:
            return total * math.log(1 + (math.e - 1) * t)
        if self.family is Family.POWER:
            return total * t**self.gamma
        if self.gamma == 0:
            return total * t
        return total * (1 - math.exp(-self.gamma * t)) / (1 - math.exp(-self.gamma))


def _simpson(lo: float, hi: float, n: int = GRID_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and composite-Simpson weights on [lo, hi] (n odd)."""
    z = np.linspace(lo, hi, n)
    w = np.ones(n)
    w[1:-1:2], w[2:-1:2] = 4.0, 2.0
    return z, w * (hi - lo) / (3 * (n - 1))


_INV_SQRT_2PI = 1.0 / math.sqrt(2 * math.pi)


def _sf(x: np.ndarray | float) -> np.ndarray | float:
    """Normal upper tail; scipy.special directly, as the recursion calls it thousands of times."""
    return special.ndtr(-np.asarray(x))


def _pdf(x: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * np.square(x)) * _INV_SQRT_2PI


class _Recursion:
    """Sub-density of Z_k on the continuation region, carried from look to look."""

    def __init__(self, theta: float) -> None:
        self.theta = theta
        self.nodes: np.ndarray | None = None
        self.mass: np.ndarray | None = None  # density x Simpson weight at each node
        self.info = 0.0

    def _step_args(self, info: float) -> tuple[np.ndarray, np.ndarray, float]:
        """Mean and sd of sqrt(I_k) Z_k given each node of the previous look."""
        delta = info - self.info
        if delta <= 0:
            raise ValueError(f"information must increase between looks, got {self.info} -> {info}")
        mean = self.nodes * math.sqrt(self.info) + self.theta * delta
        return mean, self.mass, math.sqrt(delta)

    def upper(self, info: float, b: float) -> float:
        """P(Z_k >= b and still continuing before look k)."""
        if self.nodes is None:
            return float(_sf(b - self.theta * math.sqrt(info)))
        mean, mass, sd = self._step_args(info)
        return float(mass @ _sf((b * math.sqrt(info) - mean) / sd))

    def lower(self, info: float, a: float) -> float:
        """P(Z_k <= a and still continuing before look k)."""
        if self.nodes is None:
            return float(special.ndtr(a - self.theta * math.sqrt(info)))
        mean, mass, sd = self._step_args(info)
        return float(mass @ special.ndtr((a * math.sqrt(info) - mean) / sd))

    def advance(self, info: float, a: float, b: float) -> None:
        """Move to look k, keeping only paths with a < Z_k < b."""
        centre = self.theta * math.sqrt(info)
        lo, hi = max(a, centre - TAIL), min(b, centre + TAIL)
        z, w = _simpson(lo, hi) if hi > lo else (np.array([lo]), np.array([0.0]))
        if self.nodes is None:
            dens = _pdf(z - centre)
        else:
            mean, mass, sd = self._step_args(info)
            x = (z[:, None] * math.sqrt(info) - mean[None, :]) / sd
            dens = (_pdf(x) @ mass) * math.sqrt(info) / sd
        self.nodes, self.mass, self.info = z, dens * w, info


def crossing_probabilities(
    info: list[float], upper: list[float], lower: list[float], theta: float
) -> tuple[np.ndarray, np.ndarray]:
    """P(first exit above / below at each look) for boundaries on the Z scale under drift theta."""
    rec, up, low = _Recursion(theta), [], []
    for i, b, a in zip(info, upper, lower, strict=True):
        up.append(rec.upper(i, b))
        low.append(rec.lower(i, a))
        rec.advance(i, a, b)
    return np.array(up), np.array(low)


@dataclass(frozen=True)
class Boundaries:
    """Z-scale boundaries at given information fractions: promote if Z >= efficacy, roll back if
    Z <= futility. ``drift`` is E[Z] at each look under the design alternative."""

    fractions: tuple[float, ...]
    efficacy: tuple[float, ...]
    futility: tuple[float, ...]
    drift: tuple[float, ...]


def _solve_upper(rec: _Recursion, t: float, target: float) -> float:
    """Efficacy bound spending exactly ``target``; +inf when nothing is left to spend.

    Under a binding futility bound the null paths still running can carry less mass than
    ``target``: no bound spends it all, so every path still running promotes (-inf). That spends
    less than allowed, never more."""
    if target <= 1e-12:
        return math.inf
    if rec.upper(t, -15.0) <= target:
        return -math.inf
    return float(optimize.brentq(lambda z: rec.upper(t, z) - target, -15.0, 40.0, xtol=1e-8))


def _solve_lower(rec: _Recursion, t: float, target: float, cap: float) -> float:
    """Futility bound spending ``target`` (at most ``cap``, the efficacy bound); -inf if none."""
    if target <= 1e-12:
        return -math.inf
    if rec.lower(t, cap) <= target:
        return cap
    return float(optimize.brentq(lambda z: rec.lower(t, z) - target, -40.0, cap, xtol=1e-8))


def _walk(
    fractions: tuple[float, ...],
    alpha: float,
    beta: float,
    theta_max: float,
    spend: tuple[Spending, Spending],
    final: bool,
    binding: bool,
) -> tuple[Boundaries, float]:
    """Compute boundaries look by look; also return P(promote) under ``theta_max``, the power
    when ``final`` (then the last look's futility bound is its efficacy bound)."""
    h0, h1 = _Recursion(0.0), _Recursion(theta_max)
    eff, fut, drift = [], [], []
    a_spent = b_spent = promoted = 0.0
    for k, t in enumerate(fractions):
        last = final and k == len(fractions) - 1
        # a last look spends what is left of alpha, also when it comes early (t < 1)
        b = _solve_upper(h0, t, spend[0].spent(1.0 if last else t, alpha) - a_spent)
        target = spend[1].spent(t, beta) - b_spent
        a = b if last else _solve_lower(h1, t, target, b)
        a_spent += h0.upper(t, b)
        b_spent += h1.lower(t, a)
        promoted += h1.upper(t, b)
        h0.advance(t, a if binding else -math.inf, b)
        h1.advance(t, a, b)
        eff.append(b)
        fut.append(a)
        drift.append(theta_max * math.sqrt(t))
    return Boundaries(tuple(fractions), tuple(eff), tuple(fut), tuple(drift)), promoted


def spending_boundaries(
    fractions: tuple[float, ...],
    alpha: float,
    beta: float,
    theta_max: float,
    alpha_spending: Spending,
    beta_spending: Spending,
    final: bool,
    binding: bool = False,
) -> Boundaries:
    """Boundaries for looks at ``fractions`` of the maximum information.

    ``theta_max`` is the drift at full information under the alternative (E[Z] at t=1). If
    ``final``, the last look is the last: it spends all of alpha not yet spent (also before
    t = 1, when the stage's evidence ran out early) and its futility bound equals its efficacy
    bound, so the stage ends in promote or rollback. If ``binding``, the efficacy bound counts
    only the null paths the futility bound has not stopped (see the module docstring for when
    that is honest).
    """
    spend = (alpha_spending, beta_spending)
    return _walk(fractions, alpha, beta, theta_max, spend, final, binding)[0]


@dataclass(frozen=True)
class Design:
    """A planned group-sequential design: boundaries at equally spaced looks and the maximum
    information as a multiple (``inflation``) of the fixed-horizon test's information."""

    alpha: float
    power: float
    looks: int
    alpha_spending: Spending
    beta_spending: Spending
    binding: bool
    theta_max: float
    inflation: float
    boundaries: Boundaries

    def boundaries_at(
        self, fractions: tuple[float, ...], final: bool, info_share: float = 1.0
    ) -> Boundaries:
        """Boundaries for looks actually taken at ``fractions`` (error spending re-applied).

        ``info_share`` < 1 when the stage can only reach that share of the design's maximum
        information (0/100 stage): the futility bound then uses the smaller drift."""
        return boundaries_for(
            tuple(round(f, FRACTION_DIGITS) for f in fractions),
            self.alpha,
            1 - self.power,
            round(self.theta_max * math.sqrt(info_share), 6),
            self.alpha_spending,
            self.beta_spending,
            final,
            self.binding,
        )


#: Cached :func:`spending_boundaries`: every poke at the same looks reuses one computation.
boundaries_for = lru_cache(maxsize=4096)(spending_boundaries)


@lru_cache(maxsize=256)
def fixed_sample_drift(alpha: float, power: float) -> float:
    """E[Z] under the alternative for the fixed-horizon one-sided test: z_alpha + z_beta."""
    return float(stats.norm.isf(alpha) + stats.norm.isf(1 - power))


@lru_cache(maxsize=256)
def plan_design(
    alpha: float,
    power: float,
    looks: int,
    alpha_spending: Spending = Spending(Family.HSD, 1.0),
    beta_spending: Spending = Spending(Family.HSD, 1.0),
    binding: bool = False,
) -> Design:
    """Find the maximum information at which the design, its last look final, has exactly the
    requested power (the beta-spending futility bound then meets the efficacy bound there)."""
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha: must lie in (0, 0.5), got {alpha!r}")
    if not 0.5 < power < 1:
        raise ValueError(f"power: must lie in (0.5, 1), got {power!r}")
    if not 1 <= looks <= 200:
        raise ValueError(f"looks: must be between 1 and 200, got {looks!r}")
    fractions = tuple((k + 1) / looks for k in range(looks))
    spend, beta = (alpha_spending, beta_spending), 1 - power

    def shortfall(theta: float) -> float:
        return power - _walk(fractions, alpha, beta, theta, spend, True, binding)[1]

    theta0 = fixed_sample_drift(alpha, power)
    theta = theta0 if looks == 1 else _root_above(shortfall, theta0)
    bounds = _walk(fractions, alpha, beta, theta, spend, True, binding)[0]
    inflation = (theta / theta0) ** 2
    return Design(alpha, power, looks, *spend, binding, theta, inflation, bounds)


def _root_above(shortfall: Callable[[float], float], theta0: float) -> float:
    """The drift at which the power shortfall reaches zero. It is >= the fixed-horizon drift
    ``theta0`` (no test that may stop early beats the fixed test at the same maximum
    information), so the bracket starts there and grows until the design has enough power."""
    lo, hi = theta0, theta0 * 1.25
    while shortfall(hi) > 0:
        if hi > 4 * theta0:
            raise ValueError("design: no maximum information up to 16 x fixed gives the power")
        lo, hi = hi, hi * 1.25
    if shortfall(lo) <= 0:
        return lo
    return float(optimize.brentq(shortfall, lo, hi, xtol=1e-7))


@lru_cache(maxsize=256)
def expected_fraction(design: Design, theta_share: float) -> float:
    """E[information at stop] / max information when the true drift is ``theta_share`` x the
    design alternative (1 = alternative, 0 = null). Decision records show it at both, so a
    reader sees how early the design expects to stop."""
    b = design.boundaries
    up, low = crossing_probabilities(
        list(b.fractions), list(b.efficacy), list(b.futility), theta_share * design.theta_max
    )
    return float(np.sum((up + low) * np.array(b.fractions)))


@lru_cache(maxsize=256)
def pocock_constant(alpha: float, looks: int) -> float:
    """One-sided constant boundary c with P(max over ``looks`` equally spaced looks of Z >= c) =
    alpha under the null (Pocock 1977). Guardrails use it so repeated looks keep their false
    rollback rate at alpha."""
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha: must lie in (0, 0.5), got {alpha!r}")
    info = [(k + 1) / looks for k in range(looks)]

    def excess(c: float) -> float:
        up, _ = crossing_probabilities(info, [c] * looks, [-math.inf] * looks, 0.0)
        return float(up.sum()) - alpha

    return float(optimize.brentq(excess, stats.norm.isf(alpha) - 1e-9, 6.0, xtol=1e-8))


@lru_cache(maxsize=256)
def sprt_expected_fraction(alpha: float, power: float) -> tuple[float, float]:
    """E[information] of Wald's SPRT as a multiple of the fixed-horizon information, under the
    alternative and under the null: the floor of every test with these error rates (Wald &
    Wolfowitz 1948), so a design can be judged by its distance from it. For Brownian motion
    Wald's formulas are exact: E_1 = 2[(1-b) log A + b log B] / (z_a + z_b)^2 and
    E_0 = -2[a log A + (1-a) log B] / (z_a + z_b)^2, with A = (1-b)/a, B = b/(1-a)."""
    beta = 1 - power
    log_a, log_b = math.log(power / alpha), math.log(beta / (1 - alpha))
    scale = 2 / fixed_sample_drift(alpha, power) ** 2
    at_alternative = scale * (power * log_a + beta * log_b)
    at_null = -scale * (alpha * log_a + (1 - alpha) * log_b)
    return at_alternative, at_null
