"""Data and prediction drift between a reference sample and a current window.

Airflow-free and pandas-optional: inputs may be pandas objects, pyarrow tables or
arrays, numpy arrays or plain sequences. Everything is computed with numpy on a
compact per-column summary, so a monitoring run reads only the new window: the
reference side can be a saved :class:`ReferenceProfile`.

Per-column methods (``METHODS``):

``ks``
    Two-sample Kolmogorov-Smirnov test; drift when ``p < threshold`` (default 0.05).
    Statistic and p-value equal ``scipy.stats.ks_2samp`` (``method="auto"``): scipy
    itself for its exact mode (both samples <= 10000), else the statistic from the
    run-length summaries and the asymptotic p-value from :mod:`.pvalues`,
    which avoids importing scipy (1.5 s of a CLI run).
``chi2``
    Chi-squared test of independence on the 2 x K table of category counts;
    drift when ``p < threshold`` (0.05). Equals ``scipy.stats.chi2_contingency``
    (Yates' correction when there are two categories, as scipy does).
``z``
    Two-proportion z-test for binary columns (Evidently's choice for small binary
    samples); the first category in sorted order against the rest. ``p < 0.05``.
``psi``
    Population stability index over 10 quantile bins of the reference (per-value
    frequencies for categoricals and numerics with <= 20 distinct reference
    values); empty bins get Evidently's small floor. Drift when ``psi >= 0.1``.
``wasserstein``
    Wasserstein-1 distance divided by the reference standard deviation (floored at
    0.001), as Evidently's ``wasserstein``. Drift when ``>= 0.1``. Numeric only.
``jensenshannon``
    Jensen-Shannon distance (natural log) between frequency vectors: per-value
    frequencies for categoricals and numerics with <= 20 distinct reference values,
    else a histogram with Sturges' rule over the combined range, exactly as
    Evidently bins it. Drift when ``>= 0.1``.

Column kinds (inferred from the reference, as Evidently 0.7's ``infer_column_type``
infers them): float -> numeric; integer -> categorical when it has <= 10 distinct
values, else numeric; bool, string, object and categorical dtypes -> categorical.
Datetime and other dtypes are skipped unless named explicitly (then an error).
Evidently treats strings with mostly distinct values as text; ctflow keeps them
categorical.

``method="auto"`` follows Evidently 0.7's default test selection
(``evidently.legacy.calculations.stattests.registry._get_default_stattest``), with
``n_ref`` the number of non-missing reference values and ``n_values`` the number of
distinct non-missing values in reference and current together:

* ``n_ref <= 1000``: numeric -> ``z`` if ``n_values <= 2``, ``chi2`` if
  ``n_values <= 5``, else ``ks``; categorical -> ``z`` if ``n_values <= 2``, else
  ``chi2``.
* ``n_ref > 1000``: numeric -> ``jensenshannon`` if ``n_values <= 5``, else
  ``wasserstein``; categorical -> ``jensenshannon``.

Precedence is ``num_method`` / ``cat_method`` > ``method`` > auto, as in Evidently.

Missing values (null, NaN and +-inf, which Evidently also drops) are removed per
column and counted in the result. A column that is empty on either side is
reported with a NaN statistic and ``drifted=False``. A current window with too few
rows or usable values (``min_rows``) gets the state ``insufficient_data``, never
"no drift" (:mod:`.sufficiency`).

Where this knowingly differs from Evidently 0.7 (see ``benchmarks/drift.py``):
``chi2`` is the two-sample contingency test, Evidently's ``chisquare`` is a
goodness-of-fit test against reference frequencies (smaller p-values, and p = 0 as
soon as the current window has a category the reference lacks); ``psi`` uses
reference quantile bins where Evidently uses equal-width bins; Evidently infers
kinds from the current data, ctflow from the reference (a profile has no other);
Evidently's ``ks`` drifts at ``p <= threshold``, ctflow at ``p < threshold``.

Speed: each numeric column is sorted once per side (integers with a small range are
counted with ``bincount`` instead), categoricals are counted once, and every method
works on those summaries. Large frames are processed a column per thread.

Modules, one job each: :mod:`.results` (verdicts, method names, the input error),
:mod:`.readers` (columns out of pandas, pyarrow, numpy or sequences), :mod:`.profile`
(per-column summaries and the saved reference profile), :mod:`.methods` (the six
methods on two summaries), :mod:`.pvalues` (their p-values without scipy),
:mod:`.compare` (the API below), :mod:`.sufficiency` (when a window cannot be judged)
and :mod:`.report` (HTML and PNG). Import the API from this package.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# The API is imported on first use (PEP 562), not here: ``sufficiency``, ``results`` and
# ``report`` need no numpy, and ``ctflow.core.monitoring`` imports ``sufficiency`` at module
# level, so importing a light submodule must not run the numpy-heavy ones through this file.
_HOMES: dict[str, str] = {
    **dict.fromkeys(("AUTO_LARGE_SAMPLE", "auto_method", "calibrate_profile", "column_drift", "dataset_drift",
                     "dataset_drift_from_profile", "prediction_drift"), "compare"),
    **dict.fromkeys(("PROFILE_FORMAT", "PROFILE_VERSION", "ColumnProfile", "ReferenceProfile"), "profile"),
    **dict.fromkeys(("DEFAULT_THRESHOLDS", "METHODS", "NUMERIC_ONLY_METHODS", "P_VALUE_METHODS", "ColumnDrift",
                     "DriftInputError", "DriftResult", "Kind", "suggest"), "results"),
}

if TYPE_CHECKING:
    from ctflow.core.drift.compare import (
        AUTO_LARGE_SAMPLE,
        auto_method,
        calibrate_profile,
        column_drift,
        dataset_drift,
        dataset_drift_from_profile,
        prediction_drift,
    )
    from ctflow.core.drift.profile import PROFILE_FORMAT, PROFILE_VERSION, ColumnProfile, ReferenceProfile
    from ctflow.core.drift.results import (
        DEFAULT_THRESHOLDS,
        METHODS,
        NUMERIC_ONLY_METHODS,
        P_VALUE_METHODS,
        ColumnDrift,
        DriftInputError,
        DriftResult,
        Kind,
        suggest,
    )


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


__all__ = [  # the names _HOMES loads lazily (a literal list, so tools read it)
    "AUTO_LARGE_SAMPLE",
    "DEFAULT_THRESHOLDS",
    "METHODS",
    "NUMERIC_ONLY_METHODS",
    "PROFILE_FORMAT",
    "PROFILE_VERSION",
    "P_VALUE_METHODS",
    "ColumnDrift",
    "ColumnProfile",
    "DriftInputError",
    "DriftResult",
    "Kind",
    "ReferenceProfile",
    "auto_method",
    "calibrate_profile",
    "column_drift",
    "dataset_drift",
    "dataset_drift_from_profile",
    "prediction_drift",
    "suggest",
]
