"""The ALL-USE workload: what the services and hosts record, second by simulated second.

Pure generation, no I/O: ``Workload.second(t)`` returns the records of one simulated second
and ``Workload.anomalies`` the injected anomalies (the labels). Seeded: the same arguments
give the same records and labels.

Load follows the trading calendar (``perflake.simulator.calendar``): bursts at the open and
the close, a midday lull, quiet extended hours, nights, weekends and holidays. ``rate`` is the
mean number of records per simulated second over the whole run; the calendar shapes how they
spread. Trading activity (orders, fills, protocol decisions) happens in the session only;
requests, market data, account snapshots and host metrics run around the clock.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass

from perflake import events
from perflake.simulator import calendar

HOSTS_BY_SERVICE = {
    "ws2-protocol-engine": ("app-1", "app-2"),
    "ws3-account-management": ("app-1", "app-2"),
    "ws4-market-integration": ("app-3", "app-4"),
}
HOSTS = ("app-1", "app-2", "app-3", "app-4")
REQUEST_SHARE = {"ws2-protocol-engine": 0.25, "ws3-account-management": 0.25, "ws4-market-integration": 0.5}
LATENCY_MEDIAN_MS = {"/decide": 35.0, "/approve": 20.0, "/accounts": 15.0, "/accounts/fork": 60.0, "/accounts/merge": 70.0,
                     "/orders": 25.0, "/quotes": 8.0}
ERROR_SHARE = 0.01
TRADING_SHARE = 0.19  # of the session's records: orders 8%, fills 6%, protocol decisions 5%; the rest are requests
SNAPSHOT_EVERY_S = 300
HOST_METRICS_EVERY_S = 10
MARKET_DATA_EVERY_S = {True: 1, False: 30}  # in the session, outside it
MEMORY_BASELINE_BYTES = 4e9

# kind -> (duration range in seconds, needs the trading session, magnitude range)
ANOMALY_KINDS = {
    "latency_spike": ((120, 600), False, (4.0, 10.0)),
    "error_burst": ((60, 300), False, (0.3, 0.6)),
    "throughput_drop": ((300, 900), True, (0.1, 0.3)),
    "memory_leak": ((1800, 5400), False, (2.0, 6.0)),
    "slow_drift": ((3600, 10800), False, (0.6, 1.5)),
    "market_data_stall": ((60, 300), True, (1.0, 1.0)),
    "account_drawdown": ((1800, 7200), False, (10.0, 25.0)),
    "override_rate": ((1200, 3600), True, (0.4, 0.7)),
}


@dataclass(frozen=True)
class Anomaly:
    """One injected anomaly: a labels row."""

    anomaly_id: str
    kind: str
    start: float  # epoch seconds, inclusive
    end: float  # exclusive
    service: str
    host: str  # "*": every host of the service
    series: str  # the affected metric or event field
    entity: str  # the endpoint, feed, account or host it hits
    magnitude: float

    def active(self, at: float) -> bool:
        return self.start <= at < self.end

    def progress(self, at: float) -> float:
        return (at - self.start) / (self.end - self.start)

    def row(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Record:
    """One thing to record through the agent of (service, host)."""

    service: str
    host: str
    at: float
    kind: str  # timer | event | sample
    name: str  # metric name or event type
    value: float = 0.0
    endpoint: str | None = None
    status_code: int | None = None
    is_error: bool | None = None
    unit: str = "ms"
    payload: dict | None = None


class Workload:
    def __init__(self, start: float, duration_s: float, rate: float, seed: int, anomalies: int, timezone_name: str,
                 accounts: int = 20):
        self.start, self.end = float(int(start)), float(int(start)) + duration_s
        self.timezone_name = timezone_name
        self.rng = random.Random(seed)
        minutes = range(int(self.start), int(self.end), 60)
        mean_load = sum(calendar.load(t, timezone_name) for t in minutes) / max(1, len(minutes))
        self.base_rate = rate / mean_load
        self.accounts = {f"acct-{n:03d}": self.rng.uniform(50_000, 250_000) for n in range(accounts)}
        self.parents: dict[str, str] = {}
        self._next_account = accounts
        self.anomalies = self._schedule(anomalies)

    # --- anomalies ----------------------------------------------------------------------

    def _schedule(self, count: int) -> list[Anomaly]:
        kinds = list(ANOMALY_KINDS)
        self.rng.shuffle(kinds)
        scheduled: list[Anomaly] = []
        span = self.end - self.start
        for index in range(count):
            kind = kinds[index % len(kinds)]
            (shortest, longest), needs_session, (low, high) = ANOMALY_KINDS[kind]
            longest = min(longest, span / 4)
            shortest = min(shortest, longest)
            service, host, series, entity = self._target(kind)
            for _ in range(500):
                duration = self.rng.uniform(shortest, longest)
                begin = float(int(self.rng.uniform(self.start, self.end - duration)))
                fits = not needs_session or all(calendar.is_trading(t, self.timezone_name)
                                                for t in (begin, begin + duration / 2, begin + duration - 1))
                clear = all(other.entity != entity or begin >= other.end + 600 or begin + duration + 600 <= other.start
                            for other in scheduled)
                if fits and clear:
                    scheduled.append(Anomaly(f"a{index:03d}-{kind}", kind, begin, float(int(begin + duration)), service, host,
                                             series, entity, round(self.rng.uniform(low, high), 3)))
                    break
        return sorted(scheduled, key=lambda anomaly: anomaly.start)

    def _target(self, kind: str) -> tuple[str, str, str, str]:
        """(service, host, series, entity) an anomaly of ``kind`` hits."""
        if kind in ("latency_spike", "error_burst", "slow_drift"):
            service = self.rng.choice(list(HOSTS_BY_SERVICE))
            host = self.rng.choice(HOSTS_BY_SERVICE[service])
            endpoint = self.rng.choice(events.SERVICES[service])
            series = "response_time_ms.is_error" if kind == "error_burst" else "response_time_ms"
            return service, host, series, f"{service}{endpoint}@{host}"
        if kind == "throughput_drop":
            service = self.rng.choice(list(HOSTS_BY_SERVICE))
            return service, "*", "response_time_ms.count", service
        if kind == "memory_leak":
            host = self.rng.choice(HOSTS)
            return "host", host, "memory_used_bytes", host
        if kind == "market_data_stall":
            return "ws4-market-integration", "*", "market_data", self.rng.choice(events.FEEDS)
        if kind == "account_drawdown":
            return "ws3-account-management", "*", "account_snapshot.drawdown_pct", self.rng.choice(sorted(self.accounts))
        return "ws2-protocol-engine", "*", "protocol_decision.is_human_override", "ws2-protocol-engine"

    def _effect(self, kind: str, entity: str, at: float) -> Anomaly | None:
        for anomaly in self.anomalies:
            if anomaly.kind == kind and anomaly.entity == entity and anomaly.active(at):
                return anomaly
        return None

    # --- one simulated second -----------------------------------------------------------

    def second(self, t: float) -> list[Record]:
        rng = self.rng
        trading = calendar.is_trading(t, self.timezone_name)
        expected = self.base_rate * calendar.load(t, self.timezone_name)
        if trading:
            records = self._requests(t, expected * (1 - TRADING_SHARE)) + self._trading(t, expected)
        else:
            records = self._requests(t, expected)
        every = MARKET_DATA_EVERY_S[trading]
        if int(t) % every == 0:
            records += [self._market_data(t + rng.random(), feed) for feed in events.FEEDS]
        if int(t) % SNAPSHOT_EVERY_S == 0:
            records += [self._snapshot(t + rng.random(), account) for account in sorted(self.accounts)]
        if rng.random() < 0.002 * expected / self.base_rate:  # about 30 forks, merges and reinvestments a session
            records.append(self._account_operation(t + rng.random()))
        if rng.random() < 0.0005:
            _, service, payload = events.connection_payload(rng)
            records.append(Record(service, rng.choice(HOSTS_BY_SERVICE[service]), t + rng.random(), "event", "connection",
                                  payload=payload))
        if int(t) % HOST_METRICS_EVERY_S == 0:
            records += self._host_metrics(t, expected / self.base_rate)
        return records

    def _requests(self, t: float, expected: float) -> list[Record]:
        rng = self.rng
        records = []
        for service, share in REQUEST_SHARE.items():
            drop = self._effect("throughput_drop", service, t)
            count = _poisson(rng, expected * share * (drop.magnitude if drop else 1.0))
            for _ in range(count):
                host = rng.choice(HOSTS_BY_SERVICE[service])
                endpoint = rng.choice(events.SERVICES[service])
                entity = f"{service}{endpoint}@{host}"
                latency = rng.lognormvariate(0, 0.45) * LATENCY_MEDIAN_MS[endpoint]
                if spike := self._effect("latency_spike", entity, t):
                    latency *= spike.magnitude
                if drift := self._effect("slow_drift", entity, t):
                    latency *= 1 + drift.magnitude * drift.progress(t)
                burst = self._effect("error_burst", entity, t)
                failed = rng.random() < (burst.magnitude if burst else ERROR_SHARE)
                status = rng.choice((500, 503)) if failed else (400 if rng.random() < 0.02 else 200)
                records.append(Record(service, host, t + rng.random(), "timer", "response_time_ms", round(latency, 3), endpoint,
                                      status, failed))
        return records

    def _trading(self, t: float, expected: float) -> list[Record]:
        rng = self.rng
        records = []
        for maker, share in ((events.order_payload, 0.08), (events.fill_payload, 0.06)):
            for _ in range(_poisson(rng, expected * share)):
                event_type, service, payload = maker(rng)
                payload["account_id"] = rng.choice(sorted(self.accounts))
                records.append(Record(service, rng.choice(HOSTS_BY_SERVICE[service]), t + rng.random(), "event", event_type,
                                      payload=payload))
        overrides = self._effect("override_rate", "ws2-protocol-engine", t)
        for _ in range(_poisson(rng, expected * 0.05)):
            event_type, service, payload = events.decision_payload(rng)
            payload["account_id"] = rng.choice(sorted(self.accounts))
            if overrides and rng.random() < overrides.magnitude and not payload["is_human_override"]:
                payload.update(is_human_override=True, override_reason="manual risk reduction",
                               approval_latency_ms=round(rng.uniform(5_000, 120_000), 1))
            records.append(Record(service, rng.choice(HOSTS_BY_SERVICE[service]), t + rng.random(), "event", event_type,
                                  payload=payload))
        return records

    def _market_data(self, at: float, feed: str) -> Record:
        _, service, payload = events.market_data_payload(self.rng)
        payload["feed"] = feed
        if self._effect("market_data_stall", feed, at):
            payload.update(message_count=0, is_stale=True, gap_count=max(1, payload["gap_count"]),
                           latency_ms=round(payload["latency_ms"] * 20, 3))
        return Record(service, self.rng.choice(HOSTS_BY_SERVICE[service]), at, "event", "market_data", payload=payload)

    def _snapshot(self, at: float, account: str) -> Record:
        _, service, payload = events.snapshot_payload(self.rng)
        equity = self.accounts[account]
        payload.update(account_id=account, equity_usd=round(equity, 2), balance_usd=round(equity * 0.8, 2))
        if drawdown := self._effect("account_drawdown", account, at):
            depth = drawdown.magnitude * max(0.05, drawdown.progress(at))
            payload.update(drawdown_pct=round(depth, 4), equity_usd=round(equity * (1 - depth / 100), 2),
                           pnl_usd=round(-equity * depth / 100, 2))
        return Record(service, self.rng.choice(HOSTS_BY_SERVICE[service]), at, "event", "account_snapshot", payload=payload)

    def _account_operation(self, at: float) -> Record:
        """Fork (a new account splits off), merge (a forked account returns to its parent) or reinvest."""
        rng = self.rng
        account = rng.choice(sorted(self.accounts))
        operation = rng.choices(["fork", "merge", "reinvest"], [2, 1, 5])[0]
        payload: dict = {"operation": operation, "account_id": account}
        if operation == "fork":
            child = f"acct-{self._next_account:03d}"
            self._next_account += 1
            amount = round(self.accounts[account] * 0.3, 2)
            self.accounts[account] -= amount
            self.accounts[child], self.parents[child] = amount, account
            payload.update(related_account_id=child, amount_usd=amount)
        elif operation == "merge" and (leaves := sorted(set(self.parents) - set(self.parents.values()))):
            child = rng.choice(leaves)  # an account with forks of its own stays until they merged back
            parent = self.parents.pop(child)
            amount = round(self.accounts.pop(child), 2)
            self.accounts[parent] += amount
            payload.update(account_id=child, related_account_id=parent, amount_usd=amount)
        else:
            amount = round(self.accounts[account] * rng.uniform(0.01, 0.05), 2)
            self.accounts[account] += amount
            payload.update(operation="reinvest", amount_usd=amount)
        service = "ws3-account-management"
        return Record(service, rng.choice(HOSTS_BY_SERVICE[service]), at, "event", "account_operation", payload=payload)

    def _host_metrics(self, t: float, load: float) -> list[Record]:
        rng = self.rng
        records = []
        for host in HOSTS:
            cpu = min(100.0, max(0.5, 8 + 30 * load + rng.gauss(0, 3)))
            memory = MEMORY_BASELINE_BYTES * (1 + 0.1 * load) + rng.gauss(0, 5e7)
            if leak := self._effect("memory_leak", host, t):
                memory += leak.magnitude * 1e9 * leak.progress(t)
            records.append(Record("host", host, t, "sample", "cpu_percent", round(cpu, 3), unit="percent"))
            records.append(Record("host", host, t, "sample", "memory_used_bytes", round(memory), unit="bytes"))
        return records


def _poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw (normal approximation above 50, where it is indistinguishable here)."""
    if mean <= 0:
        return 0
    if mean > 50:
        return max(0, round(rng.gauss(mean, mean**0.5)))
    count, threshold, product = 0, math.exp(-mean), rng.random()
    while product > threshold:
        count += 1
        product *= rng.random()
    return count
