"""The simulator's labelled anomalies as an evaluation data set."""

import numpy as np
import pytest

from perflake.anomaly import evaluate as ev
from perflake.anomaly.simulated import SimulatedSpec, generate
from perflake.simulator.workload import ANOMALY_KINDS

# one of each kind where the calendar lets it fit: the history and the test period each cover a New York session
SPEC = SimulatedSpec(history_days=1.0, test_days=0.6, rate=2.0, anomalies=len(ANOMALY_KINDS), seed=3,
                     start="2026-01-05T06:00:00+00:00")


@pytest.fixture(scope="module")
def data():
    return ev.simulated_series(SPEC)


@pytest.fixture(scope="module")
def anomalies():
    return generate(SPEC)[1].anomalies


def test_each_anomaly_labels_the_rows_of_the_one_series_it_hits_over_its_time(data, anomalies):
    assert len(anomalies) >= 6
    for index, anomaly in enumerate(anomalies):
        labelled = [s for s in data if (s.segment == index).any()]
        assert [s.name.split("/", 1)[1] for s in labelled] == [anomaly.entity], anomaly
        series = labelled[0]
        times = series.test["timestamp"][series.segment == index].astype("int64").to_numpy() // 10**9
        grain = 300 if series.category == "account" else 60
        assert times.min() <= anomaly.start < times.min() + grain and times.max() < anomaly.end <= times.max() + grain
        assert len(times) == (times.max() - times.min()) // grain + 1  # one unbroken run


def test_the_labelled_rows_show_the_injected_anomaly(data, anomalies):
    effects = {"latency_spike": "latency_p95_ms", "error_burst": "error_rate", "memory_leak": "memory_used_bytes",
               "account_drawdown": "drawdown_pct", "override_rate": "overrides"}
    checked = 0
    for index, anomaly in enumerate(anomalies):
        if anomaly.kind not in effects:
            continue
        series = next(s for s in data if (s.segment == index).any())
        values = series.test[effects[anomaly.kind]].to_numpy()
        inside, outside = values[series.segment == index], values[series.segment == -1]
        assert np.mean(inside) > np.quantile(outside, 0.9), anomaly  # a typical labelled row beats 90% of the others
        checked += 1
    assert checked >= 3


def test_detectors_fit_on_an_anomaly_free_history_that_ends_where_the_test_begins(data):
    for series in data:
        assert (series.segment >= -1).all()
        assert series.fit["timestamp"].iloc[-1] < series.test["timestamp"].iloc[0]
        assert list(series.fit.columns) == list(series.test.columns)
        assert not series.test.drop(columns="timestamp").isna().any().any(), series.name
    assert {s.category for s in data} == {"requests", "throughput", "host", "feed", "account", "decisions"}


def test_an_anomaly_on_a_series_the_history_never_saw_is_an_error_not_left_out():
    # a history in New York's night has no protocol decisions: the override surge has nothing to be scored on
    with pytest.raises(ValueError, match=r"anomalies .*override_rate.* hit series the history never saw: lengthen history_days"):
        ev.simulated_series(SimulatedSpec(history_days=0.25, test_days=0.6, rate=2.0, anomalies=len(ANOMALY_KINDS), seed=3))


def test_the_same_spec_gives_the_same_rows_and_labels(data):
    again = {s.name: s for s in ev.simulated_series(SPEC)}
    assert sorted(again) == sorted(s.name for s in data)
    for series in data:
        assert again[series.name].test.equals(series.test) and (again[series.name].segment == series.segment).all()
