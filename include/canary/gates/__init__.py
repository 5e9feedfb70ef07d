"""The statistical gate of a rollout stage: promote, continue, roll back or halt.

Public API: :func:`evaluate` (the engine), :class:`GateConfig`, the evidence types, the sizing
helpers (:func:`planned_max_requests`, :func:`cap_per_variant`, :func:`fixed_horizon_n`) and the
replay-frame builder :func:`evidence_from_frame`. Never imports Airflow.
"""

from canary.gates.config import GateConfig
from canary.gates.decision import Decision, Verdict
from canary.gates.engine import evaluate
from canary.gates.evidence import (
    CarriedEstimate,
    LatencySummary,
    Outcomes,
    StageEvidence,
    VariantEvidence,
    champion_estimate,
)
from canary.gates.frame import evidence_from_frame
from canary.gates.sizing import cap_per_variant, fixed_horizon_n, planned_max_requests

__all__ = [
    "CarriedEstimate",
    "Decision",
    "GateConfig",
    "LatencySummary",
    "Outcomes",
    "StageEvidence",
    "VariantEvidence",
    "Verdict",
    "cap_per_variant",
    "champion_estimate",
    "evaluate",
    "evidence_from_frame",
    "fixed_horizon_n",
    "planned_max_requests",
]
