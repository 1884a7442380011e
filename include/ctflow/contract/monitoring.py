"""What a monitoring run leaves in MLflow: the one list of names its writer and its readers share.

:func:`ctflow.core.monitoring.report` writes a run with these tags, metrics and artifacts;
the ctflow view (:mod:`ctflow.ui.monitoring`) reads them back. Both import the names from here,
so a rename cannot make the view show "ok" for a window that breached (it once read
``data_drift.drifted_share`` while the writer logged ``data_drift.share``).

Imports nothing heavy: the UI reads it inside the api-server.
"""

from __future__ import annotations

from ctflow.contract import mlflow_tags

#: ``ctflow.stage`` of a monitoring run.
STAGE = "monitoring"  # one of mlflow_tags.STAGES

# --- tags -------------------------------------------------------------------------------------
WINDOW_START_TAG = "ctflow.window_start"
WINDOW_END_TAG = "ctflow.window_end"
AS_OF_TAG = mlflow_tags.AS_OF
CHAMPION_VERSION_TAG = "ctflow.champion_version"
CHALLENGER_VERSION_TAG = "ctflow.challenger_version"
#: The window's breach kinds, comma-separated and sorted (``drift``, ``performance``), or ``none``.
BREACH_TAG = "ctflow.breach"
NO_BREACH = "none"
#: The breach kind of a window with too few rows or usable values to judge (alerted, never retrained).
INSUFFICIENT_KIND = "insufficient_data"
#: The window's data-drift state: drift, no_drift, insufficient_data or unavailable.
DATA_STATE_TAG = "ctflow.data_state"

# --- metrics ----------------------------------------------------------------------------------
#: Share of the drift-checked columns that drifted (``monitoring.drift``).
DRIFT_SHARE_METRIC = "data_drift.share"
DRIFTED_COLUMNS_METRIC = "data_drift.drifted_columns"
#: 1 when the window could not be judged (then no share is logged: 0 would read as "no drift").
INSUFFICIENT_METRIC = "insufficient_data"
DRIFT_INSUFFICIENT_METRIC = "data_drift.insufficient_data"
BREACHES_METRIC = "breaches"
#: The challenger's sequential test after this window (``registry.challenger_test: sequential``),
#: over every window of this challenger against this champion: the mean per-row loss difference
#: (champion minus challenger: above 0 favours the challenger), its confidence bounds, and the
#: labelled rows and windows it rests on. Bounds are logged once finite (enough rows).
CHALLENGER_ESTIMATE_METRIC = "challenger_test.estimate"
CHALLENGER_LOWER_METRIC = "challenger_test.lower"
CHALLENGER_UPPER_METRIC = "challenger_test.upper"
CHALLENGER_ROWS_METRIC = "challenger_test.rows"
CHALLENGER_WINDOWS_METRIC = "challenger_test.windows"
#: What the window decided for the challenger (``keep``, ``promote``, ``retire``), and by which
#: rule (``sequential`` or ``streak``): tags, so the view can list why a champion changed.
CHALLENGER_DECISION_TAG = "ctflow.challenger_decision"
CHALLENGER_TEST_TAG = "ctflow.challenger_test"


def column_drift_metric(column_key: str) -> str:
    """A column's p-value (or statistic, for methods without one)."""
    return f"data_drift.{column_key}"


def performance_metric(who: str, metric: str) -> str:
    """Realized ``metric`` of ``who`` (``champion`` or ``challenger``) on the labelled window."""
    return f"performance.{who}.{metric}"


def estimated_performance_metric(metric: str) -> str:
    """The champion's ``metric`` estimated on the scoring window before its labels arrive (CBPE or DLE)."""
    return f"performance.estimated.{metric}"


def prediction_drift_metric(who: str, field: str) -> str:
    """``statistic`` or ``p_value`` of the score-distribution test of ``who``."""
    return f"prediction_drift.{who}.{field}"


# --- artifacts --------------------------------------------------------------------------------
#: A training run's ``reference/`` files: its holdout's scores and, in the same order, labels
#: and (regression only: the loss model of the performance estimate learns from them) model features.
REFERENCE_FOLDER = "reference"
REFERENCE_SCORES_FILE = "scores.npy"
REFERENCE_LABELS_FILE = "labels.npy"
REFERENCE_FEATURES_FILE = "features.parquet"
#: The empirical null of the score distance, from the training rows' scores (:func:`ctflow.core.drift.scores.score_null`).
REFERENCE_SCORES_NULL_FILE = "scores_null.json"
#: The window's summary (breaches with their reasons, drift, performance): the run's own verdict.
SUMMARY_ARTIFACT = "summary.json"
#: Folder of the steps' result files; per-feature drift is ``results/data_drift.json``.
RESULTS_FOLDER = "results"
#: The data-drift step's result file (in the run folder and, logged, under :data:`RESULTS_FOLDER`).
DATA_DRIFT_FILE = "data_drift.json"
DATA_DRIFT_ARTIFACT = f"{RESULTS_FOLDER}/{DATA_DRIFT_FILE}"
REPORT_FOLDER = "report"
REPORT_ARTIFACT = f"{REPORT_FOLDER}/report.html"
PLOTS_FOLDER = f"{REPORT_FOLDER}/plots"


def breach_tag(kinds: set[str] | list[str]) -> str:
    """The :data:`BREACH_TAG` value for the window's breach kinds."""
    return ",".join(sorted(set(kinds))) or NO_BREACH


def breach_kinds(tag: str | None) -> list[str] | None:
    """The breach kinds a :data:`BREACH_TAG` value names; ``None`` when the tag is absent."""
    if tag is None:
        return None
    kinds = [k.strip() for k in tag.split(",") if k.strip()]
    return [] if kinds == [NO_BREACH] else sorted(set(kinds))
