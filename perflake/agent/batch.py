"""The batch collector: scheduled snapshot files (e.g. WS3's end-of-day account export) sent
as business events through an agent, so they take the same road to Kafka as live traffic.

A CSV file has one row per event and a column per payload field of the event type's contract
(other columns are ignored), plus the event time in ``--at-column`` (ISO-8601; UTC when it
has no offset). Every row is checked before anything is sent: one bad row fails the file
with each problem and its line number, and nothing of it is sent. A file loaded once is
recorded by its SHA-256 in ``<state>/batch/loaded.json`` and refused the next time, so a
retried schedule does not send the same snapshots twice; it is recorded only after the agent
closed, when every event is acknowledged by Kafka or safe in the spool.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from perflake.agent.core import Agent
from perflake.agent.validation import payload_problems
from perflake.config import Config
from perflake.contracts import EventContract, load_contracts
from perflake.files import file_digest

MAX_REPORTED = 10


class BatchError(ValueError):
    """A file that cannot be loaded: unreadable, missing columns, bad rows, already loaded."""


@dataclass(frozen=True)
class LoadResult:
    file: Path
    events: int
    digest: str


def ledger_path(config: Config) -> Path:
    return config.paths.state_dir / "batch" / "loaded.json"


def read_ledger(config: Config) -> dict[str, dict]:
    """SHA-256 of each file loaded -> what it was."""
    path = ledger_path(config)
    return json.loads(path.read_text()) if path.is_file() else {}


def typed_payloads(frame: pd.DataFrame, contract: EventContract) -> list[dict]:
    """Rows -> payload dicts with each field in its contract's JSON type (empty cells left out)."""
    converters = {"number": float, "integer": int, "string": str, "boolean": _boolean}
    payloads = []
    for row in frame.to_dict("records"):
        payload = {}
        for field in contract.fields:
            value = row.get(field.name)
            if value is None or (isinstance(value, float) and pd.isna(value)):
                continue
            try:
                payload[field.name] = converters[field.json_type](value)
            except (TypeError, ValueError):
                payload[field.name] = value  # left as is: validation names the wrong type
        payloads.append(payload)
    return payloads


def _boolean(value) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise ValueError(value)


def load_file(path: Path, event_type: str, agent: Agent, at_column: str = "event_at", force: bool = False) -> LoadResult:
    contracts = load_contracts()
    contract = contracts.get((event_type, 1))
    if contract is None:
        raise BatchError(f"unknown event type {event_type!r}; known: {', '.join(sorted(t for t, _ in contracts))}")
    digest = file_digest(path)
    loaded = read_ledger(agent.config)
    if digest in loaded and not force:
        raise BatchError(f"{path} was loaded before (as {loaded[digest]['file']}, {loaded[digest]['events']} events); "
                         "--force sends it again")
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError) as error:
        raise BatchError(f"{path}: cannot read it as CSV: {error}") from None
    required = [field.name for field in contract.fields if field.is_required] + [at_column]
    missing = [column for column in required if column not in frame.columns]
    if missing:
        raise BatchError(f"{path}: missing column(s) {', '.join(missing)} for {event_type}")
    times = pd.to_datetime(frame[at_column], utc=True, errors="coerce", format="ISO8601")
    problems = [f"line {index + 2}: {at_column} {frame[at_column].iloc[index]!r} is not an ISO-8601 time"
                for index in frame.index[times.isna()]]
    payloads = typed_payloads(frame, contract)
    problems += [f"line {index + 2}: {'; '.join(found)}"
                 for index, payload in enumerate(payloads) if (found := payload_problems(contract, payload))]
    if problems:
        more = f" (and {len(problems) - MAX_REPORTED} more)" if len(problems) > MAX_REPORTED else ""
        raise BatchError(f"{path}: {len(problems)} bad row(s), nothing sent{more}:\n  " + "\n  ".join(problems[:MAX_REPORTED]))
    for payload, at in zip(payloads, times):
        agent.event(event_type, payload, at=at.timestamp(), tags={"batch_file": path.name})
    return LoadResult(path, len(payloads), digest)


def mark_loaded(config: Config, result: LoadResult, event_type: str) -> None:
    """Record the file once its events are acknowledged or spooled (after ``Agent.close``)."""
    loaded = read_ledger(config)
    loaded[result.digest] = {"file": str(result.file), "events": result.events, "event_type": event_type}
    ledger = ledger_path(config)
    ledger.parent.mkdir(parents=True, exist_ok=True)
    ledger.write_text(json.dumps(loaded, indent=1))
