"""One InvokeEndpoint call with retries: what happened, counted, never hidden.

Why our own retry loop: the rollout judges variants by their error rates, so a retried 5XX must
be *seen* (counted) even when the retry succeeds. Throttling, 5XX and dropped connections are
retried with capped exponential backoff and full jitter (AWS's recommendation); 4XX such as a
424 ModelError (the model container rejected or failed on this row) are final at once. A
ModelError carries the status the container returned (``OriginalStatusCode``), which the outcome
keeps: CloudWatch counts the request by it (a container's 500 is a 5XX).
Retries botocore did by itself are read back from ``ResponseMetadata.RetryAttempts`` and counted
separately, so a client configured with SDK retries cannot hide failures either.
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
from dataclasses import dataclass, replace
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
    """One answer to a request: of one attempt, or (from :func:`invoke_with_retries`) the
    final one, with everything it took to get there (``retries``, ``sdk_retries`` and
    ``throttles`` summed over the attempts)."""

    status: int
    error_code: str | None = None
    invoked_variant: str | None = None
    body: str = ""
    latency_ms: float = 0.0
    retries: int = 0
    sdk_retries: int = 0
    throttles: int = 0
    model_status: int | None = None  # a ModelError's OriginalStatusCode

    @property
    def counted_status(self) -> int:
        """The status the endpoint counts the request by (its CloudWatch 4XX/5XX): the
        container's own for a ModelError, else the HTTP status."""
        return self.model_status or self.status


def _retryable(status: int, code: str | None) -> bool:
    return status >= 500 or status == 429 or status == NO_RESPONSE or code in RETRYABLE_CODES


def _attempt(client: Any, kwargs: dict[str, Any]) -> Outcome:
    """One HTTP exchange, as an outcome of its own (no latency or retries counted yet)."""
    try:
        resp = client.invoke_endpoint(**kwargs)
    except ClientError as exc:
        meta = exc.response.get("ResponseMetadata", {})
        original = exc.response.get("OriginalStatusCode")
        return Outcome(
            int(meta.get("HTTPStatusCode", NO_RESPONSE)),
            exc.response.get("Error", {}).get("Code") or "ClientError",
            sdk_retries=meta.get("RetryAttempts", 0),
            model_status=int(original) if original is not None else None,
        )
    except (ConnectionError, HTTPClientError) as exc:
        return Outcome(NO_RESPONSE, type(exc).__name__)
    meta = resp.get("ResponseMetadata", {})
    return Outcome(
        int(meta.get("HTTPStatusCode", 200)),
        invoked_variant=resp.get("InvokedProductionVariant"),
        body=resp["Body"].read().decode("utf-8", errors="replace"),
        sdk_retries=meta.get("RetryAttempts", 0),
    )


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
        got = _attempt(client, kwargs)
        latency_ms = (time.perf_counter() - began) * 1000.0
        sdk_retries += int(got.sdk_retries)
        throttles += int(got.error_code in RETRYABLE_CODES or got.status == 429)
        final = not _retryable(got.status, got.error_code) or retries + 1 >= policy.max_attempts
        if got.status == 200 or final:
            return replace(
                got, latency_ms=latency_ms, retries=retries, sdk_retries=sdk_retries,
                throttles=throttles,
            )  # fmt: skip
        retries += 1
        time.sleep(policy.delay(retries, _thread_rng()))


def parse_score(body: str) -> float:
    """The first probability of a ``text/csv`` or JSON answer (one row per request). Raises
    ``ValueError`` when there is none, or when it is not finite ("nan", "inf"): an answer with
    no usable score, which the replay records as unparseable."""
    text = body.strip()
    if text[:1] in "[{":
        data = json.loads(text)
        if isinstance(data, dict):
            data = data.get("predictions", data.get("scores", []))
        while isinstance(data, list):
            data = data[0]
        if isinstance(data, dict):
            data = data.get("score", data.get("probability"))
        score = float(data)
    else:
        score = float(text.splitlines()[0].split(",")[0])
    if not math.isfinite(score):
        raise ValueError(f"score: {score} is not a usable probability")
    return score
