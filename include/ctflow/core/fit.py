"""Fit and score a candidate from a frame: the one training path of ctflow.

``steps.train`` (which logs the result to MLflow) and the replay's model bank both fit through
:func:`fit_candidate`, so a replayed model is the model the DAG would have trained on the same
rows: the same feature list, time split, pipeline and holdout metrics.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from ctflow.exceptions import ConfigurationError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from sklearn.pipeline import Pipeline

    from ctflow.core.training import FeatureSet
    from ctflow.spec import PipelineSpec

#: The derived label, added to the frame beside the label's source column.
LABEL = "ctflow_label"


def feature_candidates(spec: PipelineSpec, service_features: Sequence[str]) -> list[str]:
    """The columns a model may use: the spec's ``data.columns``, then the feature service's."""
    return [*spec.data.columns, *[f for f in service_features if f not in spec.data.columns]]


@dataclass(frozen=True)
class Split:
    """A training window cut in time: rows before ``holdout_start`` train, the rest is the holdout."""

    frame: pd.DataFrame
    train_rows: pd.DataFrame
    holdout_rows: pd.DataFrame
    holdout_start: datetime

    @property
    def problem(self) -> str | None:
        """Why nothing can be fitted and scored on this split (an empty side), or None."""
        if self.train_rows.empty or self.holdout_rows.empty:
            return (f"the time split at {self.holdout_start} leaves {len(self.train_rows)} training and "
                    f"{len(self.holdout_rows)} holdout rows")
        return None

    def checked(self) -> Split:
        """This split, or a :class:`ConfigurationError` saying which side is empty."""
        if self.problem:
            raise ConfigurationError(self.problem, field="data.holdout",
                                     fix="widen data.window (or params.window_days) or shorten data.holdout")
        return self


def split_window(spec: PipelineSpec, frame: pd.DataFrame, *, as_of: datetime) -> Split:
    """The newest ``data.holdout`` of ``frame`` (the window as of ``as_of``, its labels known at
    ``as_of``: :func:`ctflow.core.labels.known_by`) held out."""
    from ctflow.core.training import split_by_time

    holdout_start = spec.data.holdout.before(as_of)
    train_rows, holdout_rows = split_by_time(frame, timestamp=spec.data.timestamp, holdout_start=holdout_start)
    return Split(frame, train_rows, holdout_rows, holdout_start)


@dataclass(frozen=True)
class FittedCandidate:
    """A fitted pipeline and what its holdout says about it."""

    pipeline: Pipeline
    features: FeatureSet
    split: Split
    holdout_scores: np.ndarray
    metrics: dict[str, float]
    fit_seconds: float
    fit_cpu_seconds: float
    #: The classifier's decision threshold (fixed, or chosen on the holdout by the spec's rule); None: regression.
    threshold: float | None = None

    @property
    def train_rows(self) -> pd.DataFrame:
        return self.split.train_rows

    @property
    def holdout_rows(self) -> pd.DataFrame:
        return self.split.holdout_rows

    @property
    def holdout_labels(self) -> np.ndarray:
        return self.split.holdout_rows[LABEL].to_numpy()


def fit_candidate(spec: PipelineSpec, split: Split, *, candidates: Sequence[str]) -> FittedCandidate:
    """Infer the features among ``candidates``, build the spec's pipeline, fit it on the
    training rows and score the holdout with ``evaluation.compute_metrics``.

    :param split: from :func:`split_window`, with both sides non-empty (:meth:`Split.checked`).
    """
    from ctflow.core.evaluation import compute_metrics
    from ctflow.core.threshold import choose as choose_threshold
    from ctflow.core.training import build_pipeline, infer_features, predict_scores

    features = infer_features(split.frame, list(candidates), spec.model)
    pipeline = build_pipeline(spec.model, features)
    train_rows, holdout_rows = split.train_rows, split.holdout_rows
    started, cpu = time.perf_counter(), time.process_time()
    pipeline.fit(train_rows[features.all], train_rows[LABEL])
    fit_seconds, fit_cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    scores = predict_scores(pipeline, holdout_rows[features.all], spec.model.task)
    labels = holdout_rows[LABEL].to_numpy()
    threshold = choose_threshold(spec.model, labels, scores)
    metrics = compute_metrics(spec.model.task, labels, scores, threshold=threshold)
    return FittedCandidate(pipeline, features, split, scores, metrics, fit_seconds, fit_cpu_seconds, threshold)


__all__ = ["LABEL", "FittedCandidate", "Split", "feature_candidates", "fit_candidate", "split_window"]
