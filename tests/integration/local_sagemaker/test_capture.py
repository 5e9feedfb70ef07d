"""Data Capture: SageMaker's S3 layout and record shape, sampling and capture options."""

from __future__ import annotations

import json
import re

import pytest

from canary.models.training import xgboost_tarball

LAYOUT = re.compile(
    r"^(?P<prefix>.+)/(?P<endpoint>[^/]+)/(?P<variant>[^/]+)/"
    r"\d{4}/\d{2}/\d{2}/\d{2}/[0-9a-f-]{36}\.jsonl$"
)


def _capture(deployer, sampling: int = 100, modes=("Input", "Output")) -> dict:
    return {
        "EnableCapture": True,
        "InitialSamplingPercentage": sampling,
        "DestinationS3Uri": f"s3://{deployer.bucket}/datacapture",
        "CaptureOptions": [{"CaptureMode": m} for m in modes],
        "CaptureContentTypeHeader": {
            "CsvContentTypes": ["text/csv"],
            "JsonContentTypes": ["application/json"],
        },
    }


def _records(deployer, prefix: str = "datacapture/") -> list[tuple[str, dict]]:
    deployer.stack.flush()
    listed = deployer.s3.list_objects_v2(Bucket=deployer.bucket, Prefix=prefix)
    out = []
    for obj in listed.get("Contents", []):
        body = deployer.s3.get_object(Bucket=deployer.bucket, Key=obj["Key"])["Body"].read()
        out += [(obj["Key"], json.loads(line)) for line in body.decode().splitlines()]
    return out


@pytest.fixture
def model(deployer, boosters):
    return deployer.model(deployer.upload(xgboost_tarball(boosters["champion"])))


def test_records_follow_sagemaker_layout_and_shape(deployer, model):
    config = deployer.config(
        {"Variant1": (model, 1.0), "Variant2": (model, 1.0)}, capture=_capture(deployer)
    )
    endpoint = deployer.endpoint(config)
    summary = deployer.sm.describe_endpoint(EndpointName=endpoint)["DataCaptureConfig"]
    assert summary["EnableCapture"] is True
    assert summary["CurrentSamplingPercentage"] == 100
    served = {}
    for i in range(6):
        variant, body = deployer.invoke(endpoint, f"{i},1,2,3", InferenceId=f"inf-{i}")
        served[f"inf-{i}"] = (variant, f"{i},1,2,3", body.decode())
    variant, json_body = deployer.invoke(
        endpoint,
        '{"instances": [[1, 2, 3, 4]]}',
        ContentType="application/json",
        Accept="application/json",
    )
    records = _records(deployer)
    assert len(records) == 7
    event_ids = set()
    for key, record in records:
        match = LAYOUT.match(key)
        assert match and match["prefix"] == "datacapture" and match["endpoint"] == endpoint
        assert record["eventVersion"] == "0"
        meta = record["eventMetadata"]
        assert re.match(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$", meta["inferenceTime"])
        event_ids.add(meta["eventId"])
        data_in = record["captureData"]["endpointInput"]
        data_out = record["captureData"]["endpointOutput"]
        assert (data_in["mode"], data_out["mode"]) == ("INPUT", "OUTPUT")
        if "inferenceId" in meta:
            want_variant, want_in, want_out = served[meta["inferenceId"]]
            assert match["variant"] == want_variant
            assert data_in == {
                "observedContentType": "text/csv",
                "mode": "INPUT",
                "data": want_in,
                "encoding": "CSV",
            }
            assert data_out["data"] == want_out and data_out["encoding"] == "CSV"
        else:
            assert match["variant"] == variant
            assert data_in["encoding"] == "JSON" and json.loads(data_in["data"])["instances"]
            assert data_out["data"] == json_body.decode()
    assert len(event_ids) == 7


def test_sampling_zero_and_input_only(deployer, model):
    off = deployer.endpoint(deployer.config({"V": (model, 1.0)}, capture=_capture(deployer, 0)))
    for _ in range(20):
        deployer.invoke(off, "1,2,3,4")
    assert _records(deployer) == []
    only_in = deployer.endpoint(
        deployer.config({"V": (model, 1.0)}, capture=_capture(deployer, 100, ("Input",)))
    )
    deployer.invoke(only_in, "1,2,3,4")
    records = _records(deployer)
    assert len(records) == 1
    assert set(records[0][1]["captureData"]) == {"endpointInput"}


def test_unlisted_content_type_is_base64_and_errors_are_not_captured(deployer, model):
    capture = _capture(deployer)
    del capture["CaptureContentTypeHeader"]
    endpoint = deployer.endpoint(deployer.config({"V": (model, 1.0)}, capture=capture))
    deployer.invoke(endpoint, "1,2,3,4")
    with pytest.raises(deployer.rt.exceptions.ModelError):
        deployer.invoke(endpoint, "1,2")
    records = _records(deployer)
    assert len(records) == 1
    data_in = records[0][1]["captureData"]["endpointInput"]
    assert data_in["encoding"] == "BASE64" and data_in["data"] == "MSwyLDMsNA=="
