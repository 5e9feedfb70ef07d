"""How the local stack's world behaves in time: ``instant`` (the default) or ``aws``.

``instant`` answers every control-plane call at once, shows metrics and capture records within
a flush interval and never throttles: the fastest way to run a rollout. ``aws``
(``LOCAL_SAGEMAKER_PROFILE=aws``, ``python -m local_sagemaker --profile aws``,
``make local-stack PROFILE=aws``) behaves as SageMaker and CloudWatch do, with every duration
multiplied by ``LOCAL_SAGEMAKER_TIME_SCALE`` (default 0.1, so a 4-minute create takes 24 s):

=================================  =========  ==============================================
knob (environment variable)        AWS value  behaviour under the profile
=================================  =========  ==============================================
``LOCAL_SAGEMAKER_CREATE_SECONDS``     240 s  CreateEndpoint: Creating, then InService
``LOCAL_SAGEMAKER_UPDATE_SECONDS``     240 s  UpdateEndpoint: Updating (the old config serves)
                                              until the switch; a failing update then spends
                                              ``ROLLBACK_SECONDS`` (120 s) in RollingBack
``LOCAL_SAGEMAKER_WEIGHTS_SECONDS``     60 s  UpdateEndpointWeightsAndCapacities: Updating,
                                              DesiredWeight at once, CurrentWeight at the end
``LOCAL_SAGEMAKER_DELETE_SECONDS``      60 s  DeleteEndpoint: Deleting, then gone
``LOCAL_SAGEMAKER_METRICS_PERIOD``      60 s  CloudWatch datapoints per period; StartTime is
                                              rounded down to a period as CloudWatch does
``LOCAL_SAGEMAKER_METRICS_LAG``         90 s  a request shows in CloudWatch this long after it
                                              was served; the current period is partial
``LOCAL_SAGEMAKER_CAPTURE_INTERVAL``   120 s  Data Capture files are written in batches
``LOCAL_SAGEMAKER_THROTTLE_RATE``     10 /s   SageMaker control-plane calls per second per
                                              operation (burst twice that); above it a
                                              ThrottlingException (not scaled: it is a rate)
=================================  =========  ==============================================

Each knob's variable gives the AWS-side value; the scale applies to all durations. While an
endpoint is Creating, Updating, RollingBack or Deleting, an update fails with AWS's
``ValidationException: Cannot update in-progress endpoint``. Sources for the AWS values are in
docs/architecture.md ("The local stack's AWS profile").
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace

PROFILE_ENV = "LOCAL_SAGEMAKER_PROFILE"
TIME_SCALE_ENV = "LOCAL_SAGEMAKER_TIME_SCALE"
INSTANT, AWS = "instant", "aws"
DEFAULT_TIME_SCALE = 0.1


class ProfileError(ValueError):
    """A profile variable has a value the stack cannot use."""


@dataclass(frozen=True)
class Profile:
    """Durations in seconds as the stack applies them (already scaled)."""

    name: str = INSTANT
    create_seconds: float = 0.0
    update_seconds: float = 0.0
    rollback_seconds: float = 0.0
    weights_seconds: float = 0.0
    delete_seconds: float = 0.0
    metrics_period: float = 1.0
    metrics_lag: float = 0.0
    capture_interval: float = 0.0
    throttle_rate: float = 0.0  # calls per second per operation; 0: never throttles

    @property
    def asynchronous(self) -> bool:
        """Whether control-plane changes take time (the endpoint passes through states)."""
        return self.name != INSTANT

    def floor_to_period(self, epoch_seconds: float) -> float:
        """The start of the CloudWatch period holding ``epoch_seconds``."""
        return math.floor(epoch_seconds / self.metrics_period) * self.metrics_period


#: SageMaker's and CloudWatch's own values, before scaling (see the module's table).
AWS_VALUES = Profile(
    name=AWS,
    create_seconds=240.0,
    update_seconds=240.0,
    rollback_seconds=120.0,
    weights_seconds=60.0,
    delete_seconds=60.0,
    metrics_period=60.0,
    metrics_lag=90.0,
    capture_interval=120.0,
    throttle_rate=10.0,
)
_ENV_NAMES = {
    "create_seconds": "LOCAL_SAGEMAKER_CREATE_SECONDS",
    "update_seconds": "LOCAL_SAGEMAKER_UPDATE_SECONDS",
    "rollback_seconds": "LOCAL_SAGEMAKER_ROLLBACK_SECONDS",
    "weights_seconds": "LOCAL_SAGEMAKER_WEIGHTS_SECONDS",
    "delete_seconds": "LOCAL_SAGEMAKER_DELETE_SECONDS",
    "metrics_period": "LOCAL_SAGEMAKER_METRICS_PERIOD",
    "metrics_lag": "LOCAL_SAGEMAKER_METRICS_LAG",
    "capture_interval": "LOCAL_SAGEMAKER_CAPTURE_INTERVAL",
    "throttle_rate": "LOCAL_SAGEMAKER_THROTTLE_RATE",
}
_UNSCALED = {"throttle_rate"}


def aws_env(scale: float, **knobs: float) -> dict[str, str]:
    """The environment asking for the ``aws`` profile at ``scale``, with AWS-side values for any
    knob named as a :class:`Profile` field (``weights_seconds=300``): how tests and benches set
    a stack's clock without spelling the variables."""
    unknown = sorted(set(knobs) - set(_ENV_NAMES))
    if unknown:
        raise ProfileError(f"no such knob: {unknown}; knobs are {sorted(_ENV_NAMES)}")
    named = {_ENV_NAMES[knob]: str(value) for knob, value in knobs.items()}
    return {PROFILE_ENV: AWS, TIME_SCALE_ENV: str(scale), **named}


def profile_from_env(env: Mapping[str, str] | None = None, name: str | None = None) -> Profile:
    """The profile the environment asks for (``name`` overrides ``LOCAL_SAGEMAKER_PROFILE``)."""
    env = os.environ if env is None else env
    chosen = (name or env.get(PROFILE_ENV) or INSTANT).strip().lower()
    if chosen == INSTANT:
        return Profile()
    if chosen != AWS:
        raise ProfileError(f"{PROFILE_ENV}={chosen!r} must be {INSTANT!r} or {AWS!r}")
    scale = _number(env, TIME_SCALE_ENV, DEFAULT_TIME_SCALE)
    if scale <= 0:
        raise ProfileError(f"{TIME_SCALE_ENV}={scale} must be > 0")
    values = {}
    for item in fields(Profile):
        if item.name == "name":
            continue
        value = _number(env, _ENV_NAMES[item.name], getattr(AWS_VALUES, item.name))
        values[item.name] = value if item.name in _UNSCALED else value * scale
    if values["metrics_period"] <= 0:
        raise ProfileError(f"{_ENV_NAMES['metrics_period']} must be > 0")
    return replace(AWS_VALUES, **values)


def _number(env: Mapping[str, str], variable: str, default: float) -> float:
    raw = env.get(variable)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ProfileError(f"{variable}={raw!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise ProfileError(f"{variable}={raw!r} must be a finite number >= 0")
    return value
