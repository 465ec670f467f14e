"""Event-time horizons: the part of a silver table a micro-batch's work can touch.

A micro-batch's events fall in a few minutes of event time (late ones in a few more). The rows
that can share an ``event_id`` with them (silver's dedupe) or a gold key (gold's refresh) lie
within a known span of those minutes. Filtering on that range with literal times lets Delta
skip every file whose ``event_at`` statistics lie outside it, so the work of a batch follows
the batch's size, not the size of the day's partition. The filter is exact: it never leaves
out a row the work needs.
"""

from __future__ import annotations

import functools
import operator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

# Above this many separate ranges (a backfill spread over a day), minutes are grouped into
# hours, then days: a wider range reads a little more, a long OR slows planning.
MAX_RANGES = 32
BUCKET_SECONDS = (60, 3600, 86400)


def minute_start(column: str = "event_at") -> Column:
    """The start of the minute ``column`` falls in, in epoch seconds."""
    return F.floor(F.unix_seconds(F.col(column)) / 60) * 60


def minute_starts(rows: DataFrame, column: str = "event_at") -> list[int]:
    """The distinct minutes of ``rows``' event times (see ``minute_start``)."""
    minutes = rows.select(minute_start(column).alias("minute")).distinct().collect()
    return [row.minute for row in minutes if row.minute is not None]


@dataclass(frozen=True)
class EventTimeRanges:
    ranges: tuple[tuple[int, int], ...]  # [start, end) in epoch seconds, sorted and disjoint

    @classmethod
    def around(cls, minutes: list[int], span: timedelta) -> EventTimeRanges:
        """The times within ``span`` of any of ``minutes`` (epoch seconds of minute starts)."""
        span_s = int(span.total_seconds())
        ranges: list[tuple[int, int]] = []
        for width in BUCKET_SECONDS:
            ranges = []
            for start in sorted({minute - minute % width for minute in minutes}):
                low, high = start - span_s, start + width + span_s
                if ranges and low <= ranges[-1][1]:
                    ranges[-1] = (ranges[-1][0], max(ranges[-1][1], high))
                else:
                    ranges.append((low, high))
            if len(ranges) <= MAX_RANGES:
                break
        return cls(tuple(ranges))

    def dates(self) -> list[date]:
        """The UTC dates the ranges cover: silver's ``event_date`` partitions (sessions run in UTC)."""
        days = set()
        for low, high in self.ranges:
            day = _utc(low).date()
            while day <= _utc(high - 1).date():
                days.add(day)
                day += timedelta(days=1)
        return sorted(days)

    def contains(self, event_at: Column) -> Column:
        """``event_at`` lies in one of the ranges (false for no ranges)."""
        if not self.ranges:
            return F.lit(False)
        inside = [(event_at >= F.lit(_utc(low))) & (event_at < F.lit(_utc(high))) for low, high in self.ranges]
        return functools.reduce(operator.or_, inside)


def _utc(epoch_s: int) -> datetime:
    return datetime.fromtimestamp(epoch_s, timezone.utc)
