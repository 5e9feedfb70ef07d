"""SageMaker Runtime error shapes, rendered the way botocore parses them.

The runtime speaks ``rest-json``: botocore takes the error code from the ``x-amzn-ErrorType``
header (falling back to the body's ``__type``) and fills the modelled members (``Message``,
``OriginalStatusCode`` ...) from the JSON body. Getting these exactly right is what makes a
``ClientError`` carry the right ``Code`` on the caller's side, as against real AWS.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

ACCOUNT_ID = "123456789012"


@dataclass
class InvokeError(Exception):
    """An InvokeEndpoint failure with its HTTP status and modelled error code."""

    status: int
    code: str
    message: str
    extra: dict[str, Any] = field(default_factory=dict)
    # the model's time until it failed, for its ModelLatency (None: it never ran); not sent
    model_us: float | None = field(default=None, compare=False)

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def body(self) -> bytes:
        """JSON body with both the code and the modelled members botocore reads."""
        payload = {"__type": self.code, "message": self.message, "Message": self.message}
        payload.update(self.extra)
        return json.dumps(payload).encode()

    def headers(self) -> list[tuple[str, str]]:
        """Headers of the error response (the error type header is what botocore trusts)."""
        return [
            ("Content-Type", "application/json"),
            (
                "x-amzn-ErrorType",
                f"{self.code}:http://internal.amazon.com/coral/com.amazon.sagemaker/",
            ),
        ]


def validation_error(message: str) -> InvokeError:
    """400 ValidationError: the request names something that does not exist or is invalid."""
    return InvokeError(400, "ValidationError", message)


def model_error(reason: str, endpoint: str, original_status: int = 400) -> InvokeError:
    """424 ModelError: the model container answered ``original_status``: it rejected the
    payload (4xx) or failed on it (5xx) (SageMaker's wording)."""
    log_stream = (
        f"arn:aws:logs:us-east-1:{ACCOUNT_ID}:log-group:/aws/sagemaker/Endpoints/{endpoint}"
    )
    side = "server" if original_status >= 500 else "client"
    message = (
        f'Received {side} error ({original_status}) from primary with message "{reason}". '
        f"See {log_stream} in account {ACCOUNT_ID} for more information."
    )
    extra = {
        "OriginalStatusCode": original_status,
        "OriginalMessage": reason,
        "LogStreamArn": log_stream,
    }
    return InvokeError(424, "ModelError", message, extra)


def internal_failure(message: str) -> InvokeError:
    """500 InternalFailure: the variant could not serve (artifact broken, a fault setting it
    cannot use)."""
    return InvokeError(500, "InternalFailure", message)
