"""Features of metric time series, declared once and computed point in time.

A ``FeatureSet`` names its features and carries a version; ``compute_features`` turns a frame
of one source's metrics (a ``timestamp`` column and one column per metric, rows in time order)
into feature columns ``<metric>__<feature>``, plus calendar columns and, for several metrics,
cross-series columns. A feature at row t reads only rows up to t: rolling statistics describe
the rows before t, so the current value is compared with its past, never with its future.

On Spark, ``spark_features`` runs the same function once per series (``applyInPandas``), so a
model trained on features from a notebook sees the same numbers from a gold table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from perflake.simulator.calendar import HOLIDAYS, phase

MAD_TO_SIGMA = 1.4826
EPSILON = 1e-9
CALENDAR_PHASES = ("open", "regular", "close", "extended", "overnight", "weekend", "holiday")


@dataclass(frozen=True)
class Feature:
    """One feature per metric column: ``kind`` and its ``window`` in rows (the lag, span or window length)."""

    kind: str
    window: int = 0

    @property
    def name(self) -> str:
        return f"{self.kind}_{self.window}" if self.window else self.kind


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


def robust_z(values: pd.Series, window: int) -> pd.Series:
    """(x - median of the previous rows) / their MAD-sigma."""
    median, spread = past_median_spread(values, window)
    return (values - median) / (spread + EPSILON)


def seasonal_z(values: pd.Series, slots: pd.Series) -> pd.Series:
    """x against the mean and spread (standard deviation) of the earlier measured rows in the same seasonal slot.

    Running sums per slot, not a Python call per slot: streaming scorers compute it for every row.
    The sums are of deviations from the slot's first measured value (an earlier row), so the sum
    of squares keeps its precision on large values (a byte counter's squares exceed 2^53).
    """
    groups = slots.to_numpy()
    deviation = values - values.groupby(groups).transform("first")

    def over_earlier_rows(column: pd.Series) -> pd.Series:
        return column.groupby(groups).cumsum() - column

    measured = deviation.fillna(0.0)  # a missing value adds nothing to the sums nor to the count
    count = over_earlier_rows(values.notna().astype(float))
    mean = over_earlier_rows(measured) / count
    variance = (over_earlier_rows(measured**2) - count * mean**2) / (count - 1)
    # three earlier rows of the slot at least: the spread of one or two is no spread
    return ((deviation - mean) / (np.sqrt(variance.clip(lower=0.0)) + EPSILON)).where(count >= 3)


def _metric_feature(values: pd.Series, feature: Feature, slots: pd.Series) -> pd.Series:
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
            return seasonal_z(values, slots)
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


def compute_features(frame: pd.DataFrame, feature_set: FeatureSet) -> pd.DataFrame:
    """Feature columns for ``frame`` (``timestamp`` + one numeric column per metric, in time order)."""
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
            columns[f"{metric}__{feature.name}"] = _metric_feature(values, feature, slots)
    result = pd.DataFrame(columns, index=frame.index)
    if feature_set.cross_series and len(metrics) > 1:
        zs = pd.DataFrame({m: robust_z(frame[m].astype(float), 60) for m in metrics}).abs()
        result["cross__max_abs_robust_z"] = zs.max(axis=1)
        result["cross__mean_abs_robust_z"] = zs.mean(axis=1)
        result["cross__n_over_3"] = (zs > 3).sum(axis=1)
    if feature_set.calendar:
        result = result.join(calendar_features(frame["timestamp"], feature_set.timezone))
    return result


def spark_features(df, feature_set: FeatureSet, keys: list[str], metrics: list[str], time_column: str = "timestamp"):
    """The same features on a Spark DataFrame, one pandas call per series (``keys``), in time order."""
    from pyspark.sql import types as T

    sample = compute_features(_empty_sample(metrics), feature_set)
    key_fields = [df.schema[key] for key in keys]
    feature_fields = [T.StructField(name, T.BooleanType() if pd.api.types.is_bool_dtype(dtype) else T.DoubleType())
                      for name, dtype in sample.dtypes.items()]
    schema = T.StructType([*key_fields, T.StructField(time_column, T.TimestampType()), *feature_fields])
    numeric = {name: float for name, dtype in sample.dtypes.items() if not pd.api.types.is_bool_dtype(dtype)}

    def per_series(pdf: pd.DataFrame) -> pd.DataFrame:
        pdf = pdf.sort_values(time_column).reset_index(drop=True)
        series = pdf[[time_column, *metrics]].rename(columns={time_column: "timestamp"})
        features = compute_features(series, feature_set).astype(numeric)
        return pd.concat([pdf[[*keys, time_column]], features], axis=1)

    return df.select(*keys, time_column, *metrics).groupBy(*keys).applyInPandas(per_series, schema)


def _empty_sample(metrics: list[str]) -> pd.DataFrame:
    timestamps = pd.Series(pd.date_range("2026-01-05", periods=3, freq="min", tz="UTC"))
    return pd.DataFrame({"timestamp": timestamps, **{m: [1.0, 2.0, 3.0] for m in metrics}})


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
