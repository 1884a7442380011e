"""The steps of a monitoring run as plain functions over a run folder (no Airflow here).

``monitor_<name>`` runs, for ``as_of`` (the logical date or ``params.as_of``):

1. :func:`score_batch` — the rows of ``[as_of - monitoring.window, as_of)`` with their
   point-in-time features, scored by the ``champion`` (and the ``challenger``: every row in
   ``shadow``, a deterministic hash-of-entity-key share of rows in ``canary``); predictions
   replace the window's rows in the predictions store (:mod:`ctflow.core.predictions`);
2. :func:`data_drift` — each feature of the window against the champion's reference profile
   (``reference/profile`` of its MLflow run, written at training time);
3. :func:`prediction_drift` — the window's champion scores against its training-time holdout
   scores (``reference/scores.npy``); then :func:`estimated_performance`, the champion's metric
   estimated from those scores before the window's labels arrive (CBPE, calibrated on the
   holdout's labels ``reference/labels.npy``: :mod:`.estimate`; for regression, direct loss
   estimation from the holdout's features ``reference/features.parquet`` too: :mod:`.estimate_loss`);
4. :func:`performance` — on the **ground-truth window** ``[as_of - available_after - window,
   as_of - available_after)`` (``data.label``; no shift with ``available_at``), of which only the
   rows whose label is known at ``as_of`` count (:mod:`ctflow.core.labels`). Those rows (with
   their labels from the entity table, unknown labels dropped) are scored by the champion and the challenger, the *same* rows for
   both whatever the strategy, and the spec's metric compared. The result is recorded per window
   (``ctflow_performance``) with the per-row loss differences of the pair; when
   ``registry.challenger_test`` decides (:mod:`ctflow.core.monitoring.sequential` by default,
   or ``promote_after`` windows won/lost in a row), the challenger is promoted (registry
   compare-and-set + alias history) or retired;
5. :func:`report` — HTML report and PNG plots logged to an MLflow monitoring run, the
   computational metrics, and the summary (breaches included);
6. :func:`actions` — whether to alert and to emit the breach event; :func:`deliver_webhook`
   posts an alert and never raises.

Each step writes its full result to ``run_dir`` as JSON and returns a small dict (XCom);
:func:`read_result` reads such a file back (``read_result(run_dir / REPORT)``).

One module per job: :mod:`.scoring` (1), :mod:`.checks` (2-4), :mod:`.estimated` over
:mod:`.estimate` (3's estimate), :mod:`.challenger` (the challenger's record), :mod:`.reporting`
and :mod:`.report_page` (5), :mod:`.decisions` (6, over
:mod:`ctflow.core.policy`), :mod:`.alerts` (payload, text, webhook), :mod:`.files` (the run
folder's files). Everything is re-exported here: callers use ``monitoring.score_batch(...)``.
"""

from __future__ import annotations

from ctflow.core.monitoring.alerts import alert_payload, alert_text, deliver_webhook, redact_url
from ctflow.core.monitoring.challenger import judge_challenger
from ctflow.core.monitoring.checks import data_drift, ground_truth_window, performance, prediction_drift
from ctflow.core.monitoring.decisions import actions
from ctflow.core.monitoring.estimated import estimated_performance
from ctflow.core.monitoring.files import (
    ARM,
    CHALLENGER_SCORE,
    CHAMPION_SCORE,
    DATA_DRIFT,
    DATA_STATE_TAG,
    ESTIMATED_PERFORMANCE,
    MONITORING_STAGE,
    NO_CHAMPION,
    PERFORMANCE,
    PREDICTION_DRIFT,
    REPORT,
    SCORE,
    WINDOW_FRAME,
    _read,  # noqa: F401  the earlier private name of read_result (ActOnBreachOperator reads through it)
    _write,  # noqa: F401  (tests write run files through it)
    read_frame,
    read_result,
    write_result,
)
from ctflow.core.monitoring.reporting import report, summary_lines
from ctflow.core.monitoring.scoring import score_batch
from ctflow.core.policy import assess, cooldown_reason

__all__ = [
    "ARM",
    "CHALLENGER_SCORE",
    "CHAMPION_SCORE",
    "DATA_DRIFT",
    "DATA_STATE_TAG",
    "ESTIMATED_PERFORMANCE",
    "MONITORING_STAGE",
    "NO_CHAMPION",
    "PERFORMANCE",
    "PREDICTION_DRIFT",
    "REPORT",
    "SCORE",
    "WINDOW_FRAME",
    "actions",
    "alert_payload",
    "alert_text",
    "assess",
    "cooldown_reason",
    "data_drift",
    "deliver_webhook",
    "estimated_performance",
    "ground_truth_window",
    "judge_challenger",
    "performance",
    "prediction_drift",
    "read_frame",
    "read_result",
    "redact_url",
    "report",
    "score_batch",
    "summary_lines",
    "write_result",
]
