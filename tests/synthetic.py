"""Small synthetic metric series with known anomalies, for the detector tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

PERIOD = 48  # rows per season (a day at 30-minute grain)
ROWS = 2400
FIT_ROWS = 960  # 20 clean seasons to learn from
START, LENGTH = 1600, 60  # where each anomaly is put, and for how long
KINDS = ("spike", "level_shift", "drift", "variance_change", "seasonal_break")


def clean(seed: int = 0, rows: int = ROWS) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = np.arange(rows)
    values = 100 + 20 * np.sin(2 * np.pi * t / PERIOD) + rng.normal(0, 2, rows)
    return pd.DataFrame({"timestamp": pd.date_range("2026-01-05", periods=rows, freq="30min", tz="UTC"), "value": values})


def with_anomaly(kind: str, seed: int = 0) -> pd.DataFrame:
    """The clean series with one anomaly of ``kind`` starting at row START."""
    frame = clean(seed)
    values = frame["value"].to_numpy().copy()
    rng = np.random.default_rng(seed + 1)
    span = slice(START, START + LENGTH)
    if kind == "spike":
        values[START] += 40
    elif kind == "level_shift":
        values[START:] += 25
    elif kind == "drift":
        values[START:] += np.arange(len(values) - START) * 0.5
    elif kind == "variance_change":
        values[span] += rng.normal(0, 12, LENGTH)
    elif kind == "seasonal_break":  # the cycle turns upside down for a while
        t = np.arange(START, START + LENGTH)
        values[span] -= 40 * np.sin(2 * np.pi * t / PERIOD)
    else:
        raise ValueError(kind)
    frame["value"] = values
    return frame


def gold_rows(frame: pd.DataFrame, **source) -> pd.DataFrame:
    """A wide frame of one source as the gold rollups hold it: one row per minute and metric, gaps left out."""
    long = frame.rename(columns={"timestamp": "window_at"}).melt("window_at", var_name="metric", value_name="mean_value")
    return long.dropna(subset=["mean_value"]).assign(**source)
