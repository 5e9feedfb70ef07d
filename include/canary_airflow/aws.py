"""boto3 clients for the domain, built from an Airflow AWS connection.

The connection decides where AWS is: real AWS, or the local stack through ``endpoint_url`` in the
connection's extra (or the standard ``AWS_ENDPOINT_URL`` variable, which botocore reads itself).
It also says how that AWS's CloudWatch aggregates: ``cloudwatch_period_seconds`` in the extra
(default 60, SageMaker's one-minute metrics; the local stack's instant profile uses 1 s). A stage's
evidence starts on a whole period, so no count of the period before mixes into it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from botocore.config import Config

from canary.stage.window import PERIOD, first_whole_period
from canary_airflow import ids


def cloudwatch_period(hook: AwsBaseHook) -> float:
    """The CloudWatch period of the hook's connection, in seconds."""
    return float(hook.conn_config.extra_config.get(ids.CLOUDWATCH_PERIOD_EXTRA, PERIOD))


def evidence_start(hook: AwsBaseHook) -> float:
    """When a stage whose weights took effect now starts counting: the first whole CloudWatch
    period of the hook's connection (a partial one would mix in the traffic before)."""
    return first_whole_period(time.time(), cloudwatch_period(hook))


@dataclass(frozen=True)
class AwsClients:
    """Lazily created clients of one connection and region; each is made once per task."""

    conn_id: str = ids.DEFAULT_CONN_ID
    region: str | None = None
    pool_size: int = 32

    def _client(self, service: str, config: Config | None = None) -> Any:
        hook = AwsBaseHook(
            aws_conn_id=self.conn_id,
            client_type=service,
            region_name=self.region,
            config=config
            or Config(max_pool_connections=self.pool_size, retries={"mode": "standard"}),
        )
        return hook.conn

    def runtime_with(self, config: Config) -> Any:
        """A SageMaker Runtime client with its own botocore config (pool size, retries)."""
        return self._client("sagemaker-runtime", config)

    @cached_property
    def s3(self) -> Any:
        return self._client("s3")

    @cached_property
    def sagemaker(self) -> Any:
        return self._client("sagemaker")

    @cached_property
    def dynamodb(self) -> Any:
        return self._client("dynamodb")

    @cached_property
    def cloudwatch(self) -> Any:
        return self._client("cloudwatch")
