"""The replay's models: each ``as_of`` fitted once through the core's fit, and what is asked of them cached."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ctflow.core.replay.format import fmt as _fmt

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

    from ctflow.core.drift import ReferenceProfile
    from ctflow.core.drift.calibration import Null
    from ctflow.core.monitoring.estimate import EstimateReference
    from ctflow.core.quality import QualityReport
    from ctflow.core.replay.frame import ReplayFrame
    from ctflow.core.training import FeatureSet
    from ctflow.spec import PipelineSpec

log = logging.getLogger(__name__)


@dataclass
class Candidate:
    """A model trained as of ``as_of`` exactly as ``steps.train`` trains it (no MLflow)."""

    id: str
    as_of: datetime
    pipeline: Pipeline | None
    features: FeatureSet | None
    metrics: dict[str, float]
    train_rows: pd.DataFrame
    holdout_rows: pd.DataFrame
    fit_seconds: float = 0.0
    error: str | None = None
    threshold: float | None = None


class ModelBank:
    """Trains each ``as_of`` once and caches what the policies ask of the models.

    Scores of a model on a step, its metrics on another candidate's holdout, its reference
    profile and the data-quality report of a window are each computed once.
    """

    def __init__(self, spec: PipelineSpec, data: ReplayFrame):
        self.spec = spec
        self.data = data
        self.fits = 0
        self.fit_seconds = 0.0
        self.fit_cpu_seconds = 0.0
        self._models: dict[datetime, Candidate] = {}
        self._scores: dict[tuple[str, Any], np.ndarray] = {}
        self._profiles: dict[tuple[Any, ...], ReferenceProfile] = {}
        self._score_nulls: dict[tuple[Any, ...], Null | None] = {}
        self._estimate_references: dict[tuple[str, str], EstimateReference] = {}
        self._importances: dict[str, dict[str, float] | None] = {}
        self._slices: dict[tuple[str, tuple[str, ...]], dict[str, Any]] = {}
        self._quality: dict[tuple[datetime, str], QualityReport] = {}

    def window(self, as_of: datetime) -> pd.DataFrame:
        """The training window as of ``as_of``: its rows whose label was known then."""
        return self.data.labelled_by(self.spec.data.window.before(as_of), as_of, as_of)

    def train(self, as_of: datetime) -> Candidate:
        if as_of in self._models:
            return self._models[as_of]
        from ctflow.core.fit import fit_candidate, split_window

        spec = self.spec
        split = split_window(spec, self.window(as_of), as_of=as_of)
        key = f"{as_of:%Y-%m-%d}" if as_of.time() == datetime.min.time() else as_of.isoformat()
        if split.problem:
            candidate = Candidate(key, as_of, None, None, {}, split.train_rows, split.holdout_rows, error=split.problem)
            self._models[as_of] = candidate
            return candidate
        fitted = fit_candidate(spec, split, candidates=self.data.features)
        candidate = Candidate(key, as_of, fitted.pipeline, fitted.features, fitted.metrics, fitted.train_rows,
                              fitted.holdout_rows, fitted.fit_seconds, threshold=fitted.threshold)
        self._scores[(key, ("holdout", key))] = fitted.holdout_scores
        self._models[as_of] = candidate
        self.fits += 1
        self.fit_seconds += fitted.fit_seconds
        self.fit_cpu_seconds += fitted.fit_cpu_seconds
        log.info("trained as of %s on %s rows in %.1f s; holdout %s=%s", key, len(fitted.train_rows),
                 fitted.fit_seconds, spec.evaluation.metric, _fmt(fitted.metrics.get(spec.evaluation.metric)))
        return candidate

    def scores(self, model: Candidate, rows: pd.DataFrame, key: Any) -> np.ndarray:
        """``model``'s scores on ``rows`` (cached under ``key``, which names those rows)."""
        from ctflow.core.training import predict_scores

        cache_key = (model.id, key)
        assert model.pipeline is not None and model.features is not None, "a candidate that failed to train"
        if cache_key not in self._scores:
            self._scores[cache_key] = (
                predict_scores(model.pipeline, rows[model.features.all], self.spec.model.task)
                if len(rows) else np.zeros(0)
            )
        return self._scores[cache_key]

    def metrics(self, model: Candidate, rows: pd.DataFrame, key: Any) -> dict[str, float]:
        from ctflow.core.evaluation import compute_metrics
        from ctflow.core.fit import LABEL

        if not len(rows):
            return {}
        return compute_metrics(self.spec.model.task, rows[LABEL].to_numpy(), self.scores(model, rows, key),
                               threshold=self._threshold(model))

    def _threshold(self, model: Candidate) -> float | None:
        """The threshold ``model`` is judged with: its own (chosen at training), else the spec's."""
        return self.spec.model.threshold if model.threshold is None else model.threshold

    def on_holdout(self, model: Candidate, candidate: Candidate) -> dict[str, float]:
        """``model`` scored on ``candidate``'s holdout: what ``steps.evaluate`` gives the gate."""
        return self.metrics(model, candidate.holdout_rows, ("holdout", candidate.id))

    def reference_scores(self, model: Candidate) -> np.ndarray:
        """The model's holdout scores: what ``steps.train`` stores as its prediction-drift reference
        (``reference/scores.npy``). Cached with the holdout scores the gate uses."""
        return self.scores(model, model.holdout_rows, ("holdout", model.id))

    def estimate_reference(self, model: Candidate, spec: PipelineSpec) -> EstimateReference:
        """The model's labelled holdout fitted for the performance estimate under ``spec`` (a what-if
        may change the monitored metric): its holdout scores, labels and (regression) model features
        in time order, as ``steps.train`` stores ``reference/scores.npy``, ``reference/labels.npy``
        and ``reference/features.parquet``."""
        from ctflow.core.fit import LABEL
        from ctflow.core.monitoring.estimated import estimated_metric, fit_reference, holdout_order
        from ctflow.core.threshold import DEFAULT

        key = (model.id, estimated_metric(spec))
        if key not in self._estimate_references:
            assert model.features is not None  # only trained candidates are monitored
            rows = model.holdout_rows
            order = holdout_order(rows[self.spec.data.timestamp].to_numpy())
            threshold = self._threshold(model)  # else the default, as the DAG's ``_threshold``
            self._estimate_references[key] = fit_reference(
                spec, self.reference_scores(model)[order], rows[LABEL].to_numpy(dtype="float64")[order],
                threshold=DEFAULT if threshold is None else threshold,
                features=rows[model.features.all].iloc[order].reset_index(drop=True))
        return self._estimate_references[key]

    def score_null(self, model: Candidate, spec: PipelineSpec) -> Null | None:
        """The model's score null as ``steps.train`` stores it (``reference/scores_null.json``), under
        ``spec``'s prediction-drift settings: from its scores on its training rows."""
        from ctflow.core.drift.scores import model_score_null

        config, monitoring = spec.monitoring.prediction_drift, spec.monitoring
        key = (model.id, config.calibration, config.method, monitoring.window, monitoring.min_rows, spec.model.seed)
        if key not in self._score_nulls:
            rows = model.train_rows
            self._score_nulls[key] = model_score_null(
                spec, self.scores(model, rows, ("train", model.id)), rows[spec.data.timestamp].to_numpy(),
                holdout_rows=len(self.reference_scores(model)))
        return self._score_nulls[key]

    def slices(self, candidate: Candidate, columns: Sequence[str]) -> dict[str, Any]:
        """Per-slice holdout metrics of ``candidate`` for these slice columns (a what-if may change them)."""
        from ctflow.core.evaluation import slice_metrics
        from ctflow.core.fit import LABEL

        key = (candidate.id, tuple(columns))
        if key not in self._slices:
            rows = candidate.holdout_rows
            scores = self.scores(candidate, rows, ("holdout", candidate.id))
            self._slices[key] = slice_metrics(self.spec.model.task, rows, rows[LABEL].to_numpy(), scores, list(columns))
        return self._slices[key]

    def profile(self, model: Candidate, spec: PipelineSpec) -> ReferenceProfile:
        """The model's reference profile as ``steps.train`` stores it, under ``spec``'s drift settings
        (a what-if may change them): its training rows, calibrated, with its feature importances."""
        from ctflow.core.drift.reference import reference_profile

        assert model.features is not None  # only trained candidates are monitored
        drift = spec.monitoring.drift
        key = (model.id, drift.calibration, drift.method, spec.monitoring.window, spec.monitoring.min_rows)
        if key not in self._profiles:
            importances = self.importances(model)
            self._profiles[key] = reference_profile(spec, model.train_rows, model.features.all, importances)
        return self._profiles[key]

    def importances(self, model: Candidate) -> dict[str, float] | None:
        """The model's permutation importances, as ``steps.train`` computes them (:func:`.model_reliance`)."""
        from ctflow.core.evaluation import model_reliance
        from ctflow.core.fit import LABEL

        if model.id not in self._importances:
            assert model.features is not None and model.pipeline is not None
            holdout, training = model.holdout_rows, model.train_rows
            training = training.sample(min(len(training), 20000), random_state=self.spec.model.seed)
            found, _ = model_reliance(self.spec.model.task, model.pipeline, holdout=holdout,
                                      y_holdout=holdout[LABEL].to_numpy(), training=training,
                                      y_training=training[LABEL].to_numpy(), features=model.features.all,
                                      rows=4000, seed=self.spec.model.seed)
            self._importances[model.id] = None if found is None else {str(k): float(v) for k, v in found.items()}
        return self._importances[model.id]

    def quality(self, spec: PipelineSpec, as_of: datetime) -> QualityReport:
        """The data-quality report of the training window as of ``as_of`` under ``spec.quality``."""
        from ctflow.core.fit import LABEL
        from ctflow.core.quality import check_quality

        key = (as_of, spec.quality.model_dump_json())
        if key not in self._quality:
            self._quality[key] = check_quality(self.window(as_of), quality=spec.quality, data=spec.data,
                                               features=self.data.features, label=LABEL, as_of=as_of)
        return self._quality[key]
