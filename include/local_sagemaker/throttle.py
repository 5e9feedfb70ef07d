"""SageMaker control-plane throttling under the ``aws`` profile: a token bucket per operation.

AWS limits each control-plane API per account and Region and answers above it with HTTP 400
``ThrottlingException: Rate exceeded``; botocore's retry modes (legacy and standard) treat that
code as retryable, so a well-configured client absorbs it. The bucket holds twice the rate, so
short bursts pass, as AWS's do.
"""

from __future__ import annotations

import threading
import time

from local_sagemaker.errors import InvokeError


class Throttle:
    """Admit at most ``rate`` calls per second per operation (0: admit everything)."""

    def __init__(self, rate: float) -> None:
        self.rate, self.burst = rate, max(2.0 * rate, 1.0)
        self._tokens: dict[str, tuple[float, float]] = {}  # operation -> (tokens, at)
        self._lock = threading.Lock()
        self.refused = 0

    def admit(self, operation: str) -> bool:
        if self.rate <= 0:
            return True
        with self._lock:
            now = time.monotonic()
            tokens, at = self._tokens.get(operation, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate)
            admitted = tokens >= 1.0
            self._tokens[operation] = (tokens - 1.0 if admitted else tokens, now)
            if not admitted:
                self.refused += 1
            return admitted


def throttling_error(operation: str) -> InvokeError:
    """The answer to a refused call, in the JSON protocol SageMaker's control plane speaks."""
    return InvokeError(400, "ThrottlingException", f"Rate exceeded for {operation}")
