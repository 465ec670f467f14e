"""Table contracts kept in ``schemas/<layer>/<table>.json``."""

from __future__ import annotations

import json
from pathlib import Path

SCHEMAS_DIR = Path(__file__).resolve().parent.parent / "schemas"


def load_table_schema(layer: str, table: str) -> dict:
    path = SCHEMAS_DIR / layer / f"{table}.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"no schema for table {layer}.{table}: expected {path}") from None
