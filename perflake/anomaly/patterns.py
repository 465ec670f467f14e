"""Pattern recognition: seasonality, regimes and recurring shapes (motifs) of metric series.

Known behaviour is not an anomaly: a daily cycle, the quiet/normal/peak regimes of the
trading day, a batch job's recurring spike. ``dominant_period`` finds the season,
``regimes`` names the levels a series moves between, ``motifs`` finds its recurring shapes and
``recurring_behaviour`` puts the three together for one metric, placed in the trading calendar
(``perflake evaluate patterns``). ``ShapeLibrary`` remembers the windows seen in normal history
and lately, so that a window like one of them scores low and a new one high
(``detectors.MotifNoveltyDetector``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd

from perflake.anomaly.features import EPSILON, metric_columns, robust_sigma, seasonal_slots

MIN_AUTOCORRELATION = 0.3
FILLED_GAP_ROWS = 3
NOVELTY_BLOCK_ROWS = 64  # windows scored together: their distance matrices stay small enough for the cache
REGIME_NAMES = {2: ("quiet", "busy"), 3: ("quiet", "normal", "peak"), 4: ("quiet", "normal", "busy", "peak")}
NAMED_SEASONS = {"weekly": pd.Timedelta(days=7), "daily": pd.Timedelta(days=1), "hourly": pd.Timedelta(hours=1)}
SEASON_TOLERANCE = 0.02  # a period this close to a week, a day or an hour is that season (a clock's drift, a missed sample)
MIN_WINDOW_ROWS = 8  # a shorter window is too short a shape to tell a recurring one from chance
MOTIF_WINDOWS = 5000  # windows compared for motifs at most (a long series' are taken at a stride): seconds, not minutes
ALIKE_CORRELATION = 0.9  # windows this correlated with a motif's are occurrences of it
MOTIF_CHANCE = 0.001  # a pair of windows reported as a recurring shape is one noise without a pattern matches this rarely
DISTINCT_SPREADS = 2.0  # regimes at one level whose windows' spreads differ this many times over are distinct (calm, busy)
MAX_GRID_GROWTH = 20  # a regular grid this many times the rows is refused: the step found is not the series' own
MOVES_WITH_CORRELATION = 0.8  # metrics of one source correlated this strongly (either way) move together


def autocorrelation(values: np.ndarray) -> np.ndarray:
    """Autocorrelation at every lag, by FFT, of the series with its mean removed (gaps and values not finite filled)."""
    x = pd.Series(values, dtype=float).replace([np.inf, -np.inf], np.nan).interpolate(limit_direction="both").to_numpy()
    x = x - x.mean()
    x = x / (np.abs(x).max() or 1.0)  # the same correlations, without squares that overflow on very large values
    n = len(x)
    spectrum = np.fft.rfft(x, 2 * n)
    acf = np.fft.irfft(spectrum * np.conj(spectrum))[:n]
    return acf / (acf[0] + EPSILON)


def dominant_period(values: np.ndarray, min_period: int = 4, max_period: int | None = None) -> int | None:
    """The lag of the highest autocorrelation peak, if it is clear (above 0.3); else None."""
    values = np.asarray(values, dtype=float)
    finite = values[np.isfinite(values)]
    max_period = max_period or len(values) // 3
    if max_period <= min_period or len(finite) == 0 or finite.min() == finite.max():
        return None
    acf = autocorrelation(values)[: max_period + 1]
    peaks = [lag for lag in range(min_period, max_period) if acf[lag] >= acf[lag - 1] and acf[lag] >= acf[lag + 1]]
    if not peaks:
        return None
    best = max(peaks, key=lambda lag: acf[lag])
    return best if acf[best] >= MIN_AUTOCORRELATION else None


@dataclass(frozen=True)
class Regimes:
    """Each window's regime, and each regime's typical level and spread."""

    labels: pd.Series  # regime name per window start
    profile: pd.DataFrame  # per regime: mean, std, n_windows


def regimes(frame: pd.DataFrame, metric: str, window: int, n_regimes: int = 3, seed: int = 0) -> Regimes:
    """Cluster non-overlapping windows by level and spread; name the clusters from the lowest level up.

    Fewer regimes are named while two of them are not apart (``_each_distinct``: noise split in
    three), and none when no two are: refused (``ValueError``), saying the windows' levels and spread.

    A window without a measured value (the metric went silent) has no regime and no label: silence
    is a gap in the data, not a quiet period.
    """
    from sklearn.cluster import KMeans

    if n_regimes not in REGIME_NAMES:
        raise ValueError(f"n_regimes must be one of {sorted(REGIME_NAMES)}")
    values = frame[metric].astype(float)
    groups = np.arange(len(frame)) // window
    stats = values.groupby(groups).agg(["mean", "std"])
    stats = stats[stats["mean"].notna()].fillna(0.0)  # a window of one value has no spread
    if len(stats) < n_regimes:
        raise ValueError(f"{len(stats)} windows of {window} rows with a measured value: too few for {n_regimes} regimes")
    # level and spread in the series' own unit, to 9 decimals: windows alike but for where their values lie differ in
    # the last bits of their sums, and k-means would split one level in two on them
    scaled = ((stats - stats.mean()) / (values.std() + EPSILON)).round(9)
    distinct = len(scaled.drop_duplicates())
    if distinct < n_regimes:  # k-means would name one level twice
        raise ValueError(f"its windows of {window} rows take {distinct} distinct levels and spreads: "
                         f"too few for {n_regimes} regimes")
    starts = frame["timestamp"].iloc[stats.index * window].to_numpy()
    for clusters_tried in range(n_regimes, 1, -1):  # fewer regimes while two of them are one level in its own noise
        clusters = KMeans(n_clusters=clusters_tried, n_init=10, random_state=seed).fit_predict(scaled)
        order = stats.groupby(clusters)["mean"].mean().sort_values().index
        names = dict(zip(order, REGIME_NAMES[clusters_tried]))
        labels = pd.Series([names[c] for c in clusters], index=starts, name="regime")
        by_regime = stats.assign(regime=labels.to_numpy()).groupby("regime")
        profile = by_regime.agg(mean=("mean", "mean"), std=("std", "mean"), n_windows=("mean", "size"))
        profile = profile.loc[[name for name in REGIME_NAMES[clusters_tried] if name in profile.index]]
        if _each_distinct(profile):
            return Regimes(labels, profile)
    raise ValueError(f"no two groups of its windows of {window} rows differ in level by more than their values' own spread "
                     f"(window means {stats['mean'].min():.4g} to {stats['mean'].max():.4g}, sd within "
                     f"{stats['std'].mean():.4g}), nor in spread {DISTINCT_SPREADS:g} times over: one regime")


def _each_distinct(profile: pd.DataFrame) -> bool:
    """Whether each regime (from the quietest up) is apart from the next: its level beyond both their windows' spread,
    or a spread ``DISTINCT_SPREADS`` times the other's. Clustering always splits windows; noise split in three is
    not three regimes (a 'peak' within the normal hour's own noise is not one an operator would know). A flat regime
    (a count at zero) is apart from another by level only: any spread is many times none, and hours with a rare
    error among hours without are not two regimes."""
    spreads = profile["std"].to_numpy()
    wider, narrower = np.maximum(spreads[:-1], spreads[1:]), np.minimum(spreads[:-1], spreads[1:])
    apart_in_level = np.diff(profile["mean"].to_numpy()) > wider
    return bool((apart_in_level | ((wider >= DISTINCT_SPREADS * narrower) & (narrower > 0))).all())


def windows(values: np.ndarray, length: int, stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The windows of ``length`` rows as measured, and the index of each window's last row.

    A gap of up to ``FILLED_GAP_ROWS`` missing values (a lost sample or two) is interpolated;
    windows with a longer gap are left out: an outage is not a shape (filled, it would look like
    a new flat one, or recur as a motif).
    """
    x = _short_gaps_filled(np.asarray(values, dtype=float))
    if len(x) < length:
        return np.empty((0, length)), np.empty(0, dtype=int)
    every = np.lib.stride_tricks.sliding_window_view(x, length)[::stride]
    ends = np.arange(length - 1, len(x))[::stride]
    complete = np.isfinite(every).all(axis=1)
    return every[complete], ends[complete]


def subsequences(values: np.ndarray, length: int, stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Z-normalized ``windows`` (the shape, not the level or the size), and the index of each window's last row.

    A flat window (one value throughout: a stalled feed, a count at zero) has no shape and is left out.
    """
    measured, ends = windows(values, length, stride)
    spread = measured.std(axis=1, keepdims=True)
    shaped = spread[:, 0] > 0
    if not shaped.any():
        return measured[:0], ends[:0]
    centred = measured[shaped] - measured[shaped].mean(axis=1, keepdims=True)
    return centred / (spread[shaped] + 1e-6 * (np.abs(measured[shaped]).mean() + 1)), ends[shaped]


def _short_gaps_filled(x: np.ndarray) -> np.ndarray:
    missing = pd.Series(~np.isfinite(x))
    if not missing.any():  # the usual case, on every streamed window: nothing to find
        return x
    gap_rows = missing.groupby((missing != missing.shift()).cumsum()).transform("size")
    short = (missing & (gap_rows <= FILLED_GAP_ROWS)).to_numpy()
    return np.where(short, pd.Series(x).interpolate(limit_direction="both").to_numpy(), x)


@dataclass(frozen=True)
class Motif:
    """A recurring shape: two windows (by their last row) that look alike, and how far apart they are; and every
    window alike the first as closely as the twin is, or with a correlation of ``ALIKE_CORRELATION``, if looser."""

    end: int
    twin_end: int
    distance: float  # between the z-normalized windows
    occurrences: tuple[int, ...] = ()  # the last rows of those windows (none overlapping), nearest first

    def correlation(self, length: int) -> float:
        """The two windows' correlation: z-normalized windows of ``length`` rows are ``2 * length * (1 - r)`` apart, squared."""
        return 1 - self.distance**2 / (2 * length)


def chance_correlation(windows: int, length: int) -> float:
    """The correlation the closest of ``windows`` windows of ``length`` rows reach by chance in a series without a
    pattern (independent values), bar a chance of ``MOTIF_CHANCE``: the Student t of a correlation on ``length - 2``
    degrees of freedom, for each of the ``windows**2 / 2`` pairs compared.

    Short windows match by chance closely: in 2,000 rows of white noise the closest windows of 8 rows correlate at
    0.993 (median of 20 series), of 12 rows at 0.955; this level is 0.9993 and 0.9895 there, and none of 140 noise
    series of 150 to 30,000 rows reached it.
    """
    from scipy import stats

    pairs = max(1.0, windows * windows / 2)
    t = stats.t.isf(MOTIF_CHANCE / pairs, length - 2)
    return float(t / np.sqrt(length - 2 + t * t))


def motifs(values: np.ndarray, length: int, top: int = 3, stride: int = 1) -> list[Motif]:
    """The ``top`` closest pairs of non-overlapping windows alike beyond chance (``chance_correlation``): the series'
    most recurring shapes."""
    return _motifs_of(*subsequences(values, length, stride), len(values), top, stride)


def _motifs_of(shapes: np.ndarray, ends: np.ndarray, rows: int, top: int, stride: int) -> list[Motif]:
    """``motifs`` among the windows ``subsequences`` gave, of a series of ``rows`` rows."""
    length = shapes.shape[1]
    if len(shapes) < 3:
        return []
    beyond_chance = 2 * length * (1 - chance_correlation(len(shapes), length))  # as a squared distance
    chosen: list[Motif] = []
    for motif in closest_pairs(shapes, ends, stride):
        if motif.distance**2 >= beyond_chance or len(chosen) == top:
            break
        if all(abs(motif.end - c.end) >= length and abs(motif.end - c.twin_end) >= length for c in chosen):
            chosen.append(motif)
    return [dataclasses.replace(motif, occurrences=_occurrences(shapes, ends, motif, rows)) for motif in chosen]


def closest_pairs(shapes: np.ndarray, ends: np.ndarray, stride: int = 1) -> list[Motif]:
    """Each window (``subsequences``) with the nearest window that does not overlap it, closest pairs first."""
    from sklearn.neighbors import NearestNeighbors

    length = shapes.shape[1]
    neighbours = min(len(shapes), 2 * length // stride + 2)
    distances, indexes = NearestNeighbors(n_neighbors=neighbours).fit(shapes).kneighbors(shapes)
    found = []
    for row in range(len(shapes)):
        for distance, other in zip(distances[row], indexes[row]):
            if abs(ends[other] - ends[row]) >= length:  # not a trivial match with itself shifted
                found.append(Motif(int(ends[row]), int(ends[other]), float(distance)))
                break
    return sorted(found, key=lambda m: m.distance)


def _occurrences(shapes: np.ndarray, ends: np.ndarray, motif: Motif, rows: int) -> tuple[int, ...]:
    """The last rows of the windows alike ``motif``'s first (as its twin is, or at ``ALIKE_CORRELATION``), nearest
    first, each overlapping none before it."""
    length = shapes.shape[1]
    squared = ((shapes - shapes[np.searchsorted(ends, motif.end)]) ** 2).sum(axis=1)
    alike = np.flatnonzero(squared <= max(2 * length * (1 - ALIKE_CORRELATION), motif.distance**2 * (1 + 1e-9)))
    taken, covered = [], np.zeros(rows + length, dtype=bool)
    for candidate in alike[np.argsort(squared[alike], kind="stable")]:
        end = int(ends[candidate])
        if not covered[end]:
            taken.append(end)
            covered[max(0, end - length + 1) : end + length] = True  # a window ending there would overlap this one
    return tuple(taken)


@dataclass(frozen=True)
class Season:
    """The dominant period, in rows and in time, and the autocorrelation at that lag (how closely it repeats)."""

    rows: int
    length: pd.Timedelta
    autocorrelation: float

    @property
    def name(self) -> str:
        """``weekly``, ``daily`` or ``hourly`` when the period is one of those, else ``every`` and the period."""
        for name, length in NAMED_SEASONS.items():
            if abs(self.length - length) <= SEASON_TOLERANCE * length:
                return name
        return f"every {duration_text(self.length)}"


@dataclass(frozen=True)
class RecurringBehaviour:
    """What recurs in one metric: its season, its regimes placed in the trading calendar, its closest recurring shapes.

    ``why_none`` says why a metric has none of them (never measured, or one value throughout),
    ``why_no_regimes`` why it has a season or shapes but no regimes (too few windows or levels, one
    level in its own noise), and ``why_no_motifs`` why no shape recurs (too few windows with a
    shape, none alike beyond chance).
    """

    metric: str
    step: pd.Timedelta  # the usual time from one row to the next
    window_rows: int  # the regimes' windows and the shapes' length
    season: Season | None = None
    regimes: Regimes | None = None
    regime_phases: pd.DataFrame | None = None  # per regime: the share of its windows centred in each calendar phase
    motifs: tuple[Motif, ...] = ()
    why_no_regimes: str | None = None
    why_no_motifs: str | None = None
    why_none: str | None = None
    first_window_row: int = 0  # the regimes' windows start on the clock: the rows before are in none

    def regime_of_each_row(self, timestamps: pd.Series) -> np.ndarray:
        """The regime of each row's window (none before the first window and in a window without a measured value)."""
        regime = np.full(len(timestamps), None, dtype=object)
        if self.regimes is None:
            return regime
        windowed = np.arange(self.first_window_row, len(timestamps))
        starts = timestamps.iloc[windowed - (windowed - self.first_window_row) % self.window_rows]
        by_start = dict(zip(self.regimes.labels.index, self.regimes.labels))
        regime[windowed] = [by_start.get(start) for start in starts]
        return regime


def recurring_behaviour(frame: pd.DataFrame, metric: str, window: pd.Timedelta, timezone: str,
                        top: int = 3) -> RecurringBehaviour:
    """Find and name what recurs in ``frame[metric]``: its season, its regimes in windows of ``window`` (at least
    ``MIN_WINDOW_ROWS`` rows) with the calendar phases each falls in (``timezone``'s trading calendar), and its
    ``top`` closest pairs of windows alike in shape beyond chance. A window is placed in the calendar by its middle row.

    The rows must be at a regular step (``on_regular_grid``), so that rows count time: a season in rows is a
    season in time, and a window of rows is a window of the clock.
    """
    step = usual_step(frame["timestamp"])
    gaps = frame["timestamp"].diff()
    off_grid = gaps.iloc[1:] != step
    if off_grid.any():
        row = off_grid.index[off_grid.to_numpy().argmax()]
        raise ValueError(f"its rows are not one every {duration_text(step)}: row {row} is {duration_text(gaps[row])} "
                         "after the one before (on_regular_grid puts them on a grid)")
    rows = max(MIN_WINDOW_ROWS, round(window / step))
    values = frame[metric].to_numpy(dtype=float)
    finite = values[np.isfinite(values)]
    if not len(finite):
        return RecurringBehaviour(metric, step, rows, why_none="never measured")
    if finite.min() == finite.max():
        return RecurringBehaviour(metric, step, rows, why_none=f"one value throughout ({finite[0]:g})")
    period = dominant_period(values)
    season = None if period is None else Season(period, period * step, float(autocorrelation(values)[period]))
    stride = max(1, (len(values) - rows + 1) // MOTIF_WINDOWS)
    shaped, ends = subsequences(values, rows, stride)
    shapes = tuple(_motifs_of(shaped, ends, len(values), top, stride))
    why_no_motifs = None if shapes else _why_no_motifs(len(shaped), rows, step)
    first = _first_on_the_clock(frame["timestamp"], rows, step, timezone)
    try:
        found = regimes(frame.iloc[first:], metric, rows)
    except ValueError as refusal:
        return RecurringBehaviour(metric, step, rows, season, motifs=shapes, why_no_regimes=str(refusal),
                                  why_no_motifs=why_no_motifs)
    middles = pd.Series(found.labels.index + rows // 2 * step)  # a window from 9:00 is the open's, not the pre-market's
    phases = seasonal_slots(middles, "calendar_phase", timezone).to_numpy()
    shares = pd.crosstab(found.labels.to_numpy(), phases, normalize="index").reindex(found.profile.index)
    return RecurringBehaviour(metric, step, rows, season, found, shares, shapes, why_no_motifs=why_no_motifs,
                              first_window_row=first)


def _why_no_motifs(compared: int, rows: int, step: pd.Timedelta) -> str:
    span = duration_text(rows * step)
    if compared < 3:
        return f"too few windows of {span} with a shape"
    return (f"no two of its {compared:,} windows of {span} alike beyond chance: as many windows of noise have pairs "
            f"correlated up to {chance_correlation(compared, rows):.4f}")


def _first_on_the_clock(timestamps: pd.Series, rows: int, step: pd.Timedelta, timezone: str) -> int:
    """The first of the first ``rows`` rows whose local time is a whole window (an hour's window starts at 9:00, not
    9:37; a span that divides the day starts at its midnight); the first row when none is (timestamps off the clock)."""
    local = timestamps.iloc[:rows].dt.tz_convert(timezone).dt.tz_localize(None)
    on_the_clock = np.flatnonzero((local == local.dt.floor(rows * step)).to_numpy())
    return int(on_the_clock[0]) if len(on_the_clock) else 0


def moving_together(frame: pd.DataFrame, top: int = 3) -> dict[str, list[tuple[str, float]]]:
    """For each metric of one source, the ``top`` others whose values it is most correlated with, either way, at
    ``MOVES_WITH_CORRELATION`` or more: requests and CPU rising together, free memory falling as used memory rises.
    Rows where either is missing are left out of each pair's correlation; a metric that never varied moves with none."""
    correlations = frame[metric_columns(frame)].astype(float).corr()
    together = {}
    for metric, row in correlations.iterrows():
        strong = row.drop(metric).dropna()
        strong = strong[strong.abs() >= MOVES_WITH_CORRELATION]
        strongest_first = strong.reindex(strong.abs().sort_values(ascending=False).index)
        together[metric] = [(other, float(r)) for other, r in strongest_first.head(top).items()]
    return together


def on_regular_grid(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame``'s rows on a grid of its usual step from its first row: a missing row (a minute without traffic in a
    gold export, an agent that was down) becomes a row of missing values, a row off the grid moves to the grid
    point before it (the first of two on one point is kept), and a row without a time is left out (it has no place on
    the grid)."""
    timestamps = frame["timestamp"]
    step, first = usual_step(timestamps), timestamps.min()
    grid = pd.date_range(first, timestamps.max(), freq=step)
    if len(grid) > MAX_GRID_GROWTH * len(frame):
        raise ValueError(f"a grid of one row every {duration_text(step)} (the usual step) from {first} to "
                         f"{timestamps.max()} would be {len(grid):,} rows for {len(frame):,}: the rows are too sparse for "
                         f"their step; export them at a coarser one")
    placed = frame.assign(timestamp=first + (timestamps - first) // step * step).drop_duplicates("timestamp")
    return placed.set_index("timestamp").reindex(grid).rename_axis("timestamp").reset_index()


def usual_step(timestamps: pd.Series) -> pd.Timedelta:
    """The median time from one row to the next, refused when the timestamps never move forward."""
    steps = timestamps.diff()
    steps = steps[steps > pd.Timedelta(0)]
    if steps.empty:
        rows = f"{len(timestamps):,} row{'' if len(timestamps) == 1 else 's'}"
        raise ValueError(f"its timestamps never move forward ({rows}): no time between rows to find a season or "
                         "windows in")
    return steps.median()


def duration_text(span: pd.Timedelta) -> str:
    """``2 h 30 min``, ``7 days``, ``0.5 s``: a duration as a person writes it (to the second from a minute up)."""
    seconds = round(span.total_seconds())
    if span < pd.Timedelta(minutes=1):
        return f"{span.total_seconds():g} s"
    parts = []
    for unit, name in ((86400, "day"), (3600, "h"), (60, "min"), (1, "s")):
        count, seconds = divmod(seconds, unit)
        if count:
            parts.append(f"{count} {name}{'s' if name == 'day' and count > 1 else ''}")
    return " ".join(parts)


class ShapeLibrary:
    """The windows of normal history; ``novelty`` is each window's distance to the nearest window known before it.

    Windows are compared as measured, in the history's unit (less its median, over its robust
    sigma), not each reduced to its own shape: a latency spike ten times the usual wiggle, a feed
    stalled at zero or a level never seen are new, where z-normalized they look like any noisy
    window. Known are the history's windows and the stream's own earlier ones (those ending
    ``length`` to ``recent`` rows before, so none overlaps): a pattern seen in the history, or
    come and gone in the last ``recent`` rows, is not new; one seen nowhere is.
    """

    def __init__(self, length: int, recent: int = 4000, max_shapes: int = 4000):
        self.length, self.recent, self.max_shapes = length, recent, max_shapes

    def fit(self, values: np.ndarray) -> ShapeLibrary:
        stride = max(1, (len(values) - self.length + 1) // self.max_shapes)
        measured, _ = windows(values, self.length, stride)
        if len(measured) == 0:
            raise ValueError(f"no window of {self.length} rows without a gap of over {FILLED_GAP_ROWS} missing values "
                             f"in {len(values)} rows: no shape to learn")
        finite = pd.Series(values[np.isfinite(values)])
        # a metric that held one value (an error rate at zero): any move from it is new, however small
        self.centre = float(finite.median())
        self.scale = robust_sigma(finite) or EPSILON * (1 + abs(self.centre))
        self.known = self._in_history_unit(measured)
        self._known_norms = (self.known**2).sum(axis=1)
        return self

    def _in_history_unit(self, measured: np.ndarray) -> np.ndarray:
        return (measured - self.centre) / self.scale

    def novelty(self, values: np.ndarray, first: int = 0) -> np.ndarray:
        """Per row from ``first``: the root mean square distance, in the history's sigma, of the window ending there
        to the nearest known one; NaN before a full window, over a gap, and before ``first`` (rows only read as the
        windows before it, e.g. a stream's kept context)."""
        measured, ends = windows(values, self.length)
        scaled = self._in_history_unit(measured)
        norms = (scaled**2).sum(axis=1)
        result = np.full(len(values), np.nan)
        for start in range(int(np.searchsorted(ends, first)), len(ends), NOVELTY_BLOCK_ROWS):
            query = slice(start, start + NOVELTY_BLOCK_ROWS)
            nearest = np.minimum(_nearest(scaled[query], self.known, self._known_norms),
                                 self._nearest_earlier(scaled, norms, ends, query))
            result[ends[query]] = np.sqrt(nearest / self.length)
        return result

    def _nearest_earlier(self, scaled: np.ndarray, norms: np.ndarray, ends: np.ndarray, query: slice) -> np.ndarray:
        """Each query window's squared distance to the nearest window ending ``length`` to ``recent`` rows before it."""
        first_end, last_end = ends[query][0], ends[query][-1]
        reach = np.searchsorted(ends, [first_end - self.recent, last_end - self.recent])
        until = np.searchsorted(ends, [first_end - self.length, last_end - self.length], side="right")
        # the middle is in reach of every query of the block; only the two edges need a row-by-row check
        shared = slice(reach[1], max(reach[1], until[0]))
        nearest = np.full(len(ends[query]), np.inf)
        for part, checked in ((slice(reach[0], shared.start), True), (shared, False), (slice(shared.stop, until[1]), True)):
            if part.stop <= part.start:
                continue
            in_reach = None
            if checked:
                behind = ends[query][:, None] - ends[part][None, :]
                in_reach = (behind >= self.length) & (behind <= self.recent)
            nearest = np.minimum(nearest, _nearest(scaled[query], scaled[part], norms[part], in_reach))
        return nearest


def _nearest(rows: np.ndarray, others: np.ndarray, other_norms: np.ndarray, allowed: np.ndarray | None = None) -> np.ndarray:
    """Each row's squared Euclidean distance to the nearest of ``others`` (where ``allowed``; inf if none is).

    The nearest is found by one matrix product worked on in place (the distance matrices, not the
    arithmetic, are the cost); its distance is then taken exactly, as the product's form loses
    precision on windows far from the history's median, and a calibration on near-zero distances
    (a series that repeats itself) would read that noise as novelty.
    """
    products = rows @ others.T
    products *= -2.0
    products += other_norms
    if allowed is not None:
        products[~allowed] = np.inf
    nearest = products.argmin(axis=1)
    found = np.isfinite(products[np.arange(len(rows)), nearest])
    return np.where(found, ((rows - others[nearest]) ** 2).sum(axis=1), np.inf)
