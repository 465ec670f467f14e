"""What ``perflake evaluate`` does: score NAB outputs, run evaluations, chart their results, train and register, score a
file, and find what recurs in one."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from perflake.anomaly import evaluate as ev
from perflake.anomaly import nab
from perflake.anomaly.detectors import Detector, checked_frame, make_detector
from perflake.anomaly.features import metric_columns
from perflake.anomaly.patterns import (RecurringBehaviour, duration_text, moving_together, on_regular_grid,
                                       recurring_behaviour)
from perflake.config import Config

PLOTTED_SERIES = 6


def nab_score_report(results_dir: Path, nab_dir: Path, thresholds_file: Path | None) -> str:
    """The three profile scores of a folder of detector outputs (NAB's layout), as NAB prints them."""
    corpus = nab.load_corpus(nab_dir)
    outputs = nab.read_detector_outputs(results_dir, corpus)
    thresholds = nab.read_thresholds(thresholds_file, results_dir.name) if thresholds_file else {}
    lines = [f"{results_dir.name}: {len(outputs)} files scored against {nab_dir}"]
    for profile in nab.PROFILES.values():
        result = nab.score_corpus(corpus.timestamps, outputs, corpus.windows, profile, thresholds.get(profile.name))
        how = "given" if profile.name in thresholds else "optimised on the corpus"
        lines.append(f"  {profile.name:20s} {result.score:7.2f}  (threshold {result.threshold:.6g}, {how}; windows detected "
                     f"{result.detected_windows}, missed {result.missed_windows}; false alerts {result.false_alerts})")
    return "\n".join(lines)


def dataset_folder(config: Config, dataset: str, data_dir: Path | None) -> Path | None:
    """``data_dir`` when given (labelled series in NAB's or SMD's layout), else the reference copy in ``[ml]``;
    none for the simulated data set, which is generated."""
    if dataset == "simulated":
        if data_dir:
            raise ValueError("the simulated data set is generated, not read: a data folder applies to nab and smd")
        return None
    return data_dir or config.ml.reference_data_dir / dataset


def run_evaluation(config: Config, dataset: str, detectors: list[str], protocols: list[str], refractory_rows: int,
                   workers: int, track: bool, say: Callable[[str], None], refit_every: str | None = None,
                   data_dir: Path | None = None, nab_results: Path | None = None) -> list[ev.Evaluation]:
    """Each detector and the baselines on one data set, under each protocol; logged to MLflow when ``track``.

    ``refit_every`` (a period such as ``1D``): each detector is retrained on that schedule on every
    row before (``ev.detector_scores``, ``Detector.refit``), as a deployment with nightly training would run it.
    ``data_dir``: another folder in the data set's layout than the reference copy.
    ``nab_results`` (NAB only): each detector's alert levels also written there in NAB's results layout
    (``ev.nab_anomaly_score``), with a ``thresholds.json`` of the fixed level, for ``nab-score`` or NAB's own tools.
    """
    from perflake.anomaly import tracking

    ev.check_protocols(protocols, dataset)
    if nab_results and dataset != "nab":
        raise ValueError(f"NAB's results layout is for the nab data set; {dataset} has no NAB windows to score")
    folder = dataset_folder(config, dataset, data_dir)
    data = ev.load_dataset(dataset, folder)
    retrained = f", detectors retrained every {refit_every}" if refit_every else ""
    source = f" from {folder}" if folder else ""
    say(f"{dataset}: {len(data)} series, {sum(len(s.test) for s in data):,} rows to score{source}{retrained}")
    results = []
    for detector in [*ev.BASELINES, *detectors]:
        scored = ev.score_all(data, detector, {}, refractory_rows, workers, progress=say, refit_every=refit_every)
        if nab_results:
            nab.write_detector_outputs(nab_results / detector, {s.name: s.test for s in data},
                                       {s.name: s.nab_windows for s in data},
                                       {name: ev.nab_anomaly_score(result.levels) for name, result in scored.items()})
        for protocol in protocols:
            evaluation = ev.evaluate(dataset, data, scored, detector, protocol, refit_every or "")
            results.append(evaluation)
            say(format_row(evaluation))
            if track:
                figures = {} if detector in ev.BASELINES else plots(data, scored, evaluation)
                params = {"refractory_rows": refractory_rows, "refit_every": refit_every or "never",
                          **({"data_dir": str(folder)} if folder else {})}
                tracking.log_evaluation(config, evaluation, params, figures)
    if nab_results:
        fixed = ev.nab_anomaly_score(ev.FIXED_LEVEL)
        nab.write_thresholds(nab_results / "thresholds.json", dict.fromkeys([*ev.BASELINES, *detectors], fixed))
        corpus = f" --nab-dir {folder}" if data_dir else ""
        say(f"NAB's results layout in {nab_results}: perflake evaluate nab-score {nab_results}/<detector>{corpus} "
            f"(add --thresholds {nab_results}/thresholds.json for the fixed level)")
    return results


def plots(data: list[ev.Series], scored: dict[str, ev.Scored], evaluation: ev.Evaluation) -> dict[str, object]:
    from perflake.anomaly.charts import detection_figure

    busiest = sorted(data, key=lambda s: -len(set(s.segment[s.segment >= 0])))[:PLOTTED_SERIES]
    return {f"{series.name.replace('/', '__')}.png":
            detection_figure(series, scored[series.name].levels, evaluation.thresholds[series.name])
            for series in busiest}


def chart_results(results_file: Path, chart_file: Path | None) -> str:
    """A results file (``run --json``) drawn against the targets and baselines, as a PNG beside it by default."""
    from perflake.anomaly.charts import PROTOCOL_MARKERS, read_results, results_figure

    results = read_results(results_file)
    chart_file = chart_file or results_file.with_suffix(".png")
    schedule = results["refit_every"].dropna().unique() if "refit_every" in results.columns else []
    retrained = f", retrained every {schedule[0]}" if len(schedule) else ""
    title = f"{results['dataset'].iloc[0]}{retrained}: {results_file.name}"
    results_figure(results, title).savefig(chart_file, dpi=90)
    drawn = results["protocol"].isin(PROTOCOL_MARKERS)
    left_out = f"; not drawn: {', '.join(sorted(results.loc[~drawn, 'protocol'].unique()))}" if not drawn.all() else ""
    return (f"wrote {chart_file} ({results.loc[drawn, 'detector'].nunique()} detectors, "
            f"{results.loc[drawn, 'protocol'].nunique()} protocols{left_out})")


def format_row(e: ev.Evaluation) -> str:
    nab_part = "  NAB " + " / ".join(f"{e.nab_scores[p]:.1f}" for p in nab.PROFILES) if e.nab_scores else ""
    speed = f"  {e.points_per_second:,.0f} points/s" if e.points_per_second else ""
    events = e.events
    culprits = (f"  culprit named {events.culprit_rate:.0%} of {events.culprit_alerts} (by chance {events.culprit_chance:.0%})"
                if events.culprit_alerts else "")
    protocol = f"{e.protocol}, refit {e.refit_every}" if e.refit_every else e.protocol
    refused = f"  {len(e.not_learned)} series not learned (no alerts)" if e.not_learned else ""
    if e.metrics_left_out:
        left_out = e.metrics()["metrics_left_out"]
        refused += f"  metrics not learned (scored without them): {left_out} in {len(e.metrics_left_out)} series"
    if e.retrainings_refused:
        refused += (f"  retrainings refused (the model in service kept): {e.metrics()['retrainings_refused']} "
                    f"in {len(e.retrainings_refused)} series")
    recall, precision = _percent(events.recall, events.events), _percent(events.precision, events.alerts)
    incident_precision = _percent(events.incident_precision, events.alerts)  # no alert, nothing detected: 0/0
    return (f"{e.dataset:4s} {e.detector:18s} {protocol:9s} recall {recall}  precision {precision}  "
            f"F1 {events.f1:.3f}  incident precision {incident_precision}  "
            f"({events.detected}/{events.events} events, {events.alerts} alerts)  "
            f"at level on {events.normal_rows_at_level_per_10k:.1f} per 10k unlabelled rows{refused}{nab_part}{culprits}{speed}")


def _percent(share: float, of: int) -> str:
    """A share of ``of`` things for the row, or a dash when there were none (no labelled event, no alert): 0/0 is not 0 %."""
    return f"{share:5.1%}" if of else f"{'–':>5s}"


def train(config: Config, dataset: str, series_name: str, detector_name: str, alias: str | None,
          data_dir: Path | None = None) -> str:
    """Fit a detector on one series' normal rows, log and register it; says what it registered."""
    data = {s.name: s for s in ev.load_dataset(dataset, dataset_folder(config, dataset, data_dir))}
    if series_name not in data:
        raise ValueError(f"no series {series_name!r} in {dataset}; e.g. {', '.join(sorted(data)[:3])}")
    history = data[series_name].fit
    return _register(config, make_detector(detector_name).fit(history), f"trained on {len(history):,} rows",
                     {"dataset": dataset}, f"{dataset}:{series_name}", alias)


def train_file(config: Config, csv_file: Path, detector_name: str, alias: str | None, retrain: str | None = None) -> str:
    """Fit a detector on every row of a CSV of history (timestamp + metric columns), log and register it.

    The file is unlabelled, so every row is learned as normal, its anomalies included, as a nightly
    training on the gold tables learns them. With ``retrain`` (a registered ``name@alias`` or
    ``name@version``), that detector is retrained on the file instead (``Detector.refit``: the
    history so far; a detector that learns as it streams learns the rows it has not seen) and
    registered as the model's next version: the nightly training's step. A refusal (text in a
    metric, too few rows) names the file, and nothing is registered.
    """
    history = read_metric_file(csv_file)
    if retrain:
        name, origin, detector = _registered(config, retrain)
        learn, how, params = detector.refit, f"retrained from {origin}", {"retrained_from": origin}
    else:
        name, detector = None, make_detector(detector_name)
        learn, how, params = detector.fit, "trained", {}
    try:
        detector = learn(history)
    except ValueError as refusal:
        raise ValueError(f"{csv_file}: {refusal}") from None
    return _register(config, detector, f"{how} on {len(history):,} rows", {"file": str(csv_file), **params},
                     f"file:{csv_file.name}", alias, name)


def _registered(config: Config, reference: str) -> tuple[str, str, Detector]:
    """A registered detector named ``name@alias`` or ``name@version``: its name, ``name version N`` and the detector."""
    from perflake.anomaly import tracking

    name, _, alias_or_version = reference.partition("@")
    if not name or not alias_or_version:
        raise ValueError(f"a registered detector is named with its alias or version, e.g. perflake-anomaly-ensemble@champion "
                         f"or perflake-anomaly-ensemble@3; got {reference!r}")
    version = tracking.registered_version(config, name, alias_or_version)  # once: the alias may move while we train
    return name, f"{name} version {version}", tracking.load_detector(config, name, version)


def _register(config: Config, detector: Detector, how: str, params: dict, trained_on: str, alias: str | None,
              name: str | None = None) -> str:
    from perflake.anomaly import tracking

    name, version = tracking.register_detector(config, detector, params, trained_on, alias, name)
    registered = f"registered {name} version {version} {how}" + (f" as @{alias}" if alias else "")
    return "\n".join([f"{registered} (tracking: {config.ml.tracking_uri})", *not_learned_lines(detector)])


def read_metric_file(csv_file: Path) -> pd.DataFrame:
    """A CSV of a timestamp column (dates, or Unix time) and one column per metric, its timestamps in UTC; a metric
    column the detectors would misread (text, an infinite value) is refused naming the file, the column and the row."""
    try:
        frame = pd.read_csv(csv_file)
    except pd.errors.EmptyDataError:
        raise ValueError(f"{csv_file}: the file is empty; it needs a header of 'timestamp' and metric columns") from None
    if "timestamp" not in frame.columns or not metric_columns(frame):
        raise ValueError(f"{csv_file}: needs a 'timestamp' column and one column per metric; has {list(frame.columns)}")
    frame["timestamp"] = nab.utc_timestamps(frame["timestamp"])
    try:
        return checked_frame(frame)  # what every command would misread (text, infinite values), named once for all
    except ValueError as refusal:
        raise ValueError(f"{csv_file}: {refusal}") from None


def not_learned_lines(detector: Detector) -> list[str]:
    """One line per metric the detector (an ensemble: the members named) could not learn from its history and leaves out."""
    return [f"  metric {metric!r} not learned from the fit history, left out until a refit learns it: {why}"
            for metric, why in detector.metrics_not_learned().items()]


def score_file(config: Config, model: str, alias: str, csv_file: Path, top: int) -> str:
    """Score a CSV (timestamp + metric columns) with a registered detector; the top rows, explained."""
    from perflake.anomaly import tracking

    frame = read_metric_file(csv_file)
    detector = tracking.load_detector(config, model, alias)
    scored = detector.score(frame)
    lines = [f"{model}@{alias} ({detector.family}) on {csv_file}: {len(frame)} rows", *not_learned_lines(detector)]
    for row in scored.sort_values("score", ascending=False).head(top).index:
        lines.append(f"  {frame['timestamp'].iloc[row]}  {detector.explain(scored, row)}")
    return "\n".join(lines)


def patterns_report(csv_file: Path, metric: str | None, window: str, top: int, timezone: str,
                    chart_file: Path | None) -> str:
    """What recurs in each metric of a CSV (timestamp + metric columns), or in ``metric``: its season, its regimes in
    windows of ``window`` and where in the trading calendar they fall, its closest recurring shapes. With
    ``chart_file``, the one metric drawn as a PNG."""
    read = read_metric_file(csv_file)
    metrics = metric_columns(read)
    if metric is not None and metric not in metrics:
        raise ValueError(f"{csv_file} has no metric {metric!r}; its metrics: {', '.join(metrics)}")
    if chart_file and metric is None and len(metrics) > 1:
        raise ValueError(f"a chart draws one metric and {csv_file} has {len(metrics)}: pick it with --metric")
    chosen = [metric] if metric else metrics
    try:
        frame = on_regular_grid(read)
        found = [recurring_behaviour(frame, m, pd.Timedelta(window), timezone, top) for m in chosen]
    except ValueError as refusal:
        raise ValueError(f"{csv_file}: {refusal}") from None
    local = frame["timestamp"].dt.tz_convert(timezone)
    step, rows = found[0].step, found[0].window_rows
    grid = f" on a grid of {len(frame):,}" if len(frame) != len(read) else ""
    lines = [f"{csv_file}: {len(read):,} rows{grid}, one every {duration_text(step)}, {local.min():%Y-%m-%d %H:%M} to "
             f"{local.max():%Y-%m-%d %H:%M} {timezone}; windows of {rows} rows ({duration_text(rows * step)})"]
    together = moving_together(frame) if len(metrics) > 1 else {}
    for behaviour in found:
        partners = together.get(behaviour.metric)
        moves_with = [f"moves with: {', '.join(f'{other} (r {r:+.2f})' for other, r in partners)}"] if partners else []
        lines += [behaviour.metric, *("  " + line for line in [*_behaviour_lines(behaviour, local), *moves_with])]
    if chart_file:
        from perflake.anomaly.charts import patterns_figure

        patterns_figure(frame, found[0], timezone).savefig(chart_file, dpi=90)
        lines.append(f"wrote {chart_file}")
    return "\n".join(lines)


def _behaviour_lines(behaviour: RecurringBehaviour, local: pd.Series) -> list[str]:
    """One metric's season, regimes and shapes, a line each; when each shape ends, in ``local`` time."""
    if behaviour.why_none:
        return [f"nothing recurs: {behaviour.why_none}"]
    season = behaviour.season
    lines = [f"season: {season.name} ({season.rows:,} rows), autocorrelation {season.autocorrelation:.2f}" if season
             else "season: none (no period repeats with an autocorrelation of 0.3 or more)"]
    span = duration_text(behaviour.window_rows * behaviour.step)
    if behaviour.regimes is None:
        lines.append(f"regimes: none ({behaviour.why_no_regimes})")
    else:
        for name, regime in behaviour.regimes.profile.iterrows():
            phases = behaviour.regime_phases.loc[name].sort_values(ascending=False)
            where = ", ".join(f"{phase} {share:.0%}" for phase, share in phases.head(max(1, (phases >= 0.1).sum())).items())
            lines.append(f"regime {name}: {int(regime['n_windows']):,} windows of {span}, mean {_number(regime['mean'])} "
                         f"(sd {_number(regime['std'])}); centred in {where}")

    def when(row: int) -> str:
        return f"{local.iloc[row]:%a %Y-%m-%d %H:%M}"

    for shape in behaviour.motifs:
        hours = local.iloc[list(shape.occurrences)].dt.hour
        usual_hour = hours.mode().iloc[0]
        lines.append(f"recurring shape: the {span} ending {when(shape.end)} and ending {when(shape.twin_end)} "
                     f"(correlation {shape.correlation(behaviour.window_rows):.4f}); {len(hours):,} windows like it, "
                     f"{(hours == usual_hour).sum():,} of them ending between {usual_hour:02d}:00 and {usual_hour:02d}:59")
    if not behaviour.motifs:
        lines.append(f"recurring shape: none ({behaviour.why_no_motifs})")
    return lines


def _number(value: float) -> str:
    """``16,187`` or ``0.0342``: whole units from a hundred up, three significant digits below."""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def summary_json(results: list[ev.Evaluation]) -> str:
    def row(e: ev.Evaluation) -> dict:
        schedule = {"refit_every": e.refit_every} if e.refit_every else {}
        refused = {"not_learned": e.not_learned} if e.not_learned else {}
        left_out = {"metrics_left_out": e.metrics_left_out} if e.metrics_left_out else {}
        kept = {"retrainings_refused_by_series": e.retrainings_refused} if e.retrainings_refused else {}
        return {"dataset": e.dataset, "detector": e.detector, "protocol": e.protocol, **schedule, **e.metrics(), **refused,
                **left_out, **kept}

    return json.dumps([row(e) for e in results], indent=1)
