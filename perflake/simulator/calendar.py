"""The trading calendar the simulated load follows (US equity and options hours).

Phases, in the exchange's time zone: ``open`` (the first 30 minutes of the regular session),
``regular``, ``close`` (its last 30 minutes), ``extended`` (04:00-09:30 and 16:00-20:00),
``overnight``, ``weekend`` and ``holiday``. Early-close days end the session at 13:00.
"""

from __future__ import annotations

from datetime import date, datetime, time, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo

# NYSE full-day closures and 13:00 early closes, 2025-2027
HOLIDAYS = {
    date(2025, 1, 1), date(2025, 1, 20), date(2025, 2, 17), date(2025, 4, 18), date(2025, 5, 26), date(2025, 6, 19),
    date(2025, 7, 4), date(2025, 9, 1), date(2025, 11, 27), date(2025, 12, 25),
    date(2026, 1, 1), date(2026, 1, 19), date(2026, 2, 16), date(2026, 4, 3), date(2026, 5, 25), date(2026, 6, 19),
    date(2026, 7, 3), date(2026, 9, 7), date(2026, 11, 26), date(2026, 12, 25),
    date(2027, 1, 1), date(2027, 1, 18), date(2027, 2, 15), date(2027, 3, 26), date(2027, 5, 31), date(2027, 6, 18),
    date(2027, 7, 5), date(2027, 9, 6), date(2027, 11, 25), date(2027, 12, 24),
}
EARLY_CLOSES = {date(2025, 7, 3), date(2025, 11, 28), date(2025, 12, 24), date(2026, 11, 27), date(2026, 12, 24),
                date(2027, 11, 26)}
OPEN, CLOSE, EARLY_CLOSE = time(9, 30), time(16, 0), time(13, 0)
EXTENDED_START, EXTENDED_END = time(4, 0), time(20, 0)
BURST_MINUTES = 30
# relative load of each phase; the regular session is 1
PHASE_LOAD = {"open": 2.5, "regular": 1.0, "close": 2.0, "extended": 0.25, "overnight": 0.08, "weekend": 0.04, "holiday": 0.04}
TRADING_PHASES = ("open", "regular", "close")


@lru_cache(maxsize=4)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def phase(at: float, timezone_name: str) -> str:
    """The calendar phase of the epoch second ``at``."""
    local = datetime.fromtimestamp(at, timezone.utc).astimezone(zone(timezone_name))
    day = local.date()
    if day in HOLIDAYS:
        return "holiday"
    if local.weekday() >= 5:
        return "weekend"
    close = EARLY_CLOSE if day in EARLY_CLOSES else CLOSE
    clock = local.time()
    minutes = clock.hour * 60 + clock.minute
    if OPEN <= clock < close:
        if minutes < OPEN.hour * 60 + OPEN.minute + BURST_MINUTES:
            return "open"
        if minutes >= close.hour * 60 + close.minute - BURST_MINUTES:
            return "close"
        return "regular"
    if EXTENDED_START <= clock < EXTENDED_END:
        return "extended"
    return "overnight"


def load(at: float, timezone_name: str) -> float:
    """Relative load: the phase's level, with a midday lull inside the regular session."""
    current = phase(at, timezone_name)
    level = PHASE_LOAD[current]
    if current == "regular":
        local = datetime.fromtimestamp(at, timezone.utc).astimezone(zone(timezone_name))
        hours_from_midday = abs(local.hour + local.minute / 60 - 12.75)
        level *= 0.7 + 0.3 * min(1.0, hours_from_midday / 3.25)
    return level


def is_trading(at: float, timezone_name: str) -> bool:
    return phase(at, timezone_name) in TRADING_PHASES
