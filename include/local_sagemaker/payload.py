"""Decode InvokeEndpoint bodies into feature rows and encode scores, like the XGBoost container.

Accepted requests: ``text/csv`` (one row per line, no header; an empty cell is a missing value)
and ``application/json`` (``{"instances": [[...], ...]}``, ``{"instances": [{"features": [...]}]}``
or a bare list of rows). Responses: ``text/csv`` (default; one score per line) or
``application/json`` (``{"predictions": [{"score": p}, ...]}``).

Failures raise ``PayloadError`` with the HTTP status the real container would have returned
(400 malformed, 406 unsupported Accept, 415 unsupported Content-Type); the runtime wraps them
in a 424 ModelError, which is how SageMaker reports a container's refusal.
"""

from __future__ import annotations

import json
import math

import numpy as np

CSV = "text/csv"
JSON = "application/json"


class PayloadError(ValueError):
    """The payload cannot be turned into rows; ``status`` is the container's HTTP status."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def media_type(header: str | None, default: str) -> str:
    """The bare media type of a Content-Type/Accept header (parameters dropped)."""
    if not header:
        return default
    return header.split(";", 1)[0].strip().lower() or default


def _cell(text: str, row: int, col: int) -> float:
    text = text.strip()
    if not text:
        return math.nan
    try:
        return float(text)
    except ValueError:
        raise PayloadError(f"CSV row {row} column {col}: {text[:40]!r} is not a number") from None


def _csv_rows(body: bytes) -> list[list[float]]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(f"CSV payload is not UTF-8: {exc.reason}") from None
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            rows.append([_cell(c, number, i) for i, c in enumerate(line.split(","), start=1)])
    return rows


def _json_row(item: object, index: int) -> list[float]:
    if isinstance(item, dict):
        item = item.get("features")
    if not isinstance(item, list) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in item
    ):
        raise PayloadError(f"JSON instance {index} must be a list of numbers")
    return [float(v) for v in item]


def _json_rows(body: bytes) -> list[list[float]]:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PayloadError(f"JSON payload is malformed: {exc}") from None
    instances = doc.get("instances") if isinstance(doc, dict) else doc
    if not isinstance(instances, list):
        raise PayloadError('JSON payload must be {"instances": [...]} or a list of rows')
    if instances and all(isinstance(v, int | float) for v in instances):
        instances = [instances]
    return [_json_row(item, i) for i, item in enumerate(instances)]


def decode(body: bytes, content_type: str | None) -> np.ndarray:
    """Turn a request body into a 2-D float array, rejecting ragged or empty payloads."""
    kind = media_type(content_type, CSV)
    if kind == CSV:
        rows = _csv_rows(body)
    elif kind == JSON:
        rows = _json_rows(body)
    else:
        raise PayloadError(f"Content-Type {content_type!r} is not supported", status=415)
    if not rows:
        raise PayloadError("payload holds no rows")
    width = len(rows[0])
    for number, row in enumerate(rows, start=1):
        if len(row) != width:
            raise PayloadError(f"row {number} has {len(row)} columns, row 1 has {width}")
    return np.array(rows, dtype=np.float64)


def response_type(accept: str | None) -> str:
    """The content type to answer with; unsupported Accept is the container's 406."""
    kind = media_type(accept, CSV)
    if kind in ("*/*", CSV):
        return CSV
    if kind == JSON:
        return JSON
    raise PayloadError(f"Accept {accept!r} is not supported", status=406)


def encode(scores: np.ndarray, kind: str) -> bytes:
    """Serialise scores: one line (or one JSON object) per input row."""
    values = scores.tolist()
    if kind == JSON:
        return json.dumps({"predictions": [{"score": v} for v in values]}).encode()
    lines = (",".join(map(repr, v)) if isinstance(v, list) else repr(v) for v in values)
    return "\n".join(lines).encode()
