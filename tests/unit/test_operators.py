"""The thin operators' own behaviour that needs no AWS call."""

from __future__ import annotations

import json

from airflow.providers.common.compat.sdk import redact

from canary_airflow.operators import EnsureSageMakerModelOperator

SECRET = "flavour-4f1c9e"  # long enough for Airflow's masker (it skips values under 5 characters)


def test_a_models_environment_is_masked_once_its_request_is_rendered() -> None:
    """The provider logs the whole CreateModel request, and Airflow keeps the rendered fields:
    both go through the masker, which must know the environment's values by then."""
    request = {
        "ModelName": "m",
        "PrimaryContainer": {"Image": "img", "Environment": {"MODEL_FLAVOUR": SECRET}},
        "ExecutionRoleArn": "arn:aws:iam::123456789012:role/r",
    }
    operator = EnsureSageMakerModelOperator(task_id="model", config=request)
    logged = json.dumps(operator.config)
    assert SECRET in str(redact(logged))  # not known to the masker before rendering

    operator.render_template_fields(context={})

    assert SECRET not in str(redact(logged))
    sent = operator.config["PrimaryContainer"]["Environment"]
    assert sent == {"MODEL_FLAVOUR": SECRET}  # masked in what people see, sent as is
