"""One HTTP port for every AWS service: our runtime in front of moto's WSGI dispatcher.

``POST /endpoints/<name>/invocations`` (SageMaker Runtime) is answered by our ``Runtime``; every
other request goes to moto's ``DomainDispatcherApplication``, which picks the service from the
SigV4 credential scope (s3, sagemaker, cloudwatch, sqs, events ...). A few local-only routes
under ``/_local_sagemaker/`` exist for tests and benchmarks:

* ``GET  /_local_sagemaker/health``: readiness probe.
* ``POST /_local_sagemaker/flush``: write pending metrics and capture records now, once the
  shadow-variant calls under way have ended.
* ``GET  /_local_sagemaker/stats[?reset=1]``: raw latency percentiles per variant, capture
  errors, the number of throttled control-plane calls and of shadow calls still under way
  (read, not waited for) or dropped on a full backlog.
* ``GET  /_local_sagemaker/profile``: the timing profile in force (see :mod:`.profile`).

A background thread flushes metrics every ``flush_interval`` seconds (CloudWatch shows what the
profile's ingestion lag allows) and Data Capture every flush, or in the profile's batches.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import asdict
from time import monotonic, perf_counter
from typing import Any
from urllib.parse import unquote

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import BaseWSGIServer, make_server

from local_sagemaker.control_plane import apply_patches
from local_sagemaker.metrics import round_start_time
from local_sagemaker.profile import Profile
from local_sagemaker.runtime import Answer, Invocation, Runtime, error_answer
from local_sagemaker.throttle import Throttle, throttling_error

ADMIN = "/_local_sagemaker/"
SAGEMAKER_TARGET = "SageMaker."  # X-Amz-Target of a control-plane call: SageMaker.<Operation>
DEFAULT_REGION = "us-east-1"
log = logging.getLogger("local_sagemaker")


def region_from_auth(auth: str | None) -> str:
    """The region of a SigV4 credential scope (``Credential=AK/date/region/service/...``)."""
    if auth:
        start = auth.find("Credential=")
        if start >= 0:
            parts = auth[start + 11 :].split("/", 4)
            if len(parts) > 2 and parts[2]:
                return parts[2]
    return DEFAULT_REGION


def _read_body(environ: dict[str, Any]) -> bytes:
    length = environ.get("CONTENT_LENGTH")
    stream = environ["wsgi.input"]
    if length:
        return stream.read(int(length))
    return stream.read() if environ.get("HTTP_TRANSFER_ENCODING") else b""


class LocalSageMakerApp:
    """WSGI middleware: InvokeEndpoint and admin routes to us, the rest to moto."""

    def __init__(
        self, runtime: Runtime, moto_app: Callable | None = None, profile: Profile | None = None
    ) -> None:
        self.runtime = runtime
        self.moto_app = moto_app or DomainDispatcherApplication(create_backend_app)
        self.profile = profile or Profile()
        self.throttle = Throttle(self.profile.throttle_rate)

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        started = perf_counter()
        path = environ.get("PATH_INFO", "")
        is_invoke = path.startswith("/endpoints/") and path.endswith("/invocations")
        if is_invoke and environ["REQUEST_METHOD"] == "POST":
            return self._invoke(environ, start_response, path, started)
        if path.startswith(ADMIN):
            return self._admin(environ, start_response, path[len(ADMIN) :])
        operation = environ.get("HTTP_X_AMZ_TARGET", "")
        if operation.startswith(SAGEMAKER_TARGET) and not self.throttle.admit(operation):
            return _respond(start_response, error_answer(throttling_error(operation)))
        return self.moto_app(environ, start_response)

    def _invoke(self, environ: dict, start_response: Callable, path: str, started: float):
        call = Invocation(
            region=region_from_auth(environ.get("HTTP_AUTHORIZATION")),
            endpoint=unquote(path[len("/endpoints/") : -len("/invocations")]),
            body=_read_body(environ),
            content_type=environ.get("CONTENT_TYPE"),
            accept=environ.get("HTTP_ACCEPT"),
            target_variant=environ.get("HTTP_X_AMZN_SAGEMAKER_TARGET_VARIANT"),
            inference_id=environ.get("HTTP_X_AMZN_SAGEMAKER_INFERENCE_ID"),
            started=started,
        )
        return _respond(start_response, self.runtime.invoke(call))

    def _admin(self, environ: dict, start_response: Callable, route: str):
        if route == "health":
            payload: dict[str, Any] = {"status": "ok", "pid": os.getpid()}
        elif route == "flush" and environ["REQUEST_METHOD"] == "POST":
            payload = flush(self.runtime)
        elif route == "stats":
            reset = "reset=1" in environ.get("QUERY_STRING", "")
            payload = {
                "latency_us": self.runtime.metrics.latency_percentiles(reset=reset),
                "capture_errors": list(self.runtime.capture.errors),
                "throttled": self.throttle.refused,
                "shadow_calls_pending": self.runtime.shadows.pending,
                "shadow_calls_dropped": self.runtime.shadows.dropped,
            }
        elif route == "profile":
            payload = asdict(self.profile)
        else:
            body = json.dumps({"message": f"unknown local route {ADMIN}{route}"}).encode()
            return _respond(start_response, Answer(404, _json_headers(), body))
        return _respond(start_response, Answer(200, _json_headers(), json.dumps(payload).encode()))


def _json_headers() -> list[tuple[str, str]]:
    return [("Content-Type", "application/json")]


_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 424: "Failed Dependency"}


def _respond(start_response: Callable, answer: Answer) -> list[bytes]:
    reason = _REASONS.get(answer.status, "Error")
    headers = [*answer.headers, ("Content-Length", str(len(answer.body)))]
    start_response(f"{answer.status} {reason}", headers)
    return [answer.body]


_flush_lock = threading.Lock()
# How long an explicit flush waits for shadow calls: less than the admin client's 10 s timeout.
SHADOW_DRAIN_SECONDS = 8.0


def flush(runtime: Runtime, capture: bool = True, drain: bool = True) -> dict[str, int]:
    """Write what CloudWatch would show by now, and (with ``capture``) every queued capture
    record, into moto (serialised with the flusher). With ``drain`` (an explicit flush: the
    admin route, shutdown) the shadow calls under way end first, so what they record is
    written too; the background flusher does not wait for them."""
    pending = runtime.shadows.drain(SHADOW_DRAIN_SECONDS) if drain else 0
    with _flush_lock:
        return {
            "metrics_requests": runtime.metrics.flush(),
            "capture_records": runtime.capture.flush() if capture else 0,
            "shadow_calls_pending": pending,
        }


class Flusher(threading.Thread):
    """Background thread: CloudWatch every ``interval`` s, capture files every ``interval`` s or
    in the profile's batches."""

    def __init__(self, runtime: Runtime, interval: float, capture_interval: float = 0.0) -> None:
        super().__init__(name="local-sagemaker-flusher", daemon=True)
        self.runtime = runtime
        self.interval = interval
        self.capture_interval = capture_interval
        self.stopped = threading.Event()

    def run(self) -> None:
        captured = monotonic()
        while not self.stopped.wait(self.interval):
            batch_due = monotonic() - captured >= self.capture_interval
            try:
                flush(self.runtime, capture=batch_due, drain=False)
            except Exception:  # keep flushing; a bad batch must not stop telemetry
                log.exception("flush failed")
            if batch_due:
                captured = monotonic()


class QuietHandler(MotoRequestHandler):
    """moto's request handler without a log line per request (that is most of the cost)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Suppress per-request access logs; errors are still logged."""


def build_server(
    host: str, port: int, flush_interval: float = 0.5, profile: Profile | None = None
) -> tuple[BaseWSGIServer, Flusher]:
    """A threaded werkzeug server with moto + our runtime, and its (not yet started) flusher."""
    profile = profile or Profile()
    apply_patches(profile)
    round_start_time(profile)
    runtime = Runtime(profile=profile)
    app = LocalSageMakerApp(runtime, profile=profile)
    server = make_server(host, port, app, threaded=True, request_handler=QuietHandler)
    return server, Flusher(runtime, flush_interval, profile.capture_interval)
