"""Streaming throughput of the anomaly detectors on this machine (docs/benchmarks.md has the figures).

    .venv/bin/python benchmarks/detectors.py [--series NAME] [--batch-rows 1,10,100] [--rows 1000] [--json FILE]

Each detector is fitted on one simulated ALL-USE series' history (the workload simulator's, so
no data files are needed) and then fed that series' next rows through ``update`` in micro-batches
of N rows, as a streaming job scoring each series once per micro-batch would. One process, so the
rows/s are per core; the latency is per ``update`` call. The evaluation's points/s
(docs/anomaly-detection.md) are a different figure: a whole series fitted and scored in one call.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from pathlib import Path

import numpy as np

from perflake.anomaly import evaluate as ev
from perflake.anomaly.detectors import make_detector
from perflake.anomaly.features import metric_columns
from perflake.cli import detector_list

DEFAULT_SERIES = "requests/ws4-market-integration/quotes@app-4"


def streaming_figures(series: ev.Series, detector: str, batch_rows: int, rows: int) -> dict[str, float]:
    """Fit on the series' history, then ``update`` with its next ``rows`` rows, ``batch_rows`` at a time."""
    started = time.perf_counter()
    fitted = make_detector(detector).fit(series.fit)
    fit_seconds = time.perf_counter() - started
    unseen = series.test[series.test["timestamp"] > series.fit["timestamp"].max()].iloc[:rows]
    if len(unseen) < rows:
        raise ValueError(f"{series.name} has {len(unseen)} rows after its history; asked to stream {rows}")
    call_seconds = []
    for start in range(0, rows, batch_rows):
        started = time.perf_counter()
        fitted.update(unseen.iloc[start : start + batch_rows])
        call_seconds.append(time.perf_counter() - started)
    p50, p99 = np.percentile(call_seconds, [50, 99]) * 1000
    return {"rows_per_s": rows / sum(call_seconds), "update_p50_ms": p50, "update_p99_ms": p99, "fit_s": fit_seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--series", default=DEFAULT_SERIES, help=f"a series of the simulated data set (default {DEFAULT_SERIES})")
    parser.add_argument("--detector", type=detector_list, default="all", help="comma-separated detector names, or all")
    parser.add_argument("--batch-rows", default="1,10,100", help="micro-batch sizes, in rows per update call")
    parser.add_argument("--rows", type=int, default=1000, help="rows streamed per detector and batch size")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    batch_sizes = [int(size) for size in args.batch_rows.split(",")]
    by_name = {s.name: s for s in ev.simulated_series()}
    if args.series not in by_name:
        parser.error(f"no series {args.series!r} in the simulated data set; e.g. {', '.join(sorted(by_name)[:3])}")
    series = by_name[args.series]
    del by_name
    # the data set's objects are the benchmark's, not a scorer's: frozen, a full collection does not walk them
    # (it took 25-35 ms, landing in one timed call or another and making a 10-call pass's p99)
    gc.collect()
    gc.freeze()
    print(f"{series.name} ({', '.join(metric_columns(series.fit))}): fitted on {len(series.fit):,} rows, "
          f"{args.rows:,} rows streamed per detector and batch size, one process", flush=True)
    results: dict[str, dict[str, dict[str, float]]] = {}
    for detector in args.detector:
        results[detector] = {f"{size} rows": streaming_figures(series, detector, size, args.rows) for size in batch_sizes}
        cells = "  ".join(f"{size:>4} rows/update: {r['rows_per_s']:>9,.0f} rows/s, p50 {r['update_p50_ms']:6.2f} ms, "
                          f"p99 {r['update_p99_ms']:6.2f} ms" for size, r in zip(batch_sizes, results[detector].values()))
        fit_seconds = next(iter(results[detector].values()))["fit_s"]
        print(f"{detector:20s} fit {fit_seconds:5.2f} s  {cells}", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"series": series.name, "rows": args.rows, "detectors": results}, indent=1))


if __name__ == "__main__":
    main()
