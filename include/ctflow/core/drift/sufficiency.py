"""When a window cannot say whether it drifted: too few usable rows ("insufficient data").

A current window with no rows, or whose values are all missing or all +-inf (drift drops those,
as Evidently does), or with fewer rows than a minimum, gives no evidence either way. Calling it
"no drift" would tell a monitor that a broken feed is healthy, so it gets its own state,
:data:`INSUFFICIENT_DATA`, beside :data:`DRIFT` and :data:`NO_DRIFT`:

* the window has fewer than ``min_rows`` rows, or
* no compared column has ``min_rows`` usable (non-missing, finite) values in the window, with
  a non-empty reference.

``min_rows`` is the spec's ``monitoring.min_rows`` (default :data:`DEFAULT_MIN_ROWS`) for the
monitoring DAG and ``--min-rows`` for ``ctflow drift``. Plain rules over counts: no numpy.
"""

from __future__ import annotations

from collections.abc import Iterable

from ctflow.contract.monitoring import INSUFFICIENT_KIND

DRIFT = "drift"
NO_DRIFT = "no_drift"
INSUFFICIENT_DATA = INSUFFICIENT_KIND  # one name: the state, the breach kind

#: Rows a monitoring window needs before its drift is judged (``monitoring.min_rows``).
DEFAULT_MIN_ROWS = 100


def insufficient_reason(*, rows: int, usable: Iterable[tuple[str, int, int]], min_rows: int) -> str | None:
    """Why this window cannot be judged, or None if it can.

    :param rows: rows in the current window.
    :param usable: ``(column, usable reference values, usable current values)`` per compared column.
    :param min_rows: the least number of rows (and of usable values in some column) to judge.
    """
    if rows < min_rows:
        return f"{rows} row(s) in the current window, fewer than min_rows {min_rows}"
    counts = [(name, current if reference else 0) for name, reference, current in usable]
    if not counts:
        return "no column to compare"
    best = max(current for _, current in counts)
    if best < min_rows:
        return (f"no column has {min_rows} usable values (not missing, finite) in the current window "
                f"(at most {best}, of {rows} rows)")
    return None


def state(*, drifted: bool, insufficient: str | None) -> str:
    """:data:`INSUFFICIENT_DATA`, :data:`DRIFT` or :data:`NO_DRIFT`."""
    if insufficient:
        return INSUFFICIENT_DATA
    return DRIFT if drifted else NO_DRIFT


def scores_insufficient(*, n_reference: int, n_current: int, min_rows: int) -> str | None:
    """Why a model's scores in the window cannot be compared with its training-time scores, or None."""
    if n_reference == 0:
        return "no training-time scores to compare with"
    if n_current < min_rows:
        return f"{n_current} scored row(s) in the window, fewer than min_rows {min_rows}"
    return None


def insufficient_breaches(data: dict, champion_scores: dict) -> list[dict[str, str]]:
    """The monitoring breach of a window whose drift cannot be judged (kind ``insufficient_data``).

    :param data: the data-drift step's result (``data_drift.json``).
    :param champion_scores: the champion's entry of the prediction-drift step's result.
    """
    reasons = []
    if data.get("available") and data.get("state") == INSUFFICIENT_DATA:
        reasons.append(f"data drift: {data.get('insufficient')}")
    if champion_scores.get("state") == INSUFFICIENT_DATA:
        reasons.append(f"prediction drift of champion v{champion_scores.get('version')}: "
                       f"{champion_scores.get('insufficient')}")
    if not reasons:
        return []
    return [{"kind": INSUFFICIENT_DATA, "what": "insufficient_data",
             "reason": "window too small to judge drift (monitoring.min_rows), not known to be healthy: "
                       + "; ".join(reasons)}]
