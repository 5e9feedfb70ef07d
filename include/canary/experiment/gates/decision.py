"""The gate's answer: a verdict, a one-line reason and a self-contained decision record.

Why a record with every number: the record is written to S3 and XCom on every evaluation, and a
user must be able to answer "why did it promote (or roll back)?" from it alone, without the code.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Verdict(StrEnum):
    """promote: stage passed; continue: not enough evidence yet; rollback: challenger worse or
    out of time; halt: the experiment itself is broken (never a promotion)."""

    PROMOTE = "promote"
    CONTINUE = "continue"
    ROLLBACK = "rollback"
    HALT = "halt"


@dataclass(frozen=True)
class Decision:
    """Verdict, reason and the JSON-serialisable record."""

    verdict: Verdict
    reason: str
    record: dict[str, Any]

    def to_json(self) -> str:
        """The record as JSON (non-finite numbers become null, so any JSON reader accepts it)."""
        return json.dumps(_finite(self.record), sort_keys=True)


def promoted(record: Mapping[str, Any] | None) -> bool:
    """Whether a stored decision record (XCom, S3) promotes; no record is no promotion."""
    return bool(record) and Verdict(record["verdict"]) is Verdict.PROMOTE


def _finite(value: Any) -> Any:
    """Replace inf/NaN (not valid JSON) with None, recursively; tuples become lists."""
    if value is None or isinstance(value, str | int | bool):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
