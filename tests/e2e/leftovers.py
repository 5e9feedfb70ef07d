"""What a rollout left on the stack: every test that ends a run checks it holds nothing the run
created except the winner it was asked to keep."""

from __future__ import annotations

from typing import Any


def canary_resources(sm: Any, endpoint: str) -> dict[str, list[str]]:
    """Every model, endpoint config and endpoint on the stack that belongs to ``endpoint``."""
    mine = f"{endpoint}-"
    return {
        "models": sorted(
            m["ModelName"]
            for m in sm.list_models(MaxResults=100)["Models"]
            if m["ModelName"].startswith(mine)
        ),
        "configs": sorted(
            c["EndpointConfigName"]
            for c in sm.list_endpoint_configs(MaxResults=100)["EndpointConfigs"]
            if c["EndpointConfigName"].startswith(mine)
        ),
        "endpoints": sorted(
            e["EndpointName"]
            for e in sm.list_endpoints(MaxResults=100)["Endpoints"]
            if e["EndpointName"] == endpoint
        ),
    }


def serving(sm: Any, endpoint: str) -> dict[str, float]:
    variants = sm.describe_endpoint(EndpointName=endpoint)["ProductionVariants"]
    return {v["VariantName"]: v["CurrentWeight"] for v in variants}


def assert_only_winner_left(sm: Any, endpoint: str, winner_role: str) -> None:
    left = canary_resources(sm, endpoint)
    assert left["endpoints"] == [endpoint]
    assert len(left["models"]) == 1 and f"-{winner_role}-" in left["models"][0], left
    live = sm.describe_endpoint(EndpointName=endpoint)["EndpointConfigName"]
    assert left["configs"] == [live], left


def assert_nothing_left(sm: Any, endpoint: str) -> None:
    assert canary_resources(sm, endpoint) == {"models": [], "configs": [], "endpoints": []}
