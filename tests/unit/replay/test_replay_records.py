"""Pure parts of the replay: payloads, validation, parsing, records, rewards, sharding maths."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pandas as pd
import pytest

from canary.experiment.rewards import brier_reward, check_reward, correct_at
from canary.replay import (
    RESULT_COLUMNS,
    ReplayConfig,
    ReplayDataset,
    ReplayStats,
    RetryPolicy,
    S3Location,
    shard_configs,
    split_requests,
)
from canary.replay.invoke import parse_score
from canary.replay.records import ground_truth_jsonl, to_jsonl, typed_results

HALF = {"A": 0.5, "B": 0.5}


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {"b": [1.5, 2.25, 0.1], "label": [1, 0, 1], "a": [10, 20, 30], "c": [0.1 + 0.2, 1e-9, -3]}
    )


def test_payload_is_features_only_in_frame_order_without_header() -> None:
    ds = ReplayDataset(_frame(), "label")
    assert ds.features == ["b", "a", "c"]
    assert ds.payloads[0] == "1.5,10,0.30000000000000004"  # floats round-trip exactly
    assert ds.payloads[1] == "2.25,20,1e-09"
    assert ReplayDataset(_frame(), "label", features=["c", "a"]).payloads[2] == "-3.0,30"


def test_users_cycle_and_shards_own_disjoint_users() -> None:
    frame = pd.DataFrame({"x": range(10), "label": [0, 1] * 5})
    ds = ReplayDataset(frame, "label", rows_per_user=2)
    assert ds.n_users == 5
    rows0, rows1 = ds.shard_rows(0, 2), ds.shard_rows(1, 2)
    assert rows0.tolist() == [0, 1, 4, 5, 8, 9] and rows1.tolist() == [2, 3, 6, 7]
    users = [ds.request(seq, rows1).user_id for seq in range(6)]
    assert users == ["user-000001"] * 2 + ["user-000003"] * 2 + ["user-000001"] * 2
    with pytest.raises(ValueError, match="shard 5 without users"):
        ds.shard_rows(5, 6)


def test_dataset_errors_name_the_problem(tmp_path) -> None:
    with pytest.raises(ValueError, match="label: column 'churn' not in frame"):
        ReplayDataset(_frame(), "churn")
    with pytest.raises(ValueError, match=r"features: columns \['zz'\]"):
        ReplayDataset(_frame(), "label", features=["a", "zz"])
    with pytest.raises(ValueError, match="must not include the label"):
        ReplayDataset(_frame(), "label", features=["a", "label"])
    path = tmp_path / "user.csv"
    _frame().to_csv(path, index=False)
    assert (
        ReplayDataset.from_csv(path, "label").payloads == ReplayDataset(_frame(), "label").payloads
    )


def test_config_validation_and_json_round_trip() -> None:
    cfg = ReplayConfig("ep", "stage-2", {"A": 25, "B": 75}, mode="target_variant", strategy="ucb1")
    again = ReplayConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    shards = shard_configs(cfg, 3)
    assert [s["shard_index"] for s in shards] == [0, 1, 2] and {
        s["shard_count"] for s in shards
    } == {3}
    cases = [
        (dict(stage="50/50"), "stage: 1-32 characters"),
        (dict(weights={"A": -1}), r"weights\['A'\]"),
        (dict(mode="random"), "mode: must be one of"),
        (dict(strategy="ucb1"), "only 'weighted' applies"),
        (dict(concurrency=0), "concurrency"),
        (dict(shard_index=2, shard_count=2), "shard_index"),
        (dict(run_id="r" * 32, stage="s" * 32), "exceed SageMaker's 64"),
        (dict(error_reward=2.0), "error_reward"),
    ]
    for overrides, message in cases:
        kwargs = {"endpoint_name": "ep", "stage": "s", "weights": HALF, **overrides}
        with pytest.raises(ValueError, match=message):
            ReplayConfig(**kwargs)
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['colour'\]"):
        ReplayConfig.from_dict({**cfg.to_dict(), "colour": "red"})


@pytest.mark.parametrize(
    ("body", "score"),
    [
        ("0.73", 0.73),
        ("0.73\n", 0.73),
        ("0.2,0.8\n", 0.2),
        ('{"predictions": [{"score": 0.4}]}', 0.4),
        ("[0.9]", 0.9),
    ],
)
def test_parse_score(body: str, score: float) -> None:
    assert parse_score(body) == pytest.approx(score)


def test_parse_score_rejects_garbage() -> None:
    for body in ("", "oops", "{}"):
        with pytest.raises((ValueError, TypeError, KeyError, IndexError)):
            parse_score(body)


@pytest.mark.parametrize(
    "body", ["nan", "inf", "-inf", "1e400", '{"predictions": [{"score": NaN}]}', "[Infinity]"]
)
def test_a_score_that_is_not_finite_is_no_score(body: str) -> None:
    """An answer of "nan" or "inf" is as unusable as "oops": the replay records it as
    unparseable (and the gate judges it the worst outcome) rather than as a score."""
    with pytest.raises(ValueError, match="not a usable probability"):
        parse_score(body)


def test_backoff_is_capped_exponential_with_full_jitter() -> None:
    policy = RetryPolicy(max_attempts=5, base_s=0.1, cap_s=0.5)
    rng = random.Random(0)
    draws = {k: [policy.delay(k, rng) for _ in range(2_000)] for k in (1, 2, 3, 4)}
    for attempt, bound in ((1, 0.1), (2, 0.2), (3, 0.4), (4, 0.5)):
        assert min(draws[attempt]) >= 0 and max(draws[attempt]) <= bound
        assert np.mean(draws[attempt]) == pytest.approx(bound / 2, rel=0.1)
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)


def _row(**overrides) -> dict:
    row = {
        "stage": "s",
        "user_id": "user-000001",
        "inference_id": "r-s-0-00000001",
        "variant": "A",
        "target_variant": None,
        "propensity": 0.5,
        "score": float("nan"),
        "label": 1,
        "reward": float("nan"),
        "latency_ms": 3.5,
        "status": 424,
        "error_code": "ModelError",
        "timestamp": "2026-01-01T00:00:00.000+00:00",
    }
    return {**row, **overrides}


def test_results_jsonl_is_valid_json_with_nulls_and_exact_columns() -> None:
    line = to_jsonl([_row()]).decode().strip()
    parsed = json.loads(line)  # strict JSON: NaN must have become null
    assert list(parsed) == list(RESULT_COLUMNS)
    assert parsed["score"] is None and parsed["status"] == 424
    frame = typed_results(pd.DataFrame([_row()]))
    assert str(frame.timestamp.dtype).startswith("datetime64") and frame.status.dtype == "int64"


def test_ground_truth_is_model_monitor_format() -> None:
    lines = ground_truth_jsonl([_row(label=1.0), _row(label=0, inference_id="x")]).decode()
    first, second = (json.loads(x) for x in lines.splitlines())
    assert first == {
        "groundTruthData": {"data": "1", "encoding": "CSV"},
        "eventMetadata": {"eventId": "r-s-0-00000001"},
        "eventVersion": "0",
    }
    assert second["groundTruthData"]["data"] == "0"


def test_s3_layout() -> None:
    import datetime as dt

    loc = S3Location("bkt", "/runs/r1/")
    assert loc.results_key("s2", 1, 500) == "runs/r1/results/stage=s2/shard=1/chunk-00000500.jsonl"
    when = dt.datetime(2026, 3, 4, 5, tzinfo=dt.UTC)
    assert loc.ground_truth_key(when, "n") == "runs/r1/ground-truth/2026/03/04/05/n.jsonl"
    custom = S3Location("bkt", "runs/r1", ground_truth_prefix="gt/churn")
    assert custom.ground_truth_key(when, "n") == "gt/churn/2026/03/04/05/n.jsonl"
    with pytest.raises(ValueError, match="bucket"):
        S3Location("bkt/x", "p")


def test_rewards() -> None:
    reward = correct_at(0.5)
    assert [reward(0.7, 1), reward(0.7, "0"), reward(0.2, 0.0), reward(0.5, True)] == [1, 0, 1, 1]
    assert brier_reward(0.8, 1) == pytest.approx(0.96)
    with pytest.raises(ValueError, match="label: expected 0 or 1"):
        reward(0.3, "yes")
    with pytest.raises(ValueError, match="reward functions must return"):
        check_reward(1.5)
    assert math.isclose(check_reward(1), 1.0)


def test_split_requests_and_stats_merge() -> None:
    assert split_requests(10, 3) == [4, 3, 3] and sum(split_requests(7, 7)) == 7
    a, b = ReplayStats(), ReplayStats()
    a.count(200, "A", 0, 0, 0)
    b.count(503, "B", 3, 1, 2)
    b.count(424, "A", 0, 0, 0)
    total = a.merge(b)
    assert (total.requests, total.ok, total.server_errors, total.client_errors) == (3, 1, 1, 1)
    assert (total.retries, total.sdk_retries, total.throttles) == (3, 1, 2)
    assert total.by_variant == {"A": 2, "B": 1} and total.by_status == {
        "200": 1,
        "503": 1,
        "424": 1,
    }
    assert ReplayStats.from_dict(json.loads(json.dumps(total.to_dict()))) == total
