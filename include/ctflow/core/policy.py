"""When to retrain: a window's breaches, the retrain decision and the cool-down.

The monitoring DAG (:func:`ctflow.core.monitoring.actions`) and the replay's ``ctflow`` policy
(:mod:`ctflow.core.replay`) both decide here, so the replay measures the policy the DAGs run.
Pure logic over the monitoring steps' results and the spec: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ctflow.core.drift.sufficiency import insufficient_breaches
from ctflow.spec.durations import format_duration

if TYPE_CHECKING:
    from ctflow.spec import PipelineSpec

#: Why a training is asked for, besides breaches: the train cron ticked, or there is no champion.
SCHEDULE, NO_CHAMPION = "schedule", "no_champion"


def assess(spec: PipelineSpec, *, data: dict[str, Any], predictions: dict[str, Any],
           perf: dict[str, Any], estimated: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The breaches of this window: ``[{"kind": "drift" | "performance" | "insufficient_data", "what", "reason"}]``.

    :param data: the data-drift step's result (``data_drift.json``).
    :param predictions: the prediction-drift step's result (``prediction_drift.json``).
    :param perf: the performance step's result (``performance.json``); its ``breach`` is the
        spec's bound check (:meth:`ctflow.spec.models.Bounded.breach`).
    :param estimated: the performance estimate of the scoring window (``estimated_performance.json``);
        a significant estimated drop is a ``performance`` breach (``what``: ``estimated_performance``)
        raised before the window's labels arrive, when ``monitoring.estimated_performance`` is on.

    ``insufficient_data`` (too few rows or usable values to judge drift, ``monitoring.min_rows``)
    is alerted like a breach, since the window is not known to be healthy, and never retrains.
    """
    breaches = []
    if data.get("available") and data.get("drifted"):
        breaches.append({"kind": "drift", "what": "data_drift",
                         "reason": f"{len(data.get('drifted_columns', []))} feature(s) drifted "
                                   f"(share {data['drifted_share']:.2f} >= {data['max_drifted_share']}): "
                                   + ", ".join(data.get("drifted_columns", [])[:10])})
    champion = (predictions.get("models") or {}).get("champion") or {}
    breaches.extend(insufficient_breaches(data, champion))
    if champion.get("drifted"):
        score = champion["p_value"] if champion.get("p_value") is not None else champion.get("statistic")
        breaches.append({"kind": "drift", "what": "prediction_drift",
                         "reason": f"champion v{champion['version']} scores drifted ({champion['method']} {score:.4g}, "
                                   f"threshold {champion['threshold']})"})
    if perf.get("available") and perf.get("breach"):
        breaches.append({"kind": "performance", "what": "performance",
                         "reason": f"champion v{perf['champion']['version']} {perf['metric']} {perf['breach']} on "
                                   f"[{perf['window_start']}, {perf['window_end']})"})
    estimated = estimated or {}
    if spec.monitoring.estimated_performance and estimated.get("available") and estimated.get("breach"):
        breaches.append({"kind": "performance", "what": "estimated_performance",
                         "reason": f"champion v{estimated['version']} estimated {estimated['metric']} "
                                   f"{estimated['breach']} on [{estimated['window_start']}, "
                                   f"{estimated['window_end']}), before its labels"})
    return breaches


def cooldown_reason(spec: PipelineSpec, window_end: datetime, last_trained: datetime | None) -> str | None:
    """Why a breach of the window ending at ``window_end`` does not retrain yet
    (``schedule.retrain_cooldown``), or None if it may."""
    cooldown = spec.schedule.retrain_cooldown
    if cooldown is None or last_trained is None or window_end - last_trained >= cooldown:
        return None
    age = window_end - last_trained
    when = f"{format_duration(age)} before" if age >= timedelta(0) else f"{format_duration(-age)} after"
    return (f"the newest training is as of {last_trained.isoformat()}, {when} this window's end; "
            f"schedule.retrain_cooldown is {format_duration(cooldown)}")


@dataclass(frozen=True)
class RetrainDecision:
    """Whether a window asks for a training, and why.

    ``triggers`` retrain now, in this order: ``schedule``, ``no_champion``, then the breach kinds
    ``schedule.retrain_on`` lists (sorted). ``held_back`` are such breach kinds the cool-down
    keeps from retraining (they are still alerted); ``breaches`` are every kind seen.
    """

    triggers: list[str]
    breaches: list[str]
    reason: str
    held_back: list[str] = field(default_factory=list)
    cooldown: str | None = None
    has_champion: bool = True

    @property
    def retrain(self) -> bool:
        return bool(self.triggers)

    @property
    def breach_triggers(self) -> list[str]:
        """The triggers that are breaches (what the monitoring DAG's breach event carries)."""
        return [t for t in self.triggers if t in self.breaches]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "retrain": self.retrain}


def decide_retrain(
    spec: PipelineSpec,
    *,
    breaches: Iterable[str] = (),
    has_champion: bool = True,
    scheduled: bool = False,
    window_end: datetime,
    last_trained: datetime | None = None,
) -> RetrainDecision:
    """The retrain decision of a window ending at ``window_end``.

    :param breaches: the window's breach kinds (:func:`assess`); without a champion there are none.
    :param has_champion: False when there was no champion to monitor: a training is asked for
        when ``schedule.retrain_on`` has ``no_champion`` (a cold start retries at each run).
    :param scheduled: ``schedule.train`` ticked since the last decision (the replay; in Airflow
        the cron starts the training DAG itself).
    :param last_trained: the data time of the newest training, for ``schedule.retrain_cooldown``;
        only breaches are held back, never the cron or ``no_champion``.
    """
    retrain_on = spec.schedule.retrain_on
    kinds = sorted(set(breaches))
    triggers = [SCHEDULE] if scheduled else []
    if not has_champion:
        wanted = NO_CHAMPION in retrain_on
        triggers += [NO_CHAMPION] if wanted else []
        if wanted:
            reason = f"no champion to monitor: trigger {spec.ct_dag_id} as of {window_end.isoformat()}"
        else:
            reason = (f"no champion to monitor; schedule.retrain_on has no 'no_champion', so the next "
                      f"training is {spec.ct_dag_id}'s schedule or a manual run")
        return RetrainDecision(triggers, [], _with_schedule(spec, scheduled, reason), has_champion=False)
    retrain_kinds: list[str] = [k for k in kinds if k in retrain_on]
    cooling = cooldown_reason(spec, window_end, last_trained) if retrain_kinds else None
    listed = ", ".join(kinds)
    if not kinds:
        reason = "no breach in this window"
    elif cooling:
        reason = f"breach ({listed}) alerted, not retrained: {cooling}"
    elif not retrain_kinds:
        reason = (f"breach ({listed}) alerted; schedule.retrain_on "
                  f"({', '.join(retrain_on) or 'empty'}) does not retrain on it")
    else:
        reason = f"breach ({listed}): alert and trigger {spec.ct_dag_id}"
    return RetrainDecision(
        triggers + ([] if cooling else retrain_kinds), kinds, _with_schedule(spec, scheduled, reason),
        held_back=retrain_kinds if cooling else [], cooldown=cooling,
    )


def _with_schedule(spec: PipelineSpec, scheduled: bool, reason: str) -> str:
    return f"schedule.train {spec.schedule.train!r} ticked; {reason}" if scheduled else reason


__all__ = ["NO_CHAMPION", "SCHEDULE", "RetrainDecision", "assess", "cooldown_reason", "decide_retrain"]
