"""SageMaker endpoint operations for a two-variant canary, idempotent so retries are harmless.

Every function takes a boto3 SageMaker client, so the same code serves Airflow tasks (a hook's
``.conn``), tests and scripts, against real AWS or the local stack. "Ensure" functions create
what is missing, accept what already exists with the same definition, and report whether they
created anything, which is what cleanup needs to remove only this run's resources.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from importlib.metadata import version
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from canary.aws_errors import error_code, error_message
from canary.plan import ModelSpec, RolloutPlan
from canary.rollout.layout import capture_uri

log = logging.getLogger(__name__)

CAPTURE_SAMPLING_PERCENT = 100
# SageMaker refuses an update in these states and serves (at most) the old config meanwhile
IN_PROGRESS = frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting"})
FAILED = "Failed"  # a create that failed: SageMaker takes no update there, only a delete
IN_SERVICE = "InService"
ENDPOINT_TAG = "canary:endpoint"
SHADOWS = "ShadowProductionVariants"  # a config's (and DescribeEndpoint's) shadow variants
RUN_TAG = "canary:run"  # on an endpoint: the run that created it
# How the waits below poll DescribeEndpoint, and how long each waits: SageMaker's own
# endpoint_in_service waiter allows an hour (120 x 30 s), endpoint_deleted half an hour.
POLL_SECONDS = 1.0
SETTLE_TIMEOUT_SECONDS = 3600.0
DELETE_TIMEOUT_SECONDS = 1800.0


class EndpointError(RuntimeError):
    """The endpoint is not in a state the rollout can work with."""


def image_uri(spec: ModelSpec, region: str) -> str:
    """The serving image for a framework, from the SageMaker SDK rather than hard-coded accounts.

    Importing the SDK costs ~10 s (its ``__init__`` loads everything), so its answer is memoised
    on disk per SDK version: the SDK's image tables only change with the SDK.
    """
    key = f"{version('sagemaker-core')}|{spec.framework.value}|{spec.framework_version}|{region}"
    cache = _image_cache()
    known = json.loads(cache.read_text()) if cache.is_file() else {}
    if key not in known:
        from sagemaker.core import image_uris

        known[key] = image_uris.retrieve(
            spec.framework.value, region=region, version=spec.framework_version
        )
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(known, indent=1, sort_keys=True))
    return known[key]


def _image_cache() -> Path:
    root = os.environ.get("CANARY_CACHE_DIR", str(Path.home() / ".cache" / "canary"))
    return Path(root) / "image_uris.json"


def model_request(
    plan: RolloutPlan, spec: ModelSpec, image: str, model_data_url: str
) -> dict[str, Any]:
    """A CreateModel request named by a digest of what it asks for (container and role), so a
    retry reuses the model and a changed plan never does."""
    body = {
        "PrimaryContainer": {
            "Image": image,
            "ModelDataUrl": model_data_url,
            "Environment": dict(sorted(spec.environment.items())),
        },
        "ExecutionRoleArn": plan.execution_role_arn,
    }
    return {
        "ModelName": plan.resource_name(spec.role, _identity(body)),
        **body,
        "Tags": [{"Key": ENDPOINT_TAG, "Value": plan.endpoint_name}],
    }


def _identity(body: Mapping[str, Any]) -> str:
    """What names a resource: every field of its request but the name and the tags.
    ``ensure_*`` accepts an existing resource by name, so the name must change with any of
    them (a config capturing into another bucket, a model run under another role)."""
    return json.dumps(body, sort_keys=True)


def endpoint_config_request(
    plan: RolloutPlan, model_names: Mapping[str, str], weights: Mapping[str, float]
) -> dict[str, Any]:
    """A CreateEndpointConfig request for the given variants (one or both), with Data Capture."""
    specs = [spec for spec in (plan.champion, plan.challenger) if spec.role in model_names]
    variants = [
        _variant(spec, model_names[spec.role], weights[spec.variant_name]) for spec in specs
    ]
    return _config_request(plan, {"ProductionVariants": variants})


def shadow_config_request(plan: RolloutPlan, model_names: Mapping[str, str]) -> dict[str, Any]:
    """The shadow stage's config: the champion serves every request; the challenger, a shadow
    variant, answers ``shadow_sampling_percent`` of them into Data Capture only. SageMaker
    mirrors a shadow variant's weight relative to the production variant's (1.0 here)."""
    champion, challenger = plan.champion, plan.challenger
    return _config_request(
        plan,
        {
            "ProductionVariants": [_variant(champion, model_names[champion.role], 1.0)],
            SHADOWS: [_variant(challenger, model_names[challenger.role], plan.shadow_share)],
        },
    )


def _variant(spec: ModelSpec, model_name: str, weight: float) -> dict[str, Any]:
    return {
        "VariantName": spec.variant_name,
        "ModelName": model_name,
        "InstanceType": spec.instance_type,
        "InitialInstanceCount": spec.instance_count,
        "InitialVariantWeight": float(weight),
    }


def _config_request(plan: RolloutPlan, variants: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """The request around ``variants`` (and Data Capture), named by a digest of both, so a
    retry reuses it and a changed plan never does."""
    body: dict[str, Any] = dict(variants)
    if plan.data_capture:
        body["DataCaptureConfig"] = {
            "EnableCapture": True,
            "InitialSamplingPercentage": CAPTURE_SAMPLING_PERCENT,
            "DestinationS3Uri": capture_uri(plan),
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            "CaptureContentTypeHeader": {"CsvContentTypes": ["text/csv"]},
        }
    return {
        "EndpointConfigName": plan.resource_name("config", _identity(body)),
        **body,
        "Tags": [{"Key": ENDPOINT_TAG, "Value": plan.endpoint_name}],
    }


def ensure_model(sm: Any, request: Mapping[str, Any]) -> bool:
    """Create the model unless one with this name exists already; True when created here."""
    name = request["ModelName"]
    existing = _describe(sm.describe_model, ModelName=name)
    if existing is not None:
        _check_same(name, existing["PrimaryContainer"].get("ModelDataUrl"), request)
        return False
    sm.create_model(**request)
    log.info("created model %s", name)
    return True


def ensure_endpoint_config(sm: Any, request: Mapping[str, Any]) -> bool:
    """Create the endpoint config unless it exists; True when created here."""
    name = request["EndpointConfigName"]
    if _describe(sm.describe_endpoint_config, EndpointConfigName=name) is not None:
        return False
    sm.create_endpoint_config(**request)
    log.info("created endpoint config %s", name)
    return True


def describe_endpoint(sm: Any, name: str) -> dict[str, Any] | None:
    return _describe(sm.describe_endpoint, EndpointName=name)


def created_by(sm: Any, endpoint_arn: str, run_key: str) -> bool:
    """Whether this run created the endpoint: its run tag says so on every retry, which an XCom
    written by the first try cannot (a retry clears it)."""
    tags = sm.list_tags(ResourceArn=endpoint_arn).get("Tags", [])
    return {"Key": RUN_TAG, "Value": run_key} in tags


def serving_weights(description: Mapping[str, Any]) -> dict[str, float]:
    """Each variant's current weight in a DescribeEndpoint answer."""
    return {
        variant["VariantName"]: float(variant.get("CurrentWeight", 0.0))
        for variant in description.get("ProductionVariants", [])
    }


def set_weights(sm: Any, endpoint: str, weights: Mapping[str, float]) -> bool:
    """Shift traffic with UpdateEndpointWeightsAndCapacities; a no-op when already there.

    Returns True when an update was requested (the caller then waits for InService). Waits
    first for an update under way to end: SageMaker refuses another one meanwhile, and a retry
    after a killed worker finds its own update still running.
    """
    current = serving_weights(wait_settled(sm, endpoint))
    missing = sorted(set(weights) - set(current))
    if missing:
        raise EndpointError(f"endpoint {endpoint!r} has no variant(s) {missing}: has {current}")
    if all(abs(current[name] - float(weight)) < 1e-9 for name, weight in weights.items()):
        log.info("weights of %s already %s", endpoint, dict(weights))
        return False
    sm.update_endpoint_weights_and_capacities(
        EndpointName=endpoint,
        DesiredWeightsAndCapacities=[
            {"VariantName": name, "DesiredWeight": float(weight)}
            for name, weight in weights.items()
        ],
    )
    log.info("weights of %s: %s -> %s", endpoint, current, dict(weights))
    return True


def verify_serving(
    sm: Any,
    endpoint: str,
    config_name: str | None = None,
    weights: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """Check that the endpoint really serves what the rollout asked for, after an update.

    Why: SageMaker rolls a failed update back by itself and reports the endpoint InService on
    the *previous* config (only ``FailureReason`` tells), and the provider's waiter calls that
    success; a rollout that trusted it would judge a challenger that never served. Raises
    :class:`EndpointError` naming what it found; returns the description otherwise.
    """
    live = describe_endpoint(sm, endpoint)
    if live is None:
        raise EndpointError(f"endpoint {endpoint!r} does not exist")
    check_in_service(endpoint, live)
    reason = live.get("FailureReason") or "no FailureReason given"
    if config_name is not None and live["EndpointConfigName"] != config_name:
        raise EndpointError(
            f"endpoint {endpoint!r} serves {live['EndpointConfigName']!r}, not {config_name!r}: "
            f"SageMaker rolled the update back ({reason})"
        )
    if weights is not None:
        serving = serving_weights(live)
        if _shares(serving) != _shares(weights):
            raise EndpointError(
                f"endpoint {endpoint!r} serves weights {serving}, not {dict(weights)}"
            )
    return live


def check_in_service(endpoint: str, live: Mapping[str, Any]) -> None:
    """Raise :class:`EndpointError` with SageMaker's ``FailureReason`` unless the described
    endpoint (``live``) is InService."""
    if live["EndpointStatus"] != IN_SERVICE:
        reason = live.get("FailureReason") or "no FailureReason given"
        raise EndpointError(f"endpoint {endpoint!r} is {live['EndpointStatus']}: {reason}")


def _shares(weights: Mapping[str, float]) -> dict[str, float]:
    total = sum(float(w) for w in weights.values()) or 1.0
    return {name: round(float(w) / total, 9) for name, w in weights.items()}


def settled_config(
    sm: Any, endpoint: str, delay: float = POLL_SECONDS, timeout: float = SETTLE_TIMEOUT_SECONDS
) -> str | None:
    """The config the endpoint serves once any change under way has ended (an Updating
    endpoint still names the config it is leaving); None when there is no endpoint, or it was
    being deleted."""

    def settled(live: dict[str, Any] | None) -> bool:
        return live is None or live["EndpointStatus"] not in IN_PROGRESS

    live = _poll(sm, endpoint, settled, delay, timeout)
    return live["EndpointConfigName"] if live else None


def wait_settled(
    sm: Any, endpoint: str, delay: float = POLL_SECONDS, timeout: float = SETTLE_TIMEOUT_SECONDS
) -> dict:
    """The endpoint's description once no change is under way (InService, or where a change
    ended: UpdateRollbackFailed, Failed).

    Why not the ``endpoint_in_service`` waiter: it treats only Failed as final, so it waits out
    its whole budget on an endpoint in UpdateRollbackFailed. :func:`verify_serving` then names
    what the endpoint ended in.
    """

    def settled(live: dict[str, Any] | None) -> bool:
        if live is None:
            raise EndpointError(f"endpoint {endpoint!r} does not exist")
        return live["EndpointStatus"] not in IN_PROGRESS

    return _poll(sm, endpoint, settled, delay, timeout)


def wait_deleted(
    sm: Any, endpoint: str, delay: float = POLL_SECONDS, timeout: float = DELETE_TIMEOUT_SECONDS
) -> None:
    """Until DescribeEndpoint no longer finds the endpoint (it is Deleting for a while)."""
    _poll(sm, endpoint, lambda live: live is None, delay, timeout)


def _poll(
    sm: Any, endpoint: str, done: Callable[[dict | None], bool], delay: float, timeout: float
) -> Any:
    """DescribeEndpoint every ``delay`` s until ``done`` says so; its last answer."""
    deadline = time.monotonic() + timeout
    while not done(live := describe_endpoint(sm, endpoint)):
        if time.monotonic() > deadline:
            status = live["EndpointStatus"] if live else "gone"
            raise EndpointError(f"endpoint {endpoint!r} still {status} after {timeout:.0f} s")
        time.sleep(delay)
    return live


def delete_quietly(sm: Any, kind: str, name: str) -> bool:
    """Delete an endpoint, endpoint config or model; True when something was deleted.

    Cleanup must finish whatever state earlier tasks left, so "not found" is success.
    """
    operation = {
        "endpoint": ("delete_endpoint", "EndpointName"),
        "endpoint_config": ("delete_endpoint_config", "EndpointConfigName"),
        "model": ("delete_model", "ModelName"),
    }[kind]
    method, argument = operation
    try:
        getattr(sm, method)(**{argument: name})
    except ClientError as error:
        if _is_not_found(error):
            return False
        raise
    log.info("deleted %s %s", kind, name)
    return True


def _describe(operation: Any, **kwargs: str) -> dict[str, Any] | None:
    try:
        return operation(**kwargs)
    except ClientError as error:
        if _is_not_found(error):
            return None
        raise


def _is_not_found(error: ClientError) -> bool:
    message, code = error_message(error), error_code(error)
    return code in {"ValidationException", "ResourceNotFound"} and (
        "Could not find" in message or "does not exist" in message or "not found" in message.lower()
    )


def _check_same(name: str, existing_url: str | None, request: Mapping[str, Any]) -> None:
    wanted = request["PrimaryContainer"]["ModelDataUrl"]
    if existing_url != wanted:
        raise EndpointError(
            f"model {name!r} exists with artifact {existing_url!r}, not {wanted!r}; "
            "delete it or use another endpoint name"
        )
