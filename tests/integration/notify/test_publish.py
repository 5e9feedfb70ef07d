"""Notifications reach a subscriber: the provider's SnsHook publishes to the local stack's SNS,
an SQS queue subscribed to the topic receives them; a publish that cannot succeed is only logged."""

from __future__ import annotations

import logging

from canary.plan import parse_plan
from canary.reporting.notification import Event
from canary_airflow.notify import publish


def test_a_published_event_arrives_as_json_with_links(aws_conn, sns_inbox) -> None:
    plan = parse_plan({"notify_topic_arn": sns_inbox.topic_arn, "endpoint_name": "news-e"})
    summary = {"stage": 1, "verdict": "promote"}

    assert publish(plan, Event.STAGE_VERDICT, "news-e: stage 1 promote", "run-1", summary=summary)

    [received] = sns_inbox.messages()
    assert received["subject"] == "news-e: stage 1 promote"
    assert Event(received["event"]) is Event.STAGE_VERDICT
    body = received["body"]
    assert (body["run_id"], body["endpoint"], body["summary"]) == ("run-1", "news-e", summary)
    assert body["links"]["dashboard"].endswith("/canary/runs/run-1")
    assert "/dags/sagemaker_canary_rollout/runs/run-1" in body["links"]["airflow"]


def test_a_failed_publish_is_logged_and_never_raises(aws_conn, caplog) -> None:
    missing = "arn:aws:sns:us-east-1:123456789012:no-such-topic"
    plan = parse_plan({"notify_topic_arn": missing})

    with caplog.at_level(logging.WARNING, logger="canary_airflow.notify"):
        assert publish(plan, Event.OUTCOME, "subject", "run-2", outcome="promoted") is False
    assert any("could not publish outcome" in record.message for record in caplog.records)


def test_no_topic_no_publish(aws_conn) -> None:
    assert publish(parse_plan({}), Event.OUTCOME, "subject", "run-3") is False
