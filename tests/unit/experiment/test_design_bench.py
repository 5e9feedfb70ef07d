"""The gate bench's vectorised path computes what the engine computes.

Why: bench/bench_gates.py measures the design's operating characteristics on 10^5 streams per
scenario without calling the engine; its figures are the engine's only if its statistic, look
schedule and verdicts are the engine's.
"""

from __future__ import annotations

import numpy as np
import pytest

from bench import bench_gates
from canary.experiment.gates import Verdict
from canary.experiment.gates.noninferiority import primary_statistic
from canary.experiment.gates.sizing import exact_plan


@pytest.mark.parametrize("p", [0.7, 0.97])
def test_vectorised_score_z_is_the_engines_statistic(p: float) -> None:
    rng = np.random.default_rng(13)
    n = rng.integers(30, 3000, 200)
    k0, k1 = rng.binomial(n, p), rng.binomial(n, p - 0.01)
    k0[:4], k1[:4] = n[:4] * [0, 0, 1, 1], n[:4] * [0, 1, 0, 1]  # 0 and 100 % correct
    z = bench_gates.score_z(k1, k0, n, 0.02)
    with np.errstate(divide="ignore", invalid="ignore"):
        engine = [
            primary_statistic(bench_gates._evidence(int(m), int(a), int(b)), 0.02, 0.05).z
            for m, a, b in zip(n, k0, k1, strict=True)
        ]
    assert np.isfinite(z).all()
    assert z.tolist() == pytest.approx(engine, rel=1e-12)


@pytest.mark.parametrize(
    ("case", "early", "scenario"),
    [((0.9, 0.02), False, 1), ((0.9, 0.02), True, 1), ((0.97, 0.02), False, 0)],
    ids=["z", "z-early", "exact"],
)
def test_vectorised_verdicts_are_the_engines_on_the_same_streams(
    case: tuple[float, float], early: bool, scenario: int
) -> None:
    """Same draws, same verdict and the same N: schedule, boundaries and first crossing agree,
    also when the traffic is spent early and the last look comes at the early poke; and for
    the exact test, the policy read at each poke is the engine's walk."""
    index = bench_gates.CASES.index(case)
    config = bench_gates.gate_config(index)
    assert (exact_plan(config) is not None) is (case == (0.97, 0.02))
    sched = bench_gates.schedule(config, bench_gates.early_poke(config) if early else None)
    k0, k1 = bench_gates.stream_block((index, scenario), 0, 6)
    promoted, n = bench_gates.verdicts(config, sched, k0, k1)
    for r in range(6):
        verdict, n_engine = bench_gates.engine_run(config, sched, k0[r], k1[r], early)
        expected = Verdict.PROMOTE if promoted[r] else Verdict.ROLLBACK
        assert (verdict, n_engine) == (expected, n[r])
