"""SageMaker Data Capture: sampled request/response records written to S3 as JSON Lines.

Layout and record shape follow SageMaker so Model Monitor style consumers work unchanged::

    s3://{bucket}/{prefix}/{endpoint}/{variant}/{yyyy}/{mm}/{dd}/{hh}/{uuid}.jsonl

    {"captureData": {"endpointInput":  {"observedContentType": ..., "mode": "INPUT",
                                         "data": ..., "encoding": "CSV|JSON|BASE64"},
                     "endpointOutput": {... "mode": "OUTPUT" ...}},
     "eventMetadata": {"eventId": uuid, "inferenceId": <only when the caller sent one>,
                       "inferenceTime": "YYYY-MM-DDTHH:MM:SS.mmmZ"},
     "eventVersion": "0"}

As on AWS, only successful invocations are captured, ``InitialSamplingPercentage`` samples
requests, ``CaptureOptions`` selects Input and/or Output, and a body is written as text only
when its content type is listed in ``CaptureContentTypeHeader`` (otherwise BASE64).
Records are buffered and written by the background flusher, never on the request path.
"""

from __future__ import annotations

import base64
import json
import random
import threading
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from moto.s3.models import s3_backends

from local_sagemaker.errors import ACCOUNT_ID


@dataclass(frozen=True)
class CaptureConfig:
    """The parts of DataCaptureConfig the runtime needs, parsed once per routing table."""

    bucket: str
    prefix: str
    sampling: float
    capture_input: bool
    capture_output: bool
    csv_types: frozenset[str]
    json_types: frozenset[str]

    def sampled(self) -> bool:
        """Draw whether this request is captured."""
        return self.sampling >= 100.0 or random.random() * 100.0 < self.sampling

    def encoding(self, content_type: str) -> str:
        """CSV/JSON when the type is listed, else BASE64 (SageMaker's default)."""
        bare = content_type.split(";", 1)[0].strip().lower()
        if bare in self.csv_types:
            return "CSV"
        if bare in self.json_types:
            return "JSON"
        return "BASE64"


def capture_config(raw: dict[str, Any] | None, endpoint: str) -> CaptureConfig | None:
    """Parse a DataCaptureConfig; None when capture is off or the destination is unusable."""
    if not raw or not raw.get("EnableCapture", True):
        return None
    uri = str(raw.get("DestinationS3Uri", ""))
    if not uri.startswith("s3://"):
        return None
    bucket, _, prefix = uri[len("s3://") :].partition("/")
    modes = {str(o.get("CaptureMode", "")).lower() for o in raw.get("CaptureOptions") or []}
    headers = raw.get("CaptureContentTypeHeader") or {}
    return CaptureConfig(
        bucket=bucket,
        prefix=prefix.strip("/"),
        sampling=float(raw.get("InitialSamplingPercentage", 100)),
        capture_input="input" in modes or not modes,
        capture_output="output" in modes or not modes,
        csv_types=frozenset(t.lower() for t in headers.get("CsvContentTypes") or []),
        json_types=frozenset(t.lower() for t in headers.get("JsonContentTypes") or []),
    )


def _section(config: CaptureConfig, mode: str, content_type: str, body: bytes) -> dict:
    encoding = config.encoding(content_type)
    if encoding == "BASE64":
        data = base64.b64encode(body).decode()
    else:
        data = body.decode("utf-8", errors="replace")
    return {"observedContentType": content_type, "mode": mode, "data": data, "encoding": encoding}


def build_record(
    config: CaptureConfig,
    request: tuple[str, bytes],
    response: tuple[str, bytes],
    inference_id: str | None,
    when: datetime,
) -> dict[str, Any]:
    """One capture record in SageMaker's shape."""
    capture: dict[str, Any] = {}
    if config.capture_input:
        capture["endpointInput"] = _section(config, "INPUT", *request)
    if config.capture_output:
        capture["endpointOutput"] = _section(config, "OUTPUT", *response)
    metadata = {"eventId": str(uuid.uuid4())}
    if inference_id:
        metadata["inferenceId"] = inference_id
    metadata["inferenceTime"] = (
        when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"
    )
    return {"captureData": capture, "eventMetadata": metadata, "eventVersion": "0"}


class CaptureWriter:
    """Buffers capture events per S3 file and writes them from the flusher thread."""

    def __init__(self, account_id: str = ACCOUNT_ID) -> None:
        self._account_id = account_id
        self._pending: deque[tuple] = deque()  # appended lock-free on the request path
        self._lock = threading.Lock()
        self.errors: list[str] = []

    def add(
        self,
        config: CaptureConfig,
        endpoint: str,
        variant: str,
        request: tuple[str, bytes],
        response: tuple[str, bytes],
        inference_id: str | None,
    ) -> None:
        """Queue one event; the record is built at flush time to keep the request path short."""
        event = (config, endpoint, variant, request, response, inference_id, datetime.now(UTC))
        self._pending.append(event)  # deque.append is atomic: no lock for the request to wait on

    def flush(self) -> int:
        """Write every queued record, one object per (destination, variant, hour); returns count."""
        with self._lock:  # one drainer at a time; requests keep appending meanwhile
            queue, pending = self._pending, []
            while queue:
                pending.append(queue.popleft())
        files: dict[tuple[str, str], list[str]] = {}
        for config, endpoint, variant, request, response, inference_id, when in pending:
            record = build_record(config, request, response, inference_id, when)
            parts = [config.prefix, endpoint, variant, when.strftime("%Y/%m/%d/%H")]
            folder = "/".join(p for p in parts if p)
            files.setdefault((config.bucket, folder), []).append(json.dumps(record))
        for (bucket, folder), lines in files.items():
            self._write(bucket, f"{folder}/{uuid.uuid4()}.jsonl", "\n".join(lines) + "\n")
        return len(pending)

    def _write(self, bucket: str, key: str, text: str) -> None:
        try:
            s3_backends[self._account_id]["global"].put_object(bucket, key, text.encode())
        except Exception as exc:  # a missing bucket must not kill the flusher
            self.errors.append(f"data capture to s3://{bucket}/{key} failed: {exc}")
