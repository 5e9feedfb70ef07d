"""Publish a rollout's news to the plan's SNS topic with the Amazon provider's ``SnsHook``.

A notification is never worth a failed rollout: a publish that fails (no such topic, no
permission, throttled) is logged and the rollout carries on. Messages are JSON with the run id,
the endpoint and links to the run in the Airflow UI and the dashboard; subscribers (an SQS queue,
a Lambda, a chat bridge) filter on the ``event`` message attribute.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any
from urllib.parse import quote

from airflow.providers.amazon.aws.hooks.sns import SnsHook
from airflow.providers.common.compat.sdk import conf
from botocore.config import Config

from canary.plan import RolloutPlan
from canary.reporting.notification import Event, message
from canary_airflow.dashboard.shaping import Links
from canary_airflow.ids import DEFAULT_CONN_ID, ROLLOUT_DAG

log = logging.getLogger(__name__)
# Short timeouts and few retries: an unreachable SNS must not hold a stage for minutes.
PUBLISH_CONFIG = Config(connect_timeout=5, read_timeout=10, retries={"max_attempts": 2})


def base_url() -> str:
    """The Airflow UI's address as people reach it (``[api] base_url``)."""
    return conf.get("api", "base_url", fallback="http://localhost:8080").rstrip("/")


def links(run_id: str) -> dict[str, str]:
    """Where a person follows this run: its page in the Airflow UI and on the dashboard."""
    at = Links(root=base_url())
    return {
        "airflow": at.airflow(f"dags/{ROLLOUT_DAG}/runs/{quote(run_id, safe='')}"),
        "dashboard": at.run_page(run_id),
    }


def publish(
    plan: RolloutPlan,
    event: Event,
    subject: str,
    run_id: str,
    conn_id: str = DEFAULT_CONN_ID,
    **fields: Any,
) -> bool:
    """Publish one event to ``plan.notify_topic_arn``; False when there is none or it failed."""
    if not plan.notify_topic_arn:
        return False
    body = message(event, run_id=run_id, endpoint=plan.endpoint_name, links=links(run_id), **fields)
    text = json.dumps(body, default=str, sort_keys=True)
    fifo = {}
    if plan.notify_topic_arn.endswith(".fifo"):
        digest = hashlib.sha256(text.encode()).hexdigest()
        fifo = {"message_group_id": run_id[:128], "message_deduplication_id": digest}
    try:
        hook = SnsHook(aws_conn_id=conn_id, region_name=plan.region, config=PUBLISH_CONFIG)
        hook.publish_to_target(
            target_arn=plan.notify_topic_arn,
            message=text,
            subject=subject,
            message_attributes={"event": event.value},
            **fifo,
        )
    except Exception:  # any failure to notify must leave the rollout alone
        log.warning("could not publish %s to %s", event.value, plan.notify_topic_arn, exc_info=True)
        return False
    log.info("published %s to %s", event.value, plan.notify_topic_arn)
    return True
