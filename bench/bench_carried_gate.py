"""False promotions and power of a 0/100 stage, judged against the champion's carried estimate.

Why: a 0/100 stage has no concurrent champion, so the gate compares the challenger with the
champion's outcomes pooled over the earlier stages (``CarriedEstimate``). For 0/1 outcomes it
runs the Farrington-Manning score test against those pooled counts; before, it ran a Wald z
(observed variances), which near 1 promotes too often: a challenger that did well by chance
also has a small observed variance. Both statistics run side by side on the same draws: the
Wald z is what the engine runs for a carried estimate not marked binary.

The real engine (``evaluate``) is driven poke by poke, every CHUNK requests, on simulated
Bernoulli streams: p = 0.9 and the default plan's margin 0.03, the champion carried from 1,400
requests (the demo's first three stages) and from 4,000. False promotions at theta = -delta
(each must stay within alpha + 2 Monte Carlo standard errors for the score test), power at
theta = 0. Prints one JSON line.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from bench.montecarlo import END, START, at_most, engine_verdict, mean, share
from canary.experiment.gates import (
    GateConfig,
    Outcomes,
    StageEvidence,
    VariantEvidence,
    Verdict,
)
from canary.experiment.gates.evidence import CarriedEstimate
from canary.plan import parse_plan

RUNS = int(os.environ.get("BENCH_CARRIED_RUNS", "20000"))  # false promotions: MC error ~0.0016
POWER_RUNS = max(1, RUNS // 4)
P0 = 0.9
CARRIED_N = (1400, 4000)
CHUNK = 400  # the default plan's requests between looks
MAX_POKES = 60  # far past the stage's planned maximum: every stream decides before
CONFIG = GateConfig.of(parse_plan({"gate_planning_rate": P0}).gate)
STATISTICS = {"score": True, "wald": False}  # the carried estimate marked binary, or not


def pokes(carried: CarriedEstimate, right: np.ndarray) -> Iterator[StageEvidence]:
    """The 0/100 stage's evidence after each CHUNK of the challenger's outcomes ``right``."""
    for n in range(CHUNK, len(right) + 1, CHUNK):
        k = float(right[:n].sum())
        challenger = VariantEvidence("Challenger", n, outcomes=Outcomes(n, k, k))
        yield StageEvidence(
            3, (0.0, 1.0), VariantEvidence("Champion", 0), challenger, START, END, carried=carried
        )


def scenario(task: tuple[int, str, float, int, int]) -> dict[str, np.ndarray]:
    """``runs`` streams of one (carried n, statistic, theta): promoted flags and decision sizes.
    The seed depends on carried n and theta only: both statistics see the same draws."""
    n_carried, statistic, theta, runs, seed = task
    rng = np.random.default_rng(seed)
    promoted, sizes = np.zeros(runs, bool), np.zeros(runs)
    for r in range(runs):
        m0 = rng.binomial(n_carried, P0) / n_carried
        carried = CarriedEstimate(m0, m0 * (1 - m0) / n_carried, n_carried, STATISTICS[statistic])
        right = rng.random(CHUNK * MAX_POKES) < P0 + theta
        verdict, sizes[r] = engine_verdict(CONFIG, pokes(carried, right))
        promoted[r] = verdict is Verdict.PROMOTE
    return {"promoted": promoted, "n": sizes}


def tasks() -> list[tuple[int, str, float, int, int]]:
    out = []
    for i, n_carried in enumerate(CARRIED_N):
        for statistic in STATISTICS:
            out.append((n_carried, statistic, -CONFIG.margin, RUNS, 100 + i))
            out.append((n_carried, statistic, 0.0, POWER_RUNS, 200 + i))
    return out


def summary(worse: dict[str, np.ndarray], equal: dict[str, np.ndarray]) -> dict:
    fp, fp_se = share(worse["promoted"])
    power, power_se = share(equal["promoted"])
    n_worse, n_worse_se = mean(worse["n"])
    return {
        "false_promotion_rate": fp,
        "power": power,
        "e_n_at_worse_by_delta": n_worse,
        "mc_error": {"false_promotion_rate": fp_se, "power": power_se, "e_n": n_worse_se},
        "alpha_kept": at_most(fp, fp_se, CONFIG.alpha),
    }


def main() -> None:
    t0 = time.perf_counter()
    jobs = tasks()
    with ProcessPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
        keys = [(n_carried, statistic, theta) for n_carried, statistic, theta, *_ in jobs]
        results = dict(zip(keys, pool.map(scenario, jobs), strict=True))
    out: dict = {"bench": "carried_gate", "p": P0, "margin": CONFIG.margin, "alpha": CONFIG.alpha}
    for n_carried in CARRIED_N:
        figures = {
            statistic: summary(
                results[(n_carried, statistic, -CONFIG.margin)],
                results[(n_carried, statistic, 0.0)],
            )
            for statistic in STATISTICS
        }
        wald, score = figures["wald"], figures["score"]
        score_fp = score["false_promotion_rate"]  # none in a short run: no ratio
        figures["false_promotions_wald_over_score"] = (
            wald["false_promotion_rate"] / score_fp if score_fp else None
        )
        out[f"n_carried={n_carried}"] = figures
    out["gate_keeps_alpha"] = all(out[f"n_carried={n}"]["score"]["alpha_kept"] for n in CARRIED_N)
    out["runs"] = {"false_promotions": RUNS, "power": POWER_RUNS}
    out["seconds"] = round(time.perf_counter() - t0, 1)
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
