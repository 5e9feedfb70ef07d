"""Telemetry against the real local stack: CloudWatch counts + Data Capture joined with labels."""

from __future__ import annotations

import io
import json
import tarfile
import uuid
from datetime import UTC, datetime, timedelta

import joblib
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from canary.experiment.gates import GateConfig, Verdict, evaluate
from canary.stage.telemetry import StageSource, collect_stage_evidence

IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
ROLE = "arn:aws:iam::123456789012:role/local-test"


def _artifact(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(200, 3))
    model = LogisticRegression().fit(x, (x[:, 0] > 0).astype(int))
    raw = io.BytesIO()
    joblib.dump(model, raw)
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        info = tarfile.TarInfo("model.joblib")
        info.size = len(raw.getvalue())
        tar.addfile(info, io.BytesIO(raw.getvalue()))
    return out.getvalue()


@pytest.fixture
def endpoint(local_stack):
    """A two-variant endpoint with Data Capture to a fresh bucket; deleted afterwards."""
    s3, sm = local_stack.client("s3"), local_stack.client("sagemaker")
    tag = uuid.uuid4().hex[:10]
    bucket = f"gates-{tag}"
    s3.create_bucket(Bucket=bucket)
    variants = []
    for i, name in enumerate(("Champion", "Challenger")):
        s3.put_object(Bucket=bucket, Key=f"m{i}/model.tar.gz", Body=_artifact(i))
        sm.create_model(ModelName=f"gm{i}-{tag}", ExecutionRoleArn=ROLE, PrimaryContainer={
            "Image": IMAGE, "ModelDataUrl": f"s3://{bucket}/m{i}/model.tar.gz"})  # fmt: skip
        variants.append({"VariantName": name, "ModelName": f"gm{i}-{tag}",
                         "InitialInstanceCount": 1, "InstanceType": "ml.m5.large",
                         "InitialVariantWeight": 1.0})  # fmt: skip
    capture = {"EnableCapture": True, "InitialSamplingPercentage": 100,
               "DestinationS3Uri": f"s3://{bucket}/capture",
               "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
               "CaptureContentTypeHeader": {"CsvContentTypes": ["text/csv"]}}  # fmt: skip
    sm.create_endpoint_config(EndpointConfigName=f"gc-{tag}", ProductionVariants=variants,
                              DataCaptureConfig=capture)  # fmt: skip
    sm.create_endpoint(EndpointName=f"ge-{tag}", EndpointConfigName=f"gc-{tag}")
    sm.get_waiter("endpoint_in_service").wait(
        EndpointName=f"ge-{tag}", WaiterConfig={"Delay": 1, "MaxAttempts": 30}
    )
    yield f"ge-{tag}", bucket
    sm.delete_endpoint(EndpointName=f"ge-{tag}")
    sm.delete_endpoint_config(EndpointConfigName=f"gc-{tag}")
    for i in range(2):
        sm.delete_model(ModelName=f"gm{i}-{tag}")


def test_collects_counts_and_joined_outcomes_from_the_local_stack(local_stack, endpoint) -> None:
    name, bucket = endpoint
    rt, s3 = local_stack.client("sagemaker-runtime"), local_stack.client("s3")
    started = datetime.now(UTC) - timedelta(seconds=1)
    rng = np.random.default_rng(11)
    truth, served = [], {"Champion": [0, 0], "Challenger": [0, 0]}  # [requests, labelled correct]
    for i in range(80):
        x = rng.normal(size=3)
        label = int(x[0] + rng.normal(scale=0.5) > 0)
        resp = rt.invoke_endpoint(EndpointName=name, ContentType="text/csv",
                                  Body=",".join(map(str, x)), InferenceId=f"id-{i}")  # fmt: skip
        score = float(resp["Body"].read().decode().strip())
        counts = served[resp["InvokedProductionVariant"]]
        counts[0] += 1
        if i % 10 == 0:
            continue  # this label never arrives: the request counts, but has no outcome
        counts[1] += int((score >= 0.5) == (label == 1))
        meta = {"eventId": f"id-{i}"}
        truth.append({"groundTruthData": {"data": str(label), "encoding": "CSV"},
                      "eventMetadata": meta, "eventVersion": "0"})  # fmt: skip
    s3.put_object(Bucket=bucket, Key="truth/2025/01/01/00/labels.jsonl",
                  Body="\n".join(json.dumps(t) for t in truth).encode())  # fmt: skip
    local_stack.flush()
    source = StageSource(name, ("Champion", "Challenger"), f"s3://{bucket}/capture",
                         f"s3://{bucket}/truth")  # fmt: skip
    config = GateConfig(margin=0.05, min_requests=10)
    ev = collect_stage_evidence(local_stack.client("cloudwatch"), s3, source, stage=0,
                                weights=(50, 50), started_at=started, config=config)  # fmt: skip
    assert ev.champion.requests == served["Champion"][0]
    assert ev.challenger.requests == served["Challenger"][0]
    assert ev.champion.requests + ev.challenger.requests == 80
    assert ev.champion.outcomes.n + ev.challenger.outcomes.n == len(truth)
    assert ev.champion.errors_5xx == ev.challenger.errors_5xx == 0
    assert ev.champion.latency is not None and ev.champion.latency.mean_ms > 0
    assert ev.champion.outcomes.total == served["Champion"][1]
    assert ev.challenger.outcomes.total == served["Challenger"][1]
    decision, _ = evaluate(ev, config)
    assert decision.verdict is not Verdict.HALT
    record = json.loads(json.dumps(decision.record))
    assert record["variants"]["Champion"]["requests"] == served["Champion"][0]


def test_bad_source_names_the_field() -> None:
    with pytest.raises(ValueError, match="capture_uri"):
        StageSource("e", ("a", "b"), "capture", "s3://b/t")
