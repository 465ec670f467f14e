"""Features of metric time series, declared once and computed point in time.

A ``FeatureSet`` names its features and carries a version; ``compute_features`` turns a frame
of one source's metrics (a ``timestamp`` column and one column per metric, rows in time order)
into feature columns ``<metric>__<feature>``, plus calendar columns and, for several metrics,
cross-series columns. A feature at row t reads only rows up to t: rolling statistics describe
the rows before t, so the current value is compared with its past, never with its future.

Gold holds metrics long (one row per source, minute and metric): ``source_features`` puts one
source's metrics side by side, computes its features and gives them back long, and on Spark
``spark_features`` runs it once per source (``applyInPandas``), so a model trained on features
from a notebook sees the same numbers as the feature table built from gold
(``jobs/metric_features.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd

from perflake.simulator.calendar import HOLIDAYS, phase

MAD_TO_SIGMA = 1.4826
EPSILON = 1e-9
CALENDAR_PHASES = ("open", "regular", "close", "extended", "overnight", "weekend", "holiday")
CROSS_SERIES_WINDOW = 60  # rows of each metric's robust z in the cross-series features


@dataclass(frozen=True)
class Feature:
    """One feature per metric column: ``kind`` and its ``window`` in rows (the lag, span or window length)."""

    kind: str
    window: int = 0

    @property
    def name(self) -> str:
        return f"{self.kind}_{self.window}" if self.window else self.kind

    @property
    def lookback(self) -> int | None:
        """How many rows before a row its value reads: computed with that many earlier rows, a row's value is the one
        a pass over the whole series gives. ``seasonal_z`` reads its slots' sums instead (``seasonal_state``). None:
        every earlier row (an EWM statistic: after a metric stops reporting it holds a mean of the rows before)."""
        w = self.window
        match self.kind:
            case "value" | "seasonal_z":
                return 0
            case "lag" | "diff" | "pct_change" | "rolling_mean" | "rolling_std" | "rolling_min" | "rolling_max" \
                    | "zscore" | "volatility_ratio":
                return w
            case "robust_z":  # the median of the w deviations before a row, each from the median of the w rows before it
                return 2 * w - 1
            case "diff_robust_z":  # a difference reads one row more
                return 2 * w
            case "ewm_mean" | "ewm_std":
                return None
        raise ValueError(f"unknown feature kind {self.kind!r}")


@dataclass(frozen=True)
class FeatureSet:
    name: str
    version: int
    features: tuple[Feature, ...]
    calendar: bool = False
    cross_series: bool = False
    timezone: str = "America/New_York"
    # slot of the seasonal profile: hour_of_day, hour_of_week, calendar_phase or phase_hour (phase and hour of day)
    seasonal_slot: str = "hour_of_week"

    @property
    def key(self) -> str:
        return f"{self.name}.v{self.version}"

    @property
    def lookback(self) -> int | None:
        """How many rows before a row its features read (``Feature.lookback``), the cross-series ones' included."""
        cross = [Feature("robust_z", CROSS_SERIES_WINDOW)] if self.cross_series else []
        lookbacks = [feature.lookback for feature in (*self.features, *cross)]
        return None if None in lookbacks else max(lookbacks, default=0)


def _past(values: pd.Series) -> pd.Series:
    return values.shift(1)


def _rolling(values: pd.Series, window: int) -> pd.core.window.Rolling:
    return _past(values).rolling(window, min_periods=max(2, window // 4))


def past_median_spread(values: pd.Series, window: int) -> tuple[pd.Series, pd.Series]:
    """The median of the previous ``window`` rows and their MAD, scaled to a normal sigma."""
    median = _rolling(values, window).median()
    mad = (_past(values) - median).abs().rolling(window, min_periods=max(2, window // 4)).median()
    return median, MAD_TO_SIGMA * mad


def robust_sigma(values: pd.Series) -> float:
    """MAD scaled to a normal sigma; the standard deviation where most values are equal (MAD 0)."""
    mad = (values - values.median()).abs().median()
    return float(MAD_TO_SIGMA * mad) if mad > 0 else float(values.std(ddof=0) or 0.0)


def grouped_median_sigma(values: np.ndarray, groups: np.ndarray) -> tuple[pd.Series, pd.Series]:
    """Each group's median and ``robust_sigma``, by group: one pass of groupby, not a call per group."""
    frame = pd.DataFrame({"value": values, "group": groups})
    by_group = frame.groupby("group")["value"]
    medians = by_group.median()
    mad = (frame["value"] - frame["group"].map(medians)).abs().groupby(frame["group"]).median()
    return medians, (MAD_TO_SIGMA * mad).where(mad > 0, by_group.std(ddof=0).fillna(0.0))


def robust_z(values: pd.Series, window: int) -> pd.Series:
    """(x - median of the previous rows) / their MAD-sigma."""
    median, spread = past_median_spread(values, window)
    return (values - median) / (spread + EPSILON)


def seasonal_z(values: pd.Series, slots: pd.Series, earlier: pd.DataFrame | None = None) -> pd.Series:
    """x against the mean and spread (standard deviation) of the earlier measured rows in the same seasonal slot.

    Running sums per slot, one groupby for all slots: streaming scorers compute it for every row.
    The sums are of deviations from the slot's first measured value (an earlier row), so the sum
    of squares keeps its precision on large values (a byte counter's squares exceed 2^53).
    ``earlier``: the slots' sums over the rows before ``values`` (``seasonal_sums``), for a stream
    read a few rows at a time; without it, ``values`` are all there is. A row without a slot has none.
    """
    rows = _SlotRows(values, slots, earlier)
    # each slot summed apart (pandas): one cumulative sum across slots would carry a loud slot's rounding errors into a
    # quiet slot's near-zero spread, which is divided into with only EPSILON added
    running = rows.by_slot().cumsum().to_numpy()
    count, total, squares = (rows.prior[rows.codes] + running - rows.shares).T
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = total / count
        variance = (squares - count * mean**2) / (count - 1)
        z = (rows.deviation - mean) / (np.sqrt(variance.clip(min=0.0)) + EPSILON)
    # three earlier rows of the slot at least: the spread of one or two is no spread
    return pd.Series(np.where(count >= 3, z, np.nan), index=values.index)


SLOT_SUMS = ("first", "count", "total", "squares")


def seasonal_sums(values: pd.Series, slots: pd.Series, earlier: pd.DataFrame | None = None) -> pd.DataFrame:
    """What ``seasonal_z`` reads of these rows and ``earlier``'s, per slot (``SLOT_SUMS``): the deviations' origin
    (``first``, the slot's first measured value), and the ``count``, ``total`` and sum of ``squares`` of its measured
    deviations."""
    rows = _SlotRows(values, slots, earlier)
    added = rows.by_slot().sum().reindex(range(len(rows.slots)), fill_value=0.0).to_numpy()
    these = np.column_stack([rows.origin[:-1], rows.prior[:-1] + added])
    if earlier is None:
        return pd.DataFrame(these, index=rows.slots, columns=SLOT_SUMS)
    slots = earlier.index.union(rows.slots)  # with any slot first seen here
    combined = earlier.reindex(index=slots, columns=SLOT_SUMS).to_numpy(dtype=float)
    combined[slots.get_indexer(rows.slots)] = these
    return pd.DataFrame(combined, index=slots, columns=SLOT_SUMS)


class _SlotRows:
    """Rows in their slots, in numpy: each row's slot (``codes`` into ``slots``, -1 for none), its deviation from the
    slot's origin (``earlier``'s, else the slot's first measured value here), and its share of the count, total and
    squares (``shares``); per slot, the origin and ``earlier``'s sums (``prior``, 0 where there are none), each
    with one slot more at the end, the one a row without a slot (code -1) reads."""

    def __init__(self, values: pd.Series, slots: pd.Series, earlier: pd.DataFrame | None):
        self.codes, self.slots = pd.factorize(slots, sort=True)
        x = values.to_numpy(dtype=float)
        measured = ~np.isnan(x) & (self.codes >= 0)
        measured_rows = np.flatnonzero(measured)
        seen, first_row = np.unique(self.codes[measured_rows], return_index=True)
        kept = np.full((len(self.slots) + 1, len(SLOT_SUMS)), np.nan)
        if earlier is not None:
            kept[:-1] = earlier.reindex(index=self.slots, columns=SLOT_SUMS).to_numpy(dtype=float)
        self.origin = kept[:, 0].copy()
        unset = np.isnan(self.origin[seen])
        self.origin[seen[unset]] = x[measured_rows[first_row[unset]]]
        self.prior = np.nan_to_num(kept[:, 1:])
        self.deviation = x - self.origin[self.codes]
        share = np.where(measured, self.deviation, 0.0)  # a missing value adds nothing to the sums nor to the count
        self.shares = np.column_stack([measured.astype(float), share, share**2])

    def by_slot(self):
        """The rows' shares grouped by their slot's code."""
        return pd.DataFrame(self.shares).groupby(self.codes)


def _metric_feature(values: pd.Series, feature: Feature, slots: pd.Series, earlier: pd.DataFrame | None) -> pd.Series:
    w = feature.window
    match feature.kind:
        case "value":
            return values
        case "lag":
            return values.shift(w)
        case "diff":
            return values - values.shift(w)
        case "pct_change":
            return (values - values.shift(w)) / (values.shift(w).abs() + EPSILON)
        case "rolling_mean":
            return _rolling(values, w).mean()
        case "rolling_std":
            return _rolling(values, w).std()
        case "rolling_min":
            return _rolling(values, w).min()
        case "rolling_max":
            return _rolling(values, w).max()
        case "ewm_mean":
            return _past(values).ewm(span=w, adjust=True).mean()
        case "ewm_std":
            return _past(values).ewm(span=w, adjust=True).std()
        case "zscore":
            rolling = _rolling(values, w)
            return (values - rolling.mean()) / (rolling.std() + EPSILON)
        case "robust_z":
            return robust_z(values, w)
        case "diff_robust_z":
            return robust_z(values.diff(), w)
        case "volatility_ratio":  # spread of the last w/8 rows against the last w
            return _rolling(values, max(2, w // 8)).std() / (_rolling(values, w).std() + EPSILON)
        case "seasonal_z":
            return seasonal_z(values, slots, earlier)
    raise ValueError(f"unknown feature kind {feature.kind!r}")


def seasonal_slots(timestamps: pd.Series, slot: str, timezone: str) -> pd.Series:
    local = pd.to_datetime(timestamps, utc=True).dt.tz_convert(timezone)
    if slot == "hour_of_day":
        return local.dt.hour
    if slot == "hour_of_week":
        return local.dt.dayofweek * 24 + local.dt.hour
    if slot in ("calendar_phase", "phase_hour"):
        phases = _phases(local, timezone)
        hours = local.dt.hour
        hours = hours.astype("Int64") if hours.hasnans else hours  # a row without a time: hours still read "9", not "9.0"
        return phases if slot == "calendar_phase" else phases + ":" + hours.astype(str)
    raise ValueError(f"unknown seasonal slot {slot!r}: hour_of_day, hour_of_week, calendar_phase or phase_hour")


def _phases(local: pd.Series, timezone: str) -> pd.Series:
    """The trading-calendar phase of each local time; none (NaN) for a row without a time, so it is in no slot."""
    return pd.Series([np.nan if t is pd.NaT else phase(t.timestamp(), timezone) for t in local], index=local.index, dtype=object)


def calendar_features(timestamps: pd.Series, timezone: str) -> pd.DataFrame:
    """Position in the day, week and trading calendar (session phases, holidays)."""
    local = pd.to_datetime(timestamps, utc=True).dt.tz_convert(timezone)
    hours = local.dt.hour + local.dt.minute / 60
    phases = _phases(local, timezone)
    frame = pd.DataFrame(
        {
            "hour_sin": np.sin(2 * np.pi * hours / 24),
            "hour_cos": np.cos(2 * np.pi * hours / 24),
            "day_of_week": local.dt.dayofweek,
            "is_holiday": local.dt.date.isin(HOLIDAYS),
        },
        index=timestamps.index,
    )
    for name in CALENDAR_PHASES:
        frame[f"is_{name}"] = phases == name
    return frame


def metric_columns(frame: pd.DataFrame) -> list[str]:
    """The metric columns of a frame of one source: all but ``timestamp``."""
    return [column for column in frame.columns if column != "timestamp"]


def compute_features(frame: pd.DataFrame, feature_set: FeatureSet, earlier: dict[str, pd.DataFrame] | None = None
                     ) -> pd.DataFrame:
    """Feature columns for ``frame`` (``timestamp`` + one numeric column per metric, in time order).

    ``earlier``: per metric, the seasonal slots' sums over the rows before ``frame`` (``seasonal_state``), for a
    stream read a few rows at a time; the rolling features read the rows of ``frame`` only.
    """
    if "timestamp" not in frame.columns:
        raise ValueError("compute_features needs a 'timestamp' column")
    metrics = metric_columns(frame)
    if not metrics:
        raise ValueError("compute_features needs at least one metric column besides 'timestamp'")
    slots = seasonal_slots(frame["timestamp"], feature_set.seasonal_slot, feature_set.timezone)
    columns = {}
    for metric in metrics:
        values = frame[metric].astype(float)
        for feature in feature_set.features:
            columns[f"{metric}__{feature.name}"] = _metric_feature(values, feature, slots, (earlier or {}).get(metric))
    result = pd.DataFrame(columns, index=frame.index)
    if feature_set.cross_series and len(metrics) > 1:
        zs = pd.DataFrame({m: robust_z(frame[m].astype(float), CROSS_SERIES_WINDOW) for m in metrics}).abs()
        result["cross__max_abs_robust_z"] = zs.max(axis=1)
        result["cross__mean_abs_robust_z"] = zs.mean(axis=1)
        result["cross__n_over_3"] = (zs > 3).sum(axis=1)
    if feature_set.calendar:
        result = result.join(calendar_features(frame["timestamp"], feature_set.timezone))
    return result


def seasonal_state(frame: pd.DataFrame, feature_set: FeatureSet, earlier: dict[str, pd.DataFrame] | None = None
                   ) -> dict[str, pd.DataFrame]:
    """Per metric, the seasonal slots' sums over ``frame``'s rows and ``earlier``'s (``seasonal_sums``): what
    ``compute_features`` needs to read the rows after them as one pass would."""
    slots = seasonal_slots(frame["timestamp"], feature_set.seasonal_slot, feature_set.timezone)
    return {metric: seasonal_sums(frame[metric].astype(float), slots, (earlier or {}).get(metric))
            for metric in metric_columns(frame)}


def source_features(rows: pd.DataFrame, feature_set: FeatureSet, time_column: str = "window_at",
                    metric_column: str = "metric", value_column: str = "mean_value", since: date | None = None,
                    earlier: dict[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    """Features of one source from long rows (one per time and metric, as the gold rollups hold them), long too.

    The source's metrics are put side by side in time order and go through ``compute_features``.
    One row per time and feature: ``time_column``, ``feature_set`` (its key, e.g.
    ``detector_features.v1``), ``metric`` (none for the source's calendar and cross-series
    features), ``feature`` and ``value`` (a calendar flag as 0 or 1). A feature not defined at a
    time (its window still filling, its metric not measured) has no row. Two values for one time
    and metric are an error naming them, not a silent pick.

    ``since``: only the rows from that day on (UTC), as a pass over all of ``rows`` gives them. Only the feature set's
    ``lookback`` rows before that day go through the features; the rows before those add to the seasonal slots'
    sums alone (``seasonal_state``; all rows go through a feature set with EWM statistics). ``earlier``: the sums
    over the source's rows before ``rows`` (``source_seasonal_states``), so that ``rows`` need only start at its
    ``lookback_from``.
    """
    lookback = feature_set.lookback if earlier is None else _finite_lookback(feature_set)
    frame, times = _side_by_side(rows, time_column, metric_column, value_column, earlier)
    first = 0 if since is None else _first_row_on(times, since)
    start = 0 if lookback is None else max(0, first - lookback)
    sums = seasonal_state(frame.iloc[:start], feature_set, earlier) if start else earlier
    features = compute_features(frame.iloc[start:], feature_set, sums).astype(float).iloc[first - start:]
    metrics = metric_columns(frame)
    per_metric = {f"{metric}__{feature.name}": (metric, feature.name) for metric in metrics for feature in feature_set.features}
    long = features.set_axis(times[first:].rename(time_column)).reset_index().melt(time_column, var_name="column")
    long = long.dropna(subset=["value"])
    named = long["column"].map(lambda column: per_metric.get(column, (None, column)))
    return pd.DataFrame({time_column: long[time_column], "feature_set": feature_set.key, "metric": named.str[0],
                         "feature": named.str[1], "value": long["value"]}).reset_index(drop=True)


STATE_COLUMNS = ("as_of_date", "lookback_from", "metric", "slot", *SLOT_SUMS)


def source_seasonal_states(rows: pd.DataFrame, feature_set: FeatureSet, time_column: str = "window_at",
                           metric_column: str = "metric", value_column: str = "mean_value", since: date | None = None,
                           earlier: dict[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    """The seasonal slots' sums a later ``source_features`` starts from, as of each day (UTC) from ``since`` (else
    the first day of ``rows``) to the day after the last, long (``STATE_COLUMNS``, the slot as text).

    As of a day: the sums over the rows before ``lookback_from``, the first of the ``lookback`` rows before that
    day, so its features computed from ``lookback_from`` on with those sums are a whole pass's. They depend on the
    rows before the day alone. ``earlier``: the sums over the source's rows before ``rows``. While the sums are of no
    row, a day has one row without metric or slot, saying where the source's rows start.
    """
    lookback = _finite_lookback(feature_set)
    frame, times = _side_by_side(rows, time_column, metric_column, value_column, earlier)
    first_day = since or times[0].date()
    states, sums, summed = [], earlier or {}, 0
    for day in pd.date_range(first_day, times[-1].date() + timedelta(days=1), freq="D").date:
        start = max(0, _first_row_on(times, day) - lookback)
        if start > summed:
            sums, summed = seasonal_state(frame.iloc[summed:start], feature_set, sums), start
        lookback_from = times[start] if start < len(times) else _day_start(times, day)
        per_metric = [metric_sums.set_axis(metric_sums.index.astype(str)).rename_axis("slot").reset_index().assign(metric=metric)
                      for metric, metric_sums in sums.items()]
        states += [part.assign(as_of_date=day, lookback_from=lookback_from) for part in per_metric or [pd.DataFrame(index=[0])]]
    if not states:  # a source silent since before ``since`` has no day to save here: its earlier days' sums serve
        return pd.DataFrame(columns=list(STATE_COLUMNS))
    long = pd.concat(states, ignore_index=True).reindex(columns=list(STATE_COLUMNS))
    names = long[["metric", "slot"]].astype(object)  # text, none where the sums are of no row (not a float NaN)
    return long.assign(**names.where(names.notna(), None))


def saved_sums(states: pd.DataFrame, feature_set: FeatureSet) -> dict[str, pd.DataFrame] | None:
    """``source_seasonal_states``' rows of one day back as the per-metric sums ``source_features`` reads (None: no
    rows, the source has no saved state)."""
    if states.empty:
        return None
    states = states.dropna(subset=["metric"])  # a row of a source whose sums are of no row yet
    hourly = feature_set.seasonal_slot in ("hour_of_day", "hour_of_week")  # the other slots are text already
    slots = states["slot"].astype(int) if hourly else states["slot"]
    indexed = states.set_index(slots.rename(None))
    return {metric: sums[list(SLOT_SUMS)].astype(float) for metric, sums in indexed.groupby("metric")}


def _finite_lookback(feature_set: FeatureSet) -> int:
    """The feature set's ``lookback``, refusing by name one that reads every earlier row (an EWM statistic): its
    features cannot start from seasonal sums, so it has none to save either."""
    if feature_set.lookback is None:
        raise ValueError(f"{feature_set.key} reads every earlier row (an EWM statistic): it has no seasonal sums to "
                         "start from")
    return feature_set.lookback


def _side_by_side(rows: pd.DataFrame, time_column: str, metric_column: str, value_column: str,
                  earlier: dict[str, pd.DataFrame] | None) -> tuple[pd.DataFrame, pd.DatetimeIndex]:
    """A source's long rows as a frame of ``timestamp`` and one column per metric, in time order, and its times; a
    metric of ``earlier`` (the sums of earlier rows) without a row here is a column of none, as in a pass over every
    row."""
    repeated = rows[rows.duplicated([time_column, metric_column])]
    if len(repeated):
        raise ValueError(f"more than one {value_column} for {metric_column} {repeated[metric_column].iloc[0]!r} "
                         f"at {repeated[time_column].iloc[0]}: a source's features need one value per time and metric")
    series = rows.pivot(index=time_column, columns=metric_column, values=value_column).rename_axis(columns=None)
    series = series.reindex(columns=sorted({*series.columns, *(earlier or {})}))
    return series.rename_axis(index="timestamp").reset_index(), pd.DatetimeIndex(series.index)


def _day_start(times: pd.DatetimeIndex, day: date) -> pd.Timestamp:
    """Midnight UTC of ``day``, naive if ``times`` are (naive times are UTC's)."""
    start = pd.Timestamp(day, tz="UTC")
    return start if times.tz else start.tz_localize(None)


def _first_row_on(times: pd.DatetimeIndex, day: date) -> int:
    """The position of the first of ``times`` (in time order) on or after ``day`` in UTC."""
    return int(times.searchsorted(_day_start(times, day)))


def spark_features(rows, feature_set: FeatureSet, keys: list[str], time_column: str = "window_at",
                   metric_column: str = "metric", value_column: str = "mean_value", since: date | None = None,
                   states=None):
    """``source_features`` on Spark: one pandas call per source (``keys``, e.g. service, endpoint, host), the keys kept.

    ``since``: the rows from that day on. ``states``: each source's sums of one day (``spark_seasonal_states``) and
    its rows from their ``lookback_from`` on (``rows_after_states``); without, each source's whole history is read."""
    from pyspark.sql import types as T

    schema = T.StructType([*(rows.schema[key] for key in keys), T.StructField(time_column, T.TimestampType()),
                           T.StructField("feature_set", T.StringType()), T.StructField("metric", T.StringType()),
                           T.StructField("feature", T.StringType()), T.StructField("value", T.DoubleType())])
    return _per_source(rows, states, feature_set, keys, [time_column, metric_column, value_column], schema,
                       lambda source, earlier: source_features(source, feature_set, time_column, metric_column,
                                                               value_column, since, earlier))


def spark_seasonal_states(rows, feature_set: FeatureSet, keys: list[str], time_column: str = "window_at",
                          metric_column: str = "metric", value_column: str = "mean_value", since: date | None = None,
                          states=None):
    """``source_seasonal_states`` on Spark, per source (``keys``), the keys kept; ``states`` as ``spark_features``."""
    from pyspark.sql import types as T

    sums = [T.StructField(column, T.DoubleType()) for column in SLOT_SUMS]
    schema = T.StructType([*(rows.schema[key] for key in keys), T.StructField("as_of_date", T.DateType()),
                           T.StructField("lookback_from", T.TimestampType()), T.StructField("metric", T.StringType()),
                           T.StructField("slot", T.StringType()), *sums])
    return _per_source(rows, states, feature_set, keys, [time_column, metric_column, value_column], schema,
                       lambda source, earlier: source_seasonal_states(source, feature_set, time_column, metric_column,
                                                                      value_column, since, earlier))


def _per_source(rows, states, feature_set: FeatureSet, keys: list[str], columns: list[str], schema, compute):
    """``compute(source's rows, its saved sums or None)`` per source of ``rows`` (a source in ``states`` alone has no
    rows: nothing), with the source's keys."""
    def with_keys(source: pd.DataFrame, state: pd.DataFrame | None) -> pd.DataFrame:
        if source.empty:
            return pd.DataFrame(columns=schema.fieldNames())
        result = compute(source, None if state is None else saved_sums(state, feature_set))
        return result.assign(**{key: source[key].iloc[0] for key in keys})[schema.fieldNames()]

    grouped = rows.select(*keys, *columns).groupBy(*keys)
    if states is None:
        return grouped.applyInPandas(lambda source: with_keys(source, None), schema)
    saved = states.select(*keys, "metric", "slot", *SLOT_SUMS).groupBy(*keys)
    return grouped.cogroup(saved).applyInPandas(with_keys, schema)


# The feature set the model-based detectors read (a new version when its features change).
DETECTOR_FEATURES = FeatureSet(
    name="detector_features",
    version=1,
    features=(
        Feature("robust_z", 60),
        Feature("diff_robust_z", 60),
        Feature("zscore", 300),
        Feature("volatility_ratio", 120),
        Feature("seasonal_z"),
    ),
)

FEATURE_SETS = {feature_set.key: feature_set for feature_set in (DETECTOR_FEATURES,)}


def metric_features(rollups, feature_set: FeatureSet, rollup_column: str = "mean_value", since: date | None = None,
                    states=None):
    """gold.metric_rollups_1m -> gold.metric_features_1m: ``feature_set`` of each source's metrics, minute by minute.

    ``rollup_column`` is the rollup the features are of (the minute's mean, p95, error rate...);
    the rows say which, beside the feature set's key. ``since``: the minutes from that day on (``source_features``).
    ``states``: each source's saved sums (``latest_states``), ``rollups`` then being ``rows_after_states``.
    """
    from pyspark.sql import functions as F

    features = spark_features(rollups, feature_set, *_rollup_arguments(rollups, rollup_column), since, states)
    return features.select("*", F.lit(rollup_column).alias("rollup_column"), F.to_date("window_at").alias("window_date"))


def metric_feature_states(rollups, feature_set: FeatureSet, rollup_column: str = "mean_value",
                          since: date | None = None, states=None):
    """gold.metric_rollups_1m -> gold.metric_feature_states: each source's seasonal sums as of each day from ``since``
    (``source_seasonal_states``), for a later ``metric_features`` to start from; arguments as ``metric_features``."""
    from pyspark.sql import functions as F

    sums = spark_seasonal_states(rollups, feature_set, *_rollup_arguments(rollups, rollup_column), since, states)
    return sums.select("*", F.lit(feature_set.key).alias("feature_set"), F.lit(rollup_column).alias("rollup_column"))


def _rollup_arguments(rollups, rollup_column: str) -> tuple[list[str], str, str, str]:
    """The rollups' source keys, time, metric and value columns, refusing a rollup column they lack by name."""
    from perflake.pipeline.gold import METRIC_SOURCE

    if rollup_column not in rollups.columns:
        raise ValueError(f"the rollups have no column {rollup_column!r}; they have {', '.join(rollups.columns)}")
    return list(METRIC_SOURCE), "window_at", "metric", rollup_column


def latest_states(states, since: date):
    """Each source's rows of gold.metric_feature_states as of the latest day on or before ``since``: a run from
    ``since`` can start from them (``source_seasonal_states``)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from perflake.pipeline.gold import METRIC_SOURCE

    dated = states.where(F.col("as_of_date") <= F.lit(since))
    latest = F.max("as_of_date").over(Window.partitionBy(*METRIC_SOURCE))
    return dated.withColumn("latest", latest).where(F.col("as_of_date") == F.col("latest")).drop("latest")


def rows_after_states(rollups, states, since: date):
    """The rollups a run from ``since`` starting from ``states`` (``latest_states``) reads: of each source with a row
    from ``since`` on, its rows from its sums' ``lookback_from`` on, or every row where it has none (new since the
    run that saved them). Only gold's days from the earliest such ``lookback_from`` on are scanned (every day when
    a source has no sums); a source without a row from ``since`` on is not read, as it has no features to compute."""
    from pyspark.sql import functions as F

    from perflake.pipeline.gold import METRIC_SOURCE

    active = rollups.where(F.col("window_date") >= F.lit(since)).select(*METRIC_SOURCE).distinct()
    saved = states.select(*METRIC_SOURCE, "lookback_from").distinct()
    on_keys = [active[key].eqNullSafe(saved[key]) for key in METRIC_SOURCE]
    starts = active.join(saved, on_keys, "left").select(*(active[key] for key in METRIC_SOURCE), saved["lookback_from"],
                                                        F.to_date(saved["lookback_from"]).alias("lookback_date"))
    collected = starts.collect()  # one scan of the day's partitions: the plan of the read below
    dates = [row.lookback_date for row in collected]
    scanned = rollups if None in dates else rollups.where(F.col("window_date") >= F.lit(min(dates, default=since)))
    starts = rollups.sparkSession.createDataFrame(collected, starts.schema).drop("lookback_date")
    joined = scanned.join(F.broadcast(starts), [scanned[key].eqNullSafe(starts[key]) for key in METRIC_SOURCE])
    after = starts["lookback_from"].isNull() | (scanned["window_at"] >= starts["lookback_from"])
    return joined.where(after).select(scanned["*"])
