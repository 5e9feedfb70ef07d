"""The InvokeEndpoint hot path: route, predict, answer as SageMaker does, record metrics.

Everything slow (model loading, S3 reads, config parsing) happens once per routing table or
artifact; a request costs a dict lookup, one RNG draw, the model call and a few appends.

A request replicated to the endpoint's shadow variant is served a second time by the shadow,
on the :class:`~local_sagemaker.shadow.ShadowPool` once the caller's answer is ready: the same
prediction, capture and metrics under the shadow's name, and the answer thrown away.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from time import perf_counter

from local_sagemaker.capture import CaptureWriter
from local_sagemaker.errors import (
    ACCOUNT_ID,
    InvokeError,
    model_error,
)
from local_sagemaker.loader import ModelCache, ModelInputError
from local_sagemaker.metrics import Metrics
from local_sagemaker.payload import PayloadError, decode, encode, response_type
from local_sagemaker.profile import Profile
from local_sagemaker.routing import EndpointTable, Router, Variant
from local_sagemaker.shadow import ShadowPool


@dataclass
class Invocation:
    """What the HTTP layer extracted from one InvokeEndpoint request."""

    region: str
    endpoint: str
    body: bytes
    content_type: str | None
    accept: str | None
    target_variant: str | None
    inference_id: str | None
    started: float


@dataclass
class Answer:
    """An HTTP answer: status, headers and body."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


_UUID_CLEAR = ~(0xF000 << 64) & ~(0xC000 << 48)  # version and variant bits
_UUID_V4 = (0x4000 << 64) | (0x8000 << 48)  # version 4, RFC 4122 variant


def request_id() -> str:
    """A random version-4 UUID for ``x-amzn-RequestId``, without a system call.

    ``uuid.uuid4()`` reads ``os.urandom``, a syscall that releases the GIL; under concurrent
    load getting it back cost up to several ms, which showed up as OverheadLatency (measured
    p90 0.78 ms, p99 2.6 ms for that one line). A request id needs uniqueness, not secrecy,
    so the process's Mersenne Twister (seeded from the OS) is enough.
    """
    h = "%032x" % (random.getrandbits(128) & _UUID_CLEAR | _UUID_V4)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def error_answer(error: InvokeError) -> Answer:
    """Render an InvokeError as SageMaker's HTTP error response."""
    headers = [*error.headers(), ("x-amzn-RequestId", request_id())]
    return Answer(error.status, headers, error.body())


class Runtime:
    """Serves InvokeEndpoint from moto's in-process state."""

    def __init__(self, account_id: str = ACCOUNT_ID, profile: Profile | None = None) -> None:
        self.account_id = account_id
        self.router = Router()
        self.models = ModelCache()
        self.metrics = Metrics(profile)
        self.capture = CaptureWriter(account_id)
        self.shadows = ShadowPool()

    def invoke(self, call: Invocation) -> Answer:
        """Answer one request; never raises, every failure becomes SageMaker's error shape."""
        try:
            table = self.router.table(self.account_id, call.region, call.endpoint)
            variant = table.choose(call.target_variant)
        except InvokeError as error:
            return error_answer(error)
        answer = self._serve(call, table, variant, call.started)
        shadow = table.mirrored()
        if shadow is not None:
            self.shadows.submit(lambda: self._shadow(call, table, shadow))
        return answer

    def _shadow(self, call: Invocation, table: EndpointTable, shadow: Variant) -> None:
        """Serve a replicated request on the shadow, unless the endpoint has since moved on to
        another config or is gone: the shadow fleet that would answer it is gone too, and its
        metrics would land on a variant of the new config that may bear the same name (the
        challenger's, when a shadow stage hands over to a canary stage)."""
        try:
            current = self.router.table(self.account_id, call.region, call.endpoint)
        except InvokeError:
            return
        if current.config_name == table.config_name:
            self._serve(call, table, shadow, perf_counter())

    def _serve(
        self, call: Invocation, table: EndpointTable, variant: Variant, started: float
    ) -> Answer:
        """Predict with one variant, capture a success and count the request for the variant."""
        model_us: float | None = None
        try:
            model_us, out_type, out = self._predict(call, variant)
            answer = Answer(
                200,
                [
                    ("Content-Type", out_type),
                    ("x-Amzn-Invoked-Production-Variant", variant.name),
                    ("x-amzn-RequestId", request_id()),
                ],
                out,
            )
            if table.capture is not None and table.capture.sampled():
                self.capture.add(
                    table.capture,
                    call.endpoint,
                    variant.name,
                    (call.content_type or "text/csv", call.body),
                    (out_type, out),
                    call.inference_id,
                )
        except InvokeError as error:
            model_us = error.model_us
            answer = error_answer(error)
            status = error.extra.get("OriginalStatusCode", error.status)
        else:
            status = answer.status
        total_us = (perf_counter() - started) * 1e6
        where = (self.account_id, call.region, call.endpoint, variant.name)
        # CloudWatch counts a ModelError (424) by the status the container returned
        self.metrics.record(where, status, model_us, total_us - (model_us or 0.0))
        return answer

    def _predict(self, call: Invocation, variant: Variant) -> tuple[float, str, bytes]:
        """The 'container' part: decode, predict, encode. Timed as ModelLatency."""
        faults = variant.faults
        if faults.active and faults.should_fail():
            # as a model failing on a request does: a ModelError carrying the container's
            # 500 (final for a client, counted as 5XX), not a retryable InternalFailure; it
            # fails before the model runs, so it records no ModelLatency
            raise model_error(f"injected failure in variant {variant.name}", call.endpoint, 500)
        model = variant.ensure_model(self.models, self.account_id)
        began = perf_counter()
        try:
            out_type = response_type(call.accept)
            rows = decode(call.body, call.content_type)
            if faults.active:
                faults.delay()
            out = encode(model.predict(rows), out_type)
        except (PayloadError, ModelInputError) as exc:
            status = getattr(exc, "status", 400)
            raise _timed(model_error(str(exc), call.endpoint, status), began) from None
        except Exception as exc:  # the container crashed on this request: a 500 from the model
            reason = f"{type(exc).__name__}: {exc}"
            raise _timed(model_error(reason, call.endpoint, 500), began) from exc
        return (perf_counter() - began) * 1e6, out_type, out


def _timed(error: InvokeError, began: float) -> InvokeError:
    """``error`` with the container's time until it failed (its ModelLatency)."""
    error.model_us = (perf_counter() - began) * 1e6
    return error
