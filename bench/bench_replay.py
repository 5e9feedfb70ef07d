"""Replay throughput vs a hand-written invoke loop, and bandit regret vs a fixed 50/50 split.

Throughput: the real local stack (a subprocess), two XGBoost variants trained on the churn demo
data, one 50/50 endpoint. The baseline is the loop people write by hand from SageMaker's A/B
example, ``for row in f: invoke_endpoint(...)``, without its ``time.sleep(0.5)``; ours is
``ReplaySession.run_chunk`` over the same rows. Both run in the same process against the same warm
endpoint, interleaved over ``ROUNDS`` rounds so that machine load drifts hit both alike; figures
are total requests / total seconds per method.

Regret: Bernoulli arms 0.85 vs 0.88, 10 000 requests per run, pseudo-regret (expected reward
given up) averaged over ``SEEDS`` independent seeds; the ratio's Monte Carlo standard error comes
from the delta method on the two independent means.

Prints exactly one JSON line.
"""

from __future__ import annotations

import json
import logging
import math
import multiprocessing as mp
import os
import time
import uuid

import numpy as np

from canary.plan import AllocationStrategy

ROWS = 600
ROUNDS = 2
CONCURRENCY = 8
SEEDS = int(os.environ.get("BENCH_REPLAY_SEEDS", "16"))
STEPS = 10_000
MEANS = {"Champion": 0.85, "Challenger": 0.88}
WARMUP = 100
STRATEGIES = {
    "thompson": (AllocationStrategy.THOMPSON, {}),
    "ucb1": (AllocationStrategy.UCB1, {}),
    "egreedy": (AllocationStrategy.EPSILON_GREEDY, {"epsilon": 0.1}),
}
ROLE = "arn:aws:iam::123456789012:role/bench-replay"


def _models():
    """Champion (shallow, few rounds) and challenger (deeper) on the churn demo split."""
    import xgboost as xgb

    from canary.models.churn import FEATURES, LABEL, generate, split

    train, _, test = split(generate(4 * ROWS, seed=1), seed=1, test_fraction=0.25)
    dtrain = xgb.DMatrix(train[FEATURES].to_numpy(), label=train[LABEL].to_numpy())
    boosters = {}
    for name, depth, rounds in (("Champion", 2, 5), ("Challenger", 5, 40)):
        params = {"objective": "binary:logistic", "max_depth": depth, "nthread": 1}
        boosters[name] = xgb.train(params, dtrain, num_boost_round=rounds)
    return boosters, test[[*FEATURES, LABEL]].head(ROWS).reset_index(drop=True)


def _deploy(stack, boosters) -> str:
    from sagemaker.core import image_uris  # ~8 s import: only when the bench runs

    from canary.models.training import xgboost_tarball

    image = image_uris.retrieve("xgboost", region="us-east-1", version="1.7-1")
    s3, sm = stack.client("s3"), stack.client("sagemaker")
    bucket = f"bench-replay-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    variants = []
    for name, booster in boosters.items():
        key = f"models/{name}/model.tar.gz"
        s3.put_object(Bucket=bucket, Key=key, Body=xgboost_tarball(booster))
        model = f"bench-{name.lower()}-{uuid.uuid4().hex[:6]}"
        container = {"Image": image, "ModelDataUrl": f"s3://{bucket}/{key}"}
        sm.create_model(ModelName=model, ExecutionRoleArn=ROLE, PrimaryContainer=container)
        variants.append(
            {
                "VariantName": name,
                "ModelName": model,
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
                "InitialVariantWeight": 1.0,
            }
        )
    endpoint = f"bench-replay-{uuid.uuid4().hex[:6]}"
    sm.create_endpoint_config(EndpointConfigName=endpoint, ProductionVariants=variants)
    sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=endpoint)
    sm.get_waiter("endpoint_in_service").wait(
        EndpointName=endpoint, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )
    return endpoint


def _seed_loop(runtime, endpoint: str, payloads: list[str]) -> int:
    """The hand-written loop, minus its ``time.sleep(0.5)``."""
    for row in payloads:
        runtime.invoke_endpoint(EndpointName=endpoint, ContentType="text/csv", Body=row)
    return len(payloads)


def bench_throughput() -> dict[str, float]:
    from canary.replay import ReplayConfig, ReplayDataset, ReplaySession, runtime_config
    from local_sagemaker.stack import EmbeddedStack

    boosters, rows = _models()
    dataset = ReplayDataset(rows, "churn")
    with EmbeddedStack() as stack:
        endpoint = _deploy(stack, boosters)
        runtime = stack.client("sagemaker-runtime", config=runtime_config(CONCURRENCY))
        for variant in boosters:  # load both models before any clock starts
            runtime.invoke_endpoint(
                EndpointName=endpoint,
                ContentType="text/csv",
                Body=dataset.payloads[0],
                TargetVariant=variant,
            )
        seed_s = replay_s = 0.0
        seed_n = replay_n = errors = 0
        for r in range(ROUNDS):
            began = time.perf_counter()
            seed_n += _seed_loop(runtime, endpoint, dataset.payloads)
            seed_s += time.perf_counter() - began
            config = ReplayConfig(
                endpoint,
                f"bench{r}",
                {"Champion": 0.5, "Challenger": 0.5},
                run_id="bench",
                concurrency=CONCURRENCY,
            )
            session = ReplaySession(runtime, dataset, config, progress=False)
            began = time.perf_counter()
            chunk = session.run_chunk(len(dataset))
            replay_s += time.perf_counter() - began
            replay_n += chunk.stats.requests
            errors += chunk.stats.requests - chunk.stats.ok
    rps, rps_seed = replay_n / replay_s, seed_n / seed_s
    return {
        "throughput_ratio_vs_seed_loop": round(rps / rps_seed, 3),
        "rps": round(rps, 1),
        "rps_seed_loop": round(rps_seed, 1),
        "replay_errors": errors,
    }


def bench_regret() -> tuple[dict[str, float], dict[str, object]]:
    from bench.simulation import run_seed

    tasks = {"fixed": [(AllocationStrategy.WEIGHTED, {}, MEANS, STEPS, s, 0) for s in range(SEEDS)]}
    for key, (name, params) in STRATEGIES.items():
        tasks[key] = [(name, params, MEANS, STEPS, s, WARMUP) for s in range(SEEDS)]
    flat = [t for group in tasks.values() for t in group]
    with mp.get_context("fork").Pool(min(2, os.cpu_count() or 1)) as pool:
        values = pool.map(run_seed, flat, chunksize=1)
    regrets, i = {}, 0
    for key, group in tasks.items():
        regrets[key] = np.array(values[i : i + len(group)])
        i += len(group)
    fixed = regrets["fixed"]
    f_mean, f_se = fixed.mean(), fixed.std(ddof=1) / math.sqrt(SEEDS)
    figures: dict[str, float] = {}
    mc: dict[str, object] = {
        "seeds": SEEDS,
        "steps": STEPS,
        "means": MEANS,
        "warmup": WARMUP,
        "regret_fixed": round(float(f_mean), 2),
        "regret_fixed_se": round(float(f_se), 2),
        "regret_fixed_expected": round(
            STEPS * 0.5 * abs(MEANS["Challenger"] - MEANS["Champion"]), 2
        ),
    }
    for key in STRATEGIES:
        r = regrets[key]
        mean, se = r.mean(), r.std(ddof=1) / math.sqrt(SEEDS)
        ratio = mean / f_mean
        ratio_se = ratio * math.hypot(se / mean, f_se / f_mean)
        figures[f"regret_ratio_{key}_vs_fixed"] = round(float(ratio), 4)
        mc[f"regret_ratio_{key}_vs_fixed"] = round(float(ratio_se), 4)
        mc[f"regret_{key}"] = round(float(mean), 2)
    return figures, mc


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    regret, mc = bench_regret()  # before the stack starts: fork without live threads
    out = {"bench": "replay", **bench_throughput(), **regret, "mc_error": mc}
    out["load_avg_1m"] = round(os.getloadavg()[0], 2)  # context: shared machines skew rps
    print(json.dumps(out))


if __name__ == "__main__":
    main()
