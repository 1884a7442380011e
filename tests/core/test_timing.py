"""Which instant a run is about, including runs triggered by a breach asset event."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ctflow.core.timing import as_of_from_events, resolve_as_of


def test_override_then_logical_date_then_triggering_events_then_run_after():
    logical = datetime(2013, 3, 1, tzinfo=UTC)
    ran = datetime(2026, 11, 23, tzinfo=UTC)
    triggered = datetime(2013, 3, 5, 6, tzinfo=UTC)
    assert resolve_as_of("2013-04-01", logical, ran, triggered_as_of=triggered) == datetime(2013, 4, 1, tzinfo=UTC)
    assert resolve_as_of(None, logical, ran, triggered_as_of=triggered) == logical
    assert resolve_as_of("", None, ran, triggered_as_of=triggered) == datetime(2013, 3, 5, 6, tzinfo=UTC)
    assert resolve_as_of(None, None, ran) == ran
    with pytest.raises(ValueError, match="no logical date"):
        resolve_as_of(None, None, None)


def test_the_newest_window_end_of_the_triggering_events_wins():
    extras = [
        {"pipeline": "flight_delay", "window_end": "2013-03-05T06:00:00+00:00"},
        None,
        {"version": "3"},  # an upstream promotion names no instant
        {"window_end": "2013-03-12T06:00:00+00:00"},
        {"as_of": "2013-03-08T00:00:00"},  # naive: taken as UTC
    ]
    assert as_of_from_events(extras) == datetime(2013, 3, 12, 6, tzinfo=UTC)
    assert as_of_from_events([{"as_of": "2013-03-08T00:00:00"}]) == datetime(2013, 3, 8, tzinfo=UTC)
    assert as_of_from_events([{"version": "3"}, None]) is None
    assert as_of_from_events([]) is None
