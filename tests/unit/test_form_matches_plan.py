"""Each trigger form accepts exactly what its plan model accepts, field by field.

The forms are generated from the models, so this checks the generation, not two hand-kept
copies: for every field, the form's default is the model's default, and at every bound, enum
value and type the form states, the form (Airflow's Param validation) and the model (pydantic)
give the same answer.
"""

from __future__ import annotations

from typing import Any

import pytest
from airflow.sdk import Param
from airflow.sdk.definitions.param import ParamValidationError

from canary.plan import (
    DEFAULT_PLAN,
    FORM_FIELDS,
    NIGHTLY_FIELDS,
    NightlySpec,
    PlanError,
    parse_nightly,
    parse_plan,
)
from canary_airflow.params import nightly_params, rollout_params

ROLLOUT, NIGHTLY = rollout_params(), nightly_params()
FORMS = {
    **{("rollout", name): (ROLLOUT[name], parse_plan) for name in FORM_FIELDS},
    **{("nightly", name): (NIGHTLY[name], parse_nightly) for name in NIGHTLY_FIELDS},
}
STEP = 1e-6
# A field whose valid values depend on another field is probed where that other field allows them.
CONTEXT: dict[str, dict[str, Any]] = {
    "traffic_strategy": {"traffic_mode": "target_variant"},
    "gate_metric": {"shadow": False},  # the shadow stage's paired test judges accuracy
    "data_capture": {"shadow": False},  # the shadow's answers are only in Data Capture
    "gate_settle_seconds": {"gate_max_stage_minutes": 24 * 60},  # settles before the deadline
    "gate_max_stage_minutes": {"gate_settle_seconds": 0},
}


def test_every_plan_field_is_on_its_form_and_nothing_else() -> None:
    assert set(ROLLOUT) == set(FORM_FIELDS)
    assert set(NIGHTLY) == set(NIGHTLY_FIELDS)


@pytest.mark.parametrize("form_field", sorted(FORMS), ids=lambda key: f"{key[0]}.{key[1]}")
def test_the_form_and_the_model_agree(form_field: tuple[str, str]) -> None:
    param, parse = FORMS[form_field]
    name = form_field[1]
    assert param.value == _model_default(*form_field)
    assert _accepts(param, parse, name, param.value) == (True, True)
    for value, expected in _probes(param.schema):
        assert _accepts(param, parse, name, value) == (expected, expected), value


def _model_default(form: str, name: str) -> Any:
    """The default as the model declares it: on the plan (or its sub-model), or on the spec."""
    if form == "nightly":
        return _json(NightlySpec.model_fields[name].default)
    path = FORM_FIELDS[name].path
    holder = getattr(DEFAULT_PLAN, path[0]) if len(path) == 2 else DEFAULT_PLAN
    return _json(getattr(holder, path[-1]))


def _json(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_json(item) for item in value]
    return value.value if hasattr(value, "value") else value


def _probes(schema: dict[str, Any]) -> list[tuple[Any, bool]]:
    """Values on both sides of each constraint the form states, with the expected verdict."""
    probes: list[tuple[Any, bool]] = []
    kind = schema.get("type")
    step = 1 if kind == "integer" else STEP
    for key, inside, outside in (
        ("minimum", 0, -step),
        ("maximum", 0, step),
        ("exclusiveMinimum", step, 0),
        ("exclusiveMaximum", -step, 0),
    ):
        if key in schema:
            probes += [(schema[key] + inside, True), (schema[key] + outside, False)]
    if "enum" in schema:
        probes += [(member, True) for member in schema["enum"]]
        probes.append(("not-a-member", False))
    if kind in {"number", "integer"}:
        probes.append(("seven", False))
    if kind == "boolean":
        probes.append(("maybe", False))
    if kind == "string" and "pattern" in schema:
        probes.append(("no spaces or ! allowed", False))
    if kind == "array" and "maxItems" in schema:
        probes.append(([[50, 50]] * (schema["maxItems"] + 1), False))
    return probes


def _accepts(param: Param, parse: Any, name: str, value: Any) -> tuple[bool, bool]:
    """(the form accepts ``value``, the model accepts it) for this one field."""
    try:
        Param(param.value, **param.schema).resolve(value)
        form = True
    except ParamValidationError:
        form = False
    try:
        parse({**CONTEXT.get(name, {}), name: value})
        model = True
    except PlanError as error:
        # another rule of the same field may refuse a probe (a stage with weight 0); only a
        # refusal of *this* field counts, and it must name it
        assert name in str(error), str(error)
        model = False
    return form, model
