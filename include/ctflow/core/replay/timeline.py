"""The replay's time: its steps, and the ticks of a cron between two moments."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from ctflow.exceptions import CtflowError
from ctflow.spec.models import cron_expression


class ReplayError(CtflowError, ValueError):
    """A replay that cannot run as asked (bad range, step, override or data)."""


@dataclass(frozen=True)
class Step:
    """Step ``index``: the policies act as of ``start`` and are scored on ``[start, end)``."""

    index: int
    start: datetime
    end: datetime


def make_steps(start: datetime, end: datetime, every: timedelta) -> list[Step]:
    """``[start, end)`` cut every ``every``; the last step may be shorter."""
    start, end = as_utc(start), as_utc(end)
    if every <= timedelta(0):
        raise ReplayError(f"the step must be positive, got {every}")
    if end <= start:
        raise ReplayError(f"end {end.date()} must be after start {start.date()}")
    out: list[Step] = []
    moment = start
    while moment < end:
        out.append(Step(len(out), moment, min(moment + every, end)))
        moment += every
    return out


def as_utc(moment: datetime | date | str) -> datetime:
    """A timezone-aware UTC datetime; dates and naive values are taken as UTC."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    if not isinstance(moment, datetime):
        moment = datetime(moment.year, moment.month, moment.day)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def cron_ticks(cron: str | None, start: datetime, end: datetime, tz: str = "UTC") -> list[datetime]:
    """Ticks of ``cron`` (or an Airflow preset) in ``(start, end]``, in UTC; none for ``None``."""
    if cron is None:
        return []
    from zoneinfo import ZoneInfo

    from croniter import croniter

    expression = cron_expression(cron)
    it = croniter(expression, as_utc(start).astimezone(ZoneInfo(tz)))
    ticks: list[datetime] = []
    while True:
        tick = as_utc(it.get_next(datetime))
        if tick > end:
            return ticks
        ticks.append(tick)
