"""Replay retraining policies over history, step by step, with the core code of the DAGs.

Three policies are compared on the same real rows:

``never``
    the model trained at the first step, used for every step after it;
``ctflow``
    the spec's own policy: retrain on the spec's ``schedule.train`` and on monitoring breaches
    (``schedule.retrain_on``), gate every candidate with :func:`ctflow.core.gate.decide`
    (absolute thresholds, per slice too, then the champion scored on the candidate's holdout)
    and deploy it only when it passes;
``every``
    retrain at every step and always deploy.

At each step ``t_k = start + k * every`` (on the calendar: ``1mo`` steps stay on month starts)
each policy may train, then its current model is scored on the rows of ``[t_k, t_{k+1})`` with
the spec's ``evaluation.metric``.

How the replay maps the DAGs' behaviour onto steps (documented approximations):

* **One feature frame.** The labelled entity rows of ``[start - data.window, end)`` are joined
  with the spec's Feast feature service once (:func:`load_frame`); every training window,
  holdout and scored step is a slice of it by entity timestamp. Feast's join is per entity
  row, as of that row's timestamp, so a slice holds exactly the rows and values that
  ``steps.fetch_features`` would build for that window, in the same order.
* **Training** is ``steps.train``'s own fit without MLflow (:func:`ctflow.core.fit.fit_candidate`):
  the window ``[t_k - data.window, t_k)`` less the rows whose label was not known at ``t_k``
  (:meth:`ReplayFrame.labelled_by`: the frame holds every label the table has today, a step
  sees only those known then), the newest ``data.holdout`` of it held out, the
  spec's pipeline, ``evaluation.compute_metrics`` and ``slice_metrics`` on the holdout. Each
  ``t_k`` is trained at most once and shared by every policy that trains then
  (:class:`ModelBank`): the three policies' first models are one fit.
* **Schedule.** Cron ticks of ``schedule.train`` (in ``schedule.timezone``) are enumerated
  exactly; a tick in ``(t_{k-1}, t_k]`` makes step ``k`` retrain, as of ``t_k``. The replay
  cannot train more often than its step: several ticks in one step are one training.
* **Monitoring** runs at each step on the previous step's rows, against the champion:
  data drift of ``monitoring.drift.columns`` (default: the model's features) against the
  champion's reference profile (its training rows, as ``steps.train`` stores it), breach when
  the drifted share reaches ``max_drifted_share``; and ``monitoring.performance`` on the rows
  whose labels are known at ``t_k`` (``[t_{k-1}, t_k)`` shifted back by
  ``data.label.available_after``, filtered by when each label became known). The monitoring DAG checks ``monitoring.window`` (daily)
  windows; the replay checks one window per step, and a breach retrains as of the next step.
  The champion's scores on the previous step are judged for prediction drift and for the
  label-free performance estimate by the DAG's own functions (``score_drift``,
  ``judge_window``); each step records the estimate beside the realized metric of the same rows.
* **Data quality** (``quality``) is checked before each ctflow training, as in the DAG; a
  window that fails is not trained on. ``never`` and ``every`` do not check.
* **Registry.** Promotion is ``direct`` and ``auto``; shadow/canary strategies and manual
  approval are replayed as direct, auto promotion (noted in the result).
* Until the ctflow policy has a champion (its first candidates may fail the data-quality rules
  or the floors) its steps are not scored. It tries again at every step when
  ``schedule.retrain_on`` has ``no_champion``, as the monitoring DAG asks for a training when it
  finds no champion; otherwise only at the cron's ticks.
* ``schedule.retrain_cooldown``: a drift or performance breach at a step less than that after
  the last fit (of any trigger) does not retrain (``held_back``), as the monitoring DAG
  declines to emit the breach event then. Breaches, the retrain decision and the cool-down are
  :mod:`ctflow.core.policy`'s, which the monitoring DAG applies too.

MLflow is not used here; the command line can log one summary run (``--mlflow``).

Modules: :mod:`.timeline` (steps, cron ticks), :mod:`.frame` (the feature frame), :mod:`.bank`
(the models), :mod:`.policies` (never / ctflow / every), :mod:`.runner` (:func:`replay`, spec
variants), :mod:`.results` (records, table, goal), :mod:`.plot` (the timeline plot).
"""

from __future__ import annotations

from ctflow.core.replay.bank import Candidate, ModelBank
from ctflow.core.replay.frame import ReplayFrame, load_frame
from ctflow.core.replay.plot import plot_timeline
from ctflow.core.replay.results import (
    CTFLOW,
    DESCRIPTIONS,
    EVERY,
    GOAL_METRIC_GAP,
    GOAL_TRAINING_SHARE,
    NEVER,
    POLICIES,
    PolicyResult,
    ReplayResult,
    StepRecord,
)
from ctflow.core.replay.runner import WHAT_IF_SECTIONS, override_spec, replay
from ctflow.core.replay.timeline import ReplayError, Step, as_utc, cron_ticks, make_steps

__all__ = [
    "CTFLOW",
    "DESCRIPTIONS",
    "EVERY",
    "GOAL_METRIC_GAP",
    "GOAL_TRAINING_SHARE",
    "NEVER",
    "POLICIES",
    "WHAT_IF_SECTIONS",
    "Candidate",
    "ModelBank",
    "PolicyResult",
    "ReplayError",
    "ReplayFrame",
    "ReplayResult",
    "Step",
    "StepRecord",
    "as_utc",
    "cron_ticks",
    "load_frame",
    "make_steps",
    "override_spec",
    "plot_timeline",
    "replay",
]
