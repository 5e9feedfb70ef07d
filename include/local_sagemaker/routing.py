"""Per-endpoint routing tables built live from moto's in-process SageMaker backend.

A table holds the endpoint's variants, their *current* weights, their models (loaded lazily),
its shadow variant and the share of requests replicated to it, and the capture settings. It is
cached under a key made of the endpoint object, its config name and its current weights (the
shadow's included), so UpdateEndpointWeightsAndCapacities and UpdateEndpoint are picked up on
the very next request while the hot path does no parsing and no lookups beyond one dict access
per request.
"""

from __future__ import annotations

import bisect
import random
import threading
from dataclasses import dataclass, field
from typing import Any

from moto.sagemaker.models import sagemaker_backends

from local_sagemaker.artifact_store import ArtifactError
from local_sagemaker.capture import CaptureConfig, capture_config
from local_sagemaker.control_plane import changes_held, settle, variant_summaries
from local_sagemaker.errors import internal_failure, validation_error
from local_sagemaker.faults import Faults, faults_from_environment
from local_sagemaker.loader import LoadedModel, ModelCache
from local_sagemaker.shadow import sampling_share


@dataclass
class Variant:
    """One production (or shadow) variant as the runtime serves it."""

    name: str
    weight: float
    image: str | None = None
    model_data_url: str | None = None
    faults: Faults = field(default_factory=Faults)
    setup_error: str | None = None
    model: LoadedModel | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def ensure_model(self, cache: ModelCache, account_id: str) -> LoadedModel:
        """The loaded model, loading it on first use; failures name the artifact (500)."""
        model = self.model
        if model is not None:
            return model
        if self.setup_error:
            raise internal_failure(self.setup_error)
        with self._lock:
            if self.model is None:
                try:
                    self.model = cache.get(self.model_data_url or "", self.image, account_id)
                except ArtifactError as exc:
                    raise internal_failure(f"variant {self.name}: {exc}") from None
            return self.model


@dataclass
class EndpointTable:
    """Production variants of one endpoint with cumulative weights for O(log n) weighted
    choice, and the shadow variant that a share of their requests is replicated to."""

    endpoint: str
    config_name: str
    variants: dict[str, Variant]
    capture: CaptureConfig | None
    shadow: Variant | None = None
    shadow_share: float = field(default=0.0, init=False)
    _names: list[str] = field(default_factory=list)
    _cumulative: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        total = 0.0
        for variant in self.variants.values():
            if variant.weight > 0:
                total += variant.weight
                self._names.append(variant.name)
                self._cumulative.append(total)
        if self.shadow is not None and len(self.variants) == 1:  # as the control plane checks
            production = next(iter(self.variants.values()))
            self.shadow_share = sampling_share(production.weight, self.shadow.weight)

    def mirrored(self) -> Variant | None:
        """The shadow variant when this request is replicated to it (drawn at its share)."""
        share = self.shadow_share
        if share >= 1.0 or (share > 0 and random.random() < share):
            return self.shadow
        return None

    def choose(self, target: str | None) -> Variant:
        """Pick a production variant: TargetVariant wins (a shadow is no target: it is unknown
        here, as on AWS, where TargetVariant names a production variant), otherwise weighted
        random by current weight."""
        if target is not None:
            variant = self.variants.get(target)
            if variant is None:
                raise validation_error(
                    f"Endpoint {self.endpoint} does not have target variant {target}"
                )
            return variant
        if not self._cumulative:
            raise validation_error(f"Endpoint {self.endpoint} has no variant with a weight > 0")
        point = random.random() * self._cumulative[-1]
        return self.variants[self._names[bisect.bisect_right(self._cumulative, point)]]


def _container(backend: Any, model_name: str) -> dict[str, Any]:
    model = backend._models.get(model_name)
    if model is None:
        raise LookupError(f"model {model_name} not found")
    container = model.primary_container or (model.containers[0] if model.containers else {})
    package = container.get("ModelPackageName")
    if package and not container.get("ModelDataUrl"):
        spec = backend.describe_model_package(package).inference_specification or {}
        container = {**(spec.get("Containers") or [{}])[0], **container}
    return container


def _variant(backend: Any, spec: dict[str, Any], weights: dict[str, float]) -> Variant:
    variant = Variant(name=spec["VariantName"], weight=weights.get(spec["VariantName"], 0.0))
    try:
        container = _container(backend, spec.get("ModelName", ""))
        variant.image = container.get("Image")
        variant.model_data_url = container.get("ModelDataUrl")
        variant.faults = faults_from_environment(container.get("Environment"))
        if not variant.model_data_url:
            variant.setup_error = f"variant {variant.name}: model has no ModelDataUrl"
    except Exception as exc:  # LookupError, FaultConfigError or moto's ValidationError
        variant.setup_error = f"variant {variant.name}: {exc}"
    return variant


def _key(endpoint: Any) -> tuple[int, str, tuple[tuple[str, float], ...]]:
    """What a routing table depends on: the endpoint object, its config and its weights."""
    return id(endpoint), endpoint.endpoint_config_name, _weights(endpoint)


def _weights(endpoint: Any) -> tuple[tuple[str, float], ...]:
    return tuple(
        (v["VariantName"], float(v.get("CurrentWeight", 1.0) or 0.0))
        for v in variant_summaries(endpoint)
    )


def sagemaker_backend(account_id: str, region: str) -> Any:
    """moto's SageMaker backend for (account, region), lock-free once it exists.

    ``sagemaker_backends[account][region]`` takes moto's process-wide ``backend_lock`` (an
    RLock every service shares) and scans its list of backend dicts on every call; on the hot
    path that lock was contended by the other request threads and showed as OverheadLatency
    (route p99 1.35 ms). Plain dict reads see the same objects; moto's own lookup still runs
    the first time, to create them.
    """
    regions = dict.get(sagemaker_backends, account_id)
    backend = dict.get(regions, region) if regions is not None else None
    return backend if backend is not None else sagemaker_backends[account_id][region]


# An Updating or RollingBack endpoint still serves (its old config); these serve nothing, and
# the runtime answers as for an endpoint it does not know (SageMaker documents no other error).
NOT_SERVING = frozenset({"Creating", "Deleting", "Failed", "OutOfService"})


class Router:
    """Finds (and caches) the routing table of an endpoint in moto's backend."""

    def __init__(self) -> None:
        self._tables: dict[tuple[str, str, str], tuple[tuple, EndpointTable]] = {}

    def table(self, account_id: str, region: str, endpoint_name: str) -> EndpointTable:
        """The current table; a 400 ValidationError naming the endpoint if it does not exist."""
        backend = sagemaker_backend(account_id, region)
        endpoint = backend.endpoints.get(endpoint_name)
        if endpoint is not None and endpoint.pending:  # an update of the aws profile under way
            settle(endpoint)
            endpoint = backend.endpoints.get(endpoint_name)
        if endpoint is None or endpoint.endpoint_status in NOT_SERVING:
            raise validation_error(f"Endpoint {endpoint_name} of account {account_id} not found.")
        slot = (account_id, region, endpoint_name)
        cached = self._tables.get(slot)
        if cached is not None and cached[0] == _key(endpoint):
            return cached[1]  # a table built from one whole state, which the key still names
        with changes_held():  # built from one whole state: no change half applied
            key = _key(endpoint)
            table = self._build(backend, endpoint, dict(key[2]))
        self._forget_deleted()
        self._tables[slot] = (key, table)
        return table

    def _forget_deleted(self) -> None:
        """Drop the tables (and so the loaded models) of endpoints that no longer exist: a
        long-lived stack sees a new endpoint per rollout. Runs only when a table is built."""
        for slot in list(self._tables):
            account_id, region, name = slot
            if name not in sagemaker_backend(account_id, region).endpoints:
                self._tables.pop(slot, None)

    def _build(self, backend: Any, endpoint: Any, weights: dict[str, float]) -> EndpointTable:
        specs = getattr(endpoint, "config_variants", None)
        if specs is None:  # endpoint created before our control-plane patches were applied
            config = backend.endpoint_configs.get(endpoint.endpoint_config_name)
            specs = config.production_variants if config else []
        variants = {spec["VariantName"]: _variant(backend, spec, weights) for spec in specs}
        shadows = [_variant(backend, spec, weights) for spec in endpoint.config_shadows]
        return EndpointTable(
            endpoint=endpoint.endpoint_name,
            config_name=endpoint.endpoint_config_name,
            variants=variants,
            capture=capture_config(endpoint.data_capture_config, endpoint.endpoint_name),
            shadow=shadows[0] if shadows else None,
        )
