"""Monte Carlo operating characteristics of the paired (shadow-stage) gate.

Both models score the same requests; a poke comes every CHUNK labelled pairs. Champion accuracy
0.9, margin delta = 0.02, alpha = 0.05 one-sided, power 0.8. Scenarios: theta = -delta (the
false promotion rate) at p_disc = 0.02, 0.05, 0.10, 0.20, and theta = 0 at p_disc = 0.10 (power,
E[pairs at the decision]). The headline ratio divides E[pairs] by the unpaired 50/50 design's
fixed-sample TOTAL n, 2 n_fix with n_fix = (z_a + z_b)^2 2 p (1 - p) / delta^2.

How it stays the engine's test at speed: the information is estimated, so every stream has its
own look fractions and its own boundaries. The counts, the look schedule (the engine's rule) and
the statistics are vectorized over streams; each stream's boundaries come from the design's own
``boundaries_at`` at its look fractions (a bound depends only on the looks before it, so one
call on a prefix serves every look in it), computed only as far as the stream runs. A subset of
streams is also driven through ``evaluate`` poke by poke, and the JSON says whether every one
ended with the same verdict after the same number of pairs. Prints one JSON line.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

from bench import montecarlo
from canary.experiment.gates import (
    GateConfig,
    PairedOutcomes,
    StageEvidence,
    VariantEvidence,
    Verdict,
)
from canary.experiment.gates.engine import is_final, looks_passed
from canary.experiment.gates.paired import (
    on_exact_test,
    paired_information,
    paired_z,
)
from canary.experiment.gates.sequential import FRACTION_DIGITS, fixed_sample_drift
from canary.experiment.gates.sizing import max_information

RUNS = int(os.environ.get("BENCH_PAIRED_RUNS", "6000"))  # power's MC error ~0.005
CROSS_CHECK = int(os.environ.get("BENCH_PAIRED_CROSS_CHECK", "8"))  # streams per scenario
CHUNK = 50  # labelled pairs between pokes
P0, DELTA = 0.9, 0.02
CONFIG = GateConfig(alpha=0.05, power=0.8, margin=DELTA, planning_rate=P0)
FALSE_PROMOTION = {p: (-DELTA, p) for p in (0.02, 0.05, 0.10, 0.20)}
POWER = (0.0, 0.10)
RATIO_GOAL = 0.22  # issue 13: E[pairs] / the unpaired design's total n_fix


@dataclass(frozen=True)
class Paths:
    """Cumulative (challenger_only, champion_only) counts of each stream at every poke."""

    b: np.ndarray
    c: np.ndarray
    n: np.ndarray

    @classmethod
    def draw(cls, config: GateConfig, theta: float, p_disc: float, runs: int, seed: int) -> Paths:
        """Enough pokes that every stream reaches its last look (information fraction 1)."""
        rng = np.random.default_rng(seed)
        probs = [(p_disc + theta) / 2, (p_disc - theta) / 2, 1 - p_disc]
        pokes = math.ceil(3 * max_information(config) * max(p_disc, config.margin) / CHUNK) + 4
        counts = rng.multinomial(CHUNK, probs, size=(runs, pokes)).cumsum(axis=1)
        n = CHUNK * np.arange(1, pokes + 1)
        paths = cls(counts[..., 0], counts[..., 1], np.broadcast_to(n, (runs, pokes)))
        if not np.all(paths.fractions(config)[:, -1] >= 1.0):
            raise RuntimeError("a stream did not reach its last look: draw more pokes")
        return paths

    def fractions(self, config: GateConfig) -> np.ndarray:
        return np.minimum(
            paired_information(self.b + self.c, self.n, config.margin) / max_information(config),
            1.0,
        )


def look_schedule(paths: Paths, config: GateConfig) -> np.ndarray:
    """Which pokes take a look: the engine's rule (a planned fraction crossed, with a discordant
    pair; or the last look), one numpy step per poke across all streams."""
    frac = paths.fractions(config)
    runs, pokes = frac.shape
    last = np.zeros(runs)
    done = np.zeros(runs, dtype=bool)
    take = np.zeros((runs, pokes), dtype=bool)
    k = config.looks
    for j in range(pokes):
        t = frac[:, j]
        final = is_final(t)
        due = looks_passed(t, k) > looks_passed(last, k)
        take[:, j] = ~done & (final | (due & (paths.b[:, j] + paths.c[:, j] > 0)))
        last = np.where(take[:, j], np.round(t, FRACTION_DIGITS), last)
        done |= take[:, j] & final
    return take


def first_crossing(fractions: np.ndarray, z: np.ndarray, config: GateConfig) -> tuple[int, bool]:
    """(index of the deciding look, promoted?) with the boundaries the engine would use.

    The walk is as long as the stream probably runs: its first crossing of the planned design's
    boundaries (interpolated at its fractions) plus two looks, doubled if no exact bound is
    crossed in it. Bounds in a prefix are the full walk's, so the first crossing found is it."""
    planned = config.design.boundaries
    guess_up = z >= np.interp(fractions, planned.fractions, planned.efficacy)
    guess_down = z <= np.interp(fractions, planned.fractions, planned.futility)
    guess = np.flatnonzero(guess_up | guess_down)
    size = int(guess[0]) + 3 if guess.size else len(fractions)
    while True:
        size = min(size, len(fractions))
        final = bool(is_final(fractions[size - 1]))
        bounds = config.design.boundaries_at(tuple(fractions[:size]), final)
        up = z[:size] >= np.array(bounds.efficacy)
        down = z[:size] <= np.array(bounds.futility)
        hit = np.flatnonzero(up | down)
        if hit.size:
            return int(hit[0]), bool(up[hit[0]])
        size *= 2


def simulate(
    config: GateConfig, theta: float, p_disc: float, runs: int, seed: int
) -> dict[str, np.ndarray]:
    """Per stream: promoted?, pairs at the decision, looks taken, looks on the exact test."""
    paths = Paths.draw(config, theta, p_disc, runs, seed)
    take = look_schedule(paths, config)
    frac = np.round(paths.fractions(config), FRACTION_DIGITS)
    out = {k: np.zeros(runs, dtype=int) for k in ("promoted", "pairs", "looks", "exact_looks")}
    for s in range(runs):
        j = np.flatnonzero(take[s])
        b, c, n = paths.b[s, j], paths.c[s, j], paths.n[s, j]
        z = paired_z(b, c, n, config.margin, config.alpha)
        k, promoted = first_crossing(frac[s, j], z, config)
        m = b[: k + 1] + c[: k + 1]
        out["promoted"][s], out["pairs"][s], out["looks"][s] = promoted, n[k], k + 1
        out["exact_looks"][s] = int(np.sum(on_exact_test(m)))
    return out


def drive_engine(config: GateConfig, paths: Paths, s: int) -> tuple[Verdict, int]:
    """Stream ``s`` through the real engine poke by poke: (verdict, pairs)."""

    def poke(b: int, c: int, n: int) -> StageEvidence:
        champion, challenger = VariantEvidence("champion", n), VariantEvidence("challenger", n)
        table = PairedOutcomes(n - b - c, c, b, 0)
        return StageEvidence(
            0, (100, 0), champion, challenger, montecarlo.START, montecarlo.END, paired=table
        )

    draws = zip(paths.b[s], paths.c[s], paths.n[s], strict=True)
    return montecarlo.engine_verdict(config, (poke(int(b), int(c), int(n)) for b, c, n in draws))


def _scenario(task: tuple[str, float, float, int, int]) -> tuple[str, dict, bool]:
    """One scenario's runs, and whether the engine agrees on the first CROSS_CHECK streams."""
    name, theta, p_disc, runs, seed = task
    out = simulate(CONFIG, theta, p_disc, runs, seed)
    paths = Paths.draw(CONFIG, theta, p_disc, min(CROSS_CHECK, runs), seed)
    agree = all(
        drive_engine(CONFIG, paths, s)
        == (Verdict.PROMOTE if out["promoted"][s] else Verdict.ROLLBACK, int(out["pairs"][s]))
        for s in range(min(CROSS_CHECK, runs))
    )
    return name, out, agree


def main() -> None:
    os.nice(5)
    t0 = time.perf_counter()
    CONFIG.design  # noqa: B018 - planned once before forking
    tasks = [(f"fp_{p:.2f}", th, p, RUNS, 1000 + i) for i, (p, (th, p)) in
             enumerate(FALSE_PROMOTION.items())]  # fmt: skip
    tasks.append(("power", *POWER, RUNS, 2000))
    with ProcessPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
        results = {name: (out, agree) for name, out, agree in pool.map(_scenario, tasks)}
    total_nfix = 2 * montecarlo.reference_n_fix(P0, DELTA, CONFIG.alpha, CONFIG.power)
    power_out = results["power"][0]
    mc: dict = {}
    ratio, ratio_se = montecarlo.mean(power_out["pairs"], total_nfix)
    power, mc["power"] = montecarlo.share(power_out["promoted"])
    fp, mc["false_promotion_by_p_disc"] = {}, {}
    for p in FALSE_PROMOTION:
        fp[str(p)], mc["false_promotion_by_p_disc"][str(p)] = montecarlo.share(
            results[f"fp_{p:.2f}"][0]["promoted"]
        )
    mc["e_n_paired_over_unpaired_total_nfix"] = ratio_se
    meets = (
        ratio <= RATIO_GOAL
        and montecarlo.at_least(power, mc["power"], CONFIG.power)
        and all(
            montecarlo.at_most(fp[p], mc["false_promotion_by_p_disc"][p], CONFIG.alpha) for p in fp
        )
    )
    out = {
        "bench": "paired_gates",
        "e_n_paired_over_unpaired_total_nfix": ratio,
        "false_promotion_by_p_disc": fp,
        "power": power,
        "mc_error": mc,
        "meets_targets": meets,
        "e_pairs_at_decision_power": montecarlo.mean(power_out["pairs"])[0],
        "unpaired_total_nfix": total_nfix,
        "paired_fixed_sample_pairs": fixed_sample_drift(CONFIG.alpha, CONFIG.power) ** 2
        * POWER[1]
        / DELTA**2,
        "share_of_looks_on_exact_test": {
            name: float(out["exact_looks"].sum() / out["looks"].sum())
            for name, (out, _) in results.items()
        },
        "engine_cross_check_streams_per_scenario": min(CROSS_CHECK, RUNS),
        "engine_cross_check_agrees": all(agree for _, agree in results.values()),
        "runs_per_scenario": RUNS,
        "pairs_per_poke": CHUNK,
        "design": {"looks": CONFIG.looks, "alpha_gamma": CONFIG.alpha_gamma,
                   "beta_gamma": CONFIG.beta_gamma, "inflation": CONFIG.design.inflation},
        "seconds": round(time.perf_counter() - t0, 1),
    }  # fmt: skip
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
