"""Every InvokeEndpoint error shape, as botocore parses it, and how each is counted."""

from __future__ import annotations

import http.client
import socket

import pytest
from botocore.exceptions import ClientError

from canary.models.training import sklearn_tarball, xgboost_tarball
from tests.integration.deployed import IMAGE, model


@pytest.fixture
def endpoint(deployer, boosters):
    model = deployer.model(deployer.upload(xgboost_tarball(boosters["champion"])))
    broken = deployer.model(f"s3://{deployer.bucket}/missing/model.tar.gz")
    corrupt = deployer.model(deployer.upload(b"this is not a tarball"))
    config = deployer.config(
        {"Good": (model, 1.0), "Missing": (broken, 0.0), "Corrupt": (corrupt, 0.0)}
    )
    return deployer.endpoint(config)


def _error(deployer, endpoint: str, body: str, **kwargs) -> dict:
    with pytest.raises(ClientError) as caught:
        deployer.invoke(endpoint, body, **kwargs)
    return caught.value.response


def test_unknown_endpoint_and_variant_are_validation_errors(deployer, endpoint):
    response = _error(deployer, "no-such-endpoint", "1,2,3,4")
    assert response["Error"]["Code"] == "ValidationError"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "no-such-endpoint" in response["Error"]["Message"]
    response = _error(deployer, endpoint, "1,2,3,4", TargetVariant="Nope")
    assert response["Error"]["Code"] == "ValidationError"
    assert "Nope" in response["Error"]["Message"]


@pytest.mark.parametrize(
    ("body", "kwargs", "status", "reason"),
    [
        ("1,2,x,4", {}, 400, "'x' is not a number"),
        ("1,2", {}, 400, "feature count mismatch: got 2 columns"),
        ("1,2,3,4\n1,2,3", {}, 400, "row 2 has 3 columns"),
        ("", {}, 400, "no rows"),
        ('{"instances": [[1,2', {"ContentType": "application/json"}, 400, "malformed"),
        ('{"rows": 1}', {"ContentType": "application/json"}, 400, '{"instances"'),
        ("1,2,3,4", {"ContentType": "image/png"}, 415, "image/png"),
        ("1,2,3,4", {"Accept": "application/xml"}, 406, "application/xml"),
    ],
)
def test_payload_the_model_rejects_is_a_model_error(
    deployer, endpoint, body, kwargs, status, reason
):
    response = _error(deployer, endpoint, body, TargetVariant="Good", **kwargs)
    assert response["Error"]["Code"] == "ModelError"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert response["OriginalStatusCode"] == status
    assert reason in response["OriginalMessage"]
    assert reason in response["Error"]["Message"]


def test_model_errors_count_as_4xx(deployer, endpoint):
    for _ in range(3):
        _error(deployer, endpoint, "1,2", TargetVariant="Good")
    deployer.invoke(endpoint, "1,2,3,4")
    assert deployer.metric(endpoint, "Good", "Invocations") == 4
    assert deployer.metric(endpoint, "Good", "Invocation4XXErrors") == 3
    assert deployer.metric(endpoint, "Good", "Invocation5XXErrors") == 0


def test_broken_artifacts_fail_5xx_and_the_good_variant_keeps_serving(deployer, endpoint):
    missing = _error(deployer, endpoint, "1,2,3,4", TargetVariant="Missing")
    assert missing["Error"]["Code"] == "InternalFailure"
    assert missing["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert "missing/model.tar.gz" in missing["Error"]["Message"]
    corrupt = _error(deployer, endpoint, "1,2,3,4", TargetVariant="Corrupt")
    assert corrupt["Error"]["Code"] == "InternalFailure"
    assert "not a readable tar.gz" in corrupt["Error"]["Message"]
    assert deployer.invoke(endpoint, "1,2,3,4")[0] == "Good"
    assert deployer.metric(endpoint, "Missing", "Invocation5XXErrors") == 1
    assert deployer.metric(endpoint, "Corrupt", "Invocation5XXErrors") == 1
    assert deployer.metric(endpoint, "Good", "Invocation5XXErrors") == 0


def _raw(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def test_server_survives_garbage(local_stack, deployer, endpoint):
    port = local_stack.port
    _raw(port, b"\x00\xff garbage \r\n\r\n")
    _raw(port, b"POST /endpoints/x/invocations HTTP/1.1\r\nContent-Length: 99999\r\n\r\nshort")
    _raw(port, b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", f"/endpoints/{endpoint}/invocations", body=bytes(range(256)))
    garbage = conn.getresponse()
    assert garbage.status == 424
    assert b"ModelError" in garbage.read()
    assert deployer.invoke(endpoint, "1,2,3,4")[0] == "Good"


def test_a_model_that_crashes_on_a_request_is_a_model_error_counted_as_5xx(deployer):
    """The container failed on the request (here a scikit-learn model whose coefficients are
    gone raises AttributeError): SageMaker answers ModelError with the container's 500, and
    CloudWatch counts it as 5XX. A shadow that crashes is counted the same way, so the
    rollout's 5XX guardrail sees it."""
    crashing = model(0)
    crashing.coef_ = None
    url = deployer.upload(sklearn_tarball(crashing))
    endpoint = deployer.endpoint(deployer.config({"Crashing": (deployer.model(url, IMAGE), 1.0)}))
    response = _error(deployer, endpoint, "1,2,3")
    assert response["Error"]["Code"] == "ModelError"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert response["OriginalStatusCode"] == 500
    assert response["OriginalMessage"].startswith("AttributeError: ")
    assert "Received server error (500)" in response["Error"]["Message"]
    assert deployer.metric(endpoint, "Crashing", "Invocation5XXErrors") == 1
    assert deployer.metric(endpoint, "Crashing", "Invocation4XXErrors") == 0
