"""The results chart: every detector placed by its figures, the targets drawn where they apply, bad files refused."""

import json

import pytest

from perflake.anomaly import charts
from perflake.cli import main


def result_rows(dataset: str, figures: dict[tuple[str, str], tuple[float, float, float, int]]) -> list[dict]:
    """Rows as ``evaluate run --json`` writes them: (detector, protocol) -> recall, precision, headline, alerts."""
    headline = "nab_standard" if dataset == "nab" else "f1"
    rows = []
    for (detector, protocol), (recall, precision, value, alerts) in figures.items():
        row = {"dataset": dataset, "detector": detector, "protocol": protocol, "event_recall": recall,
               "alert_precision": precision, "f1": 0.0, "alerts": alerts, "events": 10, headline: value}
        rows.append(row)
    return rows


FIGURES = {
    ("null", "fixed"): (0.0, 0.0, 0.0, 0), ("null", "cross_fit"): (0.0, 0.0, 0.0, 0),
    ("random", "fixed"): (0.1, 0.05, 1.5, 20), ("random", "cross_fit"): (0.5, 0.1, 13.0, 300),
    ("median_mad", "fixed"): (0.45, 0.35, 33.0, 40), ("median_mad", "cross_fit"): (0.5, 0.3, 31.0, 50),
    ("ensemble", "fixed"): (0.7, 0.55, 60.0, 30), ("ensemble", "cross_fit"): (0.78, 0.48, 62.0, 45),
}


def chart(tmp_path, dataset: str, figures=FIGURES):
    path = tmp_path / f"{dataset}.json"
    path.write_text(json.dumps(result_rows(dataset, figures)))
    events, headline = charts.results_figure(charts.read_results(path), dataset).axes
    return events, headline


def points(axes) -> dict[str, tuple[float, float]]:
    return {c.get_gid(): tuple(c.get_offsets()[0]) for c in axes.collections if c.get_gid()}


def test_each_detector_that_alerted_is_placed_at_its_alert_precision_and_event_recall(tmp_path):
    events, _ = chart(tmp_path, "nab")
    placed = points(events)
    assert set(placed) == {f"{d}/{p}" for (d, p), figures in FIGURES.items() if figures[3] > 0}  # null never alerted
    for (detector, protocol), (recall, precision, _, alerts) in FIGURES.items():
        if alerts:
            assert placed[f"{detector}/{protocol}"] == pytest.approx((precision, recall))


def test_the_bars_are_nab_standard_scores_best_detector_on_top_with_the_targets_drawn(tmp_path):
    _, headline = chart(tmp_path, "nab")
    assert [t.get_text() for t in headline.get_yticklabels()] == ["null", "random", "median_mad", "ensemble"]
    fixed = [bar.get_width() for bar in headline.patches if bar.get_gid() == "fixed"]
    assert fixed == [0.0, 1.5, 33.0, 60.0]
    assert {line.get_xdata()[0] for line in headline.lines} == set(charts.NAB_STANDARD_LINES.values())


@pytest.mark.parametrize("dataset, target_drawn", [("nab", True), ("simulated", True), ("smd", False)])
def test_the_event_target_region_is_drawn_for_the_data_sets_held_to_it(tmp_path, dataset, target_drawn):
    events, headline = chart(tmp_path, dataset)
    regions = [c for c in events.collections if c.get_label().startswith("target")]
    assert len(regions) == int(target_drawn)
    if target_drawn:
        corners = regions[0].get_paths()[0].vertices
        assert corners[:, 0].min() == charts.TARGET_PRECISION and corners[:, 1].min() == charts.TARGET_RECALL
    if dataset != "nab":  # F1 bars, no NAB score lines
        assert [bar.get_width() for bar in headline.patches if bar.get_gid() == "cross_fit"] == [0.0, 13.0, 31.0, 62.0]
        assert not headline.lines


def test_names_that_would_overlap_are_left_to_the_colours(tmp_path):
    close = {("median_mad", "fixed"): (0.45, 0.35, 33.0, 40), ("cusum", "fixed"): (0.46, 0.36, 30.0, 40),
             ("ensemble", "fixed"): (0.7, 0.55, 60.0, 30)}
    events, _ = chart(tmp_path, "smd", close)
    names = [text.get_text() for text in events.texts if not text.get_text().startswith("F1")]
    assert sorted(names) == ["ensemble", "median_mad"]  # cusum sits on median_mad's name, and is the lower F1


def test_a_file_that_is_not_one_data_sets_results_is_refused_naming_it(tmp_path):
    not_json, wrong_rows, mixed = tmp_path / "notes.json", tmp_path / "wrong.json", tmp_path / "mixed.json"
    not_json.write_text("detector,f1\n")
    wrong_rows.write_text(json.dumps([{"detector": "ensemble", "f1": 0.5}]))
    mixed.write_text(json.dumps(result_rows("nab", FIGURES) + result_rows("smd", FIGURES)))
    twice, unknown = tmp_path / "twice.json", tmp_path / "unknown.json"
    twice.write_text(json.dumps(result_rows("smd", FIGURES) + result_rows("smd", {("ensemble", "fixed"): (1, 1, 1, 1)})))
    unknown.write_text(json.dumps(result_rows("smd", {("ensemble", "best_on_test"): (1, 1, 1, 1)})))
    no_level = tmp_path / "no_level.json"
    no_level.write_text(json.dumps(result_rows("smd", {("ensemble", "level:high"): (1, 1, 1, 1)})))
    with pytest.raises(ValueError, match=f"{not_json}: not JSON"):
        charts.read_results(not_json)
    with pytest.raises(ValueError, match=r"wrong.json: result rows need .*missing \['dataset', 'protocol'"):
        charts.read_results(wrong_rows)
    with pytest.raises(ValueError, match=r"mixed.json: one data set per chart; this file has \['nab', 'smd'\]"):
        charts.read_results(mixed)
    with pytest.raises(ValueError, match="twice.json: ensemble under fixed appears more than once"):
        charts.read_results(twice)
    with pytest.raises(ValueError, match=r"unknown.json: unknown threshold protocols \['best_on_test'\]"):
        charts.read_results(unknown)
    with pytest.raises(ValueError, match=r"no_level.json: threshold protocol 'level:high': a given level is a positive number"):
        charts.read_results(no_level)


def test_chart_cli_writes_a_png_beside_the_results_and_refuses_a_bad_file(tmp_path, capsys):
    results = tmp_path / "simulated.json"
    results.write_text(json.dumps(result_rows("simulated", FIGURES)))
    assert main(["evaluate", "chart", str(results)]) == 0
    assert (tmp_path / "simulated.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote {tmp_path / 'simulated.png'} (4 detectors, 2 protocols)" in capsys.readouterr().out
    swept = tmp_path / "swept.json"
    swept.write_text(json.dumps(result_rows("simulated", {**FIGURES, ("ensemble", "level:5"): (0.6, 0.7, 0.65, 20)})))
    assert main(["evaluate", "chart", str(swept)]) == 0  # a sweep of given levels reads as a table: not drawn
    assert f"wrote {tmp_path / 'swept.png'} (4 detectors, 2 protocols; not drawn: level:5)" in capsys.readouterr().out
    (tmp_path / "empty.json").write_text("[]")
    assert main(["evaluate", "chart", str(tmp_path / "empty.json"), "--out", str(tmp_path / "empty.png")]) == 2
    assert "empty.json: a results file is a list of result rows" in capsys.readouterr().err
    assert not (tmp_path / "empty.png").exists()
