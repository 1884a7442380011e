"""``ctflow init NAME --from TABLE.parquet``: the spec's windows and cadence, fitted to the table.

The defaults follow the table's cadence (daily-or-finer or monthly rows); a table too short or too
sparse for them gets windows that leave rows to monitor and hold enough rows to train on, and the
monitoring window is the smallest that holds enough rows for a drift verdict. Each function says
why when it departs from the defaults; the spec's comments carry that.
"""

from __future__ import annotations

import math
from datetime import timedelta

from ctflow.cli.init_inspect import Inspection

#: The spec's quality.min_rows, and the rows init's training window holds at least (at the table's rate).
QUALITY_MIN_ROWS, TRAIN_ROWS = 100, 150


#: (window, holdout, days of rows before the first run) for a table of daily-or-finer and of monthly rows.
_DEFAULT_WINDOWS = {False: (90, 14, 90), True: (730, 180, 365)}


def fitted_windows(found: Inspection) -> tuple[int, int, int, str]:
    """``(window, holdout, first run)`` in days from the table's start, and why, if not the defaults.

    The defaults follow the table's cadence. A table too short for them would have its first run
    after most (or all) of its rows, leaving nothing to monitor or retrain on: then the window is a
    third of the table's span, the first run comes after one window, and the holdout keeps the
    default's share of the window.
    """
    monthly = found.step >= timedelta(days=25)
    window, holdout, first = _DEFAULT_WINDOWS[monthly]
    span = (found.end - found.start).days
    if _rate(found) * window < QUALITY_MIN_ROWS:
        return _windows_for_rows(found, window, holdout, span)
    if first <= span * 2 // 3:
        return window, holdout, first, ""
    fitted = max(1, span // 3)
    return (fitted, max(1, round(fitted * holdout / window)), fitted,
            f"a third of the table's {span} days (the default {window}d would leave too few rows after the first run)")


def _windows_for_rows(found: Inspection, window: int, holdout: int, span: int) -> tuple[int, int, int, str]:
    """A table too sparse for the default window (fewer rows than quality.min_rows in it, so every run
    would fail its data checks): a window holding :data:`TRAIN_ROWS` rows at the table's rate (at
    most two thirds of its span), the first run after one window, and a holdout of the default's share
    of it but longer than one step of the table (a shorter one can fall between two rows' times)."""
    rate = _rate(found)
    fitted = min(math.ceil(TRAIN_ROWS / rate), max(2, span * 2 // 3))
    held = min(max(round(fitted * holdout / window), math.ceil(found.step / timedelta(days=1) * 1.1)), fitted // 2)
    why = (f"about {rate * fitted:.0f} rows at the table's rate (the default {window}d holds about "
           f"{rate * window:.0f}, fewer than quality.min_rows {QUALITY_MIN_ROWS})")
    return fitted, max(1, held), fitted, why


def quality_min_rows(found: Inspection, window_days: int) -> str:
    """``quality.min_rows`` (and why, when lowered): :data:`QUALITY_MIN_ROWS`, or four fifths of the
    rows a window holds at the table's rate when even the widest window init fits holds fewer (a
    table of a few dozen rows would otherwise fail every run's data checks)."""
    expected = _rate(found) * window_days
    if expected >= QUALITY_MIN_ROWS:
        return str(QUALITY_MIN_ROWS)
    return (f"{max(1, math.floor(expected * 0.8))}   # the table holds about {expected:.0f} rows a window: "
            f"fewer than {QUALITY_MIN_ROWS} are few to train and evaluate on")


def _rate(found: Inspection) -> float:
    """The table's rows per day, over its whole span."""
    return found.rows / max((found.end - found.start) / timedelta(days=1), 1.0)


#: Monitoring windows init may write, the smallest first: (window, its length in days, the monitor cron).
_MONITOR_WINDOWS = [("1d", 1.0, "@daily"), ("7d", 7.0, "@weekly"), ("1mo", 30.4, "@monthly"),
                    ("3mo", 91.3, "0 0 1 */3 *"), ("1y", 365.25, "@yearly")]
#: monitoring.min_rows' default: a window with fewer rows is "insufficient data" (no drift verdict).
MONITOR_MIN_ROWS = 100


def monitoring_window(found: Inspection) -> tuple[str, str, str]:
    """``(window, cron, why)``: the smallest monitoring window at least one step of the table long
    that holds :data:`MONITOR_MIN_ROWS` rows at the table's rate (rows over its span), and the cron
    that monitors each such window once; the largest when none does, and ``why`` says so."""
    rate = _rate(found)
    step = found.step / timedelta(days=1)
    fitting = [w for w in _MONITOR_WINDOWS if w[1] >= 0.9 * step] or _MONITOR_WINDOWS[-1:]  # a month is 28-31 days
    for window, days, cron in fitting:
        if rate * days >= MONITOR_MIN_ROWS:
            return window, cron, f"about {rate * days:.0f} rows a window at the table's rate"
    window, days, cron = fitting[-1]
    return window, cron, (f"about {rate * days:.0f} rows a window at the table's rate, fewer than monitoring.min_rows "
                          f"{MONITOR_MIN_ROWS}: drift has no verdict (insufficient data) until you lower min_rows")
