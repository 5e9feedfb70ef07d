"""Replay results and ground truth on S3: the contract the gate engine reads.

Results: JSON lines, one object per request, exactly the columns of ``RESULT_COLUMNS``, under
``{prefix}/results/stage={stage}/shard={k}/chunk-{first_seq:08d}.jsonl``. The key depends only on
where the chunk starts, so a retried Airflow task overwrites its own earlier attempt instead of
duplicating it. ``status`` is what the endpoint counts the request by: the HTTP status, except
for a ModelError (HTTP 424, ``error_code`` "ModelError"), whose row holds the status the model
container returned, as CloudWatch counts it (400: the row was bad; 500: the model failed).

Ground truth: Model Monitor's merge format, one record per request keyed by inference id, under
``{ground_truth_prefix}/{yyyy}/{mm}/{dd}/{hh}/{run}-{stage}-{shard}-{first_seq}.jsonl`` so
Model Monitor (or our evaluation) joins labels with Data Capture records.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from canary.replay.dataset import label_text

RESULT_COLUMNS: tuple[str, ...] = (
    "stage",
    "user_id",
    "inference_id",
    "variant",
    "target_variant",
    "propensity",
    "score",
    "label",
    "reward",
    "latency_ms",
    "status",
    "error_code",
    "timestamp",
)
_DTYPES = {
    "stage": "string",
    "user_id": "string",
    "inference_id": "string",
    "variant": "string",
    "target_variant": "string",
    "propensity": "float64",
    "score": "float64",
    "reward": "float64",
    "latency_ms": "float64",
    "status": "int64",
    "error_code": "string",
}


def empty_results() -> pd.DataFrame:
    """A typed, empty results frame (what the loader returns when nothing was written yet)."""
    return typed_results(pd.DataFrame(columns=list(RESULT_COLUMNS)))


def typed_results(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns in contract order with stable dtypes; timestamps as UTC datetimes."""
    missing = [c for c in RESULT_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"results: missing columns {missing}")
    out = frame.loc[:, list(RESULT_COLUMNS)].astype(_DTYPES)
    out["timestamp"] = pd.to_datetime(out["timestamp"], utc=True, format="ISO8601")
    return out.reset_index(drop=True)


def _jsonable(value: Any) -> Any:
    if isinstance(value, pd.Timestamp):
        return value.isoformat(timespec="milliseconds")
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


def to_jsonl(rows: Iterable[Mapping[str, Any]]) -> bytes:
    """Rows as JSON lines with NaN written as null (valid JSON for every reader)."""
    lines = (json.dumps({k: _jsonable(r[k]) for k in RESULT_COLUMNS}) for r in rows)
    return ("\n".join(lines) + "\n").encode()


def ground_truth_jsonl(rows: Iterable[Mapping[str, Any]]) -> bytes:
    """Model Monitor's ground-truth records, keyed by the request's inference id."""
    lines = [
        json.dumps(
            {
                "groundTruthData": {"data": label_text(r["label"]), "encoding": "CSV"},
                "eventMetadata": {"eventId": r["inference_id"]},
                "eventVersion": "0",
            }
        )
        for r in rows
    ]
    return ("\n".join(lines) + "\n").encode()


@dataclass(frozen=True)
class S3Location:
    """Where one replay keeps results, ground truth and state."""

    bucket: str
    prefix: str
    ground_truth_prefix: str | None = None

    def __post_init__(self) -> None:
        if not self.bucket or "/" in self.bucket:
            raise ValueError(f"bucket: must be a bucket name without '/', got {self.bucket!r}")

    @property
    def root(self) -> str:
        return self.prefix.strip("/")

    def results_key(self, stage: str, shard: int, first_seq: int) -> str:
        return f"{self.root}/results/stage={stage}/shard={shard}/chunk-{first_seq:08d}.jsonl"

    def results_prefix(self, stage: str | None = None) -> str:
        base = f"{self.root}/results/"
        return base if stage is None else f"{base}stage={stage}/"

    def ground_truth_key(self, when: dt.datetime, name: str) -> str:
        base = (self.ground_truth_prefix or f"{self.root}/ground-truth").strip("/")
        return f"{base}/{when:%Y/%m/%d/%H}/{name}.jsonl"

    def state_key(self, shard: int, shard_count: int) -> str:
        return f"{self.root}/state/shard-{shard}-of-{shard_count}.json"


def load_results(s3: Any, location: S3Location, stage: str | None = None) -> pd.DataFrame:
    """Every results file under the location (optionally one stage) as one typed DataFrame."""
    frames = []
    paginator = s3.get_paginator("list_objects_v2")
    pages = paginator.paginate(Bucket=location.bucket, Prefix=location.results_prefix(stage))
    for page in pages:
        for obj in page.get("Contents", []):
            if obj["Key"].endswith(".jsonl"):
                body = s3.get_object(Bucket=location.bucket, Key=obj["Key"])["Body"].read()
                frames.append(pd.read_json(io.BytesIO(body), lines=True, dtype=False))
    if not frames:
        return empty_results()
    frame = pd.concat(frames, ignore_index=True)
    return typed_results(frame).sort_values("timestamp", kind="stable").reset_index(drop=True)
