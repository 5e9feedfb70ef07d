"""The SageMaker requests a rollout makes: named by what they ask for, so a retry reuses a
resource and a changed plan never does (``ensure_*`` accepts an existing one by name)."""

from __future__ import annotations

from typing import Any

import pytest

from canary.plan import RolloutPlan, parse_plan
from canary.rollout.endpoint import endpoint_config_request, model_request

IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
URL = "s3://models/churn/v2/model.tar.gz"
BASE = {"endpoint_name": "churn-canary", "execution_role_arn": "arn:aws:iam::123456789012:role/a"}


def names(**fields: Any) -> tuple[str, str]:
    """The challenger's model name and the first canary config's name under ``fields``."""
    plan: RolloutPlan = parse_plan({**BASE, **fields})
    model = model_request(plan, plan.challenger, IMAGE, URL)["ModelName"]
    models = {"champion": "m0", "challenger": model}
    config = endpoint_config_request(plan, models, plan.stage_weights(0))["EndpointConfigName"]
    return model, config


def test_the_same_plan_names_the_same_resources() -> None:
    assert names() == names()


@pytest.mark.parametrize(
    ("fields", "model_changes"),
    [
        ({"execution_role_arn": "arn:aws:iam::123456789012:role/b"}, True),
        ({"challenger_environment": {"FLAVOUR": "b"}}, True),
        ({"bucket": "another-bucket"}, False),  # Data Capture writes elsewhere
        ({"data_capture": False, "shadow": False}, False),
    ],
)
def test_a_changed_request_gets_a_new_name(fields: dict[str, Any], model_changes: bool) -> None:
    model, config = names()
    changed_model, changed_config = names(**fields)
    assert (changed_model != model) is model_changes
    assert changed_config != config  # it names the model, or captures elsewhere
