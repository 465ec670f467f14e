"""Recurring behaviour of a metric: its season, its regimes in the trading calendar, its recurring shapes."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest

from perflake.anomaly.patterns import (Season, duration_text, motifs, moving_together, on_regular_grid, recurring_behaviour,
                                       usual_step)
from perflake.cli import main
from perflake.simulator.calendar import load
from tests import synthetic as syn

TIMEZONE = "America/New_York"
TRADING = ["open", "regular", "close"]


def _trading_load(weeks: int = 2, seed: int = 0) -> pd.DataFrame:
    """Requests per 5 minutes as the ALL-USE calendar shapes them: bursts at the open and close, quiet nights and weekends."""
    timestamps = pd.date_range("2026-01-05", periods=weeks * 7 * 288, freq="5min", tz="UTC")
    rng = np.random.default_rng(seed)
    levels = np.array([1000 * load(t.timestamp(), TIMEZONE) for t in timestamps])
    return pd.DataFrame({"timestamp": timestamps, "requests": levels * rng.lognormal(0, 0.05, len(levels))})


def test_a_trading_load_has_a_daily_season_and_its_regimes_fall_where_the_calendar_puts_them():
    found = recurring_behaviour(_trading_load(), "requests", pd.Timedelta("1h"), TIMEZONE)

    assert (found.window_rows, found.step) == (12, pd.Timedelta("5min"))
    assert found.season.name == "daily" and found.season.rows == 288
    phases = found.regime_phases.reindex(columns=TRADING, fill_value=0.0).sum(axis=1)
    assert phases["quiet"] < 0.05  # nights, weekends, the pre- and after-market
    assert phases["peak"] > 0.95 and found.regime_phases.loc["peak", ["open", "close"]].sum() > 0.9  # the two bursts
    assert found.regimes.profile["mean"].is_monotonic_increasing


def test_the_regimes_windows_start_on_the_clock_whenever_the_series_starts():
    frame = _trading_load()
    frame = frame[frame["timestamp"] >= "2026-01-05 14:35Z"].reset_index(drop=True)  # Monday 9:35 in New York
    frame.loc[frame["timestamp"].between("2026-01-06 15:00Z", "2026-01-06 15:55Z"), "requests"] = np.nan  # agent down
    found = recurring_behaviour(frame, "requests", pd.Timedelta("1h"), TIMEZONE)

    starts = pd.DatetimeIndex(found.regimes.labels.index).tz_convert(TIMEZONE)
    assert starts[0] == pd.Timestamp("2026-01-05 10:00", tz=TIMEZONE) and (starts.minute == 0).all()
    regime = found.regime_of_each_row(frame["timestamp"])
    assert list(regime[:5]) == [None] * 5  # 9:35 to 9:55: before the first whole hour, in no window
    assert list(regime[5:17]) == [found.regimes.labels.iloc[0]] * 12 and regime[17] == found.regimes.labels.iloc[1]
    down = frame["timestamp"].between("2026-01-06 15:00Z", "2026-01-06 15:55Z").to_numpy()
    assert list(regime[down]) == [None] * 12  # an hour without a measured value is in no regime


def test_rows_missing_from_the_file_are_put_back_so_that_rows_count_time(tmp_path, capsys):
    load_frame = _trading_load(weeks=3)
    hour = load_frame["timestamp"].dt.tz_convert(TIMEZONE).dt.hour
    path = _metric_file(tmp_path, load_frame[(hour >= 4) & (hour < 20)])  # no traffic at night: gold has no rows then

    assert main(["evaluate", "patterns", str(path)]) == 0
    report = capsys.readouterr().out
    assert "4,032 rows on a grid of 6,048, one every 5 min" in report and "season: daily (288 rows)" in report


def test_a_grid_takes_every_step_once_moves_rows_off_it_and_leaves_out_rows_without_a_time():
    times = ["00:00:00", "00:01:00", "00:02:30", "00:02:50", None, "00:04:00", "00:06:00", "00:07:00", "00:08:00"]
    frame = pd.DataFrame({"timestamp": pd.to_datetime([t and f"2026-01-05 {t}" for t in times], utc=True),
                          "value": [0.0, 1.0, 2.5, 2.8, -1.0, 4.0, 6.0, 7.0, 8.0]})
    grid = on_regular_grid(frame)
    assert grid["timestamp"].dt.strftime("%M:%S").tolist() == [f"0{minute}:00" for minute in range(9)]
    np.testing.assert_array_equal(grid["value"], [0.0, 1.0, 2.5, np.nan, 4.0, np.nan, 6.0, 7.0, 8.0])


def test_a_grid_far_larger_than_the_rows_is_refused_and_rows_off_a_grid_are_refused_by_the_finder():
    sparse = pd.DataFrame({"timestamp": pd.to_datetime(["2026-01-05 00:00", "2026-01-05 00:01", "2026-01-05 00:02",
                                                        "2026-02-05 00:00"], utc=True), "value": [1.0, 2.0, 3.0, 4.0]})
    with pytest.raises(ValueError, match=r"would be 44,641 rows for 4: the rows are too sparse for their step"):
        on_regular_grid(sparse)
    with pytest.raises(ValueError, match=r"its rows are not one every 1 min: row 3 is 30 days 23 h 58 min after"):
        recurring_behaviour(sparse, "value", pd.Timedelta("1h"), TIMEZONE)


def test_a_window_shorter_than_eight_rows_is_widened_to_eight():
    found = recurring_behaviour(syn.clean(), "value", pd.Timedelta("1h"), TIMEZONE)  # 30-minute rows: 2 would be no shape
    assert found.window_rows == 8 and found.season.name == "daily"


def test_the_recurring_shapes_correlation_is_that_of_its_two_windows():
    found = recurring_behaviour(syn.clean(), "value", pd.Timedelta("4h"), TIMEZONE)
    values = syn.clean()["value"].to_numpy()
    for shape in found.motifs:
        first, second = (values[end - 7 : end + 1] for end in (shape.end, shape.twin_end))
        assert shape.correlation(8) == pytest.approx(np.corrcoef(first, second)[0, 1], abs=1e-6)


def test_a_shape_that_recurs_every_day_is_counted_and_placed_in_the_day(tmp_path, capsys):
    timestamps = pd.date_range("2026-01-05", periods=10 * 1440, freq="min", tz="UTC")
    values = np.random.default_rng(3).normal(100, 1, len(timestamps))
    local = timestamps.tz_convert(TIMEZONE)
    rerun = np.flatnonzero(local == pd.Timestamp("2026-01-08 03:00", tz=TIMEZONE))  # run once more by hand, at night
    for start in [*np.flatnonzero((local.hour == 17) & (local.minute == 0)), *rerun]:  # a batch job at 17:00 in New York
        values[start : start + 15] += 40 * np.sin(np.linspace(0, np.pi, 15))
    path = _metric_file(tmp_path, pd.DataFrame({"timestamp": timestamps, "cpu": values}))

    assert main(["evaluate", "patterns", str(path), "--window", "15min", "--top", "1"]) == 0
    assert "11 windows like it, 10 of them ending between 17:00 and 17:59" in capsys.readouterr().out


def test_metrics_that_move_together_either_way_are_named_strongest_first():
    rng = np.random.default_rng(4)
    requests = rng.normal(100, 10, 2000)
    frame = pd.DataFrame({"timestamp": pd.date_range("2026-01-05", periods=2000, freq="min", tz="UTC"),
                          "requests": requests, "cpu": requests * 0.5 + rng.normal(0, 1, 2000),
                          "free_memory": 1000 - 3 * requests + rng.normal(0, 10, 2000), "disk": rng.normal(50, 1, 2000),
                          "errors": 0.0})
    frame.loc[:100, "cpu"] = np.nan  # the CPU collector started late: its pairs read the rows it measured

    together = moving_together(frame)
    assert [other for other, _ in together["requests"]] == ["cpu", "free_memory"]
    assert together["free_memory"][0][0] == "requests" and together["free_memory"][0][1] < -0.9
    assert together["disk"] == [] and together["errors"] == []


def test_a_flat_stretch_is_not_a_recurring_shape():
    rng = np.random.default_rng(2)
    values = rng.normal(0, 1, 1000)
    values[200:240] += 10 * np.sin(np.linspace(0, 3 * np.pi, 40))
    values[700:740] += 10 * np.sin(np.linspace(0, 3 * np.pi, 40))
    values[400:460] = values[850:910] = 0.0  # a feed stalled at zero, twice: alike, but no shape
    best = motifs(values, 40, top=1)[0]
    first, second = sorted([best.end, best.twin_end])
    assert second - first == 500 and 230 <= first <= 245


@pytest.mark.parametrize("values, why", [(np.full(500, np.nan), "never measured"),
                                         (np.full(500, 3.0), "one value throughout (3)")])
def test_a_metric_with_nothing_to_recur_says_why(values, why):
    frame = pd.DataFrame({"timestamp": pd.date_range("2026-01-05", periods=500, freq="min", tz="UTC"), "errors": values})
    found = recurring_behaviour(frame, "errors", pd.Timedelta("1h"), TIMEZONE)
    assert found.why_none == why and found.season is None and found.regimes is None and found.motifs == ()


@pytest.mark.parametrize("rows", [150, 400, 2000])
def test_noise_without_a_pattern_has_no_regimes_and_no_recurring_shape_and_says_why(rows):
    rng = np.random.default_rng(rows)  # latency wobbling around one level: nothing recurs but chance
    frame = pd.DataFrame({"timestamp": pd.date_range("2026-03-02", periods=rows, freq="5min", tz="UTC"),
                          "latency_ms": rng.normal(50, 3, rows)})
    found = recurring_behaviour(frame, "latency_ms", pd.Timedelta("1h"), TIMEZONE)
    assert found.regimes is None and found.why_no_regimes.endswith("nor in spread 2 times over: one regime")
    assert found.motifs == () and f"no two of its {rows - 11:,} windows of 1 h alike beyond chance" in found.why_no_motifs
    chance = float(re.search(r"pairs correlated up to (0\.\d+)", found.why_no_motifs).group(1))
    assert 0.9 < chance < 1  # short windows of noise match closely: a pair at 0.9 is no pattern


def test_hours_with_a_rare_error_among_hours_without_are_not_two_regimes():
    errors = np.zeros(2000)
    errors[[100, 600, 605, 1100, 1500]] = 1.0  # an error now and then, two in one hour: three levels of windows
    frame = pd.DataFrame({"timestamp": pd.date_range("2026-03-02", periods=2000, freq="5min", tz="UTC"), "errors": errors})
    found = recurring_behaviour(frame, "errors", pd.Timedelta("1h"), TIMEZONE)
    assert found.regimes is None and found.why_no_regimes.endswith("one regime")


def test_hours_of_one_error_each_are_one_level_wherever_in_the_hour_it_falls():
    errors = np.zeros(2000)
    errors[[398, 1050, 1222]] = 1.0  # the sd of these three hours differs in its last bit
    frame = pd.DataFrame({"timestamp": pd.date_range("2026-03-02", periods=2000, freq="5min", tz="UTC"), "errors": errors})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # k-means is not asked for three clusters of two levels
        found = recurring_behaviour(frame, "errors", pd.Timedelta("1h"), TIMEZONE)
    assert found.regimes is None and "2 distinct levels and spreads: too few for 3 regimes" in found.why_no_regimes


def test_a_metric_of_two_levels_has_no_three_regimes_and_says_so():
    up = np.tile(np.repeat([0.0, 1.0], 120), 10)  # a health check, down two hours in four
    frame = pd.DataFrame({"timestamp": pd.date_range("2026-01-05", periods=len(up), freq="min", tz="UTC"), "down": up})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # k-means is not asked for three clusters of two points
        found = recurring_behaviour(frame, "down", pd.Timedelta("1h"), TIMEZONE)
    assert found.regimes is None and "2 distinct levels and spreads: too few for 3 regimes" in found.why_no_regimes
    assert found.season.rows == 240


@pytest.mark.parametrize("length, name", [("7D", "weekly"), ("1D 00:20:00", "daily"), ("59min", "hourly"),
                                          ("3h20min", "every 3 h 20 min"), ("1D 06:00:00", "every 1 day 6 h")])
def test_a_season_is_named_by_its_length(length, name):
    assert Season(100, pd.Timedelta(length), 0.8).name == name


def test_durations_read_as_a_person_writes_them():
    written = [duration_text(pd.Timedelta(span)) for span in ("30min", "2D", "90s", "500ms", "2500ms")]
    assert written == ["30 min", "2 days", "1 min 30 s", "0.5 s", "2.5 s"]


@pytest.mark.parametrize("rows, said", [(3, "3 rows"), (1, "1 row")])
def test_timestamps_that_never_move_forward_are_refused(rows, said):
    with pytest.raises(ValueError, match=rf"its timestamps never move forward \({said}\)"):
        usual_step(pd.Series(pd.to_datetime(["2026-01-05"] * rows, utc=True)))


def _metric_file(tmp_path, frame: pd.DataFrame):
    path = tmp_path / "metrics.csv"
    frame.assign(timestamp=frame["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")).to_csv(path, index=False)
    return path


def test_the_patterns_command_reports_each_metric_and_draws_one(tmp_path, capsys):
    load_frame = _trading_load(weeks=1)
    path = _metric_file(tmp_path, load_frame.assign(errors=0.0, cpu=load_frame["requests"] / 100))

    assert main(["evaluate", "patterns", str(path)]) == 0
    report = capsys.readouterr().out
    assert "2,016 rows, one every 5 min" in report and "windows of 12 rows (1 h)" in report
    assert "season: daily (288 rows)" in report and "regime peak:" in report and "recurring shape: the 1 h ending" in report
    assert "errors\n  nothing recurs: one value throughout (0)\ncpu" in report
    assert report.count("moves with") == 2 and "  moves with: cpu (r +1.00)\n" in report

    chart = tmp_path / "requests.png"
    assert main(["evaluate", "patterns", str(path), "--metric", "requests", "--chart", str(chart)]) == 0
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "errors" not in capsys.readouterr().out


def test_a_file_without_a_metric_is_refused_naming_it(tmp_path, capsys):
    path = tmp_path / "clock.csv"
    path.write_text("timestamp\n2026-01-05T00:00:00Z\n2026-01-05T00:01:00Z\n")
    assert main(["evaluate", "patterns", str(path)]) == 2
    assert re.match(r"perflake: error: .*clock.csv: needs a 'timestamp' column and one column per metric; has "
                    r"\['timestamp'\]", capsys.readouterr().err)


@pytest.mark.parametrize("cell, error", [
    ("fast", r"metric columns must be numeric; not numeric: \['errors'\] \('errors': row 7 is 'fast'\)"),
    (float("inf"), r"metric values must be finite \(a missing value is NaN or empty\); infinite: 'errors': row 7 is inf"),
])
def test_a_metric_file_the_detectors_would_misread_is_refused_naming_its_column_and_row(tmp_path, capsys, cell, error):
    load = _trading_load(weeks=1).assign(errors=0.0).astype({"errors": object})
    load.loc[7, "errors"] = cell  # one unreadable cell of an export, or a rate divided by zero
    path = _metric_file(tmp_path, load)
    assert main(["evaluate", "patterns", str(path)]) == 2
    assert re.match(r"perflake: error: .*metrics.csv: " + error, capsys.readouterr().err)


@pytest.mark.parametrize("extra, error", [
    (["--metric", "latency"], r"has no metric 'latency'; its metrics: requests, errors"),
    (["--chart", "CHART"], r"a chart draws one metric and .*metrics.csv has 2: pick it with --metric"),
])
def test_the_patterns_command_refuses_what_it_cannot_do_naming_it(tmp_path, capsys, extra, error):
    path = _metric_file(tmp_path, _trading_load(weeks=1).assign(errors=0.0))
    chart = tmp_path / "chart.png"
    assert main(["evaluate", "patterns", str(path), *[str(chart) if arg == "CHART" else arg for arg in extra]]) == 2
    assert re.match(r"perflake: error: .*" + error, capsys.readouterr().err)
    assert not chart.exists()


def test_the_patterns_chart_colours_each_row_by_its_windows_regime_places_the_regimes_in_the_week_and_marks_the_season():
    from perflake.anomaly.charts import patterns_figure

    frame = _trading_load(weeks=3)
    one_busy_noon = frame["timestamp"].between("2026-01-19 17:00Z", "2026-01-19 17:55Z")  # the third Monday, 12:00 ET
    frame.loc[one_busy_noon, "requests"] = 2500.0
    found = recurring_behaviour(frame, "requests", pd.Timedelta("1h"), TIMEZONE)
    over_time, week, shape, season = patterns_figure(frame, found, TIMEZONE).axes

    legend = [text.get_text() for text in over_time.get_legend().get_texts()]
    drawn = {regime: len(points.get_offsets()) for regime, points in zip(legend, over_time.collections)}
    assert drawn == (found.regimes.profile["n_windows"] * found.window_rows).astype(int).to_dict()
    in_the_week = week.images[0].get_array()  # rows Monday to Sunday, columns hours; the regimes ranked from quiet up
    # the open and close peak, midday is normal (peak on one Monday in three)
    assert (in_the_week[0, 9], in_the_week[0, 15], in_the_week[0, 12]) == (2, 2, 1)
    assert (in_the_week[0, 3], in_the_week[5, 12]) == (0, 0)  # the night and Saturday are quiet
    best = found.motifs[0]
    values = frame["requests"].to_numpy()
    windows = [list(values[end - 11 : end + 1]) for end in (best.end, best.twin_end)]
    assert [list(line.get_ydata()) for line in shape.lines] == windows
    assert [line.get_xdata()[0] for line in season.lines[1:]] == [found.season.rows]
