"""When a label becomes known, and which rows therefore have one at a given moment.

One setting of the spec says it (``data.label.available_after`` or ``data.label.available_at``;
the deprecated ``monitoring.ground_truth_delay`` stands for ``available_after``). Training, the
holdout, monitoring's performance and the replay all read it here, so a backfill or a replay
never trains on, or evaluates with, a label that arrived after the run's ``as_of``.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from ctflow.core.timing import window as time_window
from ctflow.exceptions import ConfigurationError

if TYPE_CHECKING:
    import pandas as pd

    from ctflow.spec import PipelineSpec

#: The moment each row's label is known, added to a labelled frame beside the label.
KNOWN_AT = "ctflow_label_known_at"


def known_at(rows: pd.DataFrame, spec: PipelineSpec) -> pd.Series:
    """The moment each row's label becomes known (UTC; NaT: never)."""
    import pandas as pd

    timestamp = rows[spec.data.timestamp]
    column = spec.data.label.available_at
    if column is not None:
        if column not in rows.columns:
            raise ConfigurationError(
                f"the entity table {spec.data.entities} has no column {column!r}", field="data.label.available_at",
                fix=f"name one of its timestamp columns: {', '.join(map(str, rows.columns))}",
            )
        if not pd.api.types.is_datetime64_any_dtype(rows[column]):
            raise ConfigurationError(
                f"column {column!r} of {spec.data.entities} is {rows[column].dtype}, not a timestamp",
                field="data.label.available_at", fix="name a timestamp column (when each row's label arrived)",
            )
        values = rows[column]
        return values.dt.tz_localize("UTC") if values.dt.tz is None else values.dt.tz_convert("UTC")
    delay = spec.label_available_after
    return timestamp if delay is None else delay.after_each(timestamp)


def with_known_at(rows: pd.DataFrame, spec: PipelineSpec) -> pd.DataFrame:
    """``rows`` with :data:`KNOWN_AT`."""
    return rows.assign(**{KNOWN_AT: known_at(rows, spec)})


def known_by(rows: pd.DataFrame, as_of: datetime) -> tuple[pd.DataFrame, int]:
    """The rows (with :data:`KNOWN_AT`) whose label is known at ``as_of`` (known at <= as_of), and
    how many were left out because theirs was not yet."""
    import pandas as pd

    known = rows[KNOWN_AT] <= pd.Timestamp(as_of)
    return rows.loc[known], int((~known).sum())


def ground_truth_window(spec: PipelineSpec, as_of: datetime) -> tuple[datetime, datetime]:
    """The rows monitoring measures performance on as of ``as_of``: ``monitoring.window`` ending
    ``available_after`` before ``as_of`` (at ``as_of`` with ``available_at`` or no delay); only
    those whose label is known at ``as_of`` are used (:func:`known_by`)."""
    delay = spec.label_available_after
    end = as_of if delay is None else delay.before(as_of)
    return time_window(end, spec.monitoring.window)


__all__ = ["KNOWN_AT", "ground_truth_window", "known_at", "known_by", "with_known_at"]
