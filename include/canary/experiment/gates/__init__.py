"""The statistical gate of a rollout stage: promote, continue, roll back or halt.

Public API: :func:`evaluate` (the engine), :class:`GateConfig`, the evidence types (with
:class:`PairedOutcomes` for a shadow stage's paired test, :mod:`.paired`), the sizing
helpers (:func:`planned_max_requests`, :func:`cap_per_variant`, :func:`fixed_horizon_n`) and the
replay-frame builder :func:`evidence_from_frame`. Never imports Airflow.

The names load lazily: the DAG processor imports :mod:`.decision` (the ``Verdict`` vocabulary)
on every parse, and must not pay for scipy and statsmodels each time.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_HOMES = {
    "GateConfig": "config",
    "Decision": "decision",
    "Verdict": "decision",
    "evaluate": "engine",
    "CarriedEstimate": "evidence",
    "LatencySummary": "evidence",
    "Outcomes": "evidence",
    "PairedOutcomes": "evidence",
    "StageEvidence": "evidence",
    "VariantEvidence": "evidence",
    "champion_estimate": "evidence",
    "evidence_from_frame": "frame",
    "cap_per_variant": "sizing",
    "fixed_horizon_n": "sizing",
    "planned_max_pairs": "sizing",
    "planned_max_requests": "sizing",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_HOMES[name]}"), name)
