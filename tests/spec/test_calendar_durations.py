"""Calendar durations (``1mo``, ``3mo``, ``1y``): parsing, month ends, where the spec takes them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from pydantic import ValidationError

from ctflow.spec.durations import CalendarDuration, format_duration, parse_calendar_duration, parse_duration
from ctflow.spec.models import Data, Monitoring


@pytest.mark.parametrize(
    ("text", "months", "delta"),
    [("1mo", 1, timedelta(0)), ("3mo", 3, timedelta(0)), ("1y", 12, timedelta(0)), ("1y6mo", 18, timedelta(0)),
     ("1mo15d", 1, timedelta(days=15)), ("90d", 0, timedelta(days=90)), ("12h", 0, timedelta(hours=12)),
     ("2mo30m", 2, timedelta(minutes=30))],
)
def test_calendar_units_parse_and_round_trip(text: str, months: int, delta: timedelta):
    duration = parse_calendar_duration(text)
    assert (duration.months, duration.delta) == (months, delta)
    assert parse_calendar_duration(format_duration(duration)) == duration


@pytest.mark.parametrize("value", ["", "1", "mo", "1.5mo", "-1mo", "0mo", "0y0d", "1 month", 3, None])
def test_calendar_durations_reject_what_is_no_positive_duration(value: object):
    with pytest.raises(ValueError, match="duration"):
        parse_calendar_duration(value)


def test_a_clock_duration_refuses_months_and_says_where_they_belong():
    with pytest.raises(ValueError, match="months and years .* are for windows, holdouts and steps"):
        parse_duration("1mo")


@pytest.mark.parametrize(
    ("moment", "text", "after", "before"),
    [
        (datetime(2024, 1, 31), "1mo", datetime(2024, 2, 29), datetime(2023, 12, 31)),  # leap year
        (datetime(2023, 1, 31), "1mo", datetime(2023, 2, 28), datetime(2022, 12, 31)),
        (datetime(2024, 3, 1), "1mo", datetime(2024, 4, 1), datetime(2024, 2, 1)),  # a 1mo window ending Mar 1
        (datetime(2024, 3, 31), "1mo", datetime(2024, 4, 30), datetime(2024, 2, 29)),
        (datetime(2024, 2, 29), "1y", datetime(2025, 2, 28), datetime(2023, 2, 28)),
        (datetime(2024, 11, 30, 6), "3mo", datetime(2025, 2, 28, 6), datetime(2024, 8, 30, 6)),
        (datetime(2024, 1, 31), "1mo1d", datetime(2024, 3, 1), datetime(2023, 12, 30)),
    ],
)
def test_months_move_on_the_calendar_with_month_ends_clamped(moment, text, after, before):
    duration = parse_calendar_duration(text)
    assert duration.after(moment) == after and duration.before(moment) == before
    aware = moment.replace(tzinfo=UTC)
    assert duration.before(aware) == before.replace(tzinfo=UTC)
    series = pd.Series([pd.Timestamp(aware)])
    assert duration.after_each(series).iloc[0] == pd.Timestamp(after.replace(tzinfo=UTC))


def test_data_and_monitoring_windows_take_calendar_units_and_compare_by_length():
    data = Data.model_validate({"entities": "e.parquet", "timestamp": "ts", "label": "y", "features": "svc",
                                "window": "1y", "holdout": "1mo"})
    assert (data.window, data.holdout) == (CalendarDuration(12), CalendarDuration(1))
    assert data.model_dump(mode="json")["window"] == "1y"
    assert Monitoring.model_validate({"window": "1mo"}).window == CalendarDuration(1)
    with pytest.raises(ValidationError, match=r"holdout \(1mo\) must be shorter than window \(30d\)"):
        Data.model_validate({"entities": "e.parquet", "timestamp": "ts", "label": "y", "features": "svc",
                             "window": "30d", "holdout": "1mo"})
    # A day-only duration is its timedelta: old specs and code comparing with timedelta are unchanged.
    assert CalendarDuration(0, timedelta(days=90)) == timedelta(days=90)
    assert CalendarDuration(1) != timedelta(days=31) and CalendarDuration(1).longest() == timedelta(days=31)
