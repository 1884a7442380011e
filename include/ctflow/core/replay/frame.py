"""The replay's one feature frame: every window, holdout and scored step is a slice of it."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from ctflow.core.replay.timeline import as_utc

if TYPE_CHECKING:
    from ctflow.spec import PipelineSpec

log = logging.getLogger(__name__)


@dataclass
class ReplayFrame:
    """The labelled, feature-joined rows of the whole replay and the feature candidates."""

    frame: pd.DataFrame
    features: list[str]
    timestamp: str
    unlabelled: int = 0
    seconds: float = 0.0

    def between(self, start: datetime, end: datetime) -> pd.DataFrame:
        """Rows with ``start <= timestamp < end``, in frame (file) order: what a Feast call for
        that window alone would return (see :func:`load_frame`)."""
        ts = self.frame[self.timestamp]
        return self.frame.loc[(ts >= pd.Timestamp(start)) & (ts < pd.Timestamp(end))]

    def labelled_by(self, start: datetime, end: datetime, as_of: datetime) -> pd.DataFrame:
        """Rows of ``[start, end)`` whose label is known at ``as_of``: what ``steps.fetch_features``
        (or monitoring's performance) would get at ``as_of``, whatever the table holds today."""
        from ctflow.core.labels import known_by

        return known_by(self.between(start, end), as_of)[0]


def load_frame(spec: PipelineSpec, start: datetime, end: datetime, *, feature_repo: Path | None = None) -> ReplayFrame:
    """Rows of ``[start - data.window, end)`` with labels and point-in-time features: one Feast call.

    Every label of the range is in it, with the moment it became known
    (:data:`ctflow.core.labels.KNOWN_AT`): :meth:`ReplayFrame.labelled_by` is how a step sees only
    the labels known at its ``as_of``.

    The same functions as ``steps.fetch_features`` (``steps.entity_rows``,
    ``steps.derive_label``, ``features.get_historical_features``) over the whole range.
    """
    from ctflow.core import features as feast
    from ctflow.core.features import pipeline_repo
    from ctflow.core.fit import feature_candidates
    from ctflow.core.steps import derive_label, entity_rows

    repo = pipeline_repo(spec, feature_repo)
    started = time.perf_counter()
    first = spec.data.window.before(as_utc(start))
    rows = entity_rows(spec, feature_repo=repo, feature_service=spec.data.features, start=first, end=as_utc(end))
    rows, unlabelled = derive_label(rows, spec)
    frame = feast.get_historical_features(repo, spec.data.features, rows, timestamp=spec.data.timestamp)
    service = feast.feature_names(repo, spec.data.features)
    names = feature_candidates(spec, service)
    seconds = time.perf_counter() - started
    log.info("replay frame: %s labelled rows of [%s, %s) joined with %s in %.1f s", len(frame),
             first.date(), as_utc(end).date(), spec.data.features, seconds)
    return ReplayFrame(frame, names, spec.data.timestamp, unlabelled, seconds)
