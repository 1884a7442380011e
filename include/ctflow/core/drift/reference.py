"""The reference profile a model is monitored against, built once from its training rows."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ctflow.core.drift.compare import calibrate_profile
from ctflow.core.drift.profile import ReferenceProfile

if TYPE_CHECKING:
    from ctflow.spec import PipelineSpec


def reference_profile(spec: PipelineSpec, rows: Any, features: Sequence[str],
                      importances: Mapping[str, float] | None = None) -> ReferenceProfile:
    """Profile of ``rows`` (pandas, with the spec's timestamp column) over ``features``, with the
    empirical null of ``monitoring.window``-long windows when ``monitoring.drift.calibration`` is
    ``reference`` and the model's permutation ``importances`` (for ``weighting: importance``).

    Used by ``steps.train`` (saved with the model) and by the replay, so both monitor alike.
    """
    profile = ReferenceProfile.from_frame(rows, columns=list(features))
    config = spec.monitoring.drift
    timestamp = spec.data.timestamp
    if config.calibration == "reference" and timestamp in rows:
        import pandas as pd

        times = pd.to_datetime(rows[timestamp], utc=True).dt.tz_localize(None).to_numpy()
        # Sub-windows of the monitoring window's average length: the null needs a length, not a moment.
        profile = calibrate_profile(profile, rows, times=times, window=spec.monitoring.window.approx(),
                                    method=config.method, min_rows=spec.monitoring.min_rows)
    if importances:
        profile = dataclasses.replace(profile, importances={k: float(v) for k, v in importances.items()
                                                            if k in profile.columns})
    return profile


__all__ = ["reference_profile"]
