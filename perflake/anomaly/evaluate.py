"""Honest evaluation of the detectors on labelled series: NAB (univariate) and SMD (multivariate hosts).

What is measured (``../shared/data/README.md``): event recall, the share of labelled anomalies
with at least one alert inside; alert precision, the share of alerts inside a labelled anomaly;
their F1, without point adjust; incident precision, which counts the alerts inside one anomaly
once (a long anomaly that keeps alerting does not buy precision); how many rows outside the
labelled anomalies are at the alert level, per 10,000 (before the refractory rule below, which
would show a detector that holds the alert level for days as one alert); on NAB also the NAB score of
each profile; where the metrics at fault are labelled (SMD's interpretation labels), how often a
true alert's contributor was one of them, beside the chance of naming one at random. The null
(never fires) and random (uniform scores through the same alerting) baselines are always scored
beside.

Alerting: a row alerts when its surprise level reaches the threshold and beats every level of
the ``refractory_rows`` rows before it, so one incident raises one alert, not one per row.

Thresholds never look at the labels they are scored on. Protocols:

- ``fixed``: a surprise level chosen before any evaluation (4: one row in 10,000 of normal
  history), the same for every data set;
- ``level:X`` (e.g. ``level:5``): the level an operator would set instead, the same for every
  series: what moving the fixed level trades, from one scoring (``--protocol level:3,level:5``);
- ``cross_fit``: the series are split in two folds (alternating, by name); each fold is scored
  with the threshold that does best on the other fold;
- ``nab`` (NAB only): NAB's own protocol, the threshold that maximises the corpus's score (per
  profile for the three profile scores). This is how NAB's published scores are made; it is
  reported for comparison with them, not as a result.

``fixed`` and ``cross_fit`` score the three NAB profiles at the same thresholds (cross_fit tunes
them on the standard profile).

A detector is fitted once on a series' fit rows, or retrained on a schedule on every row before
(``detector_scores``), as a deployment with nightly training runs it.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from perflake.anomaly import nab, simulated
from perflake.anomaly.detectors import Detector, contributing_metric, make_detector
from perflake.anomaly.features import metric_columns

FIXED_LEVEL = 4.0
GIVEN_LEVEL = "level:"  # the protocol of a level given instead of FIXED_LEVEL: "level:5"
PROTOCOLS = ("fixed", "cross_fit", "nab")  # and GIVEN_LEVEL's
DEFAULT_REFRACTORY_ROWS = 400
SMD_START = pd.Timestamp("2026-01-05", tz="UTC")  # SMD has no timestamps: minutes from an arbitrary Monday, test after train
BASELINES = ("null", "random")
RETRAININGS_REFUSED = "retrainings_refused"  # detector_scores' attrs: per retraining refused (its first row's time), why


def nab_anomaly_score(levels: np.ndarray | float) -> np.ndarray | float:
    """Alert levels as NAB's tools take scores, in [0, 1) and in the same order: ``FIXED_LEVEL`` (4) is 0.8."""
    return levels / (1.0 + levels)


def alert_levels(levels: np.ndarray, refractory_rows: int) -> np.ndarray:
    """Levels where a row may alert (it beats the ``refractory_rows`` before it), 0 elsewhere."""
    levels = np.nan_to_num(np.asarray(levels, dtype=float), nan=0.0)
    if refractory_rows <= 0:
        return levels
    before = pd.Series(levels).shift(1).rolling(refractory_rows, min_periods=1).max().fillna(0.0).to_numpy()
    return np.where(levels > before, levels, 0.0)


@dataclass(frozen=True)
class EventMetrics:
    events: int
    detected: int
    alerts: int
    true_alerts: int
    culprit_alerts: int = 0  # true alerts in anomalies whose culprit metrics are labelled
    culprits_named: int = 0  # of those, alerts whose contributor is one of the culprits
    culprits_by_chance: float = 0.0  # the hits expected if each had named a metric at random
    normal_rows: int = 0  # scored rows outside every labelled anomaly
    normal_rows_at_level: int = 0  # of those, rows at the threshold or above, before the refractory rule

    @property
    def recall(self) -> float:
        return _share(self.detected, self.events)

    @property
    def precision(self) -> float:
        return _share(self.true_alerts, self.alerts)

    @property
    def incident_precision(self) -> float:
        """Detected anomalies over detected anomalies plus false alerts: repeat alerts inside one anomaly count once."""
        false_alerts = self.alerts - self.true_alerts
        return _share(self.detected, self.detected + false_alerts)

    @property
    def f1(self) -> float:
        r, p = self.recall, self.precision
        return _share(2 * r * p, r + p)

    @property
    def culprit_rate(self) -> float:
        """Share of the true alerts with labelled culprits whose contributor was one of them."""
        return _share(self.culprits_named, self.culprit_alerts)

    @property
    def culprit_chance(self) -> float:
        """The same share for a detector naming one of the series' metrics at random."""
        return _share(self.culprits_by_chance, self.culprit_alerts)

    @property
    def normal_rows_at_level_per_10k(self) -> float:
        """How often the level is at the alert threshold where nothing is labelled: a flood shows here, not in ``alerts``."""
        return 10_000 * _share(self.normal_rows_at_level, self.normal_rows)

    def __add__(self, other: EventMetrics) -> EventMetrics:
        return EventMetrics(*(mine + theirs for mine, theirs in zip(dataclasses.astuple(self), dataclasses.astuple(other))))

    def as_dict(self, prefix: str = "") -> dict[str, float]:
        values = {f"{prefix}event_recall": self.recall, f"{prefix}alert_precision": self.precision, f"{prefix}f1": self.f1,
                  f"{prefix}incident_precision": self.incident_precision,
                  f"{prefix}events": self.events, f"{prefix}alerts": self.alerts,
                  f"{prefix}normal_rows_at_level_per_10k": self.normal_rows_at_level_per_10k}
        if self.culprit_alerts:
            values |= {f"{prefix}culprit_rate": self.culprit_rate, f"{prefix}culprit_chance": self.culprit_chance,
                       f"{prefix}culprit_alerts": self.culprit_alerts}
        return values


def _share(part: float, whole: float) -> float:
    return part / whole if whole else 0.0


def event_metrics(segment: np.ndarray, alerts: np.ndarray, at_level: np.ndarray | None = None) -> EventMetrics:
    """``segment``: per row the index of the labelled anomaly it lies in, -1 outside (-2: not scored).

    ``at_level``: the rows at the threshold before the refractory rule (None: the alerts are all of them).
    """
    scored = segment != nab.PROBATION
    fired = np.asarray(alerts, dtype=bool) & scored
    inside = fired & (segment >= 0)
    events = len(np.unique(segment[scored & (segment >= 0)]))
    normal = scored & (segment < 0)
    at_level = fired if at_level is None else np.asarray(at_level, dtype=bool)
    return EventMetrics(events, len(np.unique(segment[inside])), int(fired.sum()), int(inside.sum()),
                        normal_rows=int(normal.sum()), normal_rows_at_level=int((at_level & normal).sum()))


def explained_event_metrics(series: Series, alerts: np.ndarray, contributors: np.ndarray | None,
                            at_level: np.ndarray | None = None) -> EventMetrics:
    """``event_metrics``, and where the series' anomalies have labelled culprits, whether each true alert named one."""
    metrics = event_metrics(series.segment, alerts, at_level)
    if contributors is None or not series.culprits:
        return metrics
    explained = np.flatnonzero(np.asarray(alerts, dtype=bool) & np.isin(series.segment, list(series.culprits)))
    culprits = [series.culprits[series.segment[row]] for row in explained]
    named = sum(contributing_metric(str(contributors[row])) in labelled for row, labelled in zip(explained, culprits))
    metric_count = len(metric_columns(series.test))
    return dataclasses.replace(metrics, culprit_alerts=len(explained), culprits_named=named,
                               culprits_by_chance=sum(len(labelled) / metric_count for labelled in culprits))


def segments_of(labels: np.ndarray) -> np.ndarray:
    """Per row of a 0/1 label array, the index of its run of 1s, -1 outside."""
    labels = np.asarray(labels, dtype=bool)
    starts = labels & ~np.concatenate([[False], labels[:-1]])
    return np.where(labels, np.cumsum(starts) - 1, -1)


# --- data sets: each a list of series with their labels -----------------------------------------


@dataclass
class Series:
    """One series to score: ``fit`` rows to learn normal from, ``test`` rows to score, and their labels."""

    name: str
    fit: pd.DataFrame
    test: pd.DataFrame
    segment: np.ndarray  # per test row: anomaly index, -1 outside, nab.PROBATION where not scored
    category: str
    nab_windows: list[tuple[str, str]] = field(default_factory=list)
    culprits: dict[int, frozenset[str]] = field(default_factory=dict)  # per anomaly, the metrics labelled as its cause


def nab_series(nab_dir: Path) -> list[Series]:
    """Each NAB file (``nab_file_series``)."""
    corpus = nab.load_corpus(nab_dir)
    return [nab_file_series(name, frame[["timestamp", "value"]], corpus.windows[name]) for name, frame in corpus.values.items()]


def nab_file_series(name: str, frame: pd.DataFrame, windows: list[tuple[str, str]]) -> Series:
    """One file of NAB's layout (``category/file.csv``, its labelled ``windows``): fitted on its probation period,
    scored whole (the probation rows are not counted)."""
    grid = nab.scoring_grid(len(frame), nab.window_bounds(frame["timestamp"], windows), nab.PROFILES["standard"])
    return Series(name, frame.iloc[: nab.probation_rows(len(frame))], frame, grid.window, name.split("/")[0], windows)


def smd_series(smd_dir: Path) -> list[Series]:
    """Each SMD machine under ``test/``: fitted on its part in ``train/``, scored on its test part against ``test_label/``.

    Files as OmniAnomaly publishes them (``machine-x-y.txt``) or gzipped (``.txt.gz``, the reference copy here).
    """
    result = []
    for test_file in sorted([*(smd_dir / "test").glob("machine-*.txt"), *(smd_dir / "test").glob("machine-*.txt.gz")]):
        machine, suffix = test_file.name.split(".", 1)
        labels = np.loadtxt(smd_dir / "test_label" / f"{machine}.txt", dtype=int)
        train = _smd_frame(smd_dir / "train" / f"{machine}.{suffix}", SMD_START)
        # the test half follows the train half: a learning detector must see its rows as new, not as moments it learned
        test = _smd_frame(test_file, train["timestamp"].iloc[-1] + pd.Timedelta(minutes=1))
        if len(labels) != len(test):
            raise ValueError(f"{machine}: {len(labels)} labels for {len(test)} test rows")
        if len(train.columns) != len(test.columns):
            raise ValueError(f"{machine}: {len(train.columns) - 1} metrics in train/, {len(test.columns) - 1} in test/")
        segment = segments_of(labels)
        culprits = _smd_culprits(smd_dir / "interpretation_label" / f"{machine}.txt", segment, metric_columns(test))
        result.append(Series(machine, train, test, segment, "smd", culprits=culprits))
    if not result:
        raise FileNotFoundError(f"no SMD machines under {smd_dir / 'test'}")
    return result


def _smd_culprits(path: Path, segment: np.ndarray, metrics: list[str]) -> dict[int, frozenset[str]]:
    """SMD's interpretation labels (``start-end:dim,dim,...``, dimensions from 1): per anomaly, the metrics at fault."""
    if not path.exists():
        return {}
    culprits: dict[int, set[str]] = {}
    for line in path.read_text().split():
        rows, dimensions = line.split(":")
        start = int(rows.split("-")[0])
        if not 0 <= start < len(segment) or segment[start] < 0:
            raise ValueError(f"{path}: {rows} does not start inside a labelled anomaly")
        numbers = [int(d) for d in dimensions.split(",")]
        if unknown := [d for d in numbers if not 1 <= d <= len(metrics)]:
            raise ValueError(f"{path}: {rows} names dimensions {unknown}; the machine has {len(metrics)}")
        culprits.setdefault(int(segment[start]), set()).update(metrics[d - 1] for d in numbers)
    return {anomaly: frozenset(names) for anomaly, names in culprits.items()}


def _smd_frame(path: Path, start: pd.Timestamp) -> pd.DataFrame:
    values = pd.read_csv(path, header=None)  # gzipped or not, by its name
    values.columns = [f"m{i:02d}" for i in values.columns]
    return pd.concat([pd.DataFrame({"timestamp": start + pd.to_timedelta(np.arange(len(values)), unit="min")}), values], axis=1)


def simulated_series(spec: simulated.SimulatedSpec = simulated.SimulatedSpec()) -> list[Series]:
    """Each simulated series present in both periods: fitted on the anomaly-free history, scored on the labelled test period."""
    history, test = simulated.generate(spec)
    result = [Series(name, history.frames[name], frame, simulated.labelled_segments(name, frame["timestamp"], test.anomalies),
                     name.split("/")[0]) for name, frame in test.frames.items() if name in history.frames]
    labelled = set().union(*(set(s.segment[s.segment >= 0]) for s in result))
    if unscored := [a.anomaly_id for i, a in enumerate(test.anomalies) if i not in labelled]:
        raise ValueError(f"anomalies {', '.join(unscored)} hit series the history never saw: "
                         f"lengthen history_days (now {spec.history_days})")
    return result


FILE_DATASETS: dict[str, Callable[[Path], list[Series]]] = {"nab": nab_series, "smd": smd_series}
DATASETS = [*FILE_DATASETS, "simulated"]


def load_dataset(name: str, folder: Path | None) -> list[Series]:
    """A data set by name: ``nab`` and ``smd`` read from ``folder`` (in NAB's or SMD's layout), ``simulated`` is generated."""
    if name == "simulated":
        return simulated_series()
    if name not in FILE_DATASETS:
        raise ValueError(f"unknown data set {name!r}; known: {', '.join(DATASETS)}")
    if not folder.is_dir():
        raise FileNotFoundError(f"data set {name!r} not found at {folder} "
                                "(--data-dir, or [ml] reference_data_dir / PERFLAKE__ML__REFERENCE_DATA_DIR)")
    return FILE_DATASETS[name](folder)


# --- scoring -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scored:
    name: str
    levels: np.ndarray  # alert levels per test row (after the refractory rule)
    seconds: float
    row_levels: np.ndarray | None = None  # the levels before the refractory rule (None: the rule took nothing away)
    contributors: np.ndarray | None = None  # per test row, what contributed most (detectors only)
    not_learned: str = ""  # the detector's refusal of this series (e.g. a history too short for it): no alerts
    metrics_left_out: dict[str, str] = field(default_factory=dict)  # metrics it could not learn and scored without: why
    retrainings_refused: dict[str, str] = field(default_factory=dict)  # per scheduled retraining refused: why

    def rows_at_level(self, threshold: float) -> np.ndarray:
        """Per test row, whether its level reached ``threshold`` before the refractory rule took alerts away."""
        return (self.levels if self.row_levels is None else self.row_levels) >= threshold


def score_series(series: Series, detector: str, params: dict, refractory_rows: int, seed: int = 0,
                 refit_every: str | None = None) -> Scored:
    started = time.perf_counter()
    if detector in BASELINES:
        levels = (np.zeros(len(series.test)) if detector == "null"
                  else np.random.default_rng(seed + sum(map(ord, series.name))).exponential(1 / np.log(10), len(series.test)))
        return Scored(series.name, alert_levels(levels, refractory_rows), time.perf_counter() - started, levels)
    model = make_detector(detector, **params)
    try:
        scores = detector_scores(series, model, refit_every)
    except ValueError as refusal:  # one series a detector cannot learn does not end the run: it alerts on nothing, said
        return Scored(series.name, np.zeros(len(series.test)), time.perf_counter() - started, not_learned=str(refusal))
    levels = scores["score"].to_numpy()
    return Scored(series.name, alert_levels(levels, refractory_rows), time.perf_counter() - started, levels,
                  scores["contributor"].to_numpy(), metrics_left_out=model.metrics_not_learned(),  # after its last (re)fit
                  retrainings_refused=scores.attrs[RETRAININGS_REFUSED])


def detector_scores(series: Series, detector: Detector, refit_every: str | None = None) -> pd.DataFrame:
    """The test rows' levels (``score``) and ``contributor``: ``detector`` (unfitted) fitted once on the fit rows, or
    retrained on a schedule.

    With ``refit_every`` (e.g. ``1D``: nightly at 00:00), the rows up to the first boundary after
    the fit rows are scored by a detector fitted on the fit rows; at each later boundary it is
    retrained (``Detector.refit``) on every row before it (fit rows and the test rows since,
    anomalies included, as a nightly job would see them) and streams the rows up to the next
    boundary through ``update``, so window detectors keep their context and a detector that
    learns as it streams keeps learning. A retraining the detector refuses (a history it cannot
    learn, e.g. a metric missing for days) leaves it as it was: it scores on with the model in
    service, as a nightly job that fails keeps its champion; ``attrs[RETRAININGS_REFUSED]`` says
    which retrainings were refused, and why.
    """
    test = series.test.reset_index(drop=True)
    unseen = (test["timestamp"] > series.fit["timestamp"].max()).to_numpy()
    refits = np.zeros(len(test), dtype=bool)
    if refit_every and unseen.any():
        period = test["timestamp"].dt.floor(refit_every)
        refits = unseen & (period > period[unseen].min()).to_numpy() & (period != period.shift()).to_numpy()
    starts = [0, *np.flatnonzero(refits)]
    detector.fit(series.fit)
    blocks, refused = [], {}
    for start, end in zip(starts, [*starts[1:], len(test)]):
        block = test.iloc[start:end]
        if start == 0:
            blocks.append(detector.score(block))
            continue
        history = pd.concat([series.fit, test.iloc[:start][unseen[:start]]], ignore_index=True)
        try:
            detector.refit(history)
        except ValueError as refusal:
            refused[str(block["timestamp"].iloc[0])] = str(refusal)
        blocks.append(detector.update(block))
    scores = pd.concat(blocks)[["score", "contributor"]].reset_index(drop=True)
    scores.attrs[RETRAININGS_REFUSED] = refused
    return scores


def score_all(data: list[Series], detector: str, params: dict, refractory_rows: int, workers: int,
              progress: Callable[[str], None] = lambda _: None, refit_every: str | None = None) -> dict[str, Scored]:
    results = {}
    with ProcessPoolExecutor(max_workers=workers, initializer=_one_blas_thread) as pool:
        futures = {pool.submit(score_series, s, detector, params, refractory_rows, refit_every=refit_every): s.name for s in data}
        for done, future in enumerate(futures, 1):
            results[futures[future]] = scored = future.result()
            refused = f"; not learned, no alerts: {scored.not_learned}" if scored.not_learned else ""
            refused += f"; not learned, scored without: {', '.join(scored.metrics_left_out)}" if scored.metrics_left_out else ""
            refused += (f"; {len(scored.retrainings_refused)} retraining(s) refused, the model in service kept: "
                        f"{next(iter(scored.retrainings_refused.values()))}" if scored.retrainings_refused else "")
            progress(f"{detector}: {done}/{len(data)} series scored ({futures[future]}{refused})")
    return results


def _one_blas_thread() -> None:
    """A worker's matrix products run on one thread: the workers already fill the cores, and a BLAS pool in each
    makes the threads wait on one another (motif_novelty's SMD run: 6 min 35 s with a pool each, 65 s without)."""
    threadpool_limits(1)


# --- thresholds and results ------------------------------------------------------------------------


@dataclass
class Evaluation:
    dataset: str
    detector: str
    protocol: str
    thresholds: dict[str, float]  # per series
    events: EventMetrics
    by_category: dict[str, EventMetrics]
    nab_scores: dict[str, float] = field(default_factory=dict)  # per NAB profile
    points_per_second: float = 0.0
    refit_every: str = ""  # the retraining schedule of a walk-forward run ("": fitted once)
    not_learned: dict[str, str] = field(default_factory=dict)  # series the detector refused to learn (no alerts): why
    metrics_left_out: dict[str, dict[str, str]] = field(default_factory=dict)  # per series, metrics scored without: why
    retrainings_refused: dict[str, dict[str, str]] = field(default_factory=dict)  # per series, per retraining refused: why

    def metrics(self) -> dict[str, float]:
        values = self.events.as_dict()
        values |= {f"nab_{profile}": score for profile, score in self.nab_scores.items()}
        for category, metrics in self.by_category.items():
            values |= metrics.as_dict(f"{category}.")
        if self.points_per_second:
            values["points_per_second"] = self.points_per_second
        if self.not_learned:
            values["series_not_learned"] = len(self.not_learned)
        if self.metrics_left_out:
            values["metrics_left_out"] = sum(map(len, self.metrics_left_out.values()))
        if self.retrainings_refused:
            values["retrainings_refused"] = sum(map(len, self.retrainings_refused.values()))
        return values


def folds(names: Iterable[str]) -> list[list[str]]:
    ordered = sorted(names)
    return [ordered[0::2], ordered[1::2]]


def _event_total(data: dict[str, Series], scored: dict[str, Scored], thresholds: dict[str, float]) -> EventMetrics:
    return sum((event_metrics(data[n].segment, scored[n].levels >= thresholds[n]) for n in thresholds), EventMetrics(0, 0, 0, 0))


def best_f1_threshold(data: dict[str, Series], scored: dict[str, Scored], names: list[str]) -> float:
    """The threshold with the best summed event F1 on ``names`` (candidates: their alert levels' quantiles)."""
    levels = np.concatenate([scored[n].levels[scored[n].levels > 0] for n in names] or [np.zeros(1)])
    candidates = np.unique(np.quantile(levels, np.linspace(0, 1, 101))) if len(levels) else np.array([np.inf])
    return float(max(candidates, key=lambda t: _event_total(data, scored, {n: t for n in names}).f1))


def nab_threshold(data: dict[str, Series], scored: dict[str, Scored], names: list[str], profile: nab.Profile) -> float:
    grids = [nab.scoring_grid(len(data[n].test), nab.window_bounds(data[n].test["timestamp"], data[n].nab_windows), profile)
             for n in names]
    threshold, _ = nab.best_threshold(grids, [scored[n].levels for n in names])
    return threshold


def given_level(protocol: str) -> float | None:
    """The alert level a protocol sets for every series (``fixed``: ``FIXED_LEVEL``; ``level:X``: X), or None when
    it tunes one on labels; a ``level:`` protocol without a positive number after it is refused."""
    if protocol == "fixed":
        return FIXED_LEVEL
    if not protocol.startswith(GIVEN_LEVEL):
        return None
    try:
        level = float(protocol.removeprefix(GIVEN_LEVEL))
    except ValueError:
        level = float("nan")
    if not 0 < level < float("inf"):
        raise ValueError(f"threshold protocol {protocol!r}: a given level is a positive number, e.g. {GIVEN_LEVEL}5")
    return level


def check_protocols(protocols: Iterable[str], dataset: str | None = None) -> None:
    """Refuses, naming them, threshold protocols other than ``PROTOCOLS`` and ``level:X`` (X a positive number), and
    ``nab`` for a ``dataset`` other than NAB: before any data is read (``perflake evaluate run`` checks its arguments)."""
    protocols = list(protocols)
    unknown = sorted({name for name in protocols if name not in PROTOCOLS and not name.startswith(GIVEN_LEVEL)})
    if unknown:
        known = f"{', '.join(PROTOCOLS)} or {GIVEN_LEVEL}X (a given level)"
        raise ValueError(f"unknown threshold protocols {unknown}; known: {known}")
    for protocol in protocols:
        given_level(protocol)
    if "nab" in protocols and dataset not in (None, "nab"):
        raise ValueError(f"the nab protocol applies to the NAB data set only, not to {dataset}")


def choose_thresholds(dataset: str, data: dict[str, Series], scored: dict[str, Scored], protocol: str) -> dict[str, float]:
    check_protocols([protocol], dataset)
    names = sorted(data)
    level = given_level(protocol)
    if level is not None:
        return dict.fromkeys(names, level)
    if protocol == "nab":
        return dict.fromkeys(names, nab_threshold(data, scored, names, nab.PROFILES["standard"]))
    thresholds = {}  # cross_fit
    for fold, other in zip(folds(names), reversed(folds(names))):
        tuned = (nab_threshold(data, scored, other, nab.PROFILES["standard"]) if dataset == "nab"
                 else best_f1_threshold(data, scored, other))
        thresholds |= dict.fromkeys(fold, tuned)
    return thresholds


def evaluate(dataset: str, data: list[Series], scored: dict[str, Scored], detector: str, protocol: str,
             refit_every: str = "") -> Evaluation:
    by_name = {s.name: s for s in data}
    thresholds = choose_thresholds(dataset, by_name, scored, protocol)
    by_category: dict[str, EventMetrics] = {}
    for s in data:
        series_scores, threshold = scored[s.name], thresholds[s.name]
        metrics = explained_event_metrics(s, series_scores.levels >= threshold, series_scores.contributors,
                                          series_scores.rows_at_level(threshold))
        by_category[s.category] = by_category.get(s.category, EventMetrics(0, 0, 0, 0)) + metrics
    total = sum(by_category.values(), EventMetrics(0, 0, 0, 0))
    rows = sum(len(s.test) for s in data)
    seconds = sum(x.seconds for x in scored.values())
    result = Evaluation(dataset, detector, protocol, thresholds, total, by_category, refit_every=refit_every,
                        points_per_second=rows / seconds if seconds and detector not in BASELINES else 0.0,
                        not_learned={name: scored[name].not_learned for name in sorted(scored) if scored[name].not_learned},
                        metrics_left_out={name: scored[name].metrics_left_out for name in sorted(scored)
                                          if scored[name].metrics_left_out},
                        retrainings_refused={name: scored[name].retrainings_refused for name in sorted(scored)
                                             if scored[name].retrainings_refused})
    if dataset == "nab" and any(s.nab_windows for s in data):  # without a window there is no NAB score (nab.normalized)
        result.nab_scores = nab_scores(data, scored, thresholds, per_profile_optimum=protocol == "nab")
    return result


def nab_scores(data: list[Series], scored: dict[str, Scored], thresholds: dict[str, float],
               per_profile_optimum: bool) -> dict[str, float]:
    """The three profile scores: each series at its threshold, or (NAB's protocol) each profile at its own optimum."""
    scores = {}
    for profile in nab.PROFILES.values():
        if per_profile_optimum:
            timestamps = {s.name: s.test["timestamp"] for s in data}
            levels = {s.name: scored[s.name].levels for s in data}
            scores[profile.name] = nab.score_corpus(timestamps, levels, {s.name: s.nab_windows for s in data}, profile).score
            continue
        raw = null = perfect = 0.0
        for s in data:
            grid = nab.scoring_grid(len(s.test), nab.window_bounds(s.test["timestamp"], s.nab_windows), profile)
            raw += nab.score_detections(grid, scored[s.name].levels >= thresholds[s.name]).raw
            null, perfect = null + grid.null, perfect + grid.perfect
        scores[profile.name] = nab.normalized(raw, null, perfect)
    return scores
