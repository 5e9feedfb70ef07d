"""The end of every rollout, whatever happened before: leave the winner serving, remove the rest.

Teardown gets a :class:`RunManifest` assembled from whatever the run's tasks managed to record
(a task that never ran records nothing), so it works after a clean promotion, after a rollback,
and after a failure halfway through setup.

What counts as ours: resources this run created, plus canary resources of this endpoint that a
previous rollout left and that nothing serves any more (their names carry the endpoint's canary
prefix, see :meth:`RolloutPlan.resource_name`). Anything else (a user's own models or configs)
is never touched.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from canary.plan import CleanupPolicy, RolloutPlan
from canary.rollout import endpoint
from canary.rollout.artifacts import split_s3_uri
from canary.rollout.lock import EndpointLock
from canary.rollout.outcome import RunOutcome

log = logging.getLogger(__name__)

NOT_HOLDING = "(this run does not hold its lease)"  # why a teardown kept the endpoint


@dataclass(frozen=True)
class RunManifest:
    """What one run made. Missing entries mean the task that would have made them never ran."""

    models: dict[str, str] = field(default_factory=dict)  # role -> model name
    created_models: tuple[str, ...] = ()
    created_configs: tuple[str, ...] = ()
    run_key: str | None = None  # the endpoint's run tag when this run created it
    previous_config: str | None = None  # what the endpoint served when the run took its lease
    artifacts: dict[str, str] = field(default_factory=dict)  # role -> s3 uri its model reads
    uploaded: tuple[str, ...] = ()  # the roles whose artifact this run uploaded

    @property
    def uploaded_artifacts(self) -> set[str]:
        """The S3 objects this run uploaded (both roles may share one)."""
        return {self.artifacts[role] for role in self.uploaded}


@dataclass
class CleanupReport:
    """What teardown did, for the log and the report."""

    outcome: RunOutcome
    winner: str | None
    serving_config: str | None = None
    deleted: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


def tear_down(
    lock: EndpointLock,
    holder: str,
    sm: Any,
    s3: Any,
    plan: RolloutPlan,
    manifest: RunManifest,
    outcome: RunOutcome,
) -> CleanupReport:
    """:func:`finish` as the run ``holder``, trusting only a lease it still holds, and give
    the lease up only once teardown worked: a failed teardown keeps the lease, so its retry
    still holds the endpoint. A lease found free is not taken back. Either this run's own
    finished teardown released it, or it was lost: taken over, then released by the taker,
    and the endpoint may since serve another run's winner."""
    holds = lock.holds(holder)
    report = finish(sm, s3, plan, manifest, outcome, holds_endpoint=holds)
    if holds and not lock.release(holder):
        log.warning("run %s lost the lease of %s during its teardown", holder, plan.endpoint_name)
    return report


def finish(
    sm: Any,
    s3: Any,
    plan: RolloutPlan,
    manifest: RunManifest,
    outcome: RunOutcome,
    holds_endpoint: bool = True,
) -> CleanupReport:
    """Apply the plan's cleanup policy for a run that ended with ``outcome``. A run that does
    not ``holds_endpoint`` (it never got the lease, lost it, or already released it) leaves the
    endpoint, the canary resources it did not create and its uploaded artifacts alone: it
    deletes only the models and configs it made that nothing serves."""
    winner_role = "challenger" if outcome is RunOutcome.PROMOTED else "champion"
    report = CleanupReport(outcome=outcome, winner=None)
    live = endpoint.describe_endpoint(sm, plan.endpoint_name) if holds_endpoint else None
    # a Failed endpoint (its creation failed) serves nothing and takes no update: deleting it
    # is all there is left to do, when the run created it
    serves = live is not None and live["EndpointStatus"] != endpoint.FAILED
    keep = plan.cleanup is CleanupPolicy.KEEP_WINNER and serves
    created = live is not None and _created_by_run(sm, live, manifest)
    if not holds_endpoint:
        report.kept.append(f"endpoint {plan.endpoint_name} {NOT_HOLDING}")
    elif keep and winner_role in manifest.models and _changed_by_run(sm, plan, manifest, created):
        _serve_winner_alone(sm, plan, manifest, winner_role, report)
    elif live is not None:
        _remove_or_restore_endpoint(sm, plan, manifest, report, created)
    _delete_unused(sm, plan, manifest, report, leftovers=holds_endpoint)
    if holds_endpoint:
        _delete_artifacts(s3, manifest, winner_role if report.winner else None, report)
    else:  # uploads are content-addressed per endpoint: the holder's models may read them
        report.kept += [f"artifact {uri}" for uri in sorted(manifest.uploaded_artifacts)]
    return report


def _created_by_run(sm: Any, live: dict[str, Any], manifest: RunManifest) -> bool:
    """Whether this run created the endpoint: its run tag says so. Not the deploy task's
    XCom: a retry clears it, and a last try that failed before writing it would leave an
    endpoint this run created up and billing."""
    return manifest.run_key is not None and endpoint.created_by(
        sm, live["EndpointArn"], manifest.run_key
    )


def _changed_by_run(sm: Any, plan: RolloutPlan, manifest: RunManifest, created: bool) -> bool:
    """Whether the endpoint serves what this run deployed: the run ``created`` it, or (once any
    change under way has ended) it no longer serves the config the run found. A run that
    failed before its deploy leaves the user's endpoint as it was, whatever the policy."""
    if created:
        return True
    if manifest.previous_config is None:  # nothing recorded: not known to be ours
        return False
    return endpoint.settled_config(sm, plan.endpoint_name) != manifest.previous_config


def _serve_winner_alone(
    sm: Any, plan: RolloutPlan, manifest: RunManifest, role: str, report: CleanupReport
) -> None:
    spec = plan.challenger if role == "challenger" else plan.champion
    request = endpoint.endpoint_config_request(
        plan, {role: manifest.models[role]}, {spec.variant_name: 1.0}
    )
    endpoint.ensure_endpoint_config(sm, request)
    _switch_config(sm, plan.endpoint_name, request["EndpointConfigName"])
    report.winner = spec.variant_name
    report.serving_config = request["EndpointConfigName"]
    report.kept += [f"endpoint {plan.endpoint_name}", f"model {manifest.models[role]}"]


def _remove_or_restore_endpoint(
    sm: Any, plan: RolloutPlan, manifest: RunManifest, report: CleanupReport, created: bool
) -> None:
    if created:
        if endpoint.delete_quietly(sm, "endpoint", plan.endpoint_name):
            report.deleted.append(f"endpoint {plan.endpoint_name}")
        endpoint.wait_deleted(sm, plan.endpoint_name)
        return
    if manifest.previous_config is None:  # no endpoint when the run took it, none made: not ours
        return
    _switch_config(sm, plan.endpoint_name, manifest.previous_config)
    report.serving_config = manifest.previous_config
    report.kept.append(f"endpoint {plan.endpoint_name} (restored to {manifest.previous_config})")


def _switch_config(sm: Any, endpoint_name: str, config_name: str) -> None:
    """Serve ``config_name``, once any change under way has ended (SageMaker refuses an update
    meanwhile), and check that the switch really happened."""
    live = endpoint.wait_settled(sm, endpoint_name)
    if live["EndpointConfigName"] != config_name:
        sm.update_endpoint(EndpointName=endpoint_name, EndpointConfigName=config_name)
        log.info("endpoint %s switching to %s", endpoint_name, config_name)
        endpoint.wait_settled(sm, endpoint_name)
    endpoint.verify_serving(sm, endpoint_name, config_name=config_name)


def _delete_unused(
    sm: Any, plan: RolloutPlan, manifest: RunManifest, report: CleanupReport, leftovers: bool
) -> None:
    """Delete configs and models of ours that the endpoint no longer serves (with
    ``leftovers``, earlier runs' canary resources of this endpoint too)."""
    live = endpoint.describe_endpoint(sm, plan.endpoint_name)
    serving_config = live["EndpointConfigName"] if live else None
    serving_models = _models_of(sm, serving_config)
    configs = set(manifest.created_configs)
    models = set(manifest.created_models)
    if leftovers:
        configs |= _leftovers(sm, plan, "endpoint_config", ("config",))
        models |= _leftovers(sm, plan, "model", ("champion", "challenger"))
    for name in sorted(configs - {serving_config}):
        if endpoint.delete_quietly(sm, "endpoint_config", name):
            report.deleted.append(f"endpoint config {name}")
    for name in sorted(models - serving_models):
        if endpoint.delete_quietly(sm, "model", name):
            report.deleted.append(f"model {name}")


def _delete_artifacts(
    s3: Any, manifest: RunManifest, kept_role: str | None, report: CleanupReport
) -> None:
    """Artifacts this run uploaded for models that are gone; the one the serving model reads
    must stay, also when the other side uploaded it (both sides from one file)."""
    kept_uri = manifest.artifacts.get(kept_role) if kept_role else None
    for uri in manifest.uploaded_artifacts - {kept_uri}:
        bucket, key = split_s3_uri(uri)
        s3.delete_object(Bucket=bucket, Key=key)
        report.deleted.append(f"artifact {uri}")


def _models_of(sm: Any, config_name: str | None) -> set[str]:
    if config_name is None:
        return set()
    config = sm.describe_endpoint_config(EndpointConfigName=config_name)
    variants = [*config["ProductionVariants"], *config.get(endpoint.SHADOWS, [])]
    return {variant["ModelName"] for variant in variants}


_LISTINGS = {
    "endpoint_config": ("list_endpoint_configs", "EndpointConfigs", "EndpointConfigName"),
    "model": ("list_models", "Models", "ModelName"),
}


def _leftovers(sm: Any, plan: RolloutPlan, kind: str, roles: Iterable[str]) -> set[str]:
    """Earlier canary resources of this endpoint: our name prefix AND our endpoint tag."""
    method, key, name_field = _LISTINGS[kind]
    arn_field = name_field.removesuffix("Name") + "Arn"
    prefixes = tuple(plan.resource_prefix(role) for role in roles)
    found = set()
    token: str | None = None
    while True:
        page = getattr(sm, method)(**({"NextToken": token} if token else {}), MaxResults=100)
        for item in page.get(key, []):
            if item[name_field].startswith(prefixes) and _tagged(sm, item[arn_field], plan):
                found.add(item[name_field])
        token = page.get("NextToken")
        if not token:
            return found


def _tagged(sm: Any, arn: str, plan: RolloutPlan) -> bool:
    tags = sm.list_tags(ResourceArn=arn).get("Tags", [])
    return {"Key": endpoint.ENDPOINT_TAG, "Value": plan.endpoint_name} in tags
