"""A labelled data set turned into synthetic users' requests: CSV payloads, labels set aside.

Why precompute: every payload is the row's features as ``text/csv`` without a header, in the
frame's feature-column order (the model's contract). Rendering all rows once with pandas keeps
the hot loop free of formatting, and pandas writes floats round-trip exactly.

Users: row ``r`` belongs to user ``r // rows_per_user``; when the replay runs past the end of the
data it starts again from the top, so users come back (which is what makes stickiness matter).
Shards own disjoint users (``user_index % shard_count == shard_index``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class ReplayRequest:
    """One request to send; ``label`` never goes on the wire."""

    seq: int
    row: int
    user_id: str
    payload: str
    label: Any


def label_text(label: Any) -> str:
    """Ground-truth text as Model Monitor wants it: ``1.0`` becomes ``"1"``, strings unchanged."""
    if isinstance(label, bool | np.bool_):
        return str(int(label))
    if isinstance(label, float | np.floating) and float(label).is_integer():
        return str(int(label))
    return str(label)


class ReplayDataset:
    """Features rendered as CSV payloads plus the label column, indexed by row position."""

    def __init__(
        self,
        frame: pd.DataFrame,
        label: str,
        features: Sequence[str] | None = None,
        rows_per_user: int = 1,
    ) -> None:
        if not isinstance(frame, pd.DataFrame):
            raise ValueError(f"frame: expected a pandas DataFrame, got {type(frame).__name__}")
        if label not in frame.columns:
            raise ValueError(
                f"label: column {label!r} not in frame (columns: {list(frame.columns)})"
            )
        if rows_per_user < 1:
            raise ValueError(f"rows_per_user: must be >= 1, got {rows_per_user!r}")
        if len(frame) == 0:
            raise ValueError("frame: has no rows to replay")
        cols = [c for c in frame.columns if c != label] if features is None else list(features)
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise ValueError(f"features: columns {missing} not in frame")
        if label in cols:
            raise ValueError(f"features: must not include the label column {label!r}")
        if not cols:
            raise ValueError("features: no feature columns left besides the label")
        self.label = label
        self.features = cols
        self.rows_per_user = int(rows_per_user)
        self.payloads: list[str] = (
            frame[cols].to_csv(header=False, index=False, lineterminator="\n").splitlines()
        )
        self.labels: list[Any] = frame[label].tolist()

    @classmethod
    def from_csv(
        cls, path: str | Path, label: str, features: Sequence[str] | None = None, **kw: Any
    ) -> ReplayDataset:
        """A user's CSV with a header row and a named label column."""
        return cls(pd.read_csv(path), label, features, **kw)

    def __len__(self) -> int:
        return len(self.payloads)

    @property
    def n_users(self) -> int:
        return -(-len(self) // self.rows_per_user)

    def user_of(self, row: int) -> int:
        return row // self.rows_per_user

    def shard_rows(self, shard_index: int = 0, shard_count: int = 1) -> np.ndarray:
        """Row positions whose users belong to this shard, in data order."""
        if shard_count < 1 or not 0 <= shard_index < shard_count:
            raise ValueError(
                f"shard_index: must lie in [0, {shard_count}), got {shard_index!r} "
                f"(shard_count {shard_count!r})"
            )
        users = np.arange(len(self)) // self.rows_per_user
        rows = np.flatnonzero(users % shard_count == shard_index)
        if len(rows) == 0:
            raise ValueError(
                f"shard_count: {shard_count} shards leave shard {shard_index} without users "
                f"(only {self.n_users} users)"
            )
        return rows

    def request(self, seq: int, rows: np.ndarray, start: int = 0) -> ReplayRequest:
        """The ``seq``-th request of a stage whose requests begin ``start`` rows into a shard's
        ``rows`` (wrapping around them)."""
        row = int(rows[(start + seq) % len(rows)])
        return ReplayRequest(
            seq, row, f"user-{self.user_of(row):06d}", self.payloads[row], self.labels[row]
        )
