"""Counters of one replay chunk (or a whole replay): what was sent, what failed, what was retried.

Why its own type: the tasks log and XCom these, the gate reads error counts, and shards must add
up; a dataclass with ``merge`` and ``to_dict`` does all three without guessing keys.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class ReplayStats:
    """Final-status counts per request plus retry/throttle totals; nothing is hidden."""

    requests: int = 0
    ok: int = 0
    client_errors: int = 0
    server_errors: int = 0
    no_response: int = 0
    unparseable: int = 0
    retries: int = 0
    sdk_retries: int = 0
    throttles: int = 0
    weight_syncs: int = 0
    weight_sync_failures: int = 0
    elapsed_s: float = 0.0
    by_variant: dict[str, int] = field(default_factory=dict)
    by_status: dict[str, int] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        """Requests per second of wall time (0 before anything ran)."""
        return self.requests / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def count(
        self, status: int, variant: str | None, retries: int, sdk: int, throttles: int
    ) -> None:
        """Account for one finished request."""
        self.requests += 1
        self.retries += retries
        self.sdk_retries += sdk
        self.throttles += throttles
        if status == 200:
            self.ok += 1
        elif 400 <= status < 500:
            self.client_errors += 1
        elif status >= 500:
            self.server_errors += 1
        else:
            self.no_response += 1
        self.by_status[str(status)] = self.by_status.get(str(status), 0) + 1
        key = variant or "unknown"
        self.by_variant[key] = self.by_variant.get(key, 0) + 1

    def merge(self, other: ReplayStats) -> ReplayStats:
        """Sum of two stats (chunks in sequence: elapsed adds; use ``max`` yourself for shards)."""
        out = ReplayStats()
        for name, value in asdict(self).items():
            theirs = getattr(other, name)
            if isinstance(value, dict):
                merged = dict(value)
                for k, v in theirs.items():
                    merged[k] = merged.get(k, 0) + v
                setattr(out, name, merged)
            else:
                setattr(out, name, value + theirs)
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with the derived rate."""
        return {**asdict(self), "rps": self.rps}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReplayStats:
        return cls(**{k: v for k, v in data.items() if k != "rps"})
