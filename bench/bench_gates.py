"""Monte Carlo operating characteristics of the gate engine on simulated Bernoulli streams.

Drives the same ``canary.experiment.gates.evaluate`` the DAG's sensor calls, poking every CHUNK
requests per variant at a 50/50 split, until the gate promotes or rolls back. Champion accuracy
0.85, margin delta = 0.02, alpha = 0.05 one-sided, power 0.8. Scenarios (challenger minus
champion): -delta (false promotion rate), 0 (power, mean n), +delta, -3 delta (mean n to rollback).
Each figure is reported with its Monte Carlo standard error. n_fix is the per-variant size of the
fixed-horizon one-sided non-inferiority z test with the same alpha, power and delta (true
difference 0, variance p(1-p) per arm): n = (z_.95 + z_.8)^2 * 2 * 0.85 * 0.15 / 0.02^2. As a
side-by-side baseline, the fixed-horizon score test is run on the first n_fix requests of the same
streams.
Prints one JSON line.
"""

from __future__ import annotations

import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta

import numpy as np

from canary.experiment.gates import (
    GateConfig,
    Outcomes,
    StageEvidence,
    VariantEvidence,
    cap_per_variant,
    evaluate,
    fixed_horizon_n,
)
from canary.experiment.gates.guardrails import per_look_level
from canary.experiment.gates.noninferiority import primary_statistic
from canary.experiment.gates.sequential import crossing_probabilities, expected_fraction

RUNS = int(os.environ.get("BENCH_GATES_RUNS", "1000"))
# The false promotion rate is the safety claim (<= alpha): its scenario gets 8x the runs, so its
# Monte Carlo error (~0.0025) is small next to the distance it must keep from alpha.
RUNS_BY_SCENARIO = {"worse": 8 * RUNS}
CHUNK = 50  # requests per variant between pokes
P0, DELTA = 0.85, 0.02
CONFIG = GateConfig(alpha=0.05, power=0.8, margin=DELTA, planning_rate=P0)
SCENARIOS = {"worse": -DELTA, "equal": 0.0, "better": DELTA, "worse3": -3 * DELTA}
START = datetime(2025, 1, 1, tzinfo=UTC)


def _evidence(n: int, k0: int, k1: int) -> StageEvidence:
    def variant(name: str, k: int) -> VariantEvidence:
        return VariantEvidence(name, n, outcomes=Outcomes(n, float(k), float(k)))

    return StageEvidence(
        0,
        (50, 50),
        variant("champion", k0),
        variant("challenger", k1),
        START,
        START + timedelta(minutes=1),
    )


def _run(p1: float, seed: int) -> tuple[str, int, bool]:
    """One stream: (verdict, requests per variant at the decision, fixed-horizon NI verdict)."""
    rng = np.random.default_rng(seed)
    cap = cap_per_variant(CONFIG)
    steps = -(-cap // CHUNK) + 1
    k0 = np.cumsum(rng.binomial(CHUNK, P0, steps))
    k1 = np.cumsum(rng.binomial(CHUNK, p1, steps))
    looks = None
    for i in range(steps):
        n = (i + 1) * CHUNK
        decision, looks = evaluate(_evidence(n, int(k0[i]), int(k1[i])), CONFIG, looks)
        if decision.verdict.value != "continue":
            break
    return decision.verdict.value, n, _fixed_horizon(seed, p1)


def _fixed_horizon(seed: int, p1: float) -> bool:
    """Baseline: one score test at n_fix on an independent stream with the same seed offset."""
    rng = np.random.default_rng(seed + 10**9)
    n = fixed_horizon_n(CONFIG)
    stat = primary_statistic(
        _evidence(n, int(rng.binomial(n, P0)), int(rng.binomial(n, p1))), DELTA, CONFIG.alpha
    )
    return bool(stat.z >= 1.6448536269514722)


def _batch(args: tuple[str, int]) -> tuple[str, list[tuple[str, int, bool]]]:
    """One half of a scenario's runs (halves balance the two CI cores)."""
    name, half = args
    base = 1_000_003 * (list(SCENARIOS).index(name) + 1)
    runs = range(RUNS_BY_SCENARIO.get(name, RUNS))[half::2]
    return name, [_run(P0 + SCENARIOS[name], base + r) for r in runs]


def _warm_caches() -> None:
    """Plan the design, the guardrail constant and the boundaries at the looks every stream takes
    (pokes are at fixed counts), before forking, so workers inherit them instead of recomputing."""
    CONFIG.design  # noqa: B018
    per_look_level(CONFIG)
    _run(P0 + SCENARIOS["worse"], 0)  # a long stream visits most look prefixes


def _analytic() -> dict[str, float]:
    """The same figures from the recursive integration (normal approximation, looks exactly at
    the planned fractions): what the simulation should reproduce up to overshoot and MC error."""
    d = CONFIG.design
    b = d.boundaries
    out = {}
    for name, share in (("worse", 0.0), ("equal", 1.0), ("better", 2.0), ("worse3", -2.0)):
        up, _ = crossing_probabilities(
            list(b.fractions), list(b.efficacy), list(b.futility), share * d.theta_max
        )
        out[f"p_promote_{name}"] = float(up.sum())
        out[f"n_over_nfix_{name}"] = d.inflation * expected_fraction(d, share)
    return out


def _share(flags: np.ndarray) -> tuple[float, float]:
    p = float(flags.mean())
    return p, float(np.sqrt(p * (1 - p) / len(flags)))


def _mean(values: np.ndarray, scale: float) -> tuple[float, float]:
    return float(values.mean() / scale), float(values.std(ddof=1) / np.sqrt(len(values)) / scale)


def main() -> None:
    t0 = time.perf_counter()
    _warm_caches()
    n_fix = fixed_horizon_n(CONFIG)
    results: dict[str, list[tuple[str, int, bool]]] = {name: [] for name in SCENARIOS}
    tasks = [(name, half) for name in SCENARIOS for half in (0, 1)]
    with ProcessPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        for name, rows in pool.map(_batch, tasks):
            results[name] += rows
    out = {"bench": "gates", "n_fix": n_fix}
    se: dict[str, float] = {}
    arrays = {
        k: (np.array([v == "promote" for v, _, _ in r]), np.array([n for _, n, _ in r]))
        for k, r in results.items()
    }
    out["false_promotion_rate"], se["false_promotion_rate"] = _share(arrays["worse"][0])
    out["power"], se["power"] = _share(arrays["equal"][0])
    for key, scen in (("equal", "equal"), ("better", "better"), ("worse", "worse3")):
        out[f"n_over_nfix_{key}"], se[f"n_over_nfix_{key}"] = _mean(arrays[scen][1], n_fix)
    out["cap_over_nfix"] = cap_per_variant(CONFIG) / n_fix
    out["mc_error"] = se
    fixed = {k: np.array([f for _, _, f in r]) for k, r in results.items()}
    out["fixed_horizon"] = {
        "false_promotion_rate": _share(fixed["worse"])[0],
        "power": _share(fixed["equal"])[0],
        "n_over_nfix": 1.0,
    }
    out["analytic"] = _analytic()
    out["n_over_nfix_at_worse_by_delta"] = _mean(arrays["worse"][1], n_fix)[0]
    out["runs_per_scenario"] = {name: RUNS_BY_SCENARIO.get(name, RUNS) for name in SCENARIOS}
    out["requests_per_poke_per_variant"] = CHUNK
    out["design"] = {
        "looks": CONFIG.looks,
        "alpha_spending": f"HSD gamma={CONFIG.alpha_gamma}",
        "beta_spending": f"HSD gamma={CONFIG.beta_gamma} (non-binding)",
        "inflation": CONFIG.design.inflation,
    }
    out["seconds"] = round(time.perf_counter() - t0, 1)
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
