"""Replay against the real local stack: real models, real HTTP, real S3, injected faults."""

from __future__ import annotations

import json
import uuid

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from scipy import stats

from canary.experiment.allocation import Allocator, WeightedSampling
from canary.replay import (
    RESULT_COLUMNS,
    ReplayConfig,
    ReplayDataset,
    ReplaySession,
    RetryPolicy,
    S3Location,
    load_results,
    merge_results,
    merge_states,
    runtime_config,
    shard_configs,
    split_requests,
)

HALF = {"Champion": 0.5, "Challenger": 0.5}
QUICK_RETRIES = RetryPolicy(max_attempts=3, base_s=0.001, cap_s=0.01)


def targeted(endpoint: str, stage: str, run_id: str) -> ReplayConfig:
    """Half the users to each variant by ``TargetVariant``, failures retried quickly."""
    return ReplayConfig(
        endpoint, stage, HALF, run_id=run_id, mode="target_variant", retry=QUICK_RETRIES
    )


def _location(env) -> S3Location:
    return S3Location(env.bucket, f"runs/{uuid.uuid4().hex[:8]}")


def _ground_truth(env, location: S3Location) -> dict[str, dict]:
    keys = env.s3.list_objects_v2(Bucket=env.bucket, Prefix=f"{location.root}/ground-truth/")
    records = {}
    for obj in keys.get("Contents", []):
        body = env.s3.get_object(Bucket=env.bucket, Key=obj["Key"])["Body"].read().decode()
        for line in body.splitlines():
            record = json.loads(line)
            records[record["eventMetadata"]["eventId"]] = record
    return records


def test_endpoint_weights_mode_real_scores_results_and_ground_truth(
    replay_env, ab_endpoint, replay_frame
) -> None:
    location = _location(replay_env)
    dataset = ReplayDataset(replay_frame, "label")
    config = ReplayConfig(ab_endpoint, "s1", HALF, run_id="ew")
    session = ReplaySession(
        replay_env.runtime, dataset, config, s3=replay_env.s3, location=location
    )
    chunk = session.run_chunk(len(replay_frame))
    frame = chunk.frame

    assert list(frame.columns) == list(RESULT_COLUMNS)
    assert (frame.status == 200).all() and chunk.stats.ok == len(replay_frame)
    assert frame.inference_id.is_unique
    assert frame.target_variant.isna().all()  # the endpoint routed
    assert (frame.propensity == 0.5).all()
    # the endpoint's 50/50 routing, as reported by InvokedProductionVariant
    counts = frame.variant.value_counts()
    assert stats.binomtest(int(counts["Challenger"]), len(frame), 0.5).pvalue > 1e-4
    # scores are the real models' predictions for exactly the payload's row
    x = xgb.DMatrix(replay_frame.drop(columns="label").to_numpy())
    for variant, name in (("Champion", "champion"), ("Challenger", "challenger")):
        rows = frame.index[frame.variant == variant]
        expected = replay_env.boosters[name].predict(x)[rows]
        np.testing.assert_allclose(frame.score[rows], expected, rtol=1e-5)
    assert frame.label.tolist() == replay_frame.label.tolist()
    right = (frame.score >= 0.5).astype(int) == frame.label
    assert frame.reward.tolist() == right.astype(float).tolist()

    loaded = load_results(replay_env.s3, location)
    pd.testing.assert_frame_equal(loaded, frame, check_dtype=False)
    truth = _ground_truth(replay_env, location)
    assert set(truth) == set(frame.inference_id)
    first = truth[frame.inference_id[0]]
    assert first == {
        "groundTruthData": {"data": str(replay_frame.label[0]), "encoding": "CSV"},
        "eventMetadata": {"eventId": frame.inference_id[0]},
        "eventVersion": "0",
    }


def test_target_variant_chunks_resume_from_s3_state_with_sticky_users(
    replay_env, ab_endpoint, replay_frame
) -> None:
    """Three chunks across three session objects (as across Airflow task runs) = one run."""
    location = _location(replay_env)
    dataset = ReplayDataset(replay_frame.head(40), "label", rows_per_user=2)  # 20 users
    config = ReplayConfig(
        ab_endpoint,
        "s2",
        HALF,
        run_id="tv",
        mode="target_variant",
        strategy="thompson",
        warmup=5,
        seed=3,
        concurrency=4,
    )
    parts = []
    for _ in range(3):
        session = ReplaySession.open(
            replay_env.runtime, dataset, config, s3=replay_env.s3, location=location
        )
        parts.append(session.run_chunk(30).frame)
    frame = pd.concat(parts, ignore_index=True)

    assert session.cursor == 90
    seqs = frame.inference_id.str.rsplit("-", n=1).str[1].astype(int)
    assert seqs.tolist() == list(range(90))  # no gaps or repeats across sessions
    assert (frame.variant == frame.target_variant).all()  # TargetVariant honoured
    # users come back (40 rows cycle) and keep their variant and its propensity
    per_user = frame.groupby("user_id").agg(v=("variant", "nunique"), p=("propensity", "nunique"))
    assert (per_user.v == 1).all() and (per_user.p == 1).all()
    assert frame.user_id.value_counts().max() > 2
    assert frame.propensity.between(0.01, 1).all()
    # the bandit learned from every reward of every chunk
    pulls = session.allocator.stats.pulls
    assert sum(pulls.values()) == 90
    assert len(load_results(replay_env.s3, location, stage="s2")) == 90


def test_each_stage_replays_rows_no_earlier_stage_of_the_run_did(
    replay_env, ab_endpoint, replay_frame
) -> None:
    """A stage begins where the run's earlier stages stopped, so a later stage never judges the
    challenger on rows an earlier one judged; its first row is saved, so the stage's next task
    run goes on from it."""
    location = _location(replay_env)
    dataset = ReplayDataset(replay_frame.head(100), "label")  # a user per row

    def chunk(stage: str, n: int) -> tuple[pd.DataFrame, ReplaySession]:
        config = ReplayConfig(ab_endpoint, stage, HALF, run_id="starts")
        session = ReplaySession.open(
            replay_env.runtime, dataset, config, s3=replay_env.s3, location=location
        )
        return session.run_chunk(n).frame, session

    first, _ = chunk("stage_1", 30)
    second, _ = chunk("stage_2", 20)
    more, session = chunk("stage_2", 20)  # the stage's next task run, from the saved state

    def users(rows: range) -> list[str]:
        return [dataset.request(i, session.rows).user_id for i in rows]

    assert first.user_id.tolist() == users(range(30))
    assert pd.concat([second, more]).user_id.tolist() == users(range(30, 70))
    assert session.state_dict()["starts"] == {"stage_1": 0, "stage_2": 30}

    # a state saved before starts were: a stage already begun keeps row 0, as it began
    key = location.state_key(0, 1)
    state = json.loads(replay_env.s3.get_object(Bucket=location.bucket, Key=key)["Body"].read())
    del state["starts"]
    replay_env.s3.put_object(Bucket=location.bucket, Key=key, Body=json.dumps(state))
    _, resumed = chunk("stage_2", 10)
    assert resumed.state_dict()["starts"] == {"stage_2": 0}


def test_replay_until_stops_when_the_caller_says(
    replay_env, ab_endpoint, replay_frame, caplog
) -> None:
    dataset = ReplayDataset(replay_frame, "label")
    config = ReplayConfig(ab_endpoint, "s3", HALF, run_id="until", log_every_s=0.0)
    session = ReplaySession(replay_env.runtime, dataset, config, progress=False)
    caplog.set_level("INFO", logger="canary.replay.session")

    def enough(results: pd.DataFrame) -> bool:
        return bool(results.variant.value_counts().min() >= 30)

    results, total = session.replay_until(enough, chunk_size=25, max_requests=500)
    assert enough(results) and not enough(results.iloc[:-25])
    assert len(results) % 25 == 0 and total.requests == len(results)
    # off a terminal, progress goes to logging (what Airflow task logs capture)
    messages = [r.getMessage() for r in caplog.records]
    assert any("/25 sent, 4XX 0, 5XX 0, retries 0" in m for m in messages)
    assert sum("chunk @" in m for m in messages) == len(results) // 25
    capped, _ = ReplaySession(replay_env.runtime, dataset, config).replay_until(
        lambda _: False, chunk_size=40, max_requests=50
    )
    assert len(capped) == 50


def test_faults_are_counted_exactly_and_match_cloudwatch(replay_env, replay_frame) -> None:
    """Challenger fails every request with a 500 InternalFailure (a variant that cannot serve:
    here an unusable fault setting; retried); malformed rows get 424 ModelError (4XX).

    Assignments are the weighted hash, so which request goes where is known before sending.
    """
    endpoint = replay_env.endpoint(
        {"Champion": 1.0, "Challenger": 1.0},
        envs={"Challenger": {"LOCAL_SAGEMAKER_LATENCY_MS": "-5"}},
    )
    frame = replay_frame.head(60).astype({"f1": object})
    bad_rows = [3, 17, 18, 42, 55]
    frame.loc[bad_rows, "f1"] = "not-a-number"
    dataset = ReplayDataset(frame, "label")
    config = targeted(endpoint, "faults", "flt")
    chunk = ReplaySession(replay_env.runtime, dataset, config).run_chunk(60)

    hashed = Allocator(WeightedSampling(), salt="flt")
    target = [hashed.assign(f"user-{i:06d}", "faults", HALF).variant for i in range(60)]
    n_challenger = target.count("Challenger")
    n_bad_champion = sum(target[i] == "Champion" for i in bad_rows)
    assert 0 < n_bad_champion < len(bad_rows)  # both error kinds really occur
    s, f = chunk.stats, chunk.frame
    assert s.server_errors == n_challenger
    assert s.client_errors == n_bad_champion
    assert s.ok == 60 - n_challenger - n_bad_champion
    assert s.retries == 2 * n_challenger  # 5XX retried to max_attempts; 424 never retried
    assert set(f.error_code[f.status == 500]) == {"InternalFailure"}
    # a ModelError's row holds the container's status, as CloudWatch counts it (here 400)
    assert set(f.error_code[f.status == 400]) == {"ModelError"}
    assert (f.reward[f.status != 200] == 0.0).all()  # failures penalise the variant
    # the runtime saw every attempt: CloudWatch agrees with our count of attempts
    assert replay_env.metric(endpoint, "Challenger", "Invocation5XXErrors") == 3 * n_challenger
    assert replay_env.metric(endpoint, "Champion", "Invocation4XXErrors") == n_bad_champion


def test_a_model_failing_on_requests_counts_as_5xx_and_is_never_retried(
    replay_env, replay_frame
) -> None:
    """A model that fails on a request answers a final 424 ModelError carrying its 500: the
    replay records the container's status (a 5XX, as CloudWatch counts it) and sends it once,
    so the challenger's request count is not inflated by retries."""
    endpoint = replay_env.endpoint(
        {"Champion": 1.0, "Challenger": 1.0},
        envs={"Challenger": {"LOCAL_SAGEMAKER_ERROR_RATE": "1.0"}},
    )
    config = targeted(endpoint, "model-fails", "mdl")
    dataset = ReplayDataset(replay_frame.head(40), "label")
    chunk = ReplaySession(replay_env.runtime, dataset, config).run_chunk(40)

    failed = chunk.frame[chunk.frame.variant == "Challenger"]
    assert len(failed) > 0 and (failed.status == 500).all()
    assert set(failed.error_code) == {"ModelError"}
    assert chunk.stats.server_errors == len(failed) and chunk.stats.retries == 0
    assert replay_env.metric(endpoint, "Challenger", "Invocation5XXErrors") == len(failed)


def test_refused_connections_are_retried_counted_and_recorded(replay_env, replay_frame) -> None:
    """A dead endpoint URL (nothing listens) must not crash the replay or vanish from counts."""
    import boto3

    from local_sagemaker.stack import free_port

    env = replay_env.stack.env()
    dead = boto3.client(
        "sagemaker-runtime",
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        region_name=env["AWS_DEFAULT_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        config=runtime_config(8),
    )
    config = ReplayConfig(
        "nowhere", "dead", HALF, retry=RetryPolicy(max_attempts=2, base_s=0.0, cap_s=0.0)
    )
    chunk = ReplaySession(dead, ReplayDataset(replay_frame, "label"), config).run_chunk(4)
    assert chunk.stats.no_response == 4 and chunk.stats.retries == 4
    assert (chunk.frame.status == 0).all()
    assert chunk.frame.variant.isna().all() and chunk.frame.reward.isna().all()


def test_shards_are_disjoint_and_merge_to_the_unsharded_assignment(
    replay_env, ab_endpoint, replay_frame
) -> None:
    location = _location(replay_env)
    dataset = ReplayDataset(replay_frame.head(90), "label", rows_per_user=3)
    base = ReplayConfig(ab_endpoint, "s4", HALF, run_id="shd", mode="target_variant")
    budgets = split_requests(90, 3)
    frames, states = [], []
    for raw, budget in zip(shard_configs(base, 3), budgets, strict=True):
        config = ReplayConfig.from_dict(json.loads(json.dumps(raw)))  # as through XCom
        session = ReplaySession(
            replay_env.runtime, dataset, config, s3=replay_env.s3, location=location
        )
        frames.append(session.run_chunk(budget).frame)
        states.append(session.state_dict())
    merged = merge_results(frames)
    assert len(merged) == 90 and merged.inference_id.is_unique
    assert merged.user_id.nunique() == 30
    hashed = Allocator(WeightedSampling(), salt="shd")
    for user, variant in merged.groupby("user_id").variant.first().items():
        assert hashed.assign(user, "s4", HALF).variant == variant
    assert sum(merge_states(states).pulls.values()) == 90
    assert len(load_results(replay_env.s3, location)) == 90
    with pytest.raises(ValueError, match="inference_id: shards overlap"):
        merge_results([frames[0], frames[0]])


def test_bandit_allocation_is_written_back_as_endpoint_weights(replay_env, replay_frame) -> None:
    endpoint = replay_env.endpoint({"Champion": 1.0, "Challenger": 1.0})
    config = ReplayConfig(
        endpoint,
        "sync",
        HALF,
        run_id="sync",
        mode="target_variant",
        strategy="epsilon_greedy",
        strategy_params={"epsilon": 0.2},
        warmup=10,
        weight_sync_every=40,
        seed=1,
    )
    session = ReplaySession(
        replay_env.runtime, ReplayDataset(replay_frame, "label"), config, sagemaker=replay_env.sm
    )
    chunk = session.run_chunk(120)
    assert chunk.stats.weight_syncs == 3 and chunk.stats.weight_sync_failures == 0
    described = replay_env.sm.describe_endpoint(EndpointName=endpoint)["ProductionVariants"]
    weights = {v["VariantName"]: v["CurrentWeight"] for v in described}
    # the challenger is the better model here, so epsilon-greedy favours it: 0.9 / 0.1
    assert weights == pytest.approx({"Challenger": 0.9, "Champion": 0.1})
