"""Time arithmetic of runs: which instant a run is about and which rows its windows hold."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone


def resolve_as_of(override: str | datetime | None, logical_date: datetime | None, run_after: datetime | None) -> datetime:
    """The instant a run is about, in UTC: an explicit override, the logical date, or when it ran."""
    for candidate in (override, logical_date, run_after):
        if candidate in (None, ""):
            continue
        value = datetime.fromisoformat(candidate) if isinstance(candidate, str) else candidate
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        # A plain datetime in UTC: Airflow hands out pendulum objects, which pandas will not compare.
        return datetime.fromtimestamp(value.timestamp(), tz=timezone.utc)
    raise ValueError("the run has no logical date and no as_of parameter: cannot tell which data to use")


def window(as_of: datetime, length: timedelta) -> tuple[datetime, datetime]:
    """``[as_of - length, as_of)``."""
    return as_of - length, as_of
