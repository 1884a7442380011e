"""The replay's steps on the calendar: ``--every 1mo`` stays on month starts; 31-day steps drift."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from ctflow.core import replay
from ctflow.core.replay import ReplayError, ReplayFrame
from ctflow.spec.durations import CalendarDuration, parse_calendar_duration

START, END = datetime(2011, 1, 1, tzinfo=UTC), datetime(2013, 1, 1, tzinfo=UTC)


def _monthly_panel() -> ReplayFrame:
    """A city panel as the issue's: one row per city and month, stamped on the month's first day."""
    months = pd.date_range(START, END, freq="MS", inclusive="left")
    frame = pd.DataFrame({"month": months.repeat(46), "city": list(range(46)) * len(months)})
    return ReplayFrame(frame, features=["city"], timestamp="month")


def test_monthly_steps_land_on_month_starts_and_hold_one_month_each():
    steps = replay.make_steps(START, END, parse_calendar_duration("1mo"))
    assert len(steps) == 24 and all(s.start.day == 1 and s.start.hour == 0 for s in steps)
    assert all(a.end == b.start for a, b in zip(steps, steps[1:])) and steps[-1].end == END
    panel = _monthly_panel()
    assert {len(panel.between(s.start, s.end)) for s in steps} == {46}


def test_31_day_steps_drift_off_month_starts():
    """What the issue saw before calendar units: some steps hold two months' rows, some none."""
    steps = replay.make_steps(START, END, timedelta(days=31))
    counts = [len(_monthly_panel().between(s.start, s.end)) for s in steps]
    assert 92 in counts and 0 in counts


def test_steps_from_a_month_end_are_clamped_not_carried():
    """From Jan 31: Feb 28, Mar 31, Apr 30 (each from the start, so a short month does not shift the rest)."""
    steps = replay.make_steps(datetime(2013, 1, 31, tzinfo=UTC), datetime(2013, 5, 1, tzinfo=UTC),
                              CalendarDuration(1))
    assert [s.start.date().isoformat() for s in steps] == ["2013-01-31", "2013-02-28", "2013-03-31", "2013-04-30"]
    quarterly = replay.make_steps(START, END, parse_calendar_duration("3mo"))
    assert [s.start.month for s in quarterly[:5]] == [1, 4, 7, 10, 1]
    with pytest.raises(ReplayError, match="must be positive"):
        replay.make_steps(START, END, timedelta(0))
