"""What a training logs to MLflow beside its metrics: the model as it is served, its datasets and
the reference monitoring compares against.

Called by :func:`ctflow.core.steps.train` inside its MLflow run. The model loads with its own
requirements, without ctflow (:func:`log_model`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ctflow.contract import mlflow_tags
from ctflow.contract import monitoring as names
from ctflow.core import fit

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from mlflow.models.model import ModelInfo
    from sklearn.pipeline import Pipeline

    from ctflow.core.training import FeatureSet
    from ctflow.spec import PipelineSpec

log = logging.getLogger(__name__)


def log_reference(spec: PipelineSpec, run_dir: Path, train_rows: pd.DataFrame, features: list[str], *,
                   holdout_scores: np.ndarray, holdout_labels: np.ndarray, holdout_times: np.ndarray,
                   holdout_features: pd.DataFrame, train_scores: np.ndarray,
                   importances: dict[str, float] | None = None) -> None:
    """Store what monitoring compares against, computed once, with the model's run: the profile
    (with its calibration and the features' importances, :mod:`ctflow.core.drift.reference`), the
    holdout's scores and labels in time order (prediction drift; the performance estimate
    calibrates on them and measures its spread on consecutive chunks of them), for regression the
    holdout's model features in the same order (the estimate's loss model learns from them), and
    the score distance's empirical null from the training rows' scores
    (:func:`ctflow.core.drift.scores.score_null`)."""
    try:
        from ctflow.core.drift.reference import reference_profile
        from ctflow.core.drift.scores import model_score_null
        from ctflow.core.monitoring.estimated import write_holdout
    except ImportError:  # monitoring not installed in this build
        return
    import json

    import mlflow

    folder = run_dir / names.REFERENCE_FOLDER
    folder.mkdir(exist_ok=True)
    profile = reference_profile(spec, train_rows, features, importances)
    profile.save(folder / "profile")
    write_holdout(folder, spec.model.task, scores=holdout_scores, labels=holdout_labels, times=holdout_times,
                  features=holdout_features)
    null = model_score_null(spec, train_scores, train_rows[spec.data.timestamp].to_numpy(),
                            holdout_rows=len(holdout_scores))
    if null is not None:
        (folder / names.REFERENCE_SCORES_NULL_FILE).write_text(json.dumps(null.to_dict()))
    else:  # a retry's folder must not keep an earlier try's null
        (folder / names.REFERENCE_SCORES_NULL_FILE).unlink(missing_ok=True)
    mlflow.log_artifacts(str(folder), names.REFERENCE_FOLDER)


def log_datasets(spec: PipelineSpec, parts: dict[str, Any], columns: list[str], *, source: str) -> None:
    """Each part of the frame as an MLflow dataset input of the active run (the run's "Datasets").

    Source: ``source``, the entity table (the rows; their features come from the feature service, in the
    name and a tag); digest: the part's fingerprint (:func:`ctflow.core.features.fingerprint`).
    Lineage, not a step of training: a frame MLflow cannot describe is logged as a warning.
    """
    import mlflow

    from ctflow.core.features import fingerprint

    for context, rows in parts.items():
        try:
            digest = fingerprint(rows, timestamp=spec.data.timestamp)["sha256"]
            dataset = mlflow.data.from_pandas(rows[[spec.data.timestamp, *columns]], source=source, targets=fit.LABEL,
                                              name=f"{spec.data.features} {context} rows", digest=digest[:32])
            mlflow.log_input(dataset, context=context, tags={mlflow_tags.FEATURE_SERVICE: spec.data.features,
                                                             "ctflow.sha256": digest})
        except Exception as err:  # noqa: BLE001 - lineage must not fail a training
            log.warning("could not log the %s rows as an MLflow dataset: %s: %s", context, type(err).__name__, err)


def log_model(pipeline: Pipeline, train_rows: pd.DataFrame, holdout_rows: pd.DataFrame, features: FeatureSet, *,
               task: str, threshold: float | None, positive: str | None) -> ModelInfo:
    """Log the fitted pipeline as a model that loads with its own requirements (no ctflow).

    A classifier serves ``predict_proba`` (one column per class; column 1 is the positive class of
    a 0/1 label), and its decision threshold and what its positive class is are in the model's
    metadata; a regressor serves ``predict``. The signature says which columns may be left out or null
    (:func:`ctflow.core.training.serving_signature`).
    """
    import mlflow

    from ctflow.core.training import serving_signature

    classifier = task == "classification"
    signature = serving_signature(train_rows, features, len(pipeline.classes_) if classifier else None)
    output = "predict_proba" if classifier else "predict"
    metadata: dict[str, str | float] = {mlflow_tags.OUTPUT: output}
    if threshold is not None:
        metadata[mlflow_tags.DECISION_THRESHOLD] = threshold
    if classifier and positive is not None:
        metadata[mlflow_tags.POSITIVE_CLASS] = positive
    # cloudpickle, not MLflow 3's default skops, which refuses the pandas functions the pipeline
    # holds (FunctionTransformer) as untrusted types.
    return mlflow.sklearn.log_model(
        pipeline,
        name="model",
        signature=signature,
        # Numeric columns as the signature declares them (double): MLflow refuses int64 for double.
        input_example=holdout_rows[features.all].head(5).astype(dict.fromkeys(features.numeric, "float64")),
        serialization_format="cloudpickle",
        pip_requirements=model_requirements(),
        pyfunc_predict_fn=output,
        metadata=metadata,
    )


def positive_class(spec: PipelineSpec) -> str | None:
    """A classifier's positive class in words, as the spec derives its label (``arr_delay > 15``,
    ``rain == 'yes'``, ``repaid == 1``); None for a regressor."""
    if spec.model.task != "classification":
        return None
    label = spec.data.label
    return f"{label.column} {label.positive_when.strip()}" if label.positive_when else f"{label.column} == 1"


def model_requirements() -> list[str]:
    """What the model needs to load: pinned to this environment, without MLflow exporting the
    whole project lock (which costs seconds per run)."""
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in ("scikit-learn", "pandas", "numpy", "scipy", "cloudpickle")]
