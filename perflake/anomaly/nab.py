"""The Numenta Anomaly Benchmark score, implemented here from NAB's published rules.

Per file: the first ``min(floor(15% of rows), 750)`` rows are a probation period and are not
scored. Each labelled window counts once: a detection inside it earns the scaled sigmoid of
its position (1 at the left edge, falling towards 0 at the right, only the earliest detection
counts); a window without one costs ``fn``. A detection outside every window costs ``fp`` times
the sigmoid of its distance past the previous window (about ``fp`` far from one, -1 with no
window before it). The corpus score is ``100 * (raw - null) / (perfect - null)`` over all
files, where null never fires and perfect fires on the first scored row of every window.

NAB picks each detector's threshold per profile by maximising the corpus score on the corpus
itself (its published figures use that threshold); ``best_threshold`` does that exactly.
"""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

PROBATION_SHARE = 0.15
PROBATION_MAX_ROWS = 750
OUTSIDE = -1  # window index of a row outside every window
PROBATION = -2  # window index of a row inside the probation period


@dataclass(frozen=True)
class Profile:
    name: str
    tp: float
    fp: float
    fn: float


PROFILES = {
    "standard": Profile("standard", 1.0, 0.11, 1.0),
    "reward_low_FP_rate": Profile("reward_low_FP_rate", 1.0, 0.22, 1.0),
    "reward_low_FN_rate": Profile("reward_low_FN_rate", 1.0, 0.11, 2.0),
}


def scaled_sigmoid(position: np.ndarray | float) -> np.ndarray:
    """2 / (1 + e^(5y)) - 1, and -1 beyond 3 (far past a window)."""
    position = np.asarray(position, dtype=float)
    return np.where(position > 3.0, -1.0, 2.0 / (1.0 + np.exp(5.0 * np.minimum(position, 3.0))) - 1.0)


MAX_TP = float(scaled_sigmoid(-1.0))


def probation_rows(n_rows: int) -> int:
    return int(min(math.floor(PROBATION_SHARE * n_rows), PROBATION_SHARE * 5000))


@dataclass(frozen=True)
class ScoringGrid:
    """What each row of one file is worth if it fires, under one profile.

    ``worth[i]`` is the weighted score of a detection at row i; ``window[i]`` the index of the
    window it lies in, ``OUTSIDE`` or ``PROBATION``; ``n_windows`` the windows that count.
    """

    worth: np.ndarray
    window: np.ndarray
    n_windows: int
    profile: Profile

    @property
    def null(self) -> float:
        return -self.profile.fn * self.n_windows

    @property
    def perfect(self) -> float:
        inside = self.window >= 0
        return float(pd.Series(self.worth[inside]).groupby(self.window[inside]).max().sum())


def window_bounds(timestamps: pd.Series, windows: Iterable[tuple[str, str]]) -> list[tuple[int, int]]:
    """Row indexes of each window's first and last timestamp (both must be rows of the file, in that order).

    ``timestamps`` as ``load_corpus`` reads them (``utc_naive``); the windows' are read the same way here.
    """
    index = {stamp: i for i, stamp in enumerate(pd.to_datetime(timestamps))}
    bounds = []
    for start, end in windows:
        try:
            left, right = (index[stamp] for stamp in utc_naive(pd.Series([start, end])))
        except KeyError as missing:
            raise ValueError(f"window {start} .. {end}: timestamp {missing} is not a row of the file") from None
        if left > right:
            raise ValueError(f"window {start} .. {end}: its end is row {right} of the file, before its start (row {left}): "
                             "the rows are not in time order")
        bounds.append((left, right))
    return sorted(bounds)


def utc_naive(timestamps: pd.Series) -> pd.Series:
    """NAB's timestamps carry no zone; one written with a zone (``...Z``, ``+02:00``) is read as that instant in UTC."""
    return utc_timestamps(timestamps).dt.tz_localize(None)


def utc_timestamps(timestamps: pd.Series) -> pd.Series:
    """Timestamps as UTC instants: dates as written (those without a zone are UTC), numbers as Unix time.

    Numbers are seconds (Yahoo's S5 series and most exports write them so), or milliseconds from
    1e11 up (as seconds that would be after the year 5000); a counter of rows (1, 2, 3 ...) is
    read as seconds after 1970-01-01, in order, with no calendar meaning.
    """
    if pd.api.types.is_numeric_dtype(timestamps) and not pd.api.types.is_bool_dtype(timestamps):
        unit = "ms" if len(timestamps) and float(np.nanmax(np.abs(timestamps.to_numpy(dtype=float)))) >= 1e11 else "s"
        return pd.to_datetime(timestamps, unit=unit, utc=True)
    return pd.to_datetime(timestamps, utc=True)


def scoring_grid(n_rows: int, bounds: list[tuple[int, int]], profile: Profile) -> ScoringGrid:
    rows = np.arange(n_rows)
    window = np.full(n_rows, OUTSIDE)
    worth = np.full(n_rows, -profile.fp)  # no window before: as far from one as can be
    for number, (left, right) in enumerate(bounds):
        width = right - left + 1
        inside = rows[left : right + 1]
        window[left : right + 1] = number
        worth[left : right + 1] = scaled_sigmoid(-(right - inside + 1) / width) * profile.tp / MAX_TP
        following = bounds[number + 1][0] if number + 1 < len(bounds) else n_rows
        after = rows[right + 1 : following]
        if width > 1:
            worth[right + 1 : following] = scaled_sigmoid(np.abs(right - after) / (width - 1)) * profile.fp
    window[: probation_rows(n_rows)] = PROBATION
    counted = np.unique(window[window >= 0])
    return ScoringGrid(worth, window, len(counted), profile)


@dataclass(frozen=True)
class FileScore:
    raw: float
    detected_windows: int
    missed_windows: int
    false_alerts: int


def score_detections(grid: ScoringGrid, detections: np.ndarray) -> FileScore:
    """The raw score of one file's detections (a boolean per row)."""
    fired = np.asarray(detections, dtype=bool) & (grid.window != PROBATION)
    outside = fired & (grid.window == OUTSIDE)
    inside = fired & (grid.window >= 0)
    best = pd.Series(grid.worth[inside]).groupby(grid.window[inside]).max()
    missed = grid.n_windows - len(best)
    raw = float(best.sum() + grid.worth[outside].sum() - missed * grid.profile.fn)
    return FileScore(raw, len(best), missed, int(outside.sum()))


def normalized(raw: float, null: float, perfect: float) -> float:
    if perfect == null:
        raise ValueError("no labelled window in the corpus: a NAB score is normalised by what its windows are worth, "
                         "so it has none")
    return 100.0 * (raw - null) / (perfect - null)


def best_threshold(grids: list[ScoringGrid], scores: list[np.ndarray]) -> tuple[float, float]:
    """The threshold that maximises the summed raw score, and that score (NAB's optimisation).

    Lowers the threshold one distinct score at a time over all files at once, adding each newly
    detected row's worth: O(rows log rows) instead of one scoring per candidate.
    """
    worth = np.concatenate([grid.worth for grid in grids])
    fn_cost = np.concatenate([np.full(len(grid.worth), grid.profile.fn) for grid in grids])
    offsets = np.cumsum([0] + [grid.n_windows for grid in grids])[:-1]
    window = np.concatenate([np.where(g.window >= 0, g.window + off, g.window) for g, off in zip(grids, offsets)])
    value = np.concatenate(scores).astype(float)
    keep = window != PROBATION
    worth, fn_cost, window, value = worth[keep], fn_cost[keep], window[keep], value[keep]
    order = np.argsort(-value, kind="stable")
    total = sum(grid.null for grid in grids)
    best_total, best_at = total, math.inf  # firing never: the null score
    best_in_window: dict[int, float] = {}
    sorted_values = value[order]
    for position, row in enumerate(order):
        w = window[row]
        if w == OUTSIDE:
            total += worth[row]
        elif w not in best_in_window:
            best_in_window[w] = worth[row]
            total += fn_cost[row] + worth[row]
        elif worth[row] > best_in_window[w]:
            total += worth[row] - best_in_window[w]
            best_in_window[w] = worth[row]
        last_of_tie = position + 1 == len(order) or sorted_values[position + 1] < sorted_values[position]
        if last_of_tie and total > best_total:
            best_total, best_at = total, float(sorted_values[position])
    return best_at, float(best_total)


@dataclass(frozen=True)
class CorpusScore:
    profile: str
    threshold: float
    score: float
    raw: float
    per_file: dict[str, FileScore]

    @property
    def detected_windows(self) -> int:
        return sum(f.detected_windows for f in self.per_file.values())

    @property
    def missed_windows(self) -> int:
        return sum(f.missed_windows for f in self.per_file.values())

    @property
    def false_alerts(self) -> int:
        return sum(f.false_alerts for f in self.per_file.values())


def score_corpus(
    series: Mapping[str, pd.Series],
    scores: Mapping[str, np.ndarray],
    windows: Mapping[str, list[tuple[str, str]]],
    profile: Profile,
    threshold: float | None = None,
) -> CorpusScore:
    """Score anomaly scores (one array per file, aligned with ``series[file]``'s timestamps).

    ``threshold`` None: NAB's own choice, the one that maximises this corpus's score.
    """
    missing = sorted(set(windows) - set(scores))
    if missing:
        raise ValueError(f"no detector output for {len(missing)} file(s) of the corpus, e.g. {missing[0]}")
    names = sorted(windows)
    grids = []
    for name in names:
        if len(scores[name]) != len(series[name]):
            raise ValueError(f"{name}: {len(scores[name])} scores for {len(series[name])} rows")
        grids.append(scoring_grid(len(series[name]), window_bounds(series[name], windows[name]), profile))
    if threshold is None:
        threshold, _ = best_threshold(grids, [np.asarray(scores[name]) for name in names])
    per_file = {name: score_detections(grid, np.asarray(scores[name]) >= threshold) for name, grid in zip(names, grids)}
    raw = sum(f.raw for f in per_file.values())
    null = sum(grid.null for grid in grids)
    perfect = sum(grid.perfect for grid in grids)
    return CorpusScore(profile.name, threshold, normalized(raw, null, perfect), raw, per_file)


# --- the NAB folder layout: data/<category>/<file>.csv, labels/combined_windows.json ------------


@dataclass(frozen=True)
class Corpus:
    """NAB's series (timestamps and values per ``category/file.csv``) and their windows."""

    values: dict[str, pd.DataFrame]
    windows: dict[str, list[tuple[str, str]]]

    @property
    def timestamps(self) -> dict[str, pd.Series]:
        return {name: frame["timestamp"] for name, frame in self.values.items()}


def load_corpus(nab_dir: Path) -> Corpus:
    """The files ``labels/combined_windows.json`` lists, each checked against its windows: a refusal names the file."""
    windows_file = nab_dir / "labels" / "combined_windows.json"
    if not windows_file.is_file():
        raise FileNotFoundError(f"{nab_dir} is not a NAB folder: {windows_file} is missing")
    windows = {name: [tuple(pair) for pair in pairs] for name, pairs in json.loads(windows_file.read_text()).items()}
    values = {}
    for name, pairs in windows.items():
        path = nab_dir / "data" / name
        if not path.is_file():
            raise FileNotFoundError(f"{windows_file} lists {name}, but {path} is missing")
        frame = pd.read_csv(path)
        if not {"timestamp", "value"} <= set(frame.columns):
            raise ValueError(f"{path}: a NAB file has the columns timestamp,value; this one has {list(frame.columns)}")
        try:
            frame["timestamp"] = utc_naive(frame["timestamp"])
            window_bounds(frame["timestamp"], pairs)
        except ValueError as error:  # unreadable timestamps, or windows that are not rows of the file
            raise ValueError(f"{path}: {error}") from None
        values[name] = frame
    return Corpus(values, windows)


def read_detector_outputs(results_dir: Path, corpus: Corpus) -> dict[str, np.ndarray]:
    """``<dir>/<category>/<detector>_<file>.csv[.gz]`` (``output_path``; timestamp, anomaly_score) for every corpus file."""
    outputs = {}
    for name, frame in corpus.values.items():
        candidates = [output_path(results_dir, name, suffix) for suffix in ("", ".gz")]
        found = next((path for path in candidates if path.is_file()), None)
        if found is None:
            raise FileNotFoundError(f"no output of detector {results_dir.name!r} for {name}: expected {candidates[0]}[.gz]")
        with (gzip.open(found, "rt") if found.suffix == ".gz" else open(found)) as handle:
            output = pd.read_csv(handle)
        if len(output) != len(frame):
            raise ValueError(f"{found}: {len(output)} rows, but {name} has {len(frame)}")
        if "anomaly_score" not in output.columns:
            raise ValueError(f"{found}: no anomaly_score column; it has {list(output.columns)}")
        scores = pd.to_numeric(output["anomaly_score"], errors="coerce")
        if scores.isna().any():
            row = int(scores.isna().to_numpy().argmax())
            raise ValueError(f"{found}: the anomaly_score of row {row} is not a number ({output['anomaly_score'].iloc[row]!r})")
        outputs[name] = scores.to_numpy(dtype=float)
    return outputs


def output_path(results_dir: Path, name: str, suffix: str = "") -> Path:
    """Where NAB's layout keeps a detector's output for the corpus file ``name`` (``category/file.csv``, or deeper, or
    bare): the file's folder under ``results_dir``, named after the detector (``results_dir``'s name)."""
    file = PurePosixPath(name)
    return results_dir / file.parent / f"{results_dir.name}_{file.name}{suffix}"


def write_detector_outputs(results_dir: Path, series: Mapping[str, pd.DataFrame], windows: Mapping[str, list[tuple[str, str]]],
                           scores: Mapping[str, np.ndarray]) -> None:
    """NAB's results layout, as ``read_detector_outputs`` reads it and NAB's own tools write it:
    ``<dir>/<category>/<detector>_<file>.csv`` (``<dir>`` named after the detector) with
    ``timestamp,value,anomaly_score,label`` (label 1 inside a labelled window)."""
    for name, frame in series.items():
        label = np.zeros(len(frame), dtype=int)
        for left, right in window_bounds(frame["timestamp"], windows[name]):
            label[left : right + 1] = 1
        path = output_path(results_dir, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        frame[["timestamp", "value"]].assign(anomaly_score=scores[name], label=label).to_csv(path, index=False)


def write_thresholds(path: Path, thresholds: Mapping[str, float]) -> None:
    """A ``thresholds.json`` as NAB's (``read_thresholds``): each detector's threshold, the same for every profile."""
    path.write_text(json.dumps({detector: {profile: {"threshold": threshold} for profile in PROFILES}
                                for detector, threshold in thresholds.items()}, indent=1))


def read_thresholds(path: Path, detector: str) -> dict[str, float]:
    """A NAB ``thresholds.json``: ``{detector: {profile: {"threshold": t, ...}}}``."""
    table = json.loads(path.read_text())
    if detector not in table:
        raise KeyError(f"{path} has no thresholds for detector {detector!r}")
    return {profile: entry["threshold"] for profile, entry in table[detector].items()}
