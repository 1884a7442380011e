"""Durations written the way people say them: ``90d``, ``2w``, ``12h``, ``30m``, ``1d12h``."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
_PART = re.compile(r"(\d+)\s*([wdhms])")
_WHOLE = re.compile(r"^\s*(?:\d+\s*[wdhms]\s*)+$")
DURATION_PATTERN = r"^\s*(\d+\s*[wdhms]\s*)+$"


def parse_duration(value: object) -> timedelta:
    """Turn ``"90d"`` into ``timedelta(days=90)``; a timedelta passes through unchanged."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool) or not isinstance(value, str) or not _WHOLE.match(value):
        raise ValueError(f"expected a duration such as '90d', '12h' or '1d12h', got {value!r}")
    parts: dict[str, int] = {}
    for amount, unit in _PART.findall(value):
        parts[_UNITS[unit]] = parts.get(_UNITS[unit], 0) + int(amount)
    duration = timedelta(**parts)
    if duration <= timedelta(0):
        raise ValueError(f"expected a positive duration, got {value!r}")
    return duration


def format_duration(duration: timedelta) -> str:
    """The shortest spelling of ``duration`` that :func:`parse_duration` reads back."""
    seconds = int(duration.total_seconds())
    out = []
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
