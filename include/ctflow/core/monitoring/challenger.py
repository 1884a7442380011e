"""A challenger's record of ground-truth windows, and what it decides in the registry."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ctflow.spec import PipelineSpec

log = logging.getLogger(__name__)


def judge_challenger(
    spec: PipelineSpec,
    record: Any,
    *,
    store: Any,
    registry: Any,
    actor: str,
    run_key: str | None = None,
    dry_run: bool = False,
) -> dict[str, Any] | None:
    """Record one ground-truth window's result and act on the challenger's run of results.

    ``record`` (a :class:`~ctflow.core.predictions.PerformanceRecord`) replaces any earlier result
    of the same window, so a re-run is not counted twice. With a challenger that has a result,
    its consecutive wins/losses against this champion (:meth:`PredictionStore.streak`) decide:
    promote (registry compare-and-set against this champion, then the ``challenger`` alias is
    retired since the version is champion now), retire, or keep. ``dry_run`` decides but changes
    nothing in the registry. Returns the decision (None without a challenger result).
    """
    from ctflow.core import performance as perf
    from ctflow.core.registry import RegistryError

    store.record_performance(record, run_key=run_key)
    if record.challenger_version is None or record.challenger_won is None:
        return None
    challenger, champion = record.challenger_version, record.champion_version
    wins, losses = store.streak(spec.pipeline, challenger_version=challenger, champion_version=champion,
                                until=record.window_end)
    verdict = perf.decide_challenger(wins, losses, spec.registry.promote_after, challenger=challenger, champion=champion)
    decision: dict[str, Any] = {**verdict.to_dict(), "applied": False, "change": None}
    why = f"monitoring: {verdict.reason} on {record.metric}"
    if verdict.action != perf.KEEP and dry_run:
        decision["note"] = "dry run: the registry is not changed"
    elif verdict.action == perf.PROMOTE:
        try:
            change = registry.promote(challenger, alias="champion", reason=why, actor=actor,
                                      expected_current=champion, run_key=run_key)
        except RegistryError as err:
            decision["note"] = f"promotion refused: {err}"
        else:
            decision.update(applied=change.moved, change=change.to_dict())
            if change.moved:
                registry.retire("challenger", reason=f"promoted to champion ({verdict.reason})", actor=actor,
                                run_key=run_key)
            else:
                decision["note"] = change.reason
    elif verdict.action == perf.RETIRE:
        change = registry.retire("challenger", reason=why, actor=actor, run_key=run_key)
        decision.update(applied=change.moved, change=change.to_dict())
    log.info("challenger: %s -> %s%s", verdict.reason, verdict.action,
             "" if decision["applied"] or verdict.action == perf.KEEP else f" (not applied: {decision.get('note')})")
    return decision
