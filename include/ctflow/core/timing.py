"""Time arithmetic of runs: which instant a run is about and which rows its windows hold."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from ctflow.spec.durations import CalendarDuration


def resolve_as_of(
    override: str | datetime | None,
    logical_date: datetime | None,
    run_after: datetime | None,
    *,
    triggered_as_of: datetime | None = None,
) -> datetime:
    """The instant a run is about, in UTC: an explicit override, the logical date, the instant the
    asset events that triggered the run are about (:func:`as_of_from_events`), or when it ran."""
    for candidate in (override, logical_date, triggered_as_of, run_after):
        if candidate in (None, ""):
            continue
        value = datetime.fromisoformat(candidate) if isinstance(candidate, str) else candidate
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        # A plain datetime in UTC: Airflow hands out pendulum objects, which pandas will not compare.
        return datetime.fromtimestamp(value.timestamp(), tz=UTC)
    raise ValueError("the run has no logical date and no as_of parameter: cannot tell which data to use")


def as_of_from_events(extras: Iterable[Mapping[str, Any] | None]) -> datetime | None:
    """The newest ``as_of`` (or ``window_end``) named by the extras of triggering asset events.

    A breach event names the monitored window; retraining as of its end uses the data that
    breached. Without this an asset-triggered run (it has no logical date in Airflow 3) would
    train as of the wall clock, which is wrong for any replayed or backfilled history.
    """
    moments = []
    for extra in extras:
        value = (extra or {}).get("as_of") or (extra or {}).get("window_end")
        if value:
            moments.append(datetime.fromisoformat(value) if isinstance(value, str) else value)
    if not moments:
        return None
    return max(m if m.tzinfo else m.replace(tzinfo=UTC) for m in moments)


def window(as_of: datetime, length: timedelta | CalendarDuration) -> tuple[datetime, datetime]:
    """``[as_of - length, as_of)``, months counted on the calendar (a 1mo window ending Mar 1 starts Feb 1)."""
    return CalendarDuration.of(length).before(as_of), as_of
