"""Small, documented fixes to moto's SageMaker backend so the control plane behaves like AWS.

Each patch exists because moto 5.2.5 differs from SageMaker in a way our rollout depends on:

1. ``FakeEndpoint`` dropped ``InitialVariantWeight`` when it was 0 (falsy test) and had no
   default: SageMaker defaults a variant's weight to 1.0 and keeps 0. It also forgot which
   model each variant serves; we keep the config's variants (``config_variants``, and the
   shadow's in ``config_shadows``) on the endpoint, as SageMaker does, so deleting the config
   later does not break serving.
2. ``UpdateEndpointWeightsAndCapacities`` overwrote the instance counts with ``None`` when only
   weights were given, and accepted negative weights.
3. ``UpdateEndpoint`` (switch an endpoint to a new endpoint config) did not exist.
4. ``DescribeEndpoint`` returned the raw ``DataCaptureConfig`` instead of SageMaker's summary
   (``EnableCapture``, ``CaptureStatus``, ``CurrentSamplingPercentage``, ``DestinationS3Uri``).
5. An update can fail on AWS (a container that does not start): SageMaker rolls the endpoint
   back to its previous config and reports it InService with a ``FailureReason``, or ends in
   ``UpdateRollbackFailed``. A model's ``LOCAL_SAGEMAKER_UPDATE_FAILS`` asks for either. A
   CreateEndpoint with such a model ends ``Failed`` (there is nothing to roll back to), where
   DeleteEndpoint is all SageMaker still accepts.
6. moto's control plane is instant. Under the ``aws`` profile (:mod:`local_sagemaker.profile`)
   every change passes through SageMaker's states on a schedule: an endpoint is Creating,
   Updating (the old config and the old CurrentWeight serve until the switch; DesiredWeight
   shows at once), RollingBack or Deleting, and refuses another update meanwhile. Scheduled
   steps are applied lazily, by whoever looks at the endpoint next (a describe, a list, an
   invocation), so no clock thread is needed and the instant profile is the same code with
   zero durations.
7. ``CreateEndpointConfig`` ignored ``ShadowProductionVariants``. It is checked as SageMaker
   checks it (:mod:`local_sagemaker.shadow`), kept on the config (DescribeEndpointConfig shows
   it) and on the endpoint, whose DescribeEndpoint shows the shadow's weights and counts like a
   production variant's; UpdateEndpoint and UpdateEndpointWeightsAndCapacities treat it alike.
8. ``CreateModelPackage`` ignored its ``ClientToken``: a retried registration made a second
   version. SageMaker makes the call idempotent; a token already used in the group returns the
   version it created.

Patches are applied once per process, before the server starts.
"""

from __future__ import annotations

import copy
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from moto.sagemaker import models as sm_models
from moto.sagemaker import responses as sm_responses
from moto.sagemaker.exceptions import AWSValidationException, ValidationError

from local_sagemaker.faults import ROLLS_BACK, update_failure
from local_sagemaker.profile import Profile
from local_sagemaker.shadow import ShadowConfigError, check_variants

_applied = False
_profile = Profile()
_settling = threading.RLock()
# states an endpoint can be updated from (UpdateRollbackFailed: retry the update, or delete)
UPDATABLE = frozenset({"InService", "UpdateRollbackFailed"})
FAILED = "Failed"  # a create whose container never started: only DeleteEndpoint is accepted


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
    """Remember the config's variants (model names) next to moto's variant status; the shadow's
    are added by ``create_endpoint`` (moto's endpoint is visible before that, without one)."""
    _original_endpoint_init(self, *args, **kwargs)
    variants = kwargs.get("production_variants", args[4] if len(args) > 4 else [])
    self.config_variants = copy.deepcopy(variants)
    self.shadow_production_variants, self.config_shadows = None, []
    self.pending = deque()  # (due, step) of a change under way, see _schedule


def shadow_specs(config: Any) -> list[dict[str, Any]]:
    """The config's ShadowProductionVariants (none for a config made without them)."""
    return getattr(config, "shadow_production_variants", None) or []


def variant_summaries(endpoint: Any) -> list[dict[str, Any]]:
    """DescribeEndpoint's summaries of every variant: production ones, then the shadow."""
    return [*endpoint.production_variants, *(endpoint.shadow_production_variants or [])]


def _summaries(
    endpoint: Any, specs: list[dict[str, Any]], retained: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    summaries = endpoint._process_production_variants(specs)
    for summary in summaries:
        summary.update(retained.get(summary["VariantName"], {}))
    return summaries


def _take_variants(endpoint: Any, config: Any, retained: dict[str, dict[str, Any]]) -> None:
    """Serve the config's production and shadow variants; ``retained`` (by name) keeps the
    weights and counts of variants that stay (UpdateEndpoint's RetainAllVariantProperties)."""
    shadows = shadow_specs(config)
    endpoint.production_variants = _summaries(endpoint, config.production_variants, retained)
    endpoint.shadow_production_variants = _summaries(endpoint, shadows, retained) or None
    endpoint.config_variants = copy.deepcopy(config.production_variants)
    endpoint.config_shadows = copy.deepcopy(shadows)


def _schedule(endpoint: Any, status: str, steps: list[tuple[float, Callable[[], None]]]) -> None:
    """Put the endpoint in ``status`` now and run each step ``seconds`` after the one before."""
    with _settling:
        endpoint.endpoint_status = status
        endpoint.last_modified_time = sm_models.utcnow()
        due, pending = time.time(), deque()
        for seconds, step in steps:
            due += seconds
            pending.append((due, step))
        endpoint.pending = pending
        settle(endpoint)


@contextmanager
def changes_held() -> Iterator[None]:
    """Hold every control-plane change off while a reader takes a view of several fields of
    an endpoint: a change (a switch of config, new weights) then runs whole or not at all."""
    with _settling:
        yield


def settle(endpoint: Any) -> None:
    """Apply the endpoint's scheduled steps that are due (a no-op when none is pending)."""
    if not endpoint.pending:
        return
    with _settling:
        pending = endpoint.pending
        while pending and pending[0][0] <= time.time():
            pending.popleft()[1]()
            endpoint.last_modified_time = sm_models.utcnow()


def _require_updatable(endpoint: Any) -> None:
    settle(endpoint)
    if endpoint.endpoint_status == FAILED:
        raise AWSValidationException(
            f'Cannot update endpoint "{endpoint.arn}" in Failed state; delete it and create '
            "it again."
        )
    if endpoint.endpoint_status not in UPDATABLE:
        raise AWSValidationException(f'Cannot update in-progress endpoint "{endpoint.arn}".')


_original_create_endpoint = sm_models.SageMakerModelBackend.create_endpoint
_original_delete_endpoint = sm_models.SageMakerModelBackend.delete_endpoint
_original_list_endpoints = sm_models.SageMakerModelBackend.list_endpoints


def create_endpoint(self: Any, *args: Any, **kwargs: Any) -> Any:
    """CreateEndpoint: Creating for the profile's create time, then InService."""
    endpoint = _original_create_endpoint(self, *args, **kwargs)
    config = self.endpoint_configs[endpoint.endpoint_config_name]
    _take_variants(endpoint, config, {})
    failure = _update_failure(self, config)
    step = _status(endpoint, "InService") if failure is None else _create_failed(endpoint)
    _schedule(endpoint, "Creating", [(_profile.create_seconds, step)])
    return endpoint


def _create_failed(endpoint: Any) -> Callable[[], None]:
    def step() -> None:
        endpoint.failure_reason = (
            "The primary container for production variant failed to pass the ping health check."
        )
        endpoint.endpoint_status = FAILED

    return step


def delete_endpoint(self: Any, endpoint_name: str) -> None:
    """DeleteEndpoint: Deleting for the profile's delete time, then gone."""
    endpoint = _find_endpoint(self, endpoint_name)
    if endpoint.endpoint_status == "Deleting":
        return

    def gone() -> None:
        if self.endpoints.get(endpoint_name) is endpoint:
            _original_delete_endpoint(self, endpoint_name)

    _schedule(endpoint, "Deleting", [(_profile.delete_seconds, gone)])


def describe_endpoint(self: Any, endpoint_name: str) -> dict[str, Any]:
    """DescribeEndpoint of the settled endpoint (not found once its deletion came due)."""
    return _find_endpoint(self, endpoint_name).response_object


def list_endpoints(self: Any, *args: Any, **kwargs: Any) -> list[Any]:
    """ListEndpoints on settled endpoints (one whose deletion came due is gone)."""
    for endpoint in list(self.endpoints.values()):
        settle(endpoint)
    return _original_list_endpoints(self, *args, **kwargs)


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
    """DescribeEndpoint with SageMaker's DataCaptureConfig summary (of a settled endpoint: the
    patched ``describe_endpoint`` finds it through ``_find_endpoint``)."""
    response = _original_response_object(self)
    response.pop("ConfigVariants", None)
    response.pop("ConfigShadows", None)
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
    settle(endpoint)
    if backend.endpoints.get(endpoint_name) is not endpoint:  # its deletion just came due
        return _find_endpoint(backend, endpoint_name)
    return endpoint


def _check_desired(endpoint: Any, desired: list[dict[str, Any]]) -> None:
    known = {v["VariantName"] for v in variant_summaries(endpoint)}
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


# each field of UpdateEndpointWeightsAndCapacities: what it sets at once, what at the end, its type
_DESIRED_CURRENT = (
    ("DesiredWeight", "CurrentWeight", float),
    ("DesiredInstanceCount", "CurrentInstanceCount", int),
)


def update_endpoint_weights_and_capacities(
    self: Any, endpoint_name: str, desired_weights_and_capacities: list[dict[str, Any]]
) -> str:
    """Apply only the fields given: desired values show at once, current ones after the
    profile's weights time (at once when instant), while the endpoint is Updating."""
    endpoint = _find_endpoint(self, endpoint_name)
    _check_desired(endpoint, desired_weights_and_capacities)
    _require_updatable(endpoint)
    by_name = {v["VariantName"]: v for v in variant_summaries(endpoint)}
    changes = []
    for item in desired_weights_and_capacities:
        variant = by_name[item["VariantName"]]
        for desired, current, kind in _DESIRED_CURRENT:
            if item.get(desired) is not None:
                value = kind(item[desired])
                variant[desired] = value
                changes.append((variant, current, value))

    def switch() -> None:
        for variant, current, value in changes:
            variant[current] = value
        endpoint.endpoint_status = "InService"

    _schedule(endpoint, "Updating", [(_profile.weights_seconds, switch)])
    return endpoint.arn


def update_endpoint(
    self: Any,
    endpoint_name: str,
    endpoint_config_name: str,
    retain_all_variant_properties: bool = False,
) -> str:
    """Switch the endpoint to another config after the profile's update time (the old config
    serves meanwhile), keeping current weights when asked to; a failing update rolls back."""
    endpoint = _find_endpoint(self, endpoint_name)
    config = self.endpoint_configs.get(endpoint_config_name)
    if config is None:
        arn = sm_models.FakeEndpointConfig.arn_formatter(
            endpoint_config_name, self.account_id, self.region_name
        )
        raise ValidationError(message=f"Could not find endpoint configuration '{arn}'.")
    _require_updatable(endpoint)
    endpoint.failure_reason = None
    failure = _update_failure(self, config)
    if failure is None:
        switch = _switch(endpoint, config, retain_all_variant_properties)
        steps = [(_profile.update_seconds, switch)]
    else:
        steps = [
            (_profile.update_seconds, _status(endpoint, "RollingBack")),
            (_profile.rollback_seconds, _rolled_back(endpoint, endpoint_config_name, failure)),
        ]
    _schedule(endpoint, "Updating", steps)
    return endpoint.arn


def _switch(endpoint: Any, config: Any, retain: bool) -> Callable[[], None]:
    def step() -> None:
        old = {v["VariantName"]: v for v in variant_summaries(endpoint)} if retain else {}
        _take_variants(endpoint, config, old)
        endpoint.endpoint_config_name = config.endpoint_config_name
        endpoint.data_capture_config = config.data_capture_config
        endpoint.endpoint_status = "InService"

    return step


def _status(endpoint: Any, status: str) -> Callable[[], None]:
    def step() -> None:
        endpoint.endpoint_status = status

    return step


def _rolled_back(endpoint: Any, config_name: str, failure: str) -> Callable[[], None]:
    def step() -> None:
        endpoint.failure_reason = (
            f"Failed to update endpoint to {config_name}: the container of a new "
            "production variant did not pass its ping health check."
        )
        endpoint.endpoint_status = "InService" if failure == ROLLS_BACK else "UpdateRollbackFailed"

    return step


def _update_failure(backend: Any, config: Any) -> str | None:
    """The fault the new config's models ask for (the first one that asks; a shadow's container
    has to start too)."""
    for variant in [*config.production_variants, *shadow_specs(config)]:
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


_original_create_endpoint_config_response = sm_responses.SageMakerResponse.create_endpoint_config


def _create_endpoint_config_response(self: Any) -> Any:
    """CreateEndpointConfig with ShadowProductionVariants: checked before moto stores the config
    (each shadow's model must exist, as a production variant's must), then kept on it."""
    shadows = self._get_param("ShadowProductionVariants") or []
    try:
        check_variants(self._get_param("ProductionVariants") or [], shadows)
    except ShadowConfigError as error:
        raise AWSValidationException(str(error)) from None
    self.sagemaker_backend.validate_production_variants(shadows)
    result = _original_create_endpoint_config_response(self)
    config = self.sagemaker_backend.endpoint_configs[self._get_param("EndpointConfigName")]
    config.shadow_production_variants = copy.deepcopy(shadows) or None
    return result


_create_model_package = sm_models.SageMakerModelBackend.create_model_package


def create_model_package(self: Any, *args: Any, **kwargs: Any) -> str:
    """moto's, unless the group already has a version made with this ``ClientToken``."""
    token, group = kwargs.get("client_token"), kwargs.get("model_package_group_name")
    if token:
        made = (
            package.arn
            for package in self.model_packages.values()
            if package.client_token == token and package.model_package_group_name == group
        )
        if (arn := next(made, None)) is not None:
            return arn
    return _create_model_package(self, *args, **kwargs)


def apply_patches(profile: Profile | None = None) -> None:
    """Install the fixes above into moto (idempotent), with ``profile``'s timing."""
    global _applied, _profile
    _profile = profile or _profile
    if _applied:
        return
    endpoint_cls = sm_models.FakeEndpoint
    endpoint_cls._process_production_variants = _process_production_variants
    endpoint_cls.__init__ = _endpoint_init
    endpoint_cls.response_object = property(_endpoint_response_object)
    backend_cls = sm_models.SageMakerModelBackend
    backend_cls.update_endpoint_weights_and_capacities = update_endpoint_weights_and_capacities
    backend_cls.update_endpoint = update_endpoint
    backend_cls.create_endpoint = create_endpoint
    backend_cls.delete_endpoint = delete_endpoint
    backend_cls.list_endpoints = list_endpoints
    backend_cls.describe_endpoint = describe_endpoint
    backend_cls.create_model_package = create_model_package
    sm_responses.SageMakerResponse.update_endpoint = _update_endpoint_response
    sm_responses.SageMakerResponse.create_endpoint_config = _create_endpoint_config_response
    _applied = True
