"""Operators of the continuous-training DAG: features, data checks, training, the gate.

Each one names its step (:mod:`ctflow.steps.ct`); :meth:`CtflowOperator.execute` runs it.
"""

from __future__ import annotations

from ctflow.links import MlflowRunLink
from ctflow.operators.base import CtflowOperator
from ctflow.steps import ct


class FetchFeaturesOperator(CtflowOperator):
    """
    Build the point-in-time-correct training frame for ``[as_of - window, as_of)`` from Feast.

    Stores the frame as parquet in the run folder and returns its fingerprint (rows, time
    range, content hash). Accepts ``params.window_days`` to override the spec's window.
    """

    declaration = ct.FETCH_FEATURES
    ui_color = "#e3f6e8"


class DataQualityOperator(CtflowOperator):
    """Check the training frame against the spec's quality rules; fail with a readable report.

    A failure is final (no retries): a retry would check the same fetched frame again.
    """

    declaration = ct.CHECK_QUALITY
    ui_color = "#fff4d6"


class TrainModelOperator(CtflowOperator):
    """Train the spec's scikit-learn pipeline on the frame and log the run to MLflow."""

    declaration = ct.TRAIN
    ui_color = "#f3e5fb"
    operator_extra_links = (MlflowRunLink(),)


class EvaluateGateOperator(CtflowOperator):
    """
    Gate the candidate: absolute thresholds (and slices), then the champion on the same holdout.

    A losing candidate is not an error: the decision is returned (XCom), logged and recorded
    in MLflow, and the promotion tasks skip with the reason.
    """

    declaration = ct.EVALUATE
    ui_color = "#fde8e4"
