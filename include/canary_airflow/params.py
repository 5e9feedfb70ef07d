"""Trigger forms generated from the plan models: one Airflow Param per field a person sets.

Every default, bound, title, description and section comes from :class:`canary.plan.RolloutPlan`
or :class:`canary.plan.NightlySpec` (see :func:`canary.plan.setting`), so a form cannot drift
from what its model accepts. Airflow
validates these JSON schemas when a run is triggered from the UI or the REST API; the first task
validates the whole plan again (cross-field rules, other DAGs' confs) before any AWS call.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from airflow.sdk import Param
from pydantic import BaseModel

from canary.plan import (
    DEFAULT_PLAN,
    FORM_FIELDS,
    NIGHTLY_FIELDS,
    FormField,
    NightlySpec,
    flat_values,
)

# Keys of pydantic's field schema that describe a value (the rest is pydantic's bookkeeping).
_SCHEMA_KEYS = (
    "type",
    "enum",
    "items",
    "prefixItems",
    "additionalProperties",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "pattern",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
)


def rollout_params() -> dict[str, Param]:
    """The rollout's form, with the plan's defaults (they run the demo on the local stack)."""
    return _params(DEFAULT_PLAN, FORM_FIELDS)


def nightly_params() -> dict[str, Param]:
    """The nightly job's form, with :class:`NightlySpec`'s defaults."""
    return _params(NightlySpec(), NIGHTLY_FIELDS)


def _params(default: BaseModel, fields: dict[str, FormField]) -> dict[str, Param]:
    values = flat_values(default, fields)
    return {
        name: Param(values[name], **field_schema(default, field)) for name, field in fields.items()
    }


def field_schema(default: BaseModel, field: FormField) -> dict[str, Any]:
    """The JSON schema of one flat form field: the model's own schema of it, enums inlined."""
    owner = _owner_schema(default, field.path)
    leaf = _resolve(owner["properties"][field.path[-1]], owner.get("$defs", {}))
    schema = {key: leaf[key] for key in _SCHEMA_KEYS if key in leaf}
    schema["title"] = field.info.title
    if field.info.description:
        schema["description"] = field.info.description
    schema["section"] = field.section
    return schema


def _owner_schema(default: BaseModel, path: tuple[str, ...]) -> dict[str, Any]:
    """The schema of the model that holds the field's leaf (a sub-model for ``gate_alpha``)."""
    holder = getattr(default, path[0]) if len(path) == 2 else default
    return _model_schema(type(holder))


@cache
def _model_schema(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema()


def _resolve(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Inline a ``$ref`` (pydantic puts each enum in ``$defs``) so the form sees its values."""
    if "$ref" in schema:
        target = defs[schema["$ref"].rsplit("/", 1)[-1]]
        return {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema
