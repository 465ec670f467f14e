"""Figures a person would rather look at than read: a series' detections against its labels, a
results file (``perflake evaluate run --json``) against issue 5's targets and the baselines, and
what recurs in a metric (``patterns.recurring_behaviour``).

Bare matplotlib ``Figure`` objects, outside pyplot: nothing to close, and a notebook's backend is
left alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from perflake.anomaly.detectors import DETECTORS
from perflake.anomaly.evaluate import BASELINES, check_protocols
from perflake.anomaly.features import metric_columns
from perflake.anomaly.patterns import RecurringBehaviour, autocorrelation, duration_text

# Issue 5's targets: event recall and alert precision on NAB (the results page holds the simulated
# week to them too), and NAB's standard score of Numenta HTM and ARTime; the published detectors'
# event figures the issue names beside them.
TARGET_RECALL, TARGET_PRECISION = 0.85, 0.60
NAB_STANDARD_LINES = {"Numenta HTM 70.1 (target)": 70.1, "ARTime 74.9": 74.9}
PUBLISHED_NAB_EVENTS = {"ARTime": (0.33, 0.91), "CAD OSE": (0.59, 0.79)}  # alert precision, event recall
EVENT_TARGET_DATASETS = ("nab", "simulated")
RESULT_COLUMNS = ["dataset", "detector", "protocol", "event_recall", "alert_precision", "f1", "alerts"]
PROTOCOL_MARKERS = {"fixed": "o", "cross_fit": "^", "nab": "s"}
PROTOCOL_HATCHES = {"fixed": "", "cross_fit": "//", "nab": ".."}
BASELINE_COLOUR = "#999"
LABEL_WIDTH, LABEL_HEIGHT = 0.14, 0.03  # a point's name, in axes units (both axes run 0-1)


def detection_figure(series, levels: np.ndarray, threshold: float):
    """The series, its labelled anomalies shaded, and the alerts marked: what an operator would look at."""
    from matplotlib.figure import Figure

    test = series.test
    metric = metric_columns(test)[0]
    figure = Figure(figsize=(12, 5))
    top, bottom = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    top.plot(test["timestamp"], test[metric], linewidth=0.6, color="#345")
    inside = series.segment >= 0
    for segment in np.unique(series.segment[inside]):
        rows = np.flatnonzero(series.segment == segment)
        top.axvspan(test["timestamp"].iloc[rows[0]], test["timestamp"].iloc[rows[-1]], color="orange", alpha=0.3)
    alerts = levels >= threshold
    top.scatter(test["timestamp"][alerts], test[metric][alerts], color="red", zorder=3, s=18, label="alert")
    top.set_title(f"{series.name}: labelled anomalies (shaded) and alerts (red); {metric}")
    bottom.plot(test["timestamp"], levels, linewidth=0.6, color="#666")
    bottom.axhline(threshold, color="red", linestyle="--", linewidth=0.8)
    bottom.set_ylabel("alert level")
    figure.tight_layout()
    return figure


def read_results(path: Path) -> pd.DataFrame:
    """The rows of one data set's results file, refused with the file's name when it is not one."""
    try:
        rows = json.loads(Path(path).read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not JSON ({error})") from None
    if not isinstance(rows, list) or not rows or not all(isinstance(row, dict) for row in rows):
        raise ValueError(f"{path}: a results file is a list of result rows, as `perflake evaluate run --json` writes")
    results = pd.DataFrame(rows)
    missing = [column for column in RESULT_COLUMNS if column not in results.columns]
    if missing:
        raise ValueError(f"{path}: result rows need the columns {RESULT_COLUMNS}; missing {missing}")
    datasets = sorted(results["dataset"].unique())
    if len(datasets) > 1:
        raise ValueError(f"{path}: one data set per chart; this file has {datasets}")
    try:
        check_protocols(sorted(set(results["protocol"])))
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    repeated = results[results.duplicated(["detector", "protocol"])]
    if len(repeated):  # two runs in one file: which figure to draw is not for the chart to pick
        raise ValueError(f"{path}: {repeated['detector'].iloc[0]} under {repeated['protocol'].iloc[0]} appears more than once")
    return results


def results_figure(results: pd.DataFrame, title: str):
    """Event recall against alert precision for every detector and protocol (left), and each detector's
    headline figure, NAB's standard score or event F1, per protocol (right), baselines in grey. Rows of a
    given level (``level:X``) are not drawn: a sweep of levels reads as a table."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(15, 6.5))
    events, headline = figure.subplots(1, 2, gridspec_kw={"width_ratios": [1.15, 1]})
    colours = _detector_colours(results["detector"].unique())
    protocols = [p for p in PROTOCOL_MARKERS if p in set(results["protocol"])]
    _draw_events(events, results, protocols, colours)
    _draw_headline(headline, results, protocols, colours)
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def _detector_colours(detectors) -> dict[str, object]:
    """One colour per detector, the same in every chart (by its place among the known detectors)."""
    from matplotlib import colormaps

    palette = colormaps["tab20"].colors
    models = [*DETECTORS, *(d for d in detectors if d not in DETECTORS and d not in BASELINES)]
    return {**{d: palette[i % len(palette)] for i, d in enumerate(models)}, **dict.fromkeys(BASELINES, BASELINE_COLOUR)}


def _draw_events(axes, results: pd.DataFrame, protocols: list[str], colours: dict) -> None:
    """One point per detector and protocol that alerted (with no alert there is no precision to place)."""
    precision = np.linspace(0.01, 1, 200)
    for f1 in (0.2, 0.4, 0.6, 0.8):
        recall = f1 * precision / (2 * precision - f1)
        shown = (recall > 0) & (recall <= 1)
        axes.plot(precision[shown], recall[shown], color="#ddd", linewidth=0.8, zorder=0)
        axes.annotate(f"F1 {f1}", (precision[shown][-1], recall[shown][-1]), fontsize=7, color="#aaa")
    dataset = results["dataset"].iloc[0]
    if dataset in EVENT_TARGET_DATASETS:
        axes.fill_between([TARGET_PRECISION, 1], TARGET_RECALL, 1, color="green", alpha=0.1, zorder=0,
                          label=f"target: recall >= {TARGET_RECALL:.0%} at precision >= {TARGET_PRECISION:.0%}")
    if dataset == "nab":
        for name, (precision_at, recall_at) in PUBLISHED_NAB_EVENTS.items():
            axes.scatter(precision_at, recall_at, marker="*", s=140, color="black", zorder=3)
            axes.annotate(name, (precision_at, recall_at), xytext=(6, -4), textcoords="offset points", fontsize=8)
    for protocol in protocols:
        alerted = results[(results["protocol"] == protocol) & (results["alerts"] > 0)]
        for detector, rows in alerted.groupby("detector", sort=False):
            axes.scatter(rows["alert_precision"], rows["event_recall"], marker=PROTOCOL_MARKERS[protocol], s=46,
                         color=colours[detector], edgecolor="black", linewidth=0.4, zorder=2, gid=f"{detector}/{protocol}")
    _name_points(axes, results[(results["protocol"] == "fixed") & (results["alerts"] > 0)])
    for protocol in protocols:  # a legend of shapes, the colours are on the right
        axes.scatter([], [], marker=PROTOCOL_MARKERS[protocol], color="white", edgecolor="black",
                     label=f"threshold: {protocol}")
    axes.set(xlim=(0, 1), ylim=(0, 1), xlabel="alert precision (share of alerts that were real)",
             ylabel="event recall (share of labelled anomalies alerted)", title="events found against alerts raised")
    axes.legend(loc="lower right", fontsize=8)  # high precision at low recall: where no detector sits


def _name_points(axes, fixed: pd.DataFrame) -> None:
    """Names the fixed level's points (the level a deployment alerts at), best F1 first; a name that would
    overlap one already written is left out: the point's colour names it on the right."""
    written: list[tuple[float, float]] = []
    for row in fixed.sort_values("f1", ascending=False).itertuples():
        at = (row.alert_precision, row.event_recall)
        if all(abs(at[0] - x) > LABEL_WIDTH or abs(at[1] - y) > LABEL_HEIGHT for x, y in written):
            axes.annotate(row.detector, at, xytext=(5, 3), textcoords="offset points", fontsize=7, color="#333")
            written.append(at)


def _draw_headline(axes, results: pd.DataFrame, protocols: list[str], colours: dict) -> None:
    """Horizontal bars, one group per detector (best first), one bar per protocol."""
    from matplotlib.patches import Patch

    measure, label = (("nab_standard", "NAB standard score") if "nab_standard" in results.columns
                      else ("f1", "event F1 (no point adjust)"))
    table = results.pivot_table(index="detector", columns="protocol", values=measure, sort=False)[protocols]
    table = table.loc[table.max(axis=1).sort_values().index]
    height = 0.8 / len(protocols)
    for offset, protocol in enumerate(protocols):
        positions = np.arange(len(table)) + ((len(protocols) - 1) / 2 - offset) * height  # the first protocol on top
        axes.barh(positions, table[protocol], height=height, color=[colours[d] for d in table.index],
                  edgecolor="black", linewidth=0.4, hatch=PROTOCOL_HATCHES[protocol], gid=protocol)
    if measure == "nab_standard":
        for name, score in NAB_STANDARD_LINES.items():
            axes.axvline(score, color="green", linestyle="--" if "target" in name else ":", linewidth=1)
            axes.annotate(name, (score, len(table) - 0.5), rotation=90, fontsize=8, va="top", ha="right", color="green")
    axes.set_yticks(np.arange(len(table)), table.index)
    axes.set(xlabel=label, title=f"{label} per detector (bars: {', '.join(protocols)})")
    axes.legend(handles=[Patch(facecolor="white", edgecolor="black", hatch=PROTOCOL_HATCHES[p], label=p) for p in protocols],
                loc="lower right", fontsize=8)


REGIME_COLOURS = {"quiet": "#4c8cbf", "normal": "#8c8c8c", "busy": "#e0a030", "peak": "#d04040"}


def patterns_figure(frame: pd.DataFrame, behaviour: RecurringBehaviour, timezone: str):
    """The metric coloured by its windows' regimes, each regime's place in the week, its closest recurring shape drawn
    twice over, and its autocorrelation with the season marked."""
    from matplotlib.figure import Figure

    metric, rows = behaviour.metric, behaviour.window_rows
    local = frame["timestamp"].dt.tz_convert(timezone).dt.tz_localize(None)  # matplotlib's axis in local time
    values = frame[metric].to_numpy(dtype=float)
    figure = Figure(figsize=(15, 7))
    grid = figure.add_gridspec(2, 3, height_ratios=[3, 2])
    over_time = figure.add_subplot(grid[0, :])
    week, shape, season = (figure.add_subplot(grid[1, column]) for column in range(3))
    over_time.plot(local, values, linewidth=0.5, color="#bbb")
    week.set_title("regime by hour of the week (most often)")
    if behaviour.regimes is not None:
        regime = behaviour.regime_of_each_row(frame["timestamp"])
        for name in behaviour.regimes.profile.index:
            mine = regime == name
            over_time.scatter(local[mine], values[mine], s=3, color=REGIME_COLOURS[name], label=name)
        over_time.legend(title="regime", markerscale=4, loc="upper right")
        _regime_week(week, local, regime, list(behaviour.regimes.profile.index), timezone)
    span = duration_text(rows * behaviour.step)
    over_time.set_title(f"{metric}: regimes of {span} windows" if behaviour.regimes is not None
                        else f"{metric}: no regimes ({behaviour.why_no_regimes or behaviour.why_none})")
    if behaviour.motifs:
        best = behaviour.motifs[0]
        for end in (best.end, best.twin_end):
            ending = f"ending {local.iloc[end]:%a %Y-%m-%d %H:%M}"
            shape.plot(np.arange(1 - rows, 1), values[end - rows + 1 : end + 1], label=ending)
        shape.legend()
        shape.set_title(f"closest recurring shape ({span}, correlation {best.correlation(rows):.4f})")
    else:
        shape.set_title("no recurring shape")
    shape.set_xlabel(f"rows before the window's end (one every {duration_text(behaviour.step)})")
    lags = min(len(values) // 3, 3 * behaviour.season.rows if behaviour.season else len(values) // 3)
    season.plot(np.arange(lags + 1), autocorrelation(values)[: lags + 1] if lags else [1.0], color="#345", linewidth=0.8)
    if behaviour.season:
        season.axvline(behaviour.season.rows, color="red", linestyle="--", linewidth=0.8)
    season.set_title(f"autocorrelation; season: {behaviour.season.name if behaviour.season else 'none'}")
    season.set_xlabel("lag (rows)")
    figure.tight_layout()
    return figure


def _regime_week(axes, local: pd.Series, regime: np.ndarray, names: list[str], timezone: str) -> None:
    """Each hour of the week in the regime its rows were most often in (blank: no row in a regime there)."""
    from matplotlib.colors import ListedColormap

    ranked = pd.Series([names.index(name) if name in names else np.nan for name in regime], index=local.index).dropna()
    when = local[ranked.index]
    most_often = ranked.groupby([when.dt.dayofweek, when.dt.hour]).agg(lambda ranks: ranks.mode().iloc[0])
    week = most_often.unstack().reindex(index=range(7), columns=range(24)).to_numpy(dtype=float)
    axes.imshow(week, cmap=ListedColormap([REGIME_COLOURS[name] for name in names]), vmin=-0.5, vmax=len(names) - 0.5,
                aspect="auto", interpolation="nearest")
    axes.set_yticks(range(7), ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"])
    axes.set_xticks(range(0, 24, 3))
    axes.set_xlabel(f"hour ({timezone})")
