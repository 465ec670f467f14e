"""Event contracts: ``schemas/events/<event_type>.v<version>.json`` (JSON Schema) and the envelope.

The JSON Schema files are the single source of truth. This module reads the subset perflake
uses (flat objects of string, number, integer and boolean fields with required, enum,
minimum/maximum, exclusive bounds, maxLength, pattern and the uuid/date-time formats) into
``FieldSpec``s, from which silver derives its Spark types and its validation rules.

Compatibility rules (docs/event-contracts.md): within a version a field may only be added as
optional; readers ignore fields they do not know; anything else is a new version file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from perflake.schemas import SCHEMAS_DIR

EVENTS_DIR = SCHEMAS_DIR / "events"
ENVELOPE_FILE = "envelope.v1.json"
_SPARK_TYPES = {"string": "STRING", "number": "DOUBLE", "integer": "BIGINT", "boolean": "BOOLEAN"}


class ContractError(ValueError):
    """A contract file uses a construct perflake does not support, or is inconsistent."""


@dataclass(frozen=True)
class FieldSpec:
    name: str
    json_type: str
    is_required: bool
    enum: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: float | None = None
    exclusive_maximum: float | None = None
    max_length: int | None = None
    pattern: str | None = None
    format: str | None = None

    @property
    def spark_type(self) -> str:
        if self.format == "date-time":
            return "TIMESTAMP"
        return _SPARK_TYPES[self.json_type]


@dataclass(frozen=True)
class EventContract:
    event_type: str
    version: int
    family: str
    silver_table: str
    grain: str
    fields: tuple[FieldSpec, ...]

    @property
    def key(self) -> tuple[str, int]:
        return (self.event_type, self.version)

    def payload_ddl(self) -> str:
        """Spark DDL of the typed payload, e.g. ``name STRING, value DOUBLE``."""
        return ", ".join(f"`{f.name}` {f.spark_type}" for f in self.fields)

    def raw_payload_ddl(self) -> str:
        """Every payload field as STRING: tells 'missing' from 'present with the wrong type'."""
        return ", ".join(f"`{f.name}` STRING" for f in self.fields)


def field_specs(schema: dict, where: str) -> tuple[FieldSpec, ...]:
    required = set(schema.get("required", []))
    specs = []
    for name, spec in schema.get("properties", {}).items():
        json_type = spec.get("type")
        if json_type not in _SPARK_TYPES:
            raise ContractError(f"{where}: field {name} has type {json_type!r}; supported: {', '.join(_SPARK_TYPES)}")
        specs.append(
            FieldSpec(
                name=name,
                json_type=json_type,
                is_required=name in required,
                enum=tuple(spec["enum"]) if "enum" in spec else None,
                minimum=spec.get("minimum"),
                maximum=spec.get("maximum"),
                exclusive_minimum=spec.get("exclusiveMinimum"),
                exclusive_maximum=spec.get("exclusiveMaximum"),
                max_length=spec.get("maxLength"),
                pattern=spec.get("pattern"),
                format=spec.get("format"),
            )
        )
    unknown_required = required - {spec.name for spec in specs}
    if unknown_required:
        raise ContractError(f"{where}: required field(s) {sorted(unknown_required)} have no properties entry")
    return tuple(specs)


def read_contract(path: Path) -> EventContract:
    schema = json.loads(path.read_text())
    meta = schema.get("x-perflake")
    if meta is None:
        raise ContractError(f"{path}: no x-perflake section (family, silver_table, grain)")
    stem = path.name.removesuffix(".json")
    event_type, _, version = stem.rpartition(".v")
    if not event_type or not version.isdigit():
        raise ContractError(f"{path}: the file name must be <event_type>.v<version>.json")
    return EventContract(
        event_type=event_type,
        version=int(version),
        family=meta["family"],
        silver_table=meta["silver_table"],
        grain=meta["grain"],
        fields=field_specs(schema, str(path)),
    )


@lru_cache(maxsize=4)
def load_contracts(directory: Path = EVENTS_DIR) -> dict[tuple[str, int], EventContract]:
    """Every event contract in ``directory``, by (event_type, version)."""
    contracts = {}
    for path in sorted(directory.glob("*.v*.json")):
        if path.name == ENVELOPE_FILE:
            continue
        contract = read_contract(path)
        contracts[contract.key] = contract
    if not contracts:
        raise ContractError(f"no event contracts in {directory}")
    return contracts


@lru_cache(maxsize=4)
def load_envelope(directory: Path = EVENTS_DIR) -> dict:
    return json.loads((directory / ENVELOPE_FILE).read_text())


def envelope_text_ddl(envelope: dict) -> str:
    """The envelope schema as a Spark DDL with every leaf as text: an object of declared properties is a struct, one of
    ``additionalProperties`` a map, one of neither (``payload``) stays its JSON text, to be read by its own contract."""
    def text_type(spec: dict) -> str:
        if spec.get("type") == "object" and "properties" in spec:
            return "STRUCT<" + ", ".join(f"{name}: STRING" for name in spec["properties"]) + ">"
        if spec.get("type") == "object" and "additionalProperties" in spec:
            return "MAP<STRING, STRING>"
        return "STRING"

    return ", ".join(f"{name} {text_type(spec)}" for name, spec in envelope["properties"].items())


def required_envelope_fields(envelope: dict) -> tuple[str, ...]:
    """The envelope schema's required fields in its order; a required object gives its own required fields, dotted
    (``source.service``), in its place."""
    fields: list[str] = []
    for name in envelope["required"]:
        nested = envelope["properties"][name].get("required")
        fields += [f"{name}.{child}" for child in nested] if nested else [name]
    return tuple(fields)


def silver_tables(contracts: dict[tuple[str, int], EventContract]) -> dict[str, list[EventContract]]:
    """Silver table name -> the contract versions that land in it (newest last)."""
    tables: dict[str, list[EventContract]] = {}
    for contract in sorted(contracts.values(), key=lambda c: c.key):
        tables.setdefault(contract.silver_table, []).append(contract)
    return tables
