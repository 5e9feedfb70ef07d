"""Small, documented fixes to moto's SageMaker backend so the control plane behaves like AWS.

Each patch exists because moto 5.2.5 differs from SageMaker in a way our rollout depends on:

1. ``FakeEndpoint`` dropped ``InitialVariantWeight`` when it was 0 (falsy test) and had no
   default: SageMaker defaults a variant's weight to 1.0 and keeps 0. It also forgot which
   model each variant serves; we keep the config's variants (``config_variants``) on the
   endpoint, as SageMaker does, so deleting the config later does not break serving.
2. ``UpdateEndpointWeightsAndCapacities`` overwrote the instance counts with ``None`` when only
   weights were given, and accepted negative weights.
3. ``UpdateEndpoint`` (switch an endpoint to a new endpoint config) did not exist.
4. ``DescribeEndpoint`` returned the raw ``DataCaptureConfig`` instead of SageMaker's summary
   (``EnableCapture``, ``CaptureStatus``, ``CurrentSamplingPercentage``, ``DestinationS3Uri``).
5. An update can fail on AWS (a container that does not start): SageMaker rolls the endpoint
   back to its previous config and reports it InService with a ``FailureReason``, or ends in
   ``UpdateRollbackFailed``. A model's ``LOCAL_SAGEMAKER_UPDATE_FAILS`` asks for either.

Patches are applied once per process, before the server starts.
"""

from __future__ import annotations

import copy
from typing import Any

from moto.sagemaker import models as sm_models
from moto.sagemaker import responses as sm_responses
from moto.sagemaker.exceptions import AWSValidationException, ValidationError

from local_sagemaker.faults import ROLLS_BACK, update_failure

_applied = False


def _process_production_variants(
    self: Any, production_variants: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Variant status as DescribeEndpoint shows it; weight defaults to 1.0, 0 is kept."""
    result = []
    for spec in production_variants:
        variant: dict[str, Any] = {"VariantName": spec["VariantName"]}
        weight = float(spec.get("InitialVariantWeight", 1.0))
        variant["CurrentWeight"] = variant["DesiredWeight"] = weight
        if spec.get("InitialInstanceCount") is not None:
            count = spec["InitialInstanceCount"]
            variant["CurrentInstanceCount"] = variant["DesiredInstanceCount"] = count
        if spec.get("ServerlessConfig"):
            variant["CurrentServerlessConfig"] = spec["ServerlessConfig"]
            variant["DesiredServerlessConfig"] = spec["ServerlessConfig"]
        result.append(variant)
    return result


_original_endpoint_init = sm_models.FakeEndpoint.__init__


def _endpoint_init(self: Any, *args: Any, **kwargs: Any) -> None:
    """Remember the config's variants (model names) next to moto's variant status."""
    _original_endpoint_init(self, *args, **kwargs)
    variants = kwargs.get("production_variants", args[4] if len(args) > 4 else [])
    self.config_variants = copy.deepcopy(variants)


def _data_capture_summary(raw: dict[str, Any] | None) -> dict[str, Any] | None:
    if not raw:
        return None
    enabled = bool(raw.get("EnableCapture", True))
    summary = {
        "EnableCapture": enabled,
        "CaptureStatus": "Started" if enabled else "Stopped",
        "CurrentSamplingPercentage": int(raw.get("InitialSamplingPercentage", 100)),
        "DestinationS3Uri": raw.get("DestinationS3Uri", ""),
    }
    if raw.get("KmsKeyId"):
        summary["KmsKeyId"] = raw["KmsKeyId"]
    return summary


_original_response_object = sm_models.FakeEndpoint.response_object.fget


def _endpoint_response_object(self: Any) -> dict[str, Any]:
    """DescribeEndpoint with SageMaker's DataCaptureConfig summary."""
    response = _original_response_object(self)
    response.pop("ConfigVariants", None)
    if getattr(self, "failure_reason", None):
        response["FailureReason"] = self.failure_reason
    summary = _data_capture_summary(self.data_capture_config)
    if summary is None:
        response.pop("DataCaptureConfig", None)
    else:
        response["DataCaptureConfig"] = summary
    return response


def _find_endpoint(backend: Any, endpoint_name: str) -> Any:
    endpoint = backend.endpoints.get(endpoint_name)
    if endpoint is None:
        arn = sm_models.FakeEndpoint.arn_formatter(
            endpoint_name, backend.account_id, backend.region_name
        )
        raise ValidationError(message=f"Could not find endpoint '{arn}'.")
    return endpoint


def _check_desired(endpoint: Any, desired: list[dict[str, Any]]) -> None:
    known = {v["VariantName"] for v in endpoint.production_variants}
    seen: set[str] = set()
    for item in desired:
        name = item.get("VariantName")
        if name in seen:
            raise AWSValidationException(
                f'The variant name "{name}" was non-unique within the request.'
            )
        if name not in known:
            raise AWSValidationException(
                f'The variant name(s) "{name}" is/are not present within endpoint '
                f'configuration "{endpoint.endpoint_config_name}".'
            )
        weight = item.get("DesiredWeight")
        if weight is not None and float(weight) < 0:
            raise AWSValidationException(
                f"DesiredWeight of variant {name} must be >= 0, got {weight}"
            )
        seen.add(name)


def update_endpoint_weights_and_capacities(
    self: Any, endpoint_name: str, desired_weights_and_capacities: list[dict[str, Any]]
) -> str:
    """Apply only the fields given; weights become current at once (the update is instant)."""
    endpoint = _find_endpoint(self, endpoint_name)
    _check_desired(endpoint, desired_weights_and_capacities)
    by_name = {v["VariantName"]: v for v in endpoint.production_variants}
    for item in desired_weights_and_capacities:
        variant = by_name[item["VariantName"]]
        if item.get("DesiredWeight") is not None:
            variant["CurrentWeight"] = variant["DesiredWeight"] = float(item["DesiredWeight"])
        if item.get("DesiredInstanceCount") is not None:
            count = item["DesiredInstanceCount"]
            variant["CurrentInstanceCount"] = variant["DesiredInstanceCount"] = count
    endpoint.last_modified_time = sm_models.utcnow()
    endpoint.endpoint_status = "InService"
    return endpoint.arn


def update_endpoint(
    self: Any,
    endpoint_name: str,
    endpoint_config_name: str,
    retain_all_variant_properties: bool = False,
) -> str:
    """Switch the endpoint to another config, keeping current weights when asked to."""
    endpoint = _find_endpoint(self, endpoint_name)
    config = self.endpoint_configs.get(endpoint_config_name)
    if config is None:
        arn = sm_models.FakeEndpointConfig.arn_formatter(
            endpoint_config_name, self.account_id, self.region_name
        )
        raise ValidationError(message=f"Could not find endpoint configuration '{arn}'.")
    failure = _update_failure(self, config)
    if failure is not None:
        endpoint.failure_reason = (
            f"Failed to update endpoint to {endpoint_config_name}: the container of a new "
            "production variant did not pass its ping health check."
        )
        endpoint.endpoint_status = "InService" if failure == ROLLS_BACK else "UpdateRollbackFailed"
        endpoint.last_modified_time = sm_models.utcnow()
        return endpoint.arn
    endpoint.failure_reason = None
    old = {v["VariantName"]: v for v in endpoint.production_variants}
    variants = endpoint._process_production_variants(config.production_variants)
    if retain_all_variant_properties:
        for variant in variants:
            variant.update(old.get(variant["VariantName"], {}))
    endpoint.production_variants = variants
    endpoint.config_variants = copy.deepcopy(config.production_variants)
    endpoint.endpoint_config_name = endpoint_config_name
    endpoint.data_capture_config = config.data_capture_config
    endpoint.last_modified_time = sm_models.utcnow()
    endpoint.endpoint_status = "InService"
    return endpoint.arn


def _update_failure(backend: Any, config: Any) -> str | None:
    """The fault the new config's models ask for (the first one that asks)."""
    for variant in config.production_variants:
        model = backend._models.get(variant.get("ModelName"))
        env = (model.primary_container or {}).get("Environment") if model else None
        failure = update_failure(env)
        if failure is not None:
            return failure
    return None


def _update_endpoint_response(self: Any) -> Any:
    """UpdateEndpoint response handler (moto has none)."""
    arn = self.sagemaker_backend.update_endpoint(
        endpoint_name=self._get_param("EndpointName"),
        endpoint_config_name=self._get_param("EndpointConfigName"),
        retain_all_variant_properties=bool(self._get_param("RetainAllVariantProperties")),
    )
    return sm_responses.ActionResult({"EndpointArn": arn})


def apply_patches() -> None:
    """Install the fixes above into moto (idempotent)."""
    global _applied
    if _applied:
        return
    endpoint_cls = sm_models.FakeEndpoint
    endpoint_cls._process_production_variants = _process_production_variants
    endpoint_cls.__init__ = _endpoint_init
    endpoint_cls.response_object = property(_endpoint_response_object)
    backend_cls = sm_models.SageMakerModelBackend
    backend_cls.update_endpoint_weights_and_capacities = update_endpoint_weights_and_capacities
    backend_cls.update_endpoint = update_endpoint
    sm_responses.SageMakerResponse.update_endpoint = _update_endpoint_response
    _applied = True
