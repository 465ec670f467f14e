"""Patterns named in series without them: how often healthy series of each kind are given regimes or a recurring
shape, and how close the closest windows of white noise come to the level a recurring shape must pass
(docs/anomaly-detection.md, "Pattern recognition", has the figures).

    .venv/bin/python benchmarks/patterns_chance.py [--series-per-kind 10] [--rows 2000] [--noise-series 20] [--json FILE]

The healthy kinds are those of ``false_alerts.py``, five minutes apart, read in windows of an hour
(12 rows) as ``perflake evaluate patterns`` reads them by default. Gaussian noise, heavy tails,
small counts, skew and rare errors have no regimes and no recurring shape to find; a daily season
has both; slow wander and a steady rise move between levels. The noise part draws white noise of
150 to 30,000 rows and finds its closest pair of windows of 8, 12 and 60 rows (``patterns.closest_pairs``,
which ``patterns.motifs`` reads before the chance level), against ``patterns.chance_correlation`` for as many windows.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from false_alerts import KINDS, healthy_values
from perflake.anomaly import patterns
from perflake.anomaly.patterns import chance_correlation, closest_pairs, recurring_behaviour, subsequences

WINDOW = pd.Timedelta("1h")
GRAIN = pd.Timedelta("5min")
NOISE_SIZES = ((150, 12), (400, 12), (2000, 8), (2000, 12), (10000, 8), (10000, 60), (30000, 8))


def patterns_named(kind: str, seeds: int, rows: int) -> dict[str, float]:
    """Of ``seeds`` healthy series of ``kind``: the share given regimes, and given at least one recurring shape."""
    with_regimes = with_shapes = 0
    for seed in range(seeds):
        values = healthy_values(kind, rows, np.random.default_rng(seed), pd.Timedelta(days=1) // GRAIN)
        frame = pd.DataFrame({"timestamp": pd.date_range("2026-01-05", periods=rows, freq=GRAIN, tz="UTC"), "value": values})
        found = recurring_behaviour(frame, "value", WINDOW, "America/New_York")
        with_regimes += found.regimes is not None
        with_shapes += bool(found.motifs)
    return {"with_regimes": with_regimes / seeds, "with_shapes": with_shapes / seeds}


def closest_pair_in_noise(rows: int, length: int, series: int) -> dict[str, float]:
    """Over ``series`` white-noise series: the closest pair of windows' correlation (median, highest) and how many
    passed the chance level."""
    stride = max(1, (rows - length + 1) // patterns.MOTIF_WINDOWS)
    closest, level = [], 0.0
    for seed in range(series):
        shapes, ends = subsequences(np.random.default_rng(seed).normal(size=rows), length, stride)
        level = chance_correlation(len(shapes), length)
        closest.append(closest_pairs(shapes, ends, stride)[0].correlation(length))
    return {"rows": rows, "window_rows": length, "chance_level": level, "closest_median": float(np.median(closest)),
            "closest_highest": float(max(closest)), "above_level": int(sum(c > level for c in closest))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--series-per-kind", type=int, default=10, help="healthy series drawn of each kind")
    parser.add_argument("--rows", type=int, default=2000, help="rows per healthy series")
    parser.add_argument("--noise-series", type=int, default=20, help="white-noise series per size and window")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    kinds = {}
    for kind in KINDS:
        kinds[kind] = patterns_named(kind, args.series_per_kind, args.rows)
        print(f"{kind:13s} regimes named in {kinds[kind]['with_regimes']:4.0%} of series, a recurring shape in "
              f"{kinds[kind]['with_shapes']:4.0%}", flush=True)
    noise = []
    for rows, length in NOISE_SIZES:
        noise.append(closest_pair_in_noise(rows, length, args.noise_series))
        n = noise[-1]
        print(f"white noise, {rows:6,} rows, windows of {length:2d}: closest pair {n['closest_median']:.4f} (median), "
              f"{n['closest_highest']:.4f} (highest); chance level {n['chance_level']:.4f}, passed by "
              f"{n['above_level']} of {args.noise_series}", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"kinds": kinds, "noise": noise, "args": vars(args) | {"json": str(args.json)}},
                                        indent=1))


if __name__ == "__main__":
    main()
