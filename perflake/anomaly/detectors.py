"""Anomaly detectors behind one interface: fit, score, update (streaming), explain.

A detector reads a frame of one source: a ``timestamp`` column and one column per metric, in
time order. ``score`` returns, per row and using only that row and the rows before it:

- ``raw``: the detector's own measure (a z-score, a path length, a distance, ...);
- ``score``: ``raw`` calibrated on the history the detector was fitted on, as a surprise level
  ``-log10 p`` (p: how often normal history scores at least as high; its tail is an exponential
  fitted above the 95th percentile). One scale for every detector: 3 means "1 in 1,000 rows of
  normal history", so one threshold and the ensemble treat every detector alike (the online
  ``sequence_surprise`` puts its own probabilities on that scale: ``SurpriseCalibration``);
- ``expected_low`` / ``expected_high``: the range the contributing metric was expected in;
- ``contributor``: what contributed most (the metric, or ``metric__feature`` for feature models).

``update`` scores new rows of a stream and keeps the last ``context_rows`` rows as state, so a
live scorer holds bounded memory. Window detectors and the feature models (whose ``seasonal_z``
reads every earlier row through its slots' running sums, carried from call to call) then score
exactly as one pass over the whole series; the recursive ones (EWMA, Holt-Winters, CUSUM) rebuild
their state from those rows, at least five spans, beyond which older rows weigh under 1 %.
``sequence_surprise`` keeps learning: its ``update`` advances the fitted model.

``refit`` is the scheduled retraining (nightly): a model of the fit history is learned again on
every row so far, while ``sequence_surprise``, alone or in the ensemble, keeps its streamed model
(and the ensemble the calibration of its combined level).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar

import numpy as np
import pandas as pd

from perflake.anomaly.features import (DETECTOR_FEATURES, EPSILON, MAD_TO_SIGMA, FeatureSet, compute_features,
                                       grouped_median_sigma, metric_columns, past_median_spread, robust_sigma,
                                       seasonal_slots, seasonal_state)
from perflake.anomaly.patterns import ShapeLibrary, dominant_period, duration_text

TAIL_QUANTILE = 0.95
MIN_CALIBRATION_ROWS = 10  # scored rows of history a level is calibrated on, at least
EXPECTED_SIGMAS = 3.0  # the expected range: centre +- 3 spreads
SCORE_COLUMNS = ["raw", "score", "expected_low", "expected_high", "contributor"]
# The layout of a fitted detector's state, recorded with every registered model: bump it when a
# detector's attributes change, so that an older registered model is refused when it is loaded
# instead of failing at its first score (2: isolation_forest's ``held``, 2026-12-04; 3: motif_novelty's windows
# in the history's unit, 2026-12-05; 4: isolation_forest's ``beyond_range`` for ``held``, 2026-12-06; 5: the feature
# models' ``_slot_sums``, 2026-12-06).
STATE_FORMAT = 5
DAY = pd.Timedelta(days=1)
NEVER_MEASURED = "no value measured in the fit history"  # why a metric was not learned


@dataclasses.dataclass(frozen=True)
class TailCalibration:
    """raw -> -log10 p: the empirical tail of the history below ``threshold``, exponential above it."""

    history: np.ndarray  # sorted raw scores of normal history
    threshold: float
    mean_excess: float

    @classmethod
    def fit(cls, raw: np.ndarray, source: str) -> TailCalibration:
        """``source`` names the detector and its history in a refusal."""
        raw = np.sort(raw[np.isfinite(raw)])
        if len(raw) < MIN_CALIBRATION_ROWS:
            raise ValueError(f"{source}: {len(raw)} scored rows of history (its first rows only warm it up): "
                             f"a detector needs at least {MIN_CALIBRATION_ROWS} to calibrate")
        threshold = float(np.quantile(raw, TAIL_QUANTILE))
        excess = raw[raw > threshold] - threshold
        spread = float(np.median(np.abs(raw - np.median(raw)))) or float(np.std(raw)) or 1.0
        mean_excess = float(excess.mean()) if len(excess) else spread
        return cls(raw, threshold, max(mean_excess, EPSILON))

    def describe(self, level: float) -> str:
        """How rare, and whether the history saw anything as rare or the tail model says so (benchmarks/false_alerts.py
        measures how far that holds)."""
        rarity = f"1 in {10 ** level:,.0f} of normal history" if level <= 12 else "rarer than 1 in 10^12 of normal history"
        rows = len(self.history)
        return rarity if level <= math.log10(rows + 1) else f"{rarity}, extrapolated beyond its {rows:,} rows"

    def level(self, raw: np.ndarray) -> np.ndarray:
        raw = np.asarray(raw, dtype=float)
        n = len(self.history)
        at_least = (n - np.searchsorted(self.history, raw, side="left") + 1) / (n + 1)
        with np.errstate(over="ignore"):  # far below the threshold the tail is not used
            tail = (1 - TAIL_QUANTILE) * np.exp(-(raw - self.threshold) / self.mean_excess)
        p = np.where(raw > self.threshold, np.minimum(tail, 1 - TAIL_QUANTILE), at_least)
        return np.where(np.isfinite(raw), -np.log10(np.clip(p, 1e-300, 1.0)), 0.0)


@dataclasses.dataclass(frozen=True)
class BeyondRange:
    """How far a row's metrics lie beyond their range in the history, as a level calibrated out of sample.

    The distance is the furthest metric's, in its robust spreads of the history. How often normal
    rows go that far is measured on the history itself: each half of it against the range of the
    other, as rows to come will be against the whole history's range (a wider one, so the level
    errs low). A history whose metrics wandered goes beyond often, and far, so a move beyond its
    range is rarely surprising; one whose metrics held a value (an error rate at zero) never did,
    so any move is. One calibration for all the metrics: it counts how many there are to stray.
    """

    spread: pd.Series  # per metric, in its own unit
    low: pd.Series
    high: pd.Series
    calibration: TailCalibration

    @classmethod
    def fit(cls, history: pd.DataFrame, metrics: list[str], source: str) -> BeyondRange:
        values = history[metrics].astype(float)
        spread = values.apply(robust_sigma) + EPSILON
        earlier, later = values.iloc[: len(values) // 2], values.iloc[len(values) // 2 :]
        out_of_sample = [_beyond(half, other.min(), other.max(), spread)[0]
                         for half, other in ((later, earlier), (earlier, later))]
        return cls(spread, values.min(), values.max(),
                   TailCalibration.fit(np.concatenate(out_of_sample), f"{source}, each half against the other's range"))

    def furthest(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Per row, how far beyond its range the furthest metric lies (in its spreads; 0 within) and which one it is."""
        return _beyond(frame[self.spread.index].astype(float), self.low, self.high, self.spread)


def _beyond(values: pd.DataFrame, low: pd.Series, high: pd.Series, spread: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Per row, how far the furthest metric lies beyond [low, high] in its spreads, and which (a missing value is not beyond)."""
    distance = np.nan_to_num((np.fmax(values - high, low - values) / spread).to_numpy(dtype=float), nan=0.0).clip(min=0)
    furthest = distance.argmax(axis=1)
    return distance[np.arange(len(values)), furthest], values.columns.to_numpy()[furthest]


@dataclasses.dataclass(frozen=True)
class SurpriseCalibration:
    """raw -> -log10 p for a raw score in bits of surprise above the typical row's (p = 2^-raw).

    For a model that gives each row a probability: the level says how many times less likely
    the row was than rows usually are to it, as a power of ten (4: 10,000 times).
    """

    @staticmethod
    def describe(level: float) -> str:
        return f"{10 ** level:,.0f} times less likely than usual" if level <= 12 else "over 10^12 times less likely than usual"

    def level(self, raw: np.ndarray) -> np.ndarray:
        raw = np.asarray(raw, dtype=float)
        return np.where(np.isfinite(raw), np.maximum(np.nan_to_num(raw), 0.0) * math.log10(2), 0.0)


class Detector(ABC):
    name: ClassVar[str]
    family: ClassVar[str]
    # rows before a row that its score reads (the streaming state)
    context_rows: int = 500

    calibration: TailCalibration | SurpriseCalibration | None = None
    _tail: pd.DataFrame | None = None
    _first_scored = 0  # in an update, the first new row: the kept rows before it are read as context, their scores dropped
    _not_learned: dict[str, str] = {}  # metric: why (metrics_not_learned)

    def fit(self, history: pd.DataFrame) -> Detector:
        """Learn what normal looks like from ``history`` (a frame of normal or mostly normal rows).

        A history it cannot learn is refused (``ValueError``, naming why) and leaves the detector as it was.
        """
        history = checked_frame(history)
        with self._as_it_was_on_failure():
            return self._learn(history)

    def _learn(self, history: pd.DataFrame) -> Detector:
        unseen_from = self._fit(history) or 0
        self.calibration = self._calibrate(history, unseen_from)
        self._keep_context(history)
        return self

    def refit(self, history: pd.DataFrame) -> Detector:
        """Retrain on ``history`` (every row so far) as a scheduled job does, before streaming on with ``update``.

        A model of the fit history is learned again from scratch; a detector that learns as it
        streams keeps what it learned instead (``sequence_surprise``). The history must have the
        metrics the detector was fitted on (a metric it could not learn may have been measured
        since): another host's metrics are another detector's, and are refused. A history it
        cannot learn (a metric missing for days: too few rows measured) is refused and leaves the
        detector as it was, scoring with what it learned before, as a nightly job that fails
        keeps the model in service.
        """
        if self.calibration is None:
            return self.fit(history)
        history = checked_frame(history)
        self._check_metrics(history, "this history has")
        with self._as_it_was_on_failure():
            return self._refit(history)

    def _refit(self, history: pd.DataFrame) -> Detector:
        return self._learn(history)

    @contextlib.contextmanager
    def _as_it_was_on_failure(self):
        """Learning that fails part way (a refusal, or any error) restores the state from before it: a detector is
        never left half-learned, with some metrics, members or models of the new history and some of the old."""
        before = copy.deepcopy(vars(self))
        try:
            yield
        except BaseException:
            vars(self).clear()
            vars(self).update(before)
            raise

    def metrics_not_learned(self) -> dict[str, str]:
        """Metrics of the fit history this detector could not learn, and why: left out until a refit learns them.

        A detector that learns each metric's normal from the history (a profile, a sequence model,
        shapes, a model of feature vectors) cannot learn one the history never measured, or
        measured on too few rows (a new endpoint, an agent that only now reports it:
        ``measured_too_little``); it watches the host's other metrics meanwhile. Detectors that
        read only the rows before each row have none.
        """
        return dict(self._not_learned)

    def _keep_not_learned(self, history: pd.DataFrame, refused: dict[str, str]) -> None:
        """Keeps the metrics of ``history`` it could not learn, with why; refuses a history where it could learn none."""
        self._not_learned = refused
        if len(refused) == len(metric_columns(history)):
            raise ValueError(f"{self.name}: no metric to learn from: "
                             + "; ".join(f"metric {metric!r}: {why}" for metric, why in refused.items()))

    def _keep_context(self, rows: pd.DataFrame) -> None:
        self._tail = rows.tail(self.context_rows).reset_index(drop=True)

    def score(self, frame: pd.DataFrame) -> pd.DataFrame:
        return self._scored(self._checked(frame, "scoring"))

    def _checked(self, rows: pd.DataFrame, doing: str) -> pd.DataFrame:
        """``rows`` given to score or stream, checked once on the way in (``checked_frame``, the fitted metrics): the
        internal paths below (``_scored``, ``_streamed``, an ensemble's members) take them as checked."""
        self._check_fitted(doing)
        rows = checked_frame(rows)
        self._check_metrics(rows, "these rows have")
        return rows

    def _scored(self, frame: pd.DataFrame) -> pd.DataFrame:
        if frame.empty:  # a poll that brought no rows
            return pd.DataFrame(columns=SCORE_COLUMNS, index=frame.index)
        return self._levelled(self._raw(frame))

    def _check_metrics(self, frame: pd.DataFrame, which: str) -> None:
        fitted_on, given = metric_columns(self._tail), metric_columns(frame)
        if set(given) != set(fitted_on):
            raise ValueError(f"{self.name} was fitted on the metrics {fitted_on}; {which} {given}")

    def _check_fitted(self, doing: str) -> None:
        if self.calibration is None:
            raise RuntimeError(f"{self.name}: fit the detector before {doing}")

    def _calibrate(self, history: pd.DataFrame, unseen_from: int) -> TailCalibration | SurpriseCalibration:
        raw = self._raw(history)["raw"].to_numpy(dtype=float)[unseen_from:]
        return TailCalibration.fit(raw, f"{self.name} fitted on {len(history)} rows")

    def _levelled(self, raw: pd.DataFrame) -> pd.DataFrame:
        # _raw's columns are SCORE_COLUMNS but the score: inserting it in place costs a quarter of selecting
        # the columns anew (50 against 190 us a call, paid by every streamed update)
        raw.insert(SCORE_COLUMNS.index("score"), "score", self.calibration.level(raw["raw"].to_numpy(dtype=float)))
        return raw

    def update(self, new_rows: pd.DataFrame) -> pd.DataFrame:
        """Score the next rows of a stream, reading the rows kept from earlier calls (a detector may leave their scores
        out: ``_first_scored``).

        Rows refused (a metric missing or added, an infinite value: ``_checked``) leave the detector
        as it was: the next rows are scored after the rows kept before them.
        """
        return self._streamed(self._checked(new_rows, "updating it"))

    def _streamed(self, new_rows: pd.DataFrame) -> pd.DataFrame:
        if new_rows.empty:  # a poll that brought no rows: nothing to score, the kept rows stay
            return self._scored(new_rows)
        joined = pd.concat([self._tail, new_rows], ignore_index=True)
        self._first_scored = len(self._tail)
        try:
            scored = self._scored(joined).iloc[len(self._tail) :]
        finally:
            self._first_scored = 0
        self._keep_context(joined)
        return scored.set_index(new_rows.index)

    def explain(self, scored: pd.DataFrame, row: int) -> str:
        """One line an operator reads: how unusual, which metric, what was expected."""
        item = scored.loc[row]
        return (
            f"{self.name} ({self.family}): surprise {item['score']:.1f} ({self.calibration.describe(item['score'])}); "
            f"{item['contributor']} expected in [{item['expected_low']:.4g}, {item['expected_high']:.4g}]"
        )

    def _fit(self, history: pd.DataFrame) -> int | None:
        """Learn parameters from history (online detectors learn as they go and need none).

        Returns the first row of history the model did not learn from, when calibrating on rows
        it memorised would understate its scores (a row is its own nearest shape).
        """

    @abstractmethod
    def _raw(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Columns raw, expected_low, expected_high, contributor, one row per row of ``frame``."""


def measured_too_little(history: pd.DataFrame, metrics: list[str]) -> dict[str, str]:
    """The metrics of ``history`` measured on too few of its rows to learn what is normal for them, and why.

    A metric an agent began to report just before a fit (a nightly refit after a new endpoint
    went live) has a handful of values there: a range, a profile or a level learned from them
    would make most of its later values look far out. It is learned at a refit that has at least
    ``MIN_CALIBRATION_ROWS`` of its values, as a metric the history never measured.
    """
    counts = history[metrics].notna().sum()
    return {metric: NEVER_MEASURED if count == 0 else
            f"measured on {count} rows of the fit history, fewer than the {MIN_CALIBRATION_ROWS} it takes to learn"
            for metric, count in counts.items() if count < MIN_CALIBRATION_ROWS}


def checked_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its timestamps in UTC, after refusing what the detectors would misread: no
    metric, timestamps that are not datetimes, text metrics, infinite values.

    Rows are read in the order given, as a stream delivers them (real series have the odd clock
    step back: NAB's machine_temperature file has one); the timestamps place them in the calendar.
    Timestamps without a zone are read as UTC, as the calendar features read them, so a history
    and a stream given in different zones, or one without, line up on the same instants.
    """
    if "timestamp" not in frame.columns or len(frame.columns) < 2:
        raise ValueError(f"a detector reads a 'timestamp' column and at least one metric column; got {list(frame.columns)}")
    timestamps = frame["timestamp"]
    if not pd.api.types.is_datetime64_any_dtype(timestamps):
        raise ValueError(f"the 'timestamp' column holds {timestamps.dtype}, not datetimes (pandas.to_datetime reads them)")
    not_numeric = [column for column in metric_columns(frame) if not pd.api.types.is_numeric_dtype(frame[column])]
    if not_numeric:
        raise ValueError(f"metric columns must be numeric; not numeric: {not_numeric} ("
                         + "; ".join(_first_text(frame[column]) for column in not_numeric) + ")")
    infinite = [column for column in metric_columns(frame) if np.isinf(frame[column].to_numpy(dtype=float)).any()]
    if infinite:  # a division by zero upstream, not a measurement: its level and a history's profile would be nonsense
        raise ValueError("metric values must be finite (a missing value is NaN or empty); infinite: "
                         + "; ".join(_first_infinite(frame[column]) for column in infinite))
    zone = timestamps.dt.tz
    if str(zone) == "UTC":  # the usual case, on every streamed row: no copy
        return frame
    return frame.assign(timestamp=timestamps.dt.tz_localize("UTC") if zone is None else timestamps.dt.tz_convert("UTC"))


def _first_text(values: pd.Series) -> str:
    """Where a metric column's first value that is not a number is, and what it is (a blank is a missing value)."""
    text = values[pd.to_numeric(values, errors="coerce").isna() & values.notna()]
    if len(text):
        return f"{values.name!r}: row {text.index[0]} is {text.iloc[0]!r}"
    return f"{values.name!r}: of type {values.dtype}"


def _first_infinite(values: pd.Series) -> str:
    infinite = values[np.isinf(values.to_numpy(dtype=float))]
    return f"{values.name!r}: row {infinite.index[0]} is {infinite.iloc[0]}"


def contributing_metric(contributor: str) -> str:
    """The metric a contributor names: ``m05``, its feature ``m05__robust_z_60``, an ensemble member's
    ``sequence_surprise:m05``."""
    return contributor.rsplit(":", 1)[-1].split("__", 1)[0]


# --- univariate detectors: each metric on its own, the most unusual one speaks for the row -------


class UnivariateDetector(Detector):
    def _learn_per_metric(self, history: pd.DataFrame, learn: Callable[[np.ndarray], object]) -> dict[str, object]:
        """``learn(values)`` for each metric of ``history``; a metric it refuses is left out, with why."""
        learned, refused = self._learn_each(history, metric_columns(history), learn)
        self._keep_not_learned(history, refused)
        return learned

    @staticmethod
    def _learn_each(history: pd.DataFrame, metrics: list[str], learn: Callable[[np.ndarray], object]) -> tuple[dict, dict]:
        """What ``learn`` made of each metric measured enough to learn, and why the others were not learned."""
        learned, refused = {}, measured_too_little(history, metrics)
        for metric in [metric for metric in metrics if metric not in refused]:
            try:
                learned[metric] = learn(history[metric].to_numpy(dtype=float))
            except ValueError as error:
                refused[metric] = str(error)
        return learned, refused

    @abstractmethod
    def _per_metric(self, metric: str, values: np.ndarray, times) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """raw score, expected centre and spread for each row of one metric; ``times`` is ``_read_times`` of the rows."""

    def _read_times(self, timestamps: pd.Series):
        """What every metric's score reads of the rows' timestamps, worked out once per frame (the timestamps by default)."""
        return timestamps

    def _raw(self, frame: pd.DataFrame) -> pd.DataFrame:
        metrics = metric_columns(frame)
        unscored = (np.full(len(frame), np.nan),) * 3
        times = self._read_times(frame["timestamp"])
        per_metric = [self._per_metric(m, frame[m].to_numpy(dtype=float), times) if m not in self._not_learned
                      else unscored for m in metrics]
        raws = np.vstack([np.nan_to_num(raw, nan=-np.inf) for raw, _, _ in per_metric])
        top = raws.argmax(axis=0)
        rows = np.arange(len(frame))
        centre = np.vstack([c for _, c, _ in per_metric])[top, rows]
        spread = np.vstack([s for _, _, s in per_metric])[top, rows]
        raw = raws[top, rows]
        return pd.DataFrame(
            {
                "raw": np.where(np.isfinite(raw), raw, np.nan),
                "expected_low": centre - EXPECTED_SIGMAS * spread,
                "expected_high": centre + EXPECTED_SIGMAS * spread,
                "contributor": np.asarray(metrics, dtype=object)[top],
            },
            index=frame.index,
        )


class MedianMadDetector(UnivariateDetector):
    """Robust statistics: distance from the median of the last ``window`` rows, in MADs."""

    name, family = "median_mad", "robust_statistics"

    def __init__(self, window: int = 60):
        self.window = window
        self.context_rows = 2 * window + 1  # the MAD is a median of deviations from a rolling median

    def _per_metric(self, metric, values, times):
        median, spread = past_median_spread(pd.Series(values), self.window)
        return np.abs(values - median.to_numpy()) / (spread.to_numpy() + EPSILON), median.to_numpy(), spread.to_numpy()


class EwmaControlChart(UnivariateDetector):
    """Control chart: distance from the exponentially weighted mean, in weighted deviations."""

    name, family = "ewma_control", "control_chart"

    def __init__(self, span: int = 100):
        self.span = span
        self.context_rows = 5 * span

    def _per_metric(self, metric, values, times):
        past = pd.Series(values).shift(1).ewm(span=self.span, min_periods=10)
        mean, std = past.mean().to_numpy(), past.std().to_numpy()
        return np.abs(values - mean) / (std + EPSILON), mean, std


class HoltWintersResidual(UnivariateDetector):
    """Seasonal forecast: additive Holt-Winters one step ahead; the residual in its running spread.

    The season's length is found in the fit history (``patterns.dominant_period``); without a
    clear season the model is level-only.
    """

    name, family = "holt_winters", "seasonal_forecast"

    def __init__(self, alpha: float = 0.1, gamma: float = 0.2, error_span: int = 200, period: int | None = None):
        self.alpha, self.gamma, self.error_span, self.period = alpha, gamma, error_span, period

    def _fit(self, history):
        if self.period is None:
            self.period = max((dominant_period(history[m].to_numpy(dtype=float)) or 0) for m in metric_columns(history)) or 0
        self.context_rows = max(3 * self.period, 5 * self.error_span)

    def _per_metric(self, metric, values, times):
        n, period = len(values), self.period or 0
        forecast, spread = np.full(n, np.nan), np.full(n, np.nan)
        # the season starts as the shape around its mean of the first full period from the metric's first value
        # (a metric first measured mid-stream starts its season there)
        measured_rows = np.flatnonzero(np.isfinite(values))
        start = int(measured_rows[0]) if len(measured_rows) else n
        seasonal = np.zeros(1)
        if period and n - start >= period:
            first = np.roll(values[start : start + period], start % period)  # index by slot, i % period
            measured = np.isfinite(first)  # a slot not measured in the first period starts at 0
            seasonal = np.where(measured, first - first[measured].mean(), 0.0)
        level, error, decay = None, None, 2.0 / (self.error_span + 1)
        for i, x in enumerate(values):
            if not math.isfinite(x):
                continue
            slot = i % period if len(seasonal) > 1 else 0
            if level is None or i < start + len(seasonal):  # the first period set the season: no forecast of it
                level = x - seasonal[slot]
                continue
            predicted = level + seasonal[slot]
            residual = x - predicted
            forecast[i] = predicted
            spread[i] = error if error is not None else np.nan
            error = abs(residual) * 1.2533 if error is None else (1 - decay) * error + decay * abs(residual) * 1.2533
            level = level + self.alpha * (x - seasonal[slot] - level)
            if len(seasonal) > 1:
                seasonal[slot] = seasonal[slot] + self.gamma * (x - level - seasonal[slot])
        return np.abs(values - forecast) / (spread + EPSILON), forecast, spread


class CusumDetector(HoltWintersResidual):
    """Change points: two-sided CUSUM of the seasonal model's one-step errors, in their running spread.

    Errors that keep the same sign accumulate even when each is small; past the decision
    interval the sums restart (the change is reported once) while the model follows the new level.
    """

    name, family = "cusum", "change_point"

    def __init__(self, slack: float = 0.5, decision_interval: float = 5.0, **kwargs):
        super().__init__(**kwargs)
        self.slack, self.decision_interval = slack, decision_interval

    def _per_metric(self, metric, values, times):
        _, forecast, spread = super()._per_metric(metric, values, times)
        z = (values - forecast) / (spread + EPSILON)
        raw = np.full(len(values), np.nan)
        upper = lower = 0.0
        for i, value in enumerate(z):
            if not math.isfinite(value):
                continue
            upper = max(0.0, upper + value - self.slack)
            lower = max(0.0, lower - value - self.slack)
            raw[i] = max(upper, lower)
            if raw[i] > self.decision_interval:
                upper = lower = 0.0
        return raw, forecast, spread


def laplace_loss(values: np.ndarray, centre, spread) -> np.ndarray:
    """Each value's negative log-likelihood under a Laplace law of this centre and spread, less its constant."""
    spread = np.maximum(spread, EPSILON)
    return np.abs(values - centre) / spread + np.log(spread)


class SeasonalProfileDetector(UnivariateDetector):
    """Seasonal baseline: distance from the median of the same calendar slot in the fit history, in its MADs.

    The default slot is the trading-calendar phase and the hour of day (``phase_hour``), so the
    open, the midday lull, the close, nights, weekends and holidays each have their own normal:
    a stall at noon is compared with other noons, not with the quiet after the close. A slot the
    history saw on fewer than ``min_days`` days has no profile of its own (a profile of one or two
    days is one or two days, not a profile): a row in it (a first weekend, a holiday) is scored
    against the profiled slot whose normal it is nearest to, so it is an anomaly only if no slot
    of the history would have it. A metric keeps its profile only
    if it predicts days it did not see: each day of the history held out in turn, the other days'
    profile must give it a lower Laplace negative log-likelihood than their median and spread do
    (a held-out row of a slot without a profile reads their median and spread on both sides);
    else every row uses the whole history's (a metric without a daily shape, or slots of a few
    values whose medians and spreads are off by chance, would make healthy hours rare). The
    profile is what ``fit`` learned (refit it as history grows, e.g. nightly); a slot's spread is at least
    ``spread_floor`` of the whole history's, so a slot that never moved does not make every small
    change an anomaly. A metric is learned once its values span ``DAY`` of the history, or half
    of a history shorter than two days: one measured for the last few hours of it has shown part
    of its day, and the rest of the day would be scored against that part.
    """

    name, family = "seasonal_profile", "seasonal_baseline"
    context_rows = 1

    def __init__(self, slot: str = "phase_hour", timezone: str = "America/New_York", min_days: int = 3,
                 spread_floor: float = 0.1):
        self.slot, self.timezone, self.min_days, self.spread_floor = slot, timezone, min_days, spread_floor

    def _fit(self, history):
        times = history["timestamp"]
        slots, days = seasonal_slots(times, self.slot, self.timezone).to_numpy(), times.dt.date.to_numpy()
        span_needed = min(DAY, (times.max() - times.min()) / 2)

        def profile(values: np.ndarray) -> tuple[dict, dict, tuple[float, float]]:
            measured = np.isfinite(values)  # a slot is known from the days its metric was measured on
            span = times[measured].max() - times[measured].min()
            if span < span_needed:
                raise ValueError(f"measured over {duration_text(span)} of the fit history; a profile by time of day "
                                 f"learns a metric measured over {duration_text(span_needed)} of it or more")
            values = values[measured]
            whole = (float(np.median(values)), robust_sigma(pd.Series(values)))
            (slot, slot_names), (day, _) = pd.factorize(slots[measured]), pd.factorize(days[measured])  # -1: no time
            seen_on = np.zeros((len(slot_names), day.max() + 1), dtype=bool)  # slot x day
            timed = (slot >= 0) & (day >= 0)
            seen_on[slot[timed], day[timed]] = True
            if not self._profile_predicts(values, slot, day, seen_on):
                return {}, {}, whole
            medians, spreads = self._slot_profile(values, slot, seen_on.sum(axis=1))
            known = np.isfinite(medians)
            return (dict(zip(slot_names[known], medians[known].tolist())), dict(zip(slot_names[known], spreads[known].tolist())),
                    whole)

        self.profiles = self._learn_per_metric(history, profile)

    def _slot_profile(self, values, slot, days_seen) -> tuple[np.ndarray, np.ndarray]:
        """The median and spread of each slot by its code; NaN for a slot seen on fewer than ``min_days`` days."""
        medians, spreads = np.full(len(days_seen), np.nan), np.full(len(days_seen), np.nan)
        timed = slot >= 0
        slot_medians, slot_spreads = grouped_median_sigma(values[timed], slot[timed])
        medians[slot_medians.index], spreads[slot_spreads.index] = slot_medians.to_numpy(), slot_spreads.to_numpy()
        unknown = days_seen < self.min_days
        medians[unknown] = spreads[unknown] = np.nan
        return medians, spreads

    def _profile_predicts(self, values, slot, day, seen_on) -> bool:
        """Whether the slot profile of the other days predicts each day held out in turn better than their median and
        spread do: a lower mean Laplace negative log-likelihood, with spreads floored as scoring floors them."""
        profile_loss, whole_loss = [], []
        days_seen = seen_on.sum(axis=1)
        for held_out_day in range(seen_on.shape[1]):
            held = day == held_out_day
            medians, spreads = self._slot_profile(values[~held], slot[~held], days_seen - seen_on[:, held_out_day])
            if not np.isfinite(medians).any():
                continue
            rest = pd.Series(values[~held])
            median, spread = rest.median(), robust_sigma(rest)
            profile_loss.append(laplace_loss(values[held], *self._expected(medians, spreads, median, spread, slot[held])))
            whole_loss.append(laplace_loss(values[held], median, spread))
        return bool(profile_loss) and np.mean(np.concatenate(profile_loss)) < np.mean(np.concatenate(whole_loss))

    def _read_times(self, timestamps):
        """Each row's slot as a code into the frame's distinct slots (-1: a row without a time, in no slot)."""
        return pd.factorize(seasonal_slots(timestamps, self.slot, self.timezone))

    def _per_metric(self, metric, values, times):
        medians, spreads, (overall_median, overall_spread) = self.profiles[metric]
        codes, slots = times
        slot_medians = np.array([medians.get(slot, np.nan) for slot in slots], dtype=float)
        centre, spread = self._expected(slot_medians, np.array([spreads.get(slot, np.nan) for slot in slots], dtype=float),
                                        overall_median, overall_spread, codes)
        unprofiled = np.append(np.isnan(slot_medians), False)[codes] & np.isfinite(values)  # code -1: no time, no slot
        if medians and unprofiled.any():
            centre[unprofiled], spread[unprofiled] = self._nearest_slot(values[unprofiled], medians, spreads, overall_spread)
        return np.abs(values - centre) / (spread + EPSILON), centre, spread

    def _nearest_slot(self, values, medians, spreads, overall_spread) -> tuple[np.ndarray, np.ndarray]:
        """The centre and spread of the profiled slot each value is nearest to, in that slot's spreads.

        A row in a slot the profile does not know (a first weekend, a holiday) cannot be told what
        its slot's normal is; it is as anomalous as it is unlike the normal of every slot the
        metric has: a first busy weekend that looks like weekdays is not an anomaly, a value no
        hour of the history has held is.
        """
        known_medians = np.fromiter(medians.values(), dtype=float)
        known_spreads = self._floored(np.fromiter(spreads.values(), dtype=float), overall_spread)
        nearest = (np.abs(values[:, None] - known_medians) / (known_spreads + EPSILON)).argmin(axis=1)
        return known_medians[nearest], known_spreads[nearest]

    def _expected(self, medians, spreads, median, spread, codes) -> tuple[np.ndarray, np.ndarray]:
        """The centre and spread of rows in slots ``codes``, from slot medians and spreads by code (NaN: no profile)
        and the whole history's ``median`` and ``spread``: a slot without a profile, and a row without a time (code -1),
        reads the whole history's; a slot's spread is at least ``spread_floor`` of the whole's. Scoring and the
        held-out-day test read rows alike through it (scoring then moves a timed row of a slot without a profile to
        its nearest slot's: ``_nearest_slot``)."""
        centre = np.append(np.where(np.isnan(medians), median, medians), median)[codes]  # code -1: the appended figure
        slot_spread = np.append(np.where(np.isnan(spreads), spread, spreads), spread)[codes]
        return centre, self._floored(slot_spread, spread)

    def _floored(self, slot_spreads, spread):
        """Slot spreads held to at least ``spread_floor`` of the whole history's ``spread``."""
        return np.maximum(slot_spreads, self.spread_floor * spread)


class MotifNoveltyDetector(UnivariateDetector):
    """Pattern: a window of the last ``length`` rows unlike any known one (``patterns.ShapeLibrary``).

    Known are the windows of the first half of the fit history (the second half calibrates) and
    those of the stream's last ``recent`` rows: a pattern of normal history is not an anomaly, a
    new one is, once; when it recurs it is known.
    """

    name, family = "motif_novelty", "pattern"

    def __init__(self, length: int = 8, recent: int = 4000):
        self.length, self.recent = length, recent
        self.context_rows = recent + length - 1  # the oldest window a new row's is compared with starts here

    def _fit(self, history):
        learned = len(history) // 2
        needed = max(2 * self.length, 2 * MIN_CALIBRATION_ROWS - 1)  # a window in the first half, enough in the second
        if len(history) < needed:
            raise ValueError(f"{self.name} fitted on {len(history)} rows: it learns windows of {self.length} rows from "
                             f"the first half of its history and calibrates on the second (at least "
                             f"{MIN_CALIBRATION_ROWS} rows), so it needs at least {needed}")
        self.libraries = self._learn_per_metric(history, lambda values: ShapeLibrary(self.length, self.recent)
                                                .fit(values[:learned]))
        return learned

    def _per_metric(self, metric, values, times):
        # the expected range of the rows scored, from the rows before each (a streamed update's kept rows need none)
        skipped = max(0, self._first_scored - self.length)
        past = pd.Series(values[skipped:]).shift(1).rolling(self.length, min_periods=2)
        unscored = np.full(skipped, np.nan)
        return (self.libraries[metric].novelty(values, self._first_scored),
                np.concatenate([unscored, past.median().to_numpy()]), np.concatenate([unscored, past.std().to_numpy()]))


class LevelTransitions:
    """Which quantised level followed which, counted online; the next level's probability (PPM, escape method C).

    A level seen after the previous one gets its share of what followed it; otherwise the model
    escapes to the levels' overall frequencies, and then to a level never seen, whose probability
    falls the farther it lies outside the fit range (``beyond``: bins past its edge).
    """

    def __init__(self):
        self.after: dict[int, dict[int, int]] = {}
        self.after_total: dict[int, int] = {}
        self.overall: dict[int, int] = {}
        self.total = 0
        self.previous: int | None = None

    def probability(self, level: int, beyond: int) -> float:
        escape = 1.0
        contexts = ((self.after.get(self.previous), self.after_total.get(self.previous, 0)), (self.overall, self.total))
        for counts, total in contexts:
            if total:
                seen = counts.get(level, 0)
                if seen:
                    return escape * seen / (total + len(counts))
                escape *= len(counts) / (total + len(counts))
        return escape / (self.total + 1) / (beyond + 1)

    def likely_levels(self, share: float) -> list[int]:
        """Levels that followed the previous one at least ``share`` of the time (any level's frequency without it)."""
        counts, total = self.after.get(self.previous), self.after_total.get(self.previous, 0)
        if not total:
            counts, total = self.overall, self.total
        return [level for level, seen in counts.items() if seen >= share * total]

    def learn(self, level: int) -> None:
        following = self.after.setdefault(self.previous, {})
        following[level] = following.get(level, 0) + 1
        self.after_total[self.previous] = self.after_total.get(self.previous, 0) + 1
        self.overall[level] = self.overall.get(level, 0) + 1
        self.total += 1
        self.previous = level


class SequenceModel:
    """One metric's online sequence model and the running mean of its surprise.

    The values are quantised into ``bins`` levels over a fixed range ``offsets`` times, each
    quantisation shifted by a fraction of a bin, so that a value on a bin edge does not flip
    between two levels in all of them. A row's surprise is ``-log2`` of the probability its
    levels had before it was seen, averaged over the quantisations; it is then learned.
    """

    MIN_SURPRISES = 20  # surprises seen before one is scored against them

    def __init__(self, low: float, step: float, bins: int, offsets: int):
        self.low, self.step, self.bins = low, step, bins
        self.offsets = [i / offsets for i in range(offsets)]
        self.transitions = [LevelTransitions() for _ in self.offsets]
        self.seen, self.mean = 0, 0.0  # surprises learned, and their mean

    @classmethod
    def over_range_of(cls, values: np.ndarray, bins: int, offsets: int, padding: float) -> SequenceModel:
        finite = values[np.isfinite(values)]  # some: a metric measured too little is not learned (measured_too_little)
        low, high = float(finite.min()), float(finite.max())
        width = (high - low) or abs(high) or 1.0
        return cls(low - padding * width, width * (1 + 2 * padding) / bins, bins, offsets)

    def run(self, values: np.ndarray, learn: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per row: its surprise above the mean of the surprises before it (bits), and the expected range as centre and spread.

        Rows where ``learn`` is false are scored and not learned (the model has seen them already).
        """
        excess, centre, spread = (np.full(len(values), np.nan) for _ in range(3))
        learn = np.ones(len(values), dtype=bool) if learn is None else learn
        for i, value in enumerate(values):
            if not math.isfinite(value):
                continue
            levels = [math.floor((value - self.low) / self.step + offset) for offset in self.offsets]
            likely = self.transitions[0].likely_levels(share=0.01)
            if likely:
                low, high = self.low + min(likely) * self.step, self.low + (max(likely) + 1) * self.step
                centre[i], spread[i] = (low + high) / 2, (high - low) / (2 * EXPECTED_SIGMAS)
            surprise = -sum(math.log2(transitions.probability(level, max(0, -level, level - self.bins)))
                            for transitions, level in zip(self.transitions, levels)) / len(levels)
            if self.seen >= self.MIN_SURPRISES:
                excess[i] = surprise - self.mean
            if not learn[i]:
                continue
            self.seen += 1
            self.mean += (surprise - self.mean) / self.seen
            for transitions, level in zip(self.transitions, levels):
                transitions.learn(level)
        return excess, centre, spread


class SequenceSurpriseDetector(UnivariateDetector):
    """Sequence learning: how unexpected a value is after the one before it, to a model that keeps learning.

    Each metric's values become levels (``bins`` over the fit history's range, padded by
    ``range_padding`` of it each side; values outside get levels of their own) and an online
    model learns which level follows which (``SequenceModel``). A row's raw score is its surprise
    above the mean surprise of the rows before it, in bits, so a noisy metric, whose every value
    surprises a little, is not always anomalous; its level is ``SurpriseCalibration``'s (4: the
    row was 10,000 times less likely than usual). A level shift that stays stops surprising once
    the model has seen it a few times, and a recurring pattern never does, where a fixed baseline
    would alert on both for as long as they last. It knows what follows what, not when: a season
    played backwards is made of known steps and goes unseen (``seasonal_profile`` sees it).

    ``fit`` learns the history; ``score`` starts from that model and learns the rows it scores
    (from a copy: the fitted model is not changed), ``update`` advances the fitted model itself,
    so a stream is scored exactly as one pass, with state bounded by the levels seen. Each moment
    is learned once: rows no later than the history's last timestamp are scored, not learned again.
    """

    name, family = "sequence_surprise", "sequence_learning"
    context_rows = 1

    def __init__(self, bins: int = 16, offsets: int = 4, range_padding: float = 0.1):
        self.bins, self.offsets, self.range_padding = bins, offsets, range_padding
        self._advance_fitted = False

    def _fit(self, history):
        self.learned_until = history["timestamp"].max()
        self.models = self._learn_per_metric(history, self._learned)

    def _learned(self, values: np.ndarray) -> SequenceModel:
        model = SequenceModel.over_range_of(values, self.bins, self.offsets, self.range_padding)
        model.run(values)
        return model

    def _calibrate(self, history, unseen_from):
        return SurpriseCalibration()

    def _read_times(self, timestamps):
        """Which rows are new to the models: after what they learned, or without a time."""
        return ~(timestamps <= self.learned_until).to_numpy()

    def _per_metric(self, metric, values, times):
        model = self.models[metric] if self._advance_fitted else copy.deepcopy(self.models[metric])
        return model.run(values, learn=times)

    def _refit(self, history):
        """Keeps the model it learned while streaming and learns the rows of ``history`` it has not seen.

        It needs no retraining: a model learned from scratch on the same rows would differ only in
        its levels' range, now stretched by every anomaly in them. A metric it could not learn
        before (never measured) is learned from ``history`` now if it was measured since.
        """
        unseen = history[history["timestamp"] > self.learned_until]
        if len(unseen):
            self._streamed(unseen)
        newly, self._not_learned = self._learn_each(history, list(self._not_learned), self._learned)
        self.models.update(newly)
        return self

    def _streamed(self, new_rows):
        self._advance_fitted = True
        try:
            scored = self._scored(new_rows)
        finally:
            self._advance_fitted = False
        if len(new_rows):
            self.learned_until = max(self.learned_until, new_rows["timestamp"].max())
        return scored


# --- feature models: one vector of features per row, a model of normal vectors ------------------


def stream_context_rows(feature_set: FeatureSet) -> int:
    """The rows an update keeps before its new rows: the feature set's lookback, so streamed rows read what one pass
    reads. An EWM statistic reads every earlier row: a stream keeps five of its spans, as ewma_control does (the
    weight beyond is about e^-10 of the newest row's)."""
    if feature_set.lookback is not None:
        return feature_set.lookback
    ewm_spans = [feature.window for feature in feature_set.features if feature.lookback is None]
    finite = dataclasses.replace(feature_set, features=tuple(f for f in feature_set.features if f.lookback is not None))
    return max(finite.lookback, 5 * max(ewm_spans))


class FeatureModelDetector(Detector):
    """Fits a scikit-learn model of normal feature vectors (``feature_set``, computed point in time)."""

    max_fit_rows = 5000
    _slot_sums: dict[str, pd.DataFrame] | None = None  # per metric, the seasonal slots' sums over the rows before the kept ones
    _fitting: tuple[pd.DataFrame, pd.DataFrame] | None = None  # during a fit, its history and the history's features

    def __init__(self, feature_set: FeatureSet = DETECTOR_FEATURES, seed: int = 0):
        self.feature_set, self.seed = feature_set, seed
        self.context_rows = stream_context_rows(feature_set)

    def _learn(self, history):
        # _fit and the calibration both read the history's features: computed once, a third of a fit is saved on a wide host
        try:
            return super()._learn(history)
        finally:
            vars(self).pop("_fitting", None)  # not part of the fitted state

    def features(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The feature set's values, missing where a feature is not defined (its window still filling, a gap).

        In an update ``frame`` begins with the kept rows, and a seasonal feature reads every row before them too
        through the slots' sums (``_keep_context``), as one pass over the whole stream would."""
        if self._fitting is not None and self._fitting[0] is frame:
            return self._fitting[1]
        earlier = self._slot_sums if self._first_scored else None
        return compute_features(frame, self.feature_set, earlier).replace([np.inf, -np.inf], np.nan)

    def _keep_context(self, rows):
        """As ``Detector._keep_context``; the rows that leave the kept ones are added to the seasonal slots' sums."""
        leaving = rows.iloc[: max(0, len(rows) - self.context_rows)]
        if len(leaving) and any(feature.kind == "seasonal_z" for feature in self.feature_set.features):
            self._slot_sums = seasonal_state(leaving, self.feature_set, self._slot_sums)
        super()._keep_context(rows)

    def _fit(self, history):
        self._slot_sums = None  # a fit starts from its history alone
        features = self.features(history)
        self._fitting = (history, features)
        self.columns, refused = self._learnable(history, features)
        self._keep_not_learned(history, refused)
        features = self._filled(features)
        self.centre = features.median()
        self.scale = (features - self.centre).abs().median() * MAD_TO_SIGMA + 1e-3
        matrix = self._matrix(features)
        if len(matrix) > self.max_fit_rows:
            matrix = matrix[np.random.default_rng(self.seed).choice(len(matrix), self.max_fit_rows, replace=False)]
        self._fit_model(matrix)

    def _filled(self, features: pd.DataFrame) -> pd.DataFrame:
        """The learned features, a feature not defined at a row read as 0, each clipped to +-50."""
        return features[self.columns].fillna(0.0).clip(-50, 50)

    def _learnable(self, history: pd.DataFrame, features: pd.DataFrame) -> tuple[list[str], dict[str, str]]:
        """The features defined on more than half the fit rows, and the metrics left without one (with why).

        A feature not defined at a row reads as 0. Where that is half the rows or more, its median
        and spread are the fill's, so the model would take it for a constant and alert on nearly
        every row once it is defined: a metric that began late in the history, one measured
        sparsely, a seasonal feature whose slot recurs too seldom in a short history (an hour of the
        week recurs weekly in hourly rows, and the seasonal z needs three earlier rows of its slot).
        Such a feature is left out until a refit has enough of it; a metric with no feature left is
        not learned, like one ``measured_too_little``.
        """
        metrics = metric_columns(history)
        refused = measured_too_little(history, metrics)
        needed = max(MIN_CALIBRATION_ROWS, len(history) // 2 + 1)
        defined = features.notna().sum()
        columns = [column for column in features.columns
                   if contributing_metric(column) not in refused and defined[column] >= needed]
        learned = {contributing_metric(column) for column in columns}
        for metric in [metric for metric in metrics if metric not in refused and metric not in learned]:
            most = max(defined[column] for column in features.columns if contributing_metric(column) == metric)
            refused[metric] = f"none of its features is defined on more than half the {len(history)} fit rows (at most {most})"
        return columns, refused

    def _matrix(self, features: pd.DataFrame) -> np.ndarray:
        return ((features - self.centre) / self.scale).to_numpy(dtype=float)

    @abstractmethod
    def _fit_model(self, matrix: np.ndarray) -> None: ...

    @abstractmethod
    def _model_raw(self, matrix: np.ndarray) -> np.ndarray: ...

    def _contributions(self, matrix: np.ndarray) -> np.ndarray:
        """Per row and feature, how far it is from normal (the explanation)."""
        return np.abs(matrix)

    def _raw(self, frame):
        # an update's kept rows fill the features' windows; the model reads only the new rows (a third of knn_distance's call)
        matrix = self._matrix(self._filled(self.features(frame)))[self._first_scored :]
        top = self._contributions(matrix).argmax(axis=1)
        contributor = np.full(len(frame), None, dtype=object)  # none for the kept rows: their scores are dropped
        contributor[self._first_scored :] = np.asarray(self.columns, dtype=object)[top]
        metric = np.array([name and contributing_metric(name) for name in contributor], dtype=object)
        low, high = _typical_ranges(frame, metric)
        nothing_measured = frame[self._learned_metrics(frame)].isna().all(axis=1).to_numpy()  # a gap is not scored
        raw = np.full(len(frame), np.nan)
        raw[self._first_scored :] = self._model_raw(matrix)
        raw[nothing_measured] = np.nan
        return pd.DataFrame({"raw": raw, "expected_low": low, "expected_high": high, "contributor": contributor},
                            index=frame.index)

    def _learned_metrics(self, frame: pd.DataFrame) -> list[str]:
        return [metric for metric in metric_columns(frame) if metric not in self._not_learned]


def _typical_ranges(frame: pd.DataFrame, metric_per_row: np.ndarray, window: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """Each row's expected range of its contributing metric: median +- 3 MAD-sigmas of the rows before it (none for a
    row without a contributing metric)."""
    low, high = np.full(len(frame), np.nan), np.full(len(frame), np.nan)
    for metric in set(metric_per_row) - {None}:
        rows = metric_per_row == metric
        median, spread = past_median_spread(frame[metric].astype(float), window)
        low[rows] = (median - EXPECTED_SIGMAS * spread).to_numpy()[rows]
        high[rows] = (median + EXPECTED_SIGMAS * spread).to_numpy()[rows]
    return low, high


class IsolationForestDetector(FeatureModelDetector):
    """Isolation: how few random splits set the row apart (shorter path, more anomalous)."""

    name, family = "isolation_forest", "isolation"

    def _fit(self, history):
        super()._fit(history)
        # a tree's splits lie within the range of the rows it grew on: a row beyond it lands in the leaf of the
        # history's extremes, and a metric that never varied (an error rate at zero) has no split at all
        self.beyond_range = BeyondRange.fit(history, self._learned_metrics(history), f"{self.name} fitted on {len(history)} rows")

    def _fit_model(self, matrix):
        from sklearn.ensemble import IsolationForest

        self.model = IsolationForest(n_estimators=100, random_state=self.seed).fit(matrix)

    def _model_raw(self, matrix):
        return -self.model.score_samples(matrix)

    def _raw(self, frame):
        raw = super()._raw(frame)
        raw["beyond_range"], raw["beyond_metric"] = self.beyond_range.furthest(frame)  # taken out again by _levelled
        return raw

    def _levelled(self, raw):
        """The higher of the forest's level and ``BeyondRange``'s; a row whose out-of-range level is the higher is
        explained by that metric and its range in the history."""
        distance, metric = raw.pop("beyond_range").to_numpy(dtype=float), raw.pop("beyond_metric").to_numpy()
        scored = super()._levelled(raw)
        beyond = self.beyond_range.calibration.level(distance)
        higher = beyond > scored["score"].to_numpy()
        if higher.any():
            metric = metric[higher]
            scored.loc[higher, "score"] = beyond[higher]
            scored.loc[higher, "contributor"] = metric
            scored.loc[higher, "expected_low"] = self.beyond_range.low[metric].to_numpy()
            scored.loc[higher, "expected_high"] = self.beyond_range.high[metric].to_numpy()
        return scored


class KnnDistanceDetector(FeatureModelDetector):
    """Distance: mean distance to the ``k`` nearest normal rows."""

    name, family = "knn_distance", "density_distance"

    def __init__(self, k: int = 10, **kwargs):
        super().__init__(**kwargs)
        self.k = k

    def _fit_model(self, matrix):
        from sklearn.neighbors import NearestNeighbors

        self.model = NearestNeighbors(n_neighbors=min(self.k, len(matrix))).fit(matrix)

    def _model_raw(self, matrix):
        distances, _ = self.model.kneighbors(matrix)
        return distances.mean(axis=1)


class OneClassSvmDetector(FeatureModelDetector):
    """One-class: outside the RBF boundary drawn around normal rows."""

    name, family = "one_class_svm", "one_class"
    max_fit_rows = 2000

    def _fit_model(self, matrix):
        from sklearn.svm import OneClassSVM

        # a kernel ten times wider than scikit-learn's "scale": farther rows keep scoring higher
        # instead of all meeting the same floor a few spreads out
        self.model = OneClassSVM(kernel="rbf", gamma=0.1 / (matrix.shape[1] * matrix.var() + EPSILON), nu=0.05).fit(matrix)

    def _model_raw(self, matrix):
        return -self.model.decision_function(matrix)


class PcaReconstructionDetector(FeatureModelDetector):
    """Reconstruction: squared error of the row rebuilt from the principal components of normal rows.

    On a multivariate host this catches metrics that stop moving together; the feature whose
    reconstruction fails most is the contributor.
    """

    name, family = "pca_reconstruction", "reconstruction"

    def __init__(self, explained_variance: float = 0.9, **kwargs):
        super().__init__(**kwargs)
        self.explained_variance = explained_variance

    def _fit_model(self, matrix):
        from sklearn.decomposition import PCA

        # a history where nothing varies has no variance to share out (0 / 0): the model is its mean, as it should be
        with np.errstate(invalid="ignore"):
            self.model = PCA(n_components=self.explained_variance, svd_solver="full", random_state=self.seed).fit(matrix)

    def _residuals(self, matrix):
        return matrix - self.model.inverse_transform(self.model.transform(matrix))

    def _model_raw(self, matrix):
        return (self._residuals(matrix) ** 2).sum(axis=1)

    def _contributions(self, matrix):
        return np.abs(self._residuals(matrix))


# --- the ensemble ------------------------------------------------------------------------------


class EnsembleDetector(Detector):
    """The mean surprise of its members: fires when they agree, explained by the loudest.

    The default members are the two models of context: the trading calendar (seasonal_profile:
    is this value usual at this time) and the sequence (sequence_surprise: is it usual after
    what came before). One catches a stall that looks like the night, the other a new pattern at
    a usual level; a mean of many detectors dilutes them (docs/anomaly-detection.md).
    """

    name, family = "ensemble", "ensemble"

    def __init__(self, members: list[Detector] | None = None):
        self.members = members if members is not None else default_members()
        self.context_rows = max(member.context_rows for member in self.members)

    def _fit(self, history):
        self._learn_members(lambda member: member.fit(history))

    def _refit(self, history):
        """Each member retrains as it does alone (a learning member keeps learning); the combined level keeps its calibration.

        The members' levels are each calibrated already, so their mean keeps its scale. Calibrating
        it again would score the whole history in-sample every night, the anomalies it holds
        included: NAB 49.1 against 55.9 under cross_fit, at half the speed (docs/anomaly-detection.md).
        """
        self._learn_members(lambda member: member.refit(history))
        self._keep_context(history)
        return self

    def _learn_members(self, learn: Callable[[Detector], Detector]) -> None:
        for member in self.members:
            learn(member)
        self.context_rows = max(member.context_rows for member in self.members)

    def metrics_not_learned(self):
        """A metric any member could not learn, with each such member's reason (the others still score it)."""
        reasons: dict[str, list[str]] = {}
        for member in self.members:
            for metric, why in member.metrics_not_learned().items():
                reasons.setdefault(metric, []).append(f"{member.name}: {why}")
        return {metric: "; ".join(why) for metric, why in reasons.items()}

    def _raw(self, frame):
        return self._combined([member._scored(frame) for member in self.members], frame.index)

    def _streamed(self, new_rows):
        """Each member streams on (a learning member keeps learning); their levels are combined as in ``score``."""
        return self._levelled(self._combined([member._streamed(new_rows) for member in self.members], new_rows.index))

    def _combined(self, scored: list[pd.DataFrame], index: pd.Index) -> pd.DataFrame:
        levels = np.vstack([s["score"].to_numpy() for s in scored])
        loudest = levels.argmax(axis=0)
        rows = np.arange(len(index))
        pick = lambda column: np.vstack([s[column].to_numpy() for s in scored])[loudest, rows]  # noqa: E731
        return pd.DataFrame(
            {"raw": levels.mean(axis=0), "expected_low": pick("expected_low"), "expected_high": pick("expected_high"),
             "contributor": [f"{self.members[m].name}:{c}" for m, c in zip(loudest, pick("contributor"))]},
            index=index,
        )


DETECTORS: dict[str, type[Detector]] = {
    cls.name: cls
    for cls in (MedianMadDetector, EwmaControlChart, HoltWintersResidual, CusumDetector, SeasonalProfileDetector,
                MotifNoveltyDetector, SequenceSurpriseDetector, IsolationForestDetector, KnnDistanceDetector,
                OneClassSvmDetector, PcaReconstructionDetector, EnsembleDetector)
}


def default_members() -> list[Detector]:
    return [SeasonalProfileDetector(), SequenceSurpriseDetector()]


def detector_names(spec: str) -> list[str]:
    """``spec``: detector names, comma-separated, or ``all``; an unknown name is refused with the known ones."""
    names = list(DETECTORS) if spec == "all" else [name.strip() for name in spec.split(",")]
    if unknown := [name for name in names if name not in DETECTORS]:
        raise ValueError(f"{_unknown(unknown)}, or all")
    return names


def make_detector(name: str, **params) -> Detector:
    if name not in DETECTORS:
        raise ValueError(_unknown([name]))
    return DETECTORS[name](**params)


def _unknown(names: list[str]) -> str:
    return f"unknown detector{'s' if len(names) > 1 else ''} {', '.join(map(repr, names))}; known: {', '.join(DETECTORS)}"
