"""The NAB scorer: hand-computed cases, the exact threshold sweep, and NAB's published scores."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from perflake.anomaly import nab
from tests.support import PROJECT_DIR

NAB_DIR = PROJECT_DIR.parent / "shared" / "data" / "nab"
STANDARD = nab.PROFILES["standard"]
ROWS = 100  # probation: floor(0.15 * 100) = 15 rows
WINDOW = (40, 49)  # width 10


def grid(profile=STANDARD):
    return nab.scoring_grid(ROWS, [WINDOW], profile)


def fire(*rows):
    detections = np.zeros(ROWS, dtype=bool)
    detections[list(rows)] = True
    return detections


def test_a_detection_at_the_left_edge_of_the_window_earns_the_full_true_positive_weight():
    assert nab.score_detections(grid(), fire(40)).raw == pytest.approx(1.0)


def test_a_detection_at_the_right_edge_earns_the_sigmoid_of_its_position():
    # y = -(49 - 49 + 1) / 10 = -0.1: (2 / (1 + e^-0.5) - 1) / (2 / (1 + e^-5) - 1)
    expected = (2 / (1 + np.exp(-0.5)) - 1) / (2 / (1 + np.exp(-5)) - 1)
    assert nab.score_detections(grid(), fire(49)).raw == pytest.approx(expected)


def test_only_the_earliest_detection_in_a_window_counts():
    assert nab.score_detections(grid(), fire(42, 45, 49)).raw == pytest.approx(nab.score_detections(grid(), fire(42)).raw)


def test_a_missed_window_costs_the_false_negative_weight_per_profile():
    assert nab.score_detections(grid(), fire()).raw == -1.0
    assert nab.score_detections(grid(nab.PROFILES["reward_low_FN_rate"]), fire()).raw == -2.0


def test_false_alerts_cost_by_their_distance_past_the_window():
    # row 80: (80 - 49) / 9 = 3.44 > 3, so -1 * fp; row 50: 1/9 past, the sigmoid of 0.111
    far = nab.score_detections(grid(), fire(40, 80)).raw - 1.0
    near = nab.score_detections(grid(), fire(40, 50)).raw - 1.0
    assert far == pytest.approx(-0.11)
    assert near == pytest.approx(0.11 * (2 / (1 + np.exp(5 / 9)) - 1))
    # before any window: as far as can be; inside the probation period: not scored at all
    assert nab.score_detections(grid(), fire(20)).raw == pytest.approx(-1.0 - 0.11)
    assert nab.score_detections(grid(), fire(5)).raw == -1.0


def test_the_normalized_score_runs_from_null_to_perfect():
    g = grid()
    assert (g.null, g.perfect) == (-1.0, pytest.approx(1.0))
    assert nab.normalized(nab.score_detections(g, fire(40)).raw, g.null, g.perfect) == pytest.approx(100.0)
    assert nab.normalized(nab.score_detections(g, fire()).raw, g.null, g.perfect) == 0.0


def test_the_threshold_sweep_finds_the_same_optimum_as_trying_every_threshold():
    rng = np.random.default_rng(4)
    grids = [nab.scoring_grid(400, [(100, 129), (300, 339)], STANDARD), nab.scoring_grid(300, [(150, 169)], STANDARD)]
    scores = [rng.random(400).round(2), rng.random(300).round(2)]
    scores[0][110] = scores[1][155] = 0.999  # something worth finding
    threshold, best = nab.best_threshold(grids, scores)
    brute = max(sum(nab.score_detections(g, s >= t).raw for g, s in zip(grids, scores))
                for t in np.unique(np.concatenate(scores)))
    assert best == pytest.approx(brute)
    assert sum(nab.score_detections(g, s >= threshold).raw for g, s in zip(grids, scores)) == pytest.approx(best)


def test_a_window_not_on_a_row_of_the_file_is_an_error_naming_it():
    timestamps = pd.Series(pd.date_range("2026-01-01", periods=10, freq="5min"))
    with pytest.raises(ValueError, match="window 2026-01-01 00:01:00 .. 2026-01-01 00:20:00"):
        nab.window_bounds(timestamps, [("2026-01-01 00:01:00", "2026-01-01 00:20:00")])


def _nab_folder(root: Path, files: dict[str, pd.DataFrame], windows: dict[str, list]) -> Path:
    for name, frame in files.items():
        (root / "data" / name).parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(root / "data" / name, index=False)
    (root / "labels").mkdir(exist_ok=True)
    (root / "labels" / "combined_windows.json").write_text(json.dumps(windows))
    return root


def test_a_nab_folder_that_does_not_hold_what_its_labels_say_is_refused_naming_the_file(tmp_path):
    frame = pd.DataFrame({"timestamp": pd.date_range("2026-01-01", periods=10, freq="5min").astype(str), "value": range(10)})
    window = [["2026-01-01 00:10:00", "2026-01-01 00:20:00"]]
    with pytest.raises(FileNotFoundError, match=r"combined_windows.json lists c/gone.csv, but .*data/c/gone.csv is missing"):
        nab.load_corpus(_nab_folder(tmp_path / "gone", {"c/ok.csv": frame}, {"c/ok.csv": window, "c/gone.csv": []}))
    renamed = {"c/ok.csv": frame.rename(columns={"value": "v"})}
    with pytest.raises(ValueError, match=r"c/ok.csv: a NAB file has the columns timestamp,value; "
                                         r"this one has \['timestamp', 'v'\]"):
        nab.load_corpus(_nab_folder(tmp_path / "columns", renamed, {"c/ok.csv": window}))
    with pytest.raises(ValueError, match=r"c/ok.csv: window .*: its end is row 5 of the file, before its start \(row 7\): "
                                         "the rows are not in time order"):
        nab.load_corpus(_nab_folder(tmp_path / "order", {"c/ok.csv": frame.iloc[::-1]}, {"c/ok.csv": window}))
    with pytest.raises(ValueError, match=r"c/ok.csv: window .*: timestamp Timestamp\('2026-01-01 00:10:00'\) is not a row"):
        nab.load_corpus(_nab_folder(tmp_path / "rows", {"c/ok.csv": frame.iloc[5:]}, {"c/ok.csv": window}))
    in_utc = frame.assign(timestamp=pd.to_datetime(frame["timestamp"]).dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
    corpus = nab.load_corpus(_nab_folder(tmp_path / "zoned", {"c/ok.csv": in_utc}, {"c/ok.csv": window}))
    assert nab.window_bounds(corpus.values["c/ok.csv"]["timestamp"], corpus.windows["c/ok.csv"]) == [(2, 4)]


@pytest.mark.parametrize("unit,step", [("s", 3600), ("ms", 3_600_000)])
def test_a_nab_folder_with_unix_timestamps_is_read_in_the_calendar(tmp_path, unit, step):
    start = 1416726000 * (1000 if unit == "ms" else 1)  # 2014-11-23 07:00 UTC, as Yahoo's S5 series write it
    stamps = [start + step * row for row in range(10)]
    frame = pd.DataFrame({"timestamp": stamps, "value": range(10)})
    corpus = nab.load_corpus(_nab_folder(tmp_path / unit, {"c/unix.csv": frame}, {"c/unix.csv": [[stamps[2], stamps[4]]]}))
    read = corpus.values["c/unix.csv"]["timestamp"]
    assert list(read.iloc[[0, -1]]) == [pd.Timestamp("2014-11-23 07:00"), pd.Timestamp("2014-11-23 16:00")]
    assert nab.window_bounds(read, corpus.windows["c/unix.csv"]) == [(2, 4)]


def test_a_detector_output_without_a_number_for_every_row_is_refused_naming_file_and_row(tmp_path):
    frame = pd.DataFrame({"timestamp": pd.date_range("2026-01-01", periods=3, freq="5min").astype(str), "value": [1, 2, 3]})
    corpus = nab.load_corpus(_nab_folder(tmp_path / "nab", {"c/s.csv": frame}, {"c/s.csv": []}))
    (tmp_path / "mine" / "c").mkdir(parents=True)
    output = tmp_path / "mine" / "c" / "mine_s.csv"
    frame.assign(anomaly_score=["0.1", "high", "0.3"]).to_csv(output, index=False)
    with pytest.raises(ValueError, match=r"mine_s.csv: the anomaly_score of row 1 is not a number \('high'\)"):
        nab.read_detector_outputs(tmp_path / "mine", corpus)
    frame.assign(score=0.5).to_csv(output, index=False)
    with pytest.raises(ValueError, match=r"mine_s.csv: no anomaly_score column; it has \['timestamp', 'value', 'score'\]"):
        nab.read_detector_outputs(tmp_path / "mine", corpus)


@pytest.mark.parametrize("detector", ["numenta", "windowedGaussian"])
def test_the_reference_detectors_published_final_scores_are_reproduced(detector):
    corpus = nab.load_corpus(NAB_DIR)
    outputs = nab.read_detector_outputs(NAB_DIR / "reference_detectors" / detector, corpus)
    published = json.loads((NAB_DIR / "reference_detectors" / "final_results.json").read_text())[detector]
    for profile in nab.PROFILES.values():
        per_file = pd.read_csv(NAB_DIR / "reference_detectors" / detector / f"{detector}_{profile.name}_scores.csv")
        per_file = per_file.dropna(subset=["File"])
        threshold = float(per_file["Threshold"].iloc[0])
        result = nab.score_corpus(corpus.timestamps, outputs, corpus.windows, profile, threshold)
        assert result.score == pytest.approx(published[profile.name], abs=1e-6)
        ours = {name: score.raw for name, score in result.per_file.items()}
        assert ours == pytest.approx(dict(zip(per_file["File"], per_file["Score"].astype(float))), abs=1e-6)


def test_nab_score_cli_prints_the_three_profiles(tmp_path):
    from perflake.cli import main

    results = NAB_DIR / "reference_detectors" / "numenta"
    thresholds = NAB_DIR / "reference_detectors" / "thresholds.json"
    assert main(["evaluate", "nab-score", str(results), "--thresholds", str(thresholds), "--nab-dir", str(NAB_DIR)]) == 0
    assert main(["evaluate", "nab-score", str(tmp_path / "nothing"), "--nab-dir", str(NAB_DIR)]) == 2


def test_evaluate_run_reads_any_folder_in_nab_layout(tmp_path, capsys):
    from perflake.cli import main

    rows = 1000
    values = 50 + 10 * np.sin(np.arange(rows) / 30) + np.random.default_rng(0).normal(0, 1, rows)
    spiked = values.copy()
    spiked[800] += 60
    stamps = pd.date_range("2026-01-01", periods=rows, freq="5min")
    window = [[str(stamps[790]), str(stamps[810])]]
    folder = _nab_folder(tmp_path / "mine", {"c/spiked.csv": pd.DataFrame({"timestamp": stamps, "value": spiked}),
                                             "c/clean.csv": pd.DataFrame({"timestamp": stamps, "value": values})},
                         {"c/spiked.csv": window, "c/clean.csv": []})
    results = tmp_path / "results.json"
    command = ["evaluate", "run", "--dataset", "nab", "--data-dir", str(folder), "--detector", "median_mad",
               "--protocol", "fixed", "--no-track", "--workers", "1", "--json", str(results)]
    assert main(command) == 0
    assert f"nab: 2 series, 2,000 rows to score from {folder}" in capsys.readouterr().out
    median_mad = next(row for row in json.loads(results.read_text()) if row["detector"] == "median_mad")
    assert (median_mad["event_recall"], median_mad["alert_precision"]) == (1.0, 1.0)

    assert main(["evaluate", "run", "--dataset", "simulated", "--data-dir", str(folder), "--detector", "median_mad"]) == 2
    assert "the simulated data set is generated, not read" in capsys.readouterr().err
    assert main(["evaluate", "run", "--dataset", "smd", "--nab-results", str(tmp_path / "out"), "--detector", "median_mad"]) == 2
    assert "NAB's results layout is for the nab data set; smd has no NAB windows" in capsys.readouterr().err


@pytest.mark.parametrize("detector", ["median_mad", "ensemble"])
def test_scores_written_in_nab_results_layout_score_as_the_evaluation_scored_them(tmp_path, detector):
    from perflake.anomaly.commands import run_evaluation
    from tests.support import make_config

    rows = 1000
    rng = np.random.default_rng(0)
    stamps = pd.date_range("2026-01-01", periods=rows, freq="5min")
    files, windows = {}, {}
    for number in range(4):  # spikes the detectors find, and some they miss, so that thresholds matter
        values = 50 + 10 * np.sin(np.arange(rows) / 30) + rng.normal(0, 1, rows)
        values[[300 + 50 * number, 800]] += [4 + 8 * number, 30]
        files[f"c/s{number}.csv"] = pd.DataFrame({"timestamp": stamps, "value": values})
        windows[f"c/s{number}.csv"] = [[str(stamps[290 + 50 * number]), str(stamps[310 + 50 * number])],
                                       [str(stamps[790]), str(stamps[810])]]
    folder, results = _nab_folder(tmp_path / "mine", files, windows), tmp_path / "results"
    evaluations = run_evaluation(make_config("local", tmp_path), "nab", [detector], ["fixed", "nab"], 400, 1, track=False,
                                 say=lambda _: None, data_dir=folder, nab_results=results)
    fixed, tuned = (next(e for e in evaluations if (e.detector, e.protocol) == (detector, p)) for p in ("fixed", "nab"))

    corpus = nab.load_corpus(folder)
    outputs = nab.read_detector_outputs(results / detector, corpus)
    given = nab.read_thresholds(results / "thresholds.json", detector)
    written = pd.read_csv(results / detector / "c" / f"{detector}_s0.csv")
    assert list(written.columns) == ["timestamp", "value", "anomaly_score", "label"] and written["label"].sum() == 42
    assert given == dict.fromkeys(nab.PROFILES, 0.8)
    for profile in nab.PROFILES.values():
        optimum = nab.score_corpus(corpus.timestamps, outputs, corpus.windows, profile).score
        at_fixed = nab.score_corpus(corpus.timestamps, outputs, corpus.windows, profile, given[profile.name]).score
        assert optimum == pytest.approx(tuned.nab_scores[profile.name], abs=1e-9)
        assert at_fixed == pytest.approx(fixed.nab_scores[profile.name], abs=1e-9)
    assert sum(int((outputs[name] >= given["standard"]).sum()) for name in outputs) == fixed.events.alerts > 0


def test_a_corpus_without_labelled_windows_is_evaluated_without_a_nab_score_and_nab_score_says_why(tmp_path, capsys):
    from perflake.cli import main

    stamps = pd.date_range("2026-01-01", periods=1000, freq="5min")
    quiet = pd.DataFrame({"timestamp": stamps, "value": np.random.default_rng(0).normal(0, 1, len(stamps))})
    folder = _nab_folder(tmp_path / "quiet", {"c/a.csv": quiet, "c/b.csv": quiet}, {"c/a.csv": [], "c/b.csv": []})
    results, outputs = tmp_path / "results.json", tmp_path / "outputs"
    assert main(["evaluate", "run", "--dataset", "nab", "--data-dir", str(folder), "--detector", "median_mad", "--no-track",
                 "--protocol", "fixed,cross_fit,nab", "--workers", "1", "--json", str(results),
                 "--nab-results", str(outputs)]) == 0
    rows = json.loads(results.read_text())
    assert len(rows) == 9 and all(row["events"] == 0 and not any(key.startswith("nab_") for key in row) for row in rows)
    assert main(["evaluate", "nab-score", str(outputs / "median_mad"), "--nab-dir", str(folder)]) == 2
    assert "no labelled window in the corpus: a NAB score is normalised by what its windows are worth" in capsys.readouterr().err


def test_outputs_of_files_in_nested_folders_or_none_round_trip_through_nab_results_layout(tmp_path):
    stamps = pd.date_range("2026-01-01", periods=20, freq="5min")
    frame = pd.DataFrame({"timestamp": stamps.astype(str), "value": range(20)})
    names = ["yahoo/A1/real_1.csv", "bare.csv", "c/flat.csv"]
    corpus = nab.load_corpus(_nab_folder(tmp_path / "nab", dict.fromkeys(names, frame), dict.fromkeys(names, [])))
    scores = {name: np.linspace(0, 1, 20) * (number + 1) for number, name in enumerate(names)}
    nab.write_detector_outputs(tmp_path / "out" / "mine", corpus.values, corpus.windows, scores)
    assert (tmp_path / "out" / "mine" / "yahoo" / "A1" / "mine_real_1.csv").is_file()
    assert (tmp_path / "out" / "mine" / "mine_bare.csv").is_file()
    read = nab.read_detector_outputs(tmp_path / "out" / "mine", corpus)
    assert read.keys() == scores.keys() and all(np.allclose(read[name], scores[name]) for name in names)
