"""Thin SageMaker operators: the provider's, made idempotent, plus the one it lacks.

The provider's create operators fail on "already exists", which turns every retry into a failure;
these subclasses ask the domain's ``ensure_*`` functions instead and record whether this run
created the resource, so teardown removes only what the run made. The provider has no operator
for UpdateEndpointWeightsAndCapacities: :class:`SageMakerUpdateEndpointWeightsOperator` is ours.
Both wait for the change to end with :class:`EndpointSettledTrigger` when deferrable (the
provider's trigger never ends on UpdateRollbackFailed), then check what the endpoint serves. The
provider's register operator gets its run-time decided approval and evidence templated.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook
from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.operators.sagemaker import (
    SageMakerEndpointConfigOperator,
    SageMakerEndpointOperator,
    SageMakerModelOperator,
    SageMakerRegisterModelVersionOperator,
)
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.providers.amazon.aws.utils.sagemaker import ApprovalStatus
from airflow.providers.common.compat.sdk import conf, mask_secret

from canary.rollout import endpoint
from canary_airflow.aws import evidence_start
from canary_airflow.triggers import EndpointSettledTrigger


class EnsureSageMakerModelOperator(SageMakerModelOperator):
    """Create a SageMaker model, or accept the identical one a previous try created.

    The container environment may hold secrets: its values are masked as soon as the request
    is rendered, before Airflow keeps the rendered fields. The provider's ``preprocess_config``
    is not called: for our requests (a full role ARN, which the plan checks; no S3 operations)
    it only logs the whole request, and not every copy of a task's log is masked (the
    LocalExecutor's copy on the worker's stdout is not)."""

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        super().render_template_fields(context, jinja_env)
        for value in environment_values(self.config):
            mask_secret(value)

    def execute(self, context: Any) -> dict[str, Any]:
        created = endpoint.ensure_model(self.hook.conn, self.config)
        return {"ModelName": self.config["ModelName"], "created": created}


def environment_values(request: Mapping[str, Any]) -> list[str]:
    """Every environment value of a CreateModel request's containers."""
    containers = [request.get("PrimaryContainer") or {}, *(request.get("Containers") or [])]
    return [value for c in containers for value in (c.get("Environment") or {}).values()]


class EnsureSageMakerEndpointConfigOperator(SageMakerEndpointConfigOperator):
    """Create an endpoint config, or accept the identical one a previous try created."""

    def execute(self, context: Any) -> dict[str, Any]:
        self.preprocess_config()
        created = endpoint.ensure_endpoint_config(self.hook.conn, self.config)
        return {"EndpointConfigName": self.config["EndpointConfigName"], "created": created}


class EnsureSageMakerEndpointOperator(SageMakerEndpointOperator):
    """Create the endpoint, update it when it serves another config, skip when already there.

    A created endpoint carries the run's tag (``canary.rollout.endpoint.RUN_TAG``, in the
    request): teardown reads it to tell an endpoint this run created, which it may delete,
    from one the user already had. A retry finds the endpoint its first try created, tag and
    all, and only waits for it or updates it.
    """

    def execute(self, context: Any) -> dict[str, Any]:
        name = self.config["EndpointName"]
        existing = endpoint.describe_endpoint(self.hook.conn, name)
        if existing is not None:
            if existing["EndpointStatus"] in endpoint.IN_PROGRESS:  # e.g. a retry's own update
                existing = endpoint.wait_settled(self.hook.conn, name, self.check_interval)
            if existing["EndpointStatus"] == endpoint.FAILED:  # takes no update: say why
                endpoint.check_in_service(name, existing)
            same_config = existing["EndpointConfigName"] == self.config["EndpointConfigName"]
            if same_config and existing["EndpointStatus"] == endpoint.IN_SERVICE:
                self.log.info("endpoint %s already serves %s", name, existing["EndpointConfigName"])
                return {"EndpointName": name}
            self.operation = "update"
            self.config = {key: value for key, value in self.config.items() if key != "Tags"}
        deferrable, self.deferrable, self.wait_for_completion = self.deferrable, False, False
        super().execute(context)  # the create or update call alone; the wait is ours
        self.deferrable = deferrable
        return settle(self, name, self._verified)

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> dict[str, Any]:
        return settled(self.config["EndpointName"], event, self._verified)

    def _verified(self) -> dict[str, Any]:
        """InService is not enough: a rolled-back update is InService on the old config."""
        name = self.config["EndpointName"]
        endpoint.verify_serving(self.hook.conn, name, config_name=self.config["EndpointConfigName"])
        return {"EndpointName": name}


class SageMakerUpdateEndpointWeightsOperator(AwsBaseOperator[SageMakerHook]):
    """Shift traffic between production variants with UpdateEndpointWeightsAndCapacities.

    Idempotent (no call when the weights are already there) and waits until the change has
    ended, deferring to :class:`EndpointSettledTrigger` when ``deferrable``. Returns the weights
    and the moment the stage's evidence starts.
    """

    aws_hook_class = SageMakerHook
    template_fields: Sequence[str] = aws_template_fields("endpoint_name", "weights")
    template_fields_renderers = {"weights": "json"}  # noqa: RUF012 - Airflow's class attribute
    ui_color = "#f0e4ec"

    def __init__(
        self,
        *,
        endpoint_name: str,
        weights: Mapping[str, float],
        check_interval: int = 2,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.endpoint_name = endpoint_name
        self.weights = weights
        self.check_interval = check_interval
        self.deferrable = deferrable

    def execute(self, context: Any) -> dict[str, Any]:
        if endpoint.set_weights(self.hook.conn, self.endpoint_name, self.weights):
            return settle(self, self.endpoint_name, self._result)
        return self._result()

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> dict[str, Any]:
        return settled(self.endpoint_name, event, self._result)

    def _result(self) -> dict[str, Any]:
        """The weights the endpoint serves, checked against those asked for (a stage never
        starts on weights between two stages), and when the stage's evidence starts: the first
        whole CloudWatch period on them."""
        live = endpoint.verify_serving(self.hook.conn, self.endpoint_name, weights=self.weights)
        weights = endpoint.serving_weights(live)
        started_at = evidence_start(self.hook)
        return {"endpoint": self.endpoint_name, "weights": weights, "started_at": started_at}


def settle(operator: Any, name: str, then: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Wait for the endpoint's change to end (in the triggerer when the operator is
    deferrable), then return ``then()``, the operator's check of what the endpoint serves."""
    if operator.deferrable:
        operator.defer(
            trigger=EndpointSettledTrigger(
                endpoint=name,
                poll_interval=operator.check_interval,
                aws_conn_id=operator.aws_conn_id,
                region_name=operator.region_name,
            ),
            method_name="execute_complete",
        )
    endpoint.wait_settled(operator.hook.conn, name, operator.check_interval)
    return then()


def settled(
    name: str, event: dict[str, Any] | None, then: Callable[[], dict[str, Any]]
) -> dict[str, Any]:
    """``execute_complete`` of a deferred :func:`settle`."""
    if not event or event.get("status") != "success":
        raise RuntimeError(f"endpoint {name}: the change did not end in time: {event}")
    return then()


class RegisterChallengerOperator(SageMakerRegisterModelVersionOperator):
    """The provider's register operator, with ``extras`` templated and the approval as a string.

    Why: the approval status and the offline evidence are decided at run time by the upstream
    task, and the provider only templates ``model_approval`` (then calls ``.value`` on it).
    """

    template_fields = (*SageMakerRegisterModelVersionOperator.template_fields, "extras")

    def execute(self, context: Any) -> str:
        if isinstance(self.model_approval, str):
            self.model_approval = ApprovalStatus(self.model_approval)
        arn = super().execute(context)
        self.log.info("registered %s as %s", arn, self.model_approval.value)
        return arn
