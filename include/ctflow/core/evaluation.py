"""Metrics of a model on a holdout, overall and per slice, and the plots people look at."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from ctflow.spec.catalog import metrics_for

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from sklearn.pipeline import Pipeline

#: Classification metrics that need a hard decision use this cut-off on the probability, unless the
#: spec sets ``model.decision_threshold``.
DECISION_THRESHOLD = 0.5


def compute_metrics(task: str, y_true: np.ndarray, scores: np.ndarray, *, threshold: float | None = None) -> dict[str, float]:
    """Every metric of ``task`` that is defined for these labels (NaN-free dict, registry order); a
    classifier's label metrics count a row positive when its score is at least ``threshold``
    (default :data:`DECISION_THRESHOLD`). The metrics and how each is computed are declared in
    :data:`ctflow.spec.catalog.METRIC_REGISTRY`."""
    y_true = np.asarray(y_true)
    scores = np.asarray(scores, dtype=float)
    inputs = {"scores": scores}
    if task == "classification":
        inputs["decisions"] = (scores >= (DECISION_THRESHOLD if threshold is None else threshold)).astype(int)
    both_classes = task == "classification" and len(np.unique(y_true)) == 2  # ranking metrics need both
    out: dict[str, float] = {}
    for metric in metrics_for(task):  # type: ignore[arg-type]  # task comes from a validated spec
        if metric.needs_both_classes and not both_classes:
            continue
        out[metric.name] = float(metric.resolve()(y_true, inputs[metric.on], **metric.options))
    return {k: v for k, v in out.items() if np.isfinite(v)}


def slice_metrics(
    task: str, frame: pd.DataFrame, y_true: np.ndarray, scores: np.ndarray, columns: list[str], *,
    threshold: float | None = None,
) -> dict[str, dict[str, dict]]:
    """``{column: {value: {"rows": n, **metrics}}}`` for each slice column."""
    out: dict[str, dict[str, dict]] = {}
    for column in columns:
        groups = frame[column].astype("string").fillna("__missing__").to_numpy()
        out[column] = {}
        for value in sorted(set(groups)):
            mask = groups == value
            out[column][str(value)] = {"rows": int(mask.sum()), **compute_metrics(task, y_true[mask], scores[mask], threshold=threshold)}
    return out


def save_plots(
    task: str,
    y_true: np.ndarray,
    scores: np.ndarray,
    *,
    model: Pipeline,
    frame: pd.DataFrame,
    features: list[str],
    folder: Path,
    seed: int = 0,
    importance_rows: int = 4000,
    threshold: float | None = None,
    importances: pd.Series | None = None,
) -> list[Path]:
    """PNG plots of the holdout: ROC and PR curves + confusion matrix, or residuals and
    predicted-vs-actual; and permutation feature importances. Returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def save(fig: Figure, name: str) -> None:
        path = folder / name
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    if task == "classification" and len(np.unique(y_true)) == 2:
        fig, ax = plt.subplots(figsize=(5, 4.5))
        skm.RocCurveDisplay.from_predictions(y_true, scores, ax=ax, name="candidate")
        ax.plot([0, 1], [0, 1], linestyle=":", color="grey")
        ax.set_title("ROC curve (holdout)")
        save(fig, "roc_curve.png")
        fig, ax = plt.subplots(figsize=(5, 4.5))
        skm.PrecisionRecallDisplay.from_predictions(y_true, scores, ax=ax, name="candidate")
        ax.set_title("Precision-recall (holdout)")
        save(fig, "precision_recall.png")
        fig, ax = plt.subplots(figsize=(4.5, 4))
        cut = DECISION_THRESHOLD if threshold is None else threshold
        skm.ConfusionMatrixDisplay.from_predictions(y_true, (scores >= cut).astype(int), ax=ax, colorbar=False)
        ax.set_title(f"Confusion matrix (cut-off {cut})")
        save(fig, "confusion_matrix.png")
    elif task == "regression":
        fig, ax = plt.subplots(figsize=(5, 4.5))
        ax.scatter(y_true, scores, s=3, alpha=0.3)
        low, high = float(np.min(y_true)), float(np.max(y_true))
        ax.plot([low, high], [low, high], color="grey", linestyle=":")
        ax.set(xlabel="actual", ylabel="predicted", title="Predicted vs actual (holdout)")
        save(fig, "predicted_vs_actual.png")
        fig, ax = plt.subplots(figsize=(5, 4))
        ax.hist(scores - y_true, bins=60)
        ax.set(xlabel="residual", title="Residuals (holdout)")
        save(fig, "residuals.png")

    if importances is None:  # the caller may have computed them already (steps.train keeps them for drift)
        importances = permutation_importances(task, model, frame, y_true, features, rows=importance_rows, seed=seed)
    if importances is not None:
        top = importances.head(20)[::-1]
        fig, ax = plt.subplots(figsize=(6, 0.3 * len(top) + 1.2))
        ax.barh(top.index, top.to_numpy())
        ax.set(xlabel="drop in score when shuffled", title="Permutation feature importance (holdout)")
        save(fig, "feature_importance.png")
    return written


def model_reliance(
    task: str, model: Pipeline, *, holdout: pd.DataFrame, y_holdout: np.ndarray, training: pd.DataFrame,
    y_training: np.ndarray, features: list[str], rows: int, seed: int
) -> tuple[pd.Series | None, str]:
    """What the model relies on: permutation importances on the holdout, or on the training rows when
    the holdout is too small to permute (a monthly panel holds tens of rows), which would otherwise
    turn drift weighting off without a word. Returns the importances and which rows gave them."""
    found = permutation_importances(task, model, holdout, y_holdout, features, rows=rows, seed=seed)
    if found is not None:
        return found, "holdout"
    return permutation_importances(task, model, training, y_training, features, rows=rows, seed=seed), "training"


def permutation_importances(
    task: str, model: Pipeline, frame: pd.DataFrame, y_true: np.ndarray, features: list[str], *, rows: int, seed: int
) -> pd.Series | None:
    """Mean drop of the task's score when each feature is shuffled, on a sample of rows."""
    from sklearn.inspection import permutation_importance

    if len(frame) < 50 or (task == "classification" and len(np.unique(y_true)) < 2):
        return None
    rng = np.random.default_rng(seed)
    take = rng.choice(len(frame), size=min(rows, len(frame)), replace=False)
    result = permutation_importance(
        model,
        frame.iloc[take][features],
        np.asarray(y_true)[take],
        scoring="roc_auc" if task == "classification" else "neg_root_mean_squared_error",
        n_repeats=3,
        random_state=seed,
    )
    return pd.Series(result.importances_mean, index=features).sort_values(ascending=False)
