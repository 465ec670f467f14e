"""False alerts on healthy series: how often each detector alerts at the fixed level where nothing is wrong, against
what its level claims (docs/benchmarks.md has the figures).

    .venv/bin/python benchmarks/false_alerts.py [--detector all] [--series-per-kind 10] [--rows 4000] [--grain 5min]
        [--refit-every 1D] [--json FILE]

A level of 4 says "1 in 10,000 of normal history", so a detector whose levels hold puts at most about one row
in 10,000 of a series with no anomaly in it at that level, and alerts at most as often (the refractory rule
only takes alerts away; the rows at the level show what it took). Each kind of healthy series is drawn from a
known distribution, the shapes performance metrics take: Gaussian noise, heavy tails (Student's t, 5 degrees
of freedom), slow wander (AR(1), 0.9), small counts (Poisson, mean 4), a daily season, skew (log-normal), a
steady rise (a disk filling, traffic growing: ten noise sigmas over the series, so a fit history holds its
start), and rare errors (a healthy endpoint's error count: Poisson, mean 0.002, one error in about 500 rows,
so a fit history holds none, one or a few). Every detector is fitted on the first 15 % of each series, as the
evaluation fits a NAB file (its probation period), and scores the rest; no labels are involved, so nothing
here can be tuned to a benchmark's anomalies. ``--refit-every 1D`` retrains each detector nightly on the rows
before, as deployed (``perflake evaluate run --refit-every``). Rows are five minutes apart unless ``--grain``
says otherwise: at ``--grain 1h`` the fit history's 15 % spans days, not hours, and a calendar profile is
learned from a few values per slot (1,420 hourly rows are 9 days of history, as Yahoo's S5 files would give).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from perflake.anomaly import evaluate as ev
from perflake.anomaly.patterns import duration_text
from perflake.cli import detector_list, period

NOMINAL_PER_10K = 10_000 / 10**ev.FIXED_LEVEL
DAY = pd.Timedelta(days=1)
KINDS = ("gaussian", "heavy_tailed", "wandering", "counts", "daily", "skewed", "trending", "rare_errors")


def healthy_values(kind: str, rows: int, rng: np.random.Generator, day_rows: int) -> np.ndarray:
    """One healthy series of ``kind`` (see the module's docstring), ``day_rows`` rows a day: no anomaly anywhere in it."""
    if kind == "gaussian":
        return rng.normal(10, 1, rows)
    if kind == "heavy_tailed":
        return 10 + rng.standard_t(5, rows)
    if kind == "wandering":
        noise, values = rng.normal(0, 1, rows), np.empty(rows)
        values[0] = noise[0]
        for i in range(1, rows):
            values[i] = 0.9 * values[i - 1] + noise[i]
        return 10 + values
    if kind == "counts":
        return rng.poisson(4, rows).astype(float)
    if kind == "daily":
        return 50 + 20 * np.sin(2 * np.pi * np.arange(rows) / day_rows) + rng.normal(0, 2, rows)
    if kind == "skewed":
        return rng.lognormal(3, 0.5, rows)
    if kind == "trending":
        return 10 + np.linspace(0, 10, rows) + rng.normal(0, 1, rows)
    if kind == "rare_errors":
        return rng.poisson(0.002, rows).astype(float)
    raise ValueError(f"unknown kind of healthy series {kind!r}; known: {', '.join(KINDS)}")


def healthy_series(kind: str, seed: int, rows: int, grain: pd.Timedelta) -> ev.Series:
    """A NAB file without a labelled window, ``grain`` between rows, and evaluated as one."""
    frame = pd.DataFrame({"timestamp": pd.date_range("2026-01-05", periods=rows, freq=grain),
                          "value": healthy_values(kind, rows, np.random.default_rng(seed), DAY // grain)})
    return ev.nab_file_series(f"{kind}/{seed}", frame, [])


def false_alerts_per_10k(data: list[ev.Series], detector: str, workers: int,
                         refit_every: str | None = None) -> dict[str, dict[str, float]]:
    """Per kind: alerts at the fixed level per 10,000 scored rows (every one false), and the rows at that level per
    10,000 before the refractory rule took the alerts after the first away (a level held for hours is one alert)."""
    scored = ev.score_all(data, detector, {}, ev.DEFAULT_REFRACTORY_ROWS, workers, refit_every=refit_every)
    by_kind: dict[str, ev.EventMetrics] = {}
    for series in data:
        result = scored[series.name]
        metrics = ev.event_metrics(series.segment, result.levels >= ev.FIXED_LEVEL, result.rows_at_level(ev.FIXED_LEVEL))
        by_kind[series.category] = by_kind.get(series.category, ev.EventMetrics(0, 0, 0, 0)) + metrics
    return {kind: {"alerts": 10_000 * m.alerts / m.normal_rows, "rows_at_level": m.normal_rows_at_level_per_10k}
            for kind, m in by_kind.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--detector", type=detector_list, default="all", help="comma-separated detector names, or all")
    parser.add_argument("--series-per-kind", type=int, default=10, help="healthy series drawn of each kind")
    parser.add_argument("--rows", type=int, default=4000, help="rows per series")
    parser.add_argument("--grain", type=period, default="5min", help="time between rows, e.g. 5min, 30min, 1h (default 5min)")
    parser.add_argument("--workers", type=int, default=2, help="processes scoring series in parallel")
    parser.add_argument("--refit-every", type=period, metavar="PERIOD",
                        help="retrain each detector on this schedule (1D: nightly), as deployed (default: fitted once)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    grain = pd.Timedelta(args.grain)
    if grain > DAY / 2:
        parser.error(f"--grain {args.grain}: a daily season needs at least two rows a day (12 hours apart or less)")
    data = [healthy_series(kind, seed, args.rows, grain) for kind in KINDS for seed in range(args.series_per_kind)]
    fitted = f"retrained every {args.refit_every}" if args.refit_every else "fitted once"
    print(f"{len(data)} healthy series of {args.rows:,} rows {duration_text(grain)} apart, {fitted}; per 10,000 scored "
          f"rows, alerts at level {ev.FIXED_LEVEL:g} / rows at that level before the refractory rule (what the level "
          f"claims: {NOMINAL_PER_10K:g} or fewer rows)", flush=True)
    print(f"{'detector':<18} " + " ".join(f"{kind:>14}" for kind in KINDS), flush=True)
    figures = {}
    for detector in args.detector:
        figures[detector] = rates = false_alerts_per_10k(data, detector, args.workers, args.refit_every)
        print(f"{detector:<18} " + " ".join(f"{rates[kind]['alerts']:>6.1f} / {rates[kind]['rows_at_level']:>5.1f}"
                                            for kind in KINDS), flush=True)
    if args.json:
        summary = {"rows": args.rows, "grain": args.grain, "series_per_kind": args.series_per_kind,
                   "refit_every": args.refit_every, "per_10k": figures}
        args.json.write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
