"""Drift of one model's scores in a window against its training-time (holdout) scores.

The monitoring DAG (:func:`ctflow.core.monitoring.checks.prediction_drift`) and the replay's
``ctflow`` policy (:mod:`ctflow.core.replay.policies`) both judge here, so the replay retrains on
prediction drift exactly when the DAG would. Pure: arrays and the spec's settings in, a dict out.

Calibrated like data drift (:mod:`.calibration`): a model's scores move from week to week with
the weather and the traffic mix, so a raw distance calls most ordinary weeks drifted. The holdout
is too short for an empirical null (two weekly windows in the demo's 14 days), so the null comes
from the model's scores on its *training* rows: each window of ``monitoring.window`` against the
rest of them, as data drift's null, but against as many rows of the rest as the holdout has
(drawn at random, :func:`.calibration.sampled_rest_pairs`), so the reference's sampling noise is
the holdout's (in the monthly example 44 rows, where the rest of training holds 440). Those scores
are in-sample, but the null compares them only with each other, and the window is compared only
with out-of-sample (holdout) scores: each side is like with like.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ctflow.core.drift.calibration import Null
from ctflow.core.drift.compare import calibrate_profile, prediction_drift
from ctflow.core.drift.sufficiency import scores_insufficient, state

if TYPE_CHECKING:
    import numpy as np

    from ctflow.spec import PipelineSpec
    from ctflow.spec.models import Drift

#: The scores' column name in the null's calibration frame.
SCORE_COLUMN = "score"


def score_null(scores: np.ndarray, times: np.ndarray, *, config: Drift, window: timedelta, reference_rows: int,
               min_rows: int, seed: int = 0) -> Null | None:
    """The empirical null of the score distance for ``window``-long windows of a model's training
    scores (``times``: their rows' timestamps), each against ``reference_rows`` (the holdout's
    size) of the others; None when ``config.calibration`` is ``none`` or the training rows span
    fewer than three windows (the scores are then judged raw)."""
    if config.calibration != "reference" or not len(scores):
        return None
    import numpy as np
    import pandas as pd

    from ctflow.core.drift.profile import ReferenceProfile

    frame = pd.DataFrame({SCORE_COLUMN: np.asarray(scores, dtype="float64")})
    profile = ReferenceProfile.from_frame(frame, [SCORE_COLUMN], numerical=[SCORE_COLUMN])
    times = pd.to_datetime(pd.Series(times), utc=True).dt.tz_localize(None).to_numpy()
    calibrated = calibrate_profile(profile, frame, times=times, window=window, method=config.method,
                                   min_rows=min_rows, reference_rows=reference_rows, seed=seed)
    return calibrated.nulls.get(SCORE_COLUMN)


def model_score_null(spec: PipelineSpec, train_scores: np.ndarray, train_times: np.ndarray, *,
                     holdout_rows: int) -> Null | None:
    """:func:`score_null` under ``spec``'s prediction-drift settings, for a model whose holdout has
    ``holdout_rows`` scores: what ``steps.train`` stores and the replay computes alike."""
    monitoring = spec.monitoring
    return score_null(train_scores, train_times, config=monitoring.prediction_drift, window=monitoring.window.approx(),
                      reference_rows=holdout_rows, min_rows=monitoring.min_rows, seed=spec.model.seed)


def score_drift(reference: np.ndarray, current: np.ndarray, *, config: Drift, min_rows: int, version: Any,
                who: str, null: Null | None = None) -> dict[str, Any]:
    """``who``'s (champion or challenger) verdict as ``prediction_drift.json`` records it under ``models``.

    :param reference: the model's holdout scores (``reference/scores.npy``).
    :param current: its scores on the window, missing ones dropped.
    :param config: ``monitoring.prediction_drift``.
    :param null: the model's :func:`score_null` (``reference/scores_null.json``); used when
        ``config.calibration`` is ``reference``, absent for models trained before it was stored.
    """
    if config.calibration != "reference":
        null = None
    verdict = prediction_drift(reference, current, method=config.method, threshold=config.threshold,
                               name=f"score ({who} v{version})", kind="numeric", null=null,
                               quantile=config.calibration_quantile)
    share = 1.0 if verdict.drifted else 0.0  # one column: the scores
    insufficient = scores_insufficient(n_reference=verdict.n_reference, n_current=verdict.n_current,
                                       min_rows=min_rows)
    drifted = bool(verdict.drifted and share >= config.max_drifted_share) and not insufficient
    return {"version": version, "available": True, **verdict.to_dict(),
            "drifted": drifted, "state": state(drifted=drifted, insufficient=insufficient),
            "insufficient": insufficient,
            "reference_mean": float(reference.mean()) if len(reference) else None,
            "current_mean": float(current.mean()) if len(current) else None}


__all__ = ["SCORE_COLUMN", "model_score_null", "score_drift", "score_null"]
