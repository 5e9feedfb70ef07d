"""The command line refuses non-loopback hosts; plain boto3 works with only AWS_ENDPOINT_URL."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

CHILD = """
import json, boto3
s3 = boto3.client("s3")
s3.create_bucket(Bucket="env-only-bucket")
names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
sqs = boto3.client("sqs").create_queue(QueueName="env-only")["QueueUrl"]
rule = boto3.client("events").put_rule(Name="env-only", ScheduleExpression="rate(1 hour)")
boto3.client("cloudwatch").put_metric_data(
    Namespace="Custom", MetricData=[{"MetricName": "m", "Value": 1.0}])
try:
    boto3.client("sagemaker-runtime").invoke_endpoint(EndpointName="absent", Body=b"1")
except Exception as exc:
    code = exc.response["Error"]["Code"]
print(json.dumps({"buckets": names, "queue": sqs, "rule": rule["RuleArn"], "code": code}))
"""


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "example.com"])
def test_non_loopback_host_is_refused(host):
    result = subprocess.run(
        [sys.executable, "-m", "local_sagemaker", "--host", host, "--port", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert host in result.stderr and "loopback" in result.stderr


def test_bad_flush_interval_is_named():
    result = subprocess.run(
        [sys.executable, "-m", "local_sagemaker", "--flush-interval", "5"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "--flush-interval" in result.stderr


def test_every_service_through_aws_endpoint_url_only(local_stack):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(local_stack.env())
    result = subprocess.run(
        [sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert "env-only-bucket" in out["buckets"]
    assert out["queue"].endswith("/env-only")
    assert out["rule"].endswith(":rule/env-only")
    assert out["code"] == "ValidationError"


def test_a_stack_never_takes_another_process_on_its_port_for_itself(local_stack):
    """The port was free when chosen, then taken: the new stack fails, naming the port, instead
    of sending its tests to the process that answers there."""
    from local_sagemaker.stack import EmbeddedStack, EmbeddedStackError

    late = EmbeddedStack(port=local_stack.port, start_timeout=60.0)
    with pytest.raises(EmbeddedStackError, match=str(local_stack.port)):
        late.start()
    assert late._proc is None  # stopped and reaped
    assert local_stack.admin("GET", "health")["pid"] == local_stack._proc.pid  # still the first
