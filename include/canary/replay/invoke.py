"""One InvokeEndpoint call with retries: what happened, counted, never hidden.

Why our own retry loop: the rollout judges variants by their error rates, so a retried 5XX must
be *seen* (counted) even when the retry succeeds. Throttling, 5XX and dropped connections are
retried with capped exponential backoff and full jitter (AWS's recommendation); 4XX such as a
424 ModelError (the model rejected this row) are final at once: the row is bad, not the service.
Retries botocore did by itself are read back from ``ResponseMetadata.RetryAttempts`` and counted
separately, so a client configured with SDK retries cannot hide failures either.
"""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

#: Error codes that mean "try again later", whatever their HTTP status.
RETRYABLE_CODES = frozenset(
    {"ThrottlingException", "Throttling", "ModelNotReadyException", "ServiceUnavailable"}
)
#: Status recorded when no HTTP response arrived at all (connection refused/reset, timeout).
NO_RESPONSE = 0


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff with full jitter."""

    max_attempts: int = 4
    base_s: float = 0.05
    cap_s: float = 2.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts: must be >= 1, got {self.max_attempts!r}")
        if self.base_s < 0 or self.cap_s < 0:
            raise ValueError("base_s/cap_s: backoff times must be >= 0")

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Sleep before retry number ``attempt`` (1-based)."""
        return rng.uniform(0, min(self.cap_s, self.base_s * 2 ** (attempt - 1)))


@dataclass(frozen=True)
class Outcome:
    """The final answer to one request plus everything it took to get there."""

    status: int
    error_code: str | None
    invoked_variant: str | None
    body: str | None
    latency_ms: float
    retries: int
    sdk_retries: int
    throttles: int


def _retryable(status: int, code: str | None) -> bool:
    return status >= 500 or status == 429 or status == NO_RESPONSE or code in RETRYABLE_CODES


def _attempt(client: Any, kwargs: dict[str, Any]) -> tuple[int, str | None, str | None, str, int]:
    """One HTTP exchange: (status, error code, invoked variant, body text, SDK retries)."""
    try:
        resp = client.invoke_endpoint(**kwargs)
    except ClientError as exc:
        meta = exc.response.get("ResponseMetadata", {})
        code = exc.response.get("Error", {}).get("Code") or "ClientError"
        return (
            int(meta.get("HTTPStatusCode", NO_RESPONSE)),
            code,
            None,
            "",
            meta.get("RetryAttempts", 0),
        )
    except (ConnectionError, HTTPClientError) as exc:
        return NO_RESPONSE, type(exc).__name__, None, "", 0
    body = resp["Body"].read().decode("utf-8", errors="replace")
    meta = resp.get("ResponseMetadata", {})
    status = int(meta.get("HTTPStatusCode", 200))
    return status, None, resp.get("InvokedProductionVariant"), body, meta.get("RetryAttempts", 0)


_local = threading.local()


def _thread_rng() -> random.Random:
    """Jitter needs no reproducibility, only independence between threads."""
    rng = getattr(_local, "rng", None)
    if rng is None:
        rng = _local.rng = random.Random()
    return rng


def invoke_with_retries(client: Any, kwargs: dict[str, Any], policy: RetryPolicy) -> Outcome:
    """Call ``invoke_endpoint`` until success, a final error, or ``max_attempts`` is used up."""
    retries = sdk_retries = throttles = 0
    while True:
        began = time.perf_counter()
        status, code, variant, body, sdk = _attempt(client, kwargs)
        latency_ms = (time.perf_counter() - began) * 1000.0
        sdk_retries += int(sdk)
        throttles += int(code in RETRYABLE_CODES or status == 429)
        if status == 200 or not _retryable(status, code) or retries + 1 >= policy.max_attempts:
            return Outcome(status, code, variant, body, latency_ms, retries, sdk_retries, throttles)
        retries += 1
        time.sleep(policy.delay(retries, _thread_rng()))


def parse_score(body: str) -> float:
    """The first probability of a ``text/csv`` or JSON answer (one row per request)."""
    text = body.strip()
    if text[:1] in "[{":
        data = json.loads(text)
        if isinstance(data, dict):
            data = data.get("predictions", data.get("scores", []))
        while isinstance(data, list):
            data = data[0]
        if isinstance(data, dict):
            data = data.get("score", data.get("probability"))
        return float(data)
    return float(text.splitlines()[0].split(",")[0])
