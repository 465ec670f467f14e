"""Building events in the envelope of schemas/events/envelope.v1.json, and sample traffic.

``sample_events`` stands in for the ALL-USE workload simulator (the agents issue) in the
main job and the tests: a seeded mix of every event type from the three services.
"""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta, timezone

SERVICES = {
    "ws2-protocol-engine": ["/decide", "/approve"],
    "ws3-account-management": ["/accounts", "/accounts/fork", "/accounts/merge"],
    "ws4-market-integration": ["/orders", "/quotes"],
}
HOSTS = ["app-1", "app-2"]
STRATEGIES = ["put_selling", "covered_calls", "iron_condor"]
DECISIONS = ["sell_put", "roll", "close", "hold"]
FEEDS = ["opra", "cboe"]
ACCOUNTS = [f"acct-{n:03d}" for n in range(12)]


def envelope(
    event_type: str,
    payload: dict,
    service: str,
    host: str,
    event_at: datetime,
    event_id: str | None = None,
    schema_version: int = 1,
    tags: dict[str, str] | None = None,
    sequence: int | None = None,
) -> dict:
    source = {"service": service, "host": host}
    if sequence is not None:
        source["sequence"] = sequence
    return {
        "event_id": event_id or str(uuid.uuid4()),
        "schema_version": schema_version,
        "event_type": event_type,
        "source": source,
        "event_at": event_at.astimezone(timezone.utc).isoformat(),
        "tags": tags or {},
        "payload": payload,
    }


def sample_events(count: int, end_at: datetime, seed: int = 0, span: timedelta = timedelta(minutes=5)) -> list[dict]:
    """``count`` valid events of every type, spread over ``span`` before ``end_at``."""
    rng = random.Random(seed)
    makers = [(metric_payload, 60), (order_payload, 8), (fill_payload, 6), (market_data_payload, 10), (connection_payload, 1),
              (snapshot_payload, 8), (operation_payload, 2), (decision_payload, 5)]
    functions, weights = zip(*makers)
    events = []
    for sequence in range(count):
        at = end_at - span * rng.random()
        make = rng.choices(functions, weights)[0]
        event_type, service, payload = make(rng)
        host = rng.choice(HOSTS)
        event_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        events.append(envelope(event_type, payload, service, host, at, event_id=event_id, sequence=sequence))
    return events


def metric_payload(rng: random.Random) -> tuple[str, str, dict]:
    service = rng.choice(list(SERVICES))
    if rng.random() < 0.25:
        name, unit, value = rng.choice([("cpu_percent", "percent", rng.uniform(5, 95)),
                                        ("memory_used_bytes", "bytes", rng.uniform(1e9, 8e9))])
        return "metric", service, {"metric": name, "value": round(value, 3), "unit": unit, "kind": "gauge"}
    status = rng.choices([200, 400, 500, 503], [90, 5, 3, 2])[0]
    return "metric", service, {
        "metric": "response_time_ms",
        "value": round(rng.lognormvariate(3.0, 0.6), 3),
        "unit": "ms",
        "kind": "timer",
        "endpoint": rng.choice(SERVICES[service]),
        "status_code": status,
        "is_error": status >= 500,
    }


def order_payload(rng: random.Random) -> tuple[str, str, dict]:
    status = rng.choices(["submitted", "accepted", "rejected", "filled"], [40, 30, 5, 25])[0]
    payload = {
        "order_id": f"o-{rng.getrandbits(32):08x}",
        "account_id": rng.choice(ACCOUNTS),
        "strategy": rng.choice(STRATEGIES),
        "symbol": rng.choice(["SPY", "QQQ", "AAPL"]),
        "side": rng.choice(["buy", "sell"]),
        "quantity": float(rng.randint(1, 20)),
        "order_type": "limit",
        "limit_price": round(rng.uniform(1, 10), 2),
        "status": status,
        "ack_latency_ms": round(rng.uniform(2, 40), 2),
    }
    if status == "rejected":
        payload["reject_reason"] = "insufficient buying power"
    return "order", "ws4-market-integration", payload


def fill_payload(rng: random.Random) -> tuple[str, str, dict]:
    expected = round(rng.uniform(1, 10), 2)
    price = round(expected * (1 + rng.gauss(0, 0.002)), 4)
    payload = {
        "fill_id": f"f-{rng.getrandbits(32):08x}",
        "order_id": f"o-{rng.getrandbits(32):08x}",
        "account_id": rng.choice(ACCOUNTS),
        "strategy": rng.choice(STRATEGIES),
        "symbol": "SPY",
        "side": rng.choice(["buy", "sell"]),
        "quantity": float(rng.randint(1, 10)),
        "price": price,
        "expected_price": expected,
        "slippage_bps": round((price - expected) / expected * 10000, 3),
        "fee_usd": 0.65,
    }
    if rng.random() < 0.5:
        payload["realized_pnl_usd"] = round(rng.gauss(20, 60), 2)
    return "fill", "ws4-market-integration", payload


def market_data_payload(rng: random.Random) -> tuple[str, str, dict]:
    return "market_data", "ws4-market-integration", {
        "feed": rng.choice(FEEDS),
        "latency_ms": round(rng.lognormvariate(1.0, 0.5), 3),
        "message_count": rng.randint(500, 5000),
        "interval_ms": 1000.0,
        "gap_count": rng.choices([0, 1], [98, 2])[0],
        "is_stale": rng.random() < 0.01,
    }


def connection_payload(rng: random.Random) -> tuple[str, str, dict]:
    return "connection", "ws4-market-integration", {
        "venue": "ibkr", "connection": "orders", "state": "reconnected", "recovery_ms": round(rng.uniform(200, 3000), 1),
    }


def snapshot_payload(rng: random.Random) -> tuple[str, str, dict]:
    equity = rng.uniform(50_000, 250_000)
    return "account_snapshot", "ws3-account-management", {
        "account_id": rng.choice(ACCOUNTS),
        "account_type": rng.choice(["gen", "rev", "com"]),
        "balance_usd": round(equity * 0.8, 2),
        "equity_usd": round(equity, 2),
        "pnl_usd": round(rng.gauss(150, 400), 2),
        "return_pct": round(rng.gauss(0.1, 0.4), 4),
        "drawdown_pct": round(abs(rng.gauss(0, 2)), 4),
        "open_positions": rng.randint(0, 12),
    }


def operation_payload(rng: random.Random) -> tuple[str, str, dict]:
    operation = rng.choice(["fork", "merge", "reinvest"])
    payload = {"operation": operation, "account_id": rng.choice(ACCOUNTS), "amount_usd": round(rng.uniform(1000, 50000), 2)}
    if operation in ("fork", "merge"):
        payload["related_account_id"] = rng.choice(ACCOUNTS)
    return "account_operation", "ws3-account-management", payload


def decision_payload(rng: random.Random) -> tuple[str, str, dict]:
    is_override = rng.random() < 0.1
    payload = {
        "decision_id": f"d-{rng.getrandbits(32):08x}",
        "account_id": rng.choice(ACCOUNTS),
        "decision": rng.choice(DECISIONS),
        "inputs_summary": "delta=0.30 dte=7 iv_rank=45",
        "outcome": rng.choices(["profit", "loss", "pending"], [60, 25, 15])[0],
        "pnl_usd": round(rng.gauss(40, 90), 2),
        "is_compliant": rng.random() < 0.97,
        "is_human_override": is_override,
        "decision_latency_ms": round(rng.uniform(5, 120), 2),
    }
    if is_override:
        payload["override_reason"] = "manual risk reduction"
        payload["approval_latency_ms"] = round(rng.uniform(5_000, 120_000), 1)
    return "protocol_decision", "ws2-protocol-engine", payload
