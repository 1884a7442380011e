"""The replay's time: its steps, and the ticks of a cron between two moments."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from ctflow.exceptions import CtflowError
from ctflow.spec.durations import CalendarDuration
from ctflow.spec.models import cron_expression


class ReplayError(CtflowError, ValueError):
    """A replay that cannot run as asked (bad range, step, override or data)."""


@dataclass(frozen=True)
class Step:
    """Step ``index``: the policies act as of ``start`` and are scored on ``[start, end)``."""

    index: int
    start: datetime
    end: datetime


def make_steps(start: datetime, end: datetime, every: timedelta | CalendarDuration) -> list[Step]:
    """``[start, end)`` cut every ``every``; the last step may be shorter.

    Step ``k`` starts at ``start`` moved by ``k`` times ``every`` on the calendar, not by adding
    ``every`` to the previous step: ``1mo`` steps from Jan 31 start Feb 29, Mar 31, Apr 30, and
    from a month's first day they stay on month starts (31-day steps drift off them).
    """
    start, end = as_utc(start), as_utc(end)
    step = CalendarDuration.of(every)
    if step.months < 0 or step.approx() <= timedelta(0):
        raise ReplayError(f"the step must be positive, got {step}")
    if end <= start:
        raise ReplayError(f"end {end.date()} must be after start {start.date()}")
    out: list[Step] = []
    moment = start
    while moment < end:
        following = CalendarDuration(step.months * (len(out) + 1), step.delta * (len(out) + 1)).after(start)
        out.append(Step(len(out), moment, min(following, end)))
        moment = following
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
