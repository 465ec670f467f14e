"""Cheap checks at the edge, from the same contracts silver enforces (schemas/events/*.json).

Messages match silver's quarantine reasons, so a rule reads the same wherever it fires.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache

from perflake.contracts import EventContract, FieldSpec

_PYTHON_TYPES = {"string": (str,), "number": (int, float), "integer": (int,), "boolean": (bool,)}


class AgentUsageError(ValueError):
    """A metric or event that breaks its contract, raised at the call site when agent.strict is on."""


def field_problems(field: FieldSpec, value) -> list[str]:
    label = f"payload.{field.name}"
    if value is None:
        return [f"{label} is missing"] if field.is_required else []
    is_bool = isinstance(value, bool)
    if not isinstance(value, _PYTHON_TYPES[field.json_type]) or (is_bool and field.json_type != "boolean"):
        return [f"{label} must be {field.json_type}, got {value!r}"]
    problems = []
    if field.enum is not None and value not in field.enum:
        problems.append(f"{label} is '{value}'; expected one of {', '.join(field.enum)}")
    bounds = [
        (field.minimum, lambda v: value < v, "below the minimum"),
        (field.exclusive_minimum, lambda v: value <= v, "not above"),
        (field.maximum, lambda v: value > v, "above the maximum"),
        (field.exclusive_maximum, lambda v: value >= v, "not below"),
    ]
    problems += [f"{label} = {value} is {words} {bound}"
                 for bound, failed, words in bounds if bound is not None and failed(bound)]
    if field.max_length is not None and len(value) > field.max_length:
        problems.append(f"{label} is longer than {field.max_length} characters")
    if field.pattern is not None and not _compiled(field.pattern).search(value):
        problems.append(f"{label} does not match {field.pattern}")
    if field.json_type == "number" and not math.isfinite(value):
        problems.append(f"{label} must be a finite number, got {value!r}")
    return problems


def payload_problems(contract: EventContract, payload: dict) -> list[str]:
    """Every way ``payload`` breaks ``contract`` (fields it does not know are allowed)."""
    return [problem for field in contract.fields for problem in field_problems(field, payload.get(field.name))]


@lru_cache(maxsize=64)
def _compiled(pattern: str) -> re.Pattern:
    return re.compile(pattern)
