"""How the replay rounds and prints its numbers."""

from __future__ import annotations

import math


def round_metric(value: float | None, digits: int = 4) -> float | None:
    """``value`` rounded for JSON; None for a missing or NaN value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return round(float(value), digits)


def fmt(value: float | None) -> str:
    """``value`` for a table: four decimals, ``-`` when missing."""
    return "-" if value is None else f"{value:.4f}"
