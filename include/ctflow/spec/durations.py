"""Durations written the way people say them: ``90d``, ``2w``, ``12h``, ``30m``, ``1d12h``, and
calendar ones, ``1mo``, ``3mo``, ``1y``, ``1mo15d``.

A clock duration (``Duration``) is a :class:`~datetime.timedelta`. A month is not a number of
days (Jan 31 + 1 month is Feb 28 or 29; Mar 1 - 1 month is Feb 1), so a calendar duration
(``CalendarSpan``) is a :class:`CalendarDuration`, and moments move by it with
:meth:`CalendarDuration.before` / :meth:`CalendarDuration.after`, never with ``-`` and ``+``.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, TypeVar

from pydantic import BeforeValidator, PlainSerializer, PlainValidator, WithJsonSchema

if TYPE_CHECKING:
    import pandas as pd

_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
# "mo" before "m": a month is not a minute.
_PART = re.compile(r"(\d+)\s*(mo|y|w|d|h|m|s)")
_WHOLE = re.compile(r"^\s*(?:\d+\s*[wdhms]\s*)+$")
_WHOLE_CALENDAR = re.compile(r"^\s*(?:\d+\s*(?:mo|y|w|d|h|m|s)\s*)+$")
DURATION_PATTERN = r"^\s*(\d+\s*[wdhms]\s*)+$"
CALENDAR_PATTERN = r"^\s*(\d+\s*(mo|y|w|d|h|m|s)\s*)+$"
#: A month's average length (the Gregorian year / 12): only for comparing lengths, never for moving a moment.
AVERAGE_MONTH = timedelta(days=365.2425 / 12)

Moment = TypeVar("Moment", bound=datetime)


def _add_months(moment: Moment, months: int) -> Moment:
    """``moment`` moved by whole months, the day clamped to the month's last (Jan 31 + 1 = Feb 28/29)."""
    index = moment.year * 12 + moment.month - 1 + months
    year, month = divmod(index, 12)
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


@dataclass(frozen=True, eq=False)
class CalendarDuration:
    """``months`` calendar months, then ``delta``: ``1mo15d`` is ``CalendarDuration(1, timedelta(days=15))``.

    One without months equals (and hashes as) its timedelta: ``90d`` is 90 days wherever it ends.
    """

    months: int = 0
    delta: timedelta = timedelta(0)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, timedelta):
            return self.months == 0 and self.delta == other
        if isinstance(other, CalendarDuration):
            return (self.months, self.delta) == (other.months, other.delta)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.delta) if self.months == 0 else hash((self.months, self.delta))

    @classmethod
    def of(cls, value: CalendarDuration | timedelta) -> CalendarDuration:
        """``value`` as a calendar duration (a timedelta is one of no months)."""
        return value if isinstance(value, CalendarDuration) else cls(0, value)

    def after(self, moment: Moment) -> Moment:
        """``moment`` plus this duration: months first (clamped to the month's end), then ``delta``."""
        return _add_months(moment, self.months) + self.delta

    def before(self, moment: Moment) -> Moment:
        """``moment`` minus this duration: a ``1mo`` window ending at Mar 1 starts Feb 1."""
        return _add_months(moment, -self.months) - self.delta

    def after_each(self, moments: pd.Series) -> pd.Series:
        """:meth:`after` for a series of timestamps (pandas clamps month ends the same way)."""
        import pandas as pd

        shifted = moments + pd.DateOffset(months=self.months) if self.months else moments
        return shifted + pd.Timedelta(self.delta)

    def approx(self) -> timedelta:
        """The length with average months: to compare lengths (holdout < window), never to move a moment."""
        return self.months * AVERAGE_MONTH + self.delta

    def longest(self) -> timedelta:
        """The most it can span (31-day months): a whole-day override must exceed it wherever it ends."""
        return self.months * timedelta(days=31) + self.delta

    @property
    def calendar(self) -> bool:
        """Does it count months (so its length depends on where it starts)?"""
        return self.months != 0

    def __str__(self) -> str:
        return format_duration(self)


def _parts(value: str) -> tuple[int, dict[str, int]]:
    months, parts = 0, dict[str, int]()
    for amount, unit in _PART.findall(value):
        if unit in ("mo", "y"):
            months += int(amount) * (12 if unit == "y" else 1)
        else:
            parts[_UNITS[unit]] = parts.get(_UNITS[unit], 0) + int(amount)
    return months, parts


def parse_duration(value: object) -> timedelta:
    """Turn ``"90d"`` into ``timedelta(days=90)``; a timedelta passes through unchanged."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, str) and _WHOLE_CALENDAR.match(value) and not _WHOLE.match(value):
        raise ValueError(f"expected a duration in days or less such as '90d' or '12h', got {value!r}: "
                         "months and years ('mo', 'y') are for windows, holdouts and steps")
    if isinstance(value, bool) or not isinstance(value, str) or not _WHOLE.match(value):
        raise ValueError(f"expected a duration such as '90d', '12h' or '1d12h', got {value!r}")
    duration = timedelta(**_parts(value)[1])
    if duration <= timedelta(0):
        raise ValueError(f"expected a positive duration, got {value!r}")
    return duration


def parse_calendar_duration(value: object) -> CalendarDuration:
    """Turn ``"3mo"`` into ``CalendarDuration(3)`` and ``"90d"`` into ``CalendarDuration(0, 90 days)``."""
    if isinstance(value, CalendarDuration | timedelta):
        value = CalendarDuration.of(value)
        if value.months < 0 or value.approx() <= timedelta(0):
            raise ValueError(f"expected a positive duration, got {format_duration(value)!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, str) or not _WHOLE_CALENDAR.match(value):
        raise ValueError(f"expected a duration such as '90d', '12h', '1mo' or '1y', got {value!r}")
    months, parts = _parts(value)
    duration = CalendarDuration(months, timedelta(**parts))
    if duration.approx() <= timedelta(0):
        raise ValueError(f"expected a positive duration, got {value!r}")
    return duration


def format_duration(duration: timedelta | CalendarDuration) -> str:
    """The shortest spelling of ``duration`` that :func:`parse_duration` (or, with months,
    :func:`parse_calendar_duration`) reads back."""
    out = []
    if isinstance(duration, CalendarDuration):
        years, months = divmod(duration.months, 12)
        out += [f"{years}y"] if years else []
        out += [f"{months}mo"] if months else []
        duration = duration.delta
    seconds = int(duration.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            out.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(out) or "0s"


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN, "examples": ["90d", "12h"]}),
]

#: A length of data time that may count calendar months: windows, holdouts, label delays.
CalendarSpan = Annotated[
    CalendarDuration,
    PlainValidator(parse_calendar_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": CALENDAR_PATTERN, "examples": ["90d", "1mo", "1y"]}),
]
