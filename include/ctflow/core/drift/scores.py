"""Drift of one model's scores in a window against its training-time (holdout) scores.

The monitoring DAG (:func:`ctflow.core.monitoring.checks.prediction_drift`) and the replay's
``ctflow`` policy (:mod:`ctflow.core.replay.policies`) both judge here, so the replay retrains on
prediction drift exactly when the DAG would. Pure: arrays and the spec's settings in, a dict out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ctflow.core.drift.compare import prediction_drift
from ctflow.core.drift.sufficiency import scores_insufficient, state

if TYPE_CHECKING:
    import numpy as np

    from ctflow.spec.models import Drift


def score_drift(reference: np.ndarray, current: np.ndarray, *, config: Drift, min_rows: int, version: Any,
                who: str) -> dict[str, Any]:
    """``who``'s (champion or challenger) verdict as ``prediction_drift.json`` records it under ``models``.

    :param reference: the model's holdout scores (``reference/scores.npy``).
    :param current: its scores on the window, missing ones dropped.
    :param config: ``monitoring.prediction_drift``.
    """
    verdict = prediction_drift(reference, current, method=config.method, threshold=config.threshold,
                               name=f"score ({who} v{version})", kind="numeric")
    share = 1.0 if verdict.drifted else 0.0  # one column: the scores
    insufficient = scores_insufficient(n_reference=verdict.n_reference, n_current=verdict.n_current,
                                       min_rows=min_rows)
    drifted = bool(verdict.drifted and share >= config.max_drifted_share) and not insufficient
    return {"version": version, "available": True, **verdict.to_dict(),
            "drifted": drifted, "state": state(drifted=drifted, insufficient=insufficient),
            "insufficient": insufficient,
            "reference_mean": float(reference.mean()) if len(reference) else None,
            "current_mean": float(current.mean()) if len(current) else None}


__all__ = ["score_drift"]
