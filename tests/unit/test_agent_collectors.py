"""Host collectors on this machine, the batch collector on small files, the simulator's workload."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timezone

import pytest

from perflake.agent import Agent, host
from perflake.agent.batch import BatchError, load_file, mark_loaded
from perflake.config import ConfigError
from perflake.simulator import calendar
from perflake.simulator.workload import ANOMALY_KINDS, Workload
from tests.unit.test_agent_sdk import offline, spooled_events

NEW_YORK = "America/New_York"


def test_every_collector_reads_this_machine_with_valid_names_and_units(tmp_path):
    config = offline(tmp_path,
                     PERFLAKE__AGENT__HOST__COLLECTORS='{"cpu": "0.1", "memory": "0.1", "disk": "0.1", "network": "0.1", '
                                                       '"process": "0.1"}')
    stop = threading.Event()
    threading.Timer(0.6, stop.set).start()  # a few rounds, so rates have a previous reading
    recorded = host.run(config, stop, say=lambda _: None)  # strict mode: a bad name or unit would raise
    assert all(recorded[name] > 0 for name in ("cpu", "memory", "disk", "network", "process"))
    samples = {e["payload"]["metric"]: e for e in spooled_events(config, host.SERVICE)}
    assert {"cpu_percent", "memory_used_bytes", "disk_used_percent", "net_recv_bytes_per_s", "process_rss_bytes"} <= set(samples)
    assert 0 <= samples["cpu_percent"]["payload"]["value"] <= 100
    assert samples["process_rss_bytes"]["tags"]["pid"].isdigit()


@pytest.mark.parametrize(
    "collectors, message",
    [('{"gpu": "10"}', "unknown collector agent.host.collectors.gpu; known: cpu, memory"),
     ('{"cpu": "often"}', "agent.host.collectors.cpu is 'often'")],
)
def test_a_bad_collector_setting_is_a_clear_error(tmp_path, collectors, message):
    with pytest.raises(ConfigError, match=message):
        host.collectors(offline(tmp_path, PERFLAKE__AGENT__HOST__COLLECTORS=collectors))


def test_rates_need_two_readings_and_survive_a_counter_reset():
    meter = host.RateMeter()
    assert meter.rate("x", 100, now=1.0) is None
    assert meter.rate("x", 300, now=3.0) == 100.0
    assert meter.rate("x", 5, now=4.0) is None  # the counter restarted


EXPORT = """account_id,account_type,balance_usd,equity_usd,pnl_usd,return_pct,drawdown_pct,open_positions,as_of
acct-001,gen,80000,100000,1500.5,1.5,0.4,3,2026-11-23T21:00:00Z
acct-002,rev,40000,52000,-200,-0.4,2.1,1,2026-11-23T21:00:00Z
"""


def test_a_snapshot_file_becomes_business_events_once(tmp_path):
    config = offline(tmp_path)
    export = tmp_path / "eod.csv"
    export.write_text(EXPORT)
    with Agent("ws3-account-management", config) as agent:
        result = load_file(export, "account_snapshot", agent, at_column="as_of")
    mark_loaded(config, result, "account_snapshot")
    events = spooled_events(config, "ws3-account-management")
    snapshots = [e for e in events if e["event_type"] == "account_snapshot"]
    assert [(e["payload"]["account_id"], e["payload"]["open_positions"], e["event_at"]) for e in snapshots] == [
        ("acct-001", 3, "2026-11-23T21:00:00.000000+00:00"), ("acct-002", 1, "2026-11-23T21:00:00.000000+00:00"),
    ]
    assert snapshots[0]["tags"]["batch_file"] == "eod.csv"
    with Agent("ws3-account-management", config) as agent, pytest.raises(BatchError, match="was loaded before"):
        load_file(export, "account_snapshot", agent, at_column="as_of")


def test_one_bad_row_fails_the_file_with_line_numbers_and_sends_nothing(tmp_path):
    config = offline(tmp_path)
    export = tmp_path / "eod.csv"
    export.write_text(EXPORT.replace("gen,80000", "gen,lots").replace(",-0.4,", ",,") + "acct-003,gen,1,1,1,1,1,1,yesterday\n")
    with Agent("ws3-account-management", config) as agent, pytest.raises(BatchError) as error:
        load_file(export, "account_snapshot", agent, at_column="as_of")
    text = str(error.value)
    assert "3 bad row(s), nothing sent" in text
    assert "line 4: as_of 'yesterday' is not an ISO-8601 time" in text
    assert "line 2: payload.balance_usd must be number, got 'lots'" in text
    assert "line 3: payload.return_pct is missing" in text
    assert not [e for e in spooled_events(config, "ws3-account-management") if e["event_type"] == "account_snapshot"]
    assert not (config.paths.state_dir / "batch" / "loaded.json").exists()


def test_a_missing_column_is_named(tmp_path):
    export = tmp_path / "eod.csv"
    export.write_text("account_id,as_of\nacct-001,2026-11-23T21:00:00Z\n")
    with (Agent("ws3-account-management", offline(tmp_path)) as agent,
          pytest.raises(BatchError, match="missing column.s. account_type, balance_usd")):
        load_file(export, "account_snapshot", agent, at_column="as_of")


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


@pytest.mark.parametrize(
    "moment, phase",
    [
        ("2026-11-23T14:35:00", "open"),  # Monday 09:35 in New York
        ("2026-11-23T17:00:00", "regular"),
        ("2026-11-23T20:45:00", "close"),
        ("2026-11-23T22:00:00", "extended"),
        ("2026-11-24T06:00:00", "overnight"),
        ("2026-11-28T15:00:00", "weekend"),
        ("2026-11-26T15:00:00", "holiday"),  # Thanksgiving
        ("2026-11-27T18:30:00", "extended"),  # the day after closes at 13:00
    ],
)
def test_the_trading_calendar(moment, phase):
    assert calendar.phase(at(moment), NEW_YORK) == phase


def test_the_workload_is_reproducible_from_its_seed():
    def run(seed: int):
        workload = Workload(at("2026-11-23T14:30:00"), 3600, rate=20, seed=seed, anomalies=4, timezone_name=NEW_YORK)
        records = [record for t in range(int(workload.start), int(workload.start) + 600) for record in workload.second(t)]
        return workload.anomalies, records

    assert run(3) == run(3)
    assert run(3) != run(4)


def test_the_load_follows_the_calendar():
    workload = Workload(at("2026-11-23T14:30:00"), 6 * 86400, rate=50, seed=1, anomalies=0, timezone_name=NEW_YORK)

    def per_second(moment: str) -> float:
        start = int(at(moment))
        return sum(len(workload.second(t)) for t in range(start, start + 300)) / 300

    moments = ("2026-11-23T14:31:00", "2026-11-23T15:30:00", "2026-11-23T17:45:00", "2026-11-24T07:00:00", "2026-11-28T17:00:00")
    open_burst, morning, midday, night, saturday = (per_second(m) for m in moments)
    assert open_burst > 1.8 * midday > 5 * night and night > saturday
    assert morning > 1.15 * midday  # the midday lull


def test_anomalies_of_each_kind_fit_the_run_and_trading_ones_the_session():
    workload = Workload(at("2026-11-23T14:30:00"), 2 * 86400, rate=10, seed=9, anomalies=len(ANOMALY_KINDS),
                        timezone_name=NEW_YORK)
    assert sorted(a.kind for a in workload.anomalies) == sorted(ANOMALY_KINDS)
    for anomaly in workload.anomalies:
        assert workload.start <= anomaly.start < anomaly.end <= workload.end
        if ANOMALY_KINDS[anomaly.kind][1]:
            assert calendar.is_trading(anomaly.start, NEW_YORK) and calendar.is_trading(anomaly.end - 1, NEW_YORK)
    assert json.dumps([a.row() for a in workload.anomalies])  # labels serialise
