"""A challenger's record of ground-truth windows, and what it decides in the registry."""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ctflow.core.predictions import PerformanceRecord
    from ctflow.spec import PipelineSpec

log = logging.getLogger(__name__)


def judge_challenger(
    spec: PipelineSpec,
    record: PerformanceRecord,
    *,
    store: Any,
    registry: Any,
    actor: str,
    run_key: str | None = None,
    dry_run: bool = False,
) -> dict[str, Any] | None:
    """Record one ground-truth window's result and act on the challenger's record so far.

    ``record`` replaces any earlier result of the same window, so a re-run is not counted twice.
    With a challenger that has a result, ``registry.challenger_test`` decides (:func:`verdict`):
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
    decision: dict[str, Any] = {**verdict(spec, record, store), "applied": False, "change": None}
    action, reason = decision["action"], decision["reason"]
    why = f"monitoring: {reason}"
    if action != perf.KEEP and dry_run:
        decision["note"] = "dry run: the registry is not changed"
    elif action == perf.PROMOTE:
        try:
            change = registry.promote(challenger, alias="champion", reason=why, actor=actor,
                                      expected_current=champion, run_key=run_key)
        except RegistryError as err:
            decision["note"] = f"promotion refused: {err}"
        else:
            decision.update(applied=change.moved, change=change.to_dict())
            if change.moved:
                registry.retire("challenger", reason=f"promoted to champion ({reason})", actor=actor,
                                run_key=run_key)
            else:
                decision["note"] = change.reason
    elif action == perf.RETIRE:
        change = registry.retire("challenger", reason=why, actor=actor, run_key=run_key)
        decision.update(applied=change.moved, change=change.to_dict())
    log.info("challenger: %s -> %s%s", reason, action,
             "" if decision["applied"] or action == perf.KEEP else f" (not applied: {decision.get('note')})")
    return decision


def verdict(spec: PipelineSpec, record: PerformanceRecord, store: Any) -> dict[str, Any]:
    """What the challenger's windows up to ``record`` (already stored) decide, with the evidence.

    ``streak``: its consecutive wins/losses on the monitoring metric (:meth:`PredictionStore.streak`).
    ``sequential``: the loss differences of every window of this pair
    (:meth:`PredictionStore.challenger_evidence`) in :func:`ctflow.core.monitoring.sequential.decide`;
    a decision waits for ``registry.promote_after`` windows of evidence.
    """
    from ctflow.core import performance as perf
    from ctflow.core.monitoring import sequential

    config = spec.registry
    pair = {"challenger_version": str(record.challenger_version), "champion_version": record.champion_version}
    versions = f"challenger v{record.challenger_version} against champion v{record.champion_version}"
    if config.challenger_test == "streak":
        wins, losses = store.streak(spec.pipeline, **pair, until=record.window_end)
        streak = perf.decide_challenger(wins, losses, config.promote_after, challenger=pair["challenger_version"],
                                        champion=record.champion_version)
        return {"rule": "streak", **streak.to_dict(), "reason": f"{streak.reason} on {record.metric}"}
    totals = store.challenger_evidence(spec.pipeline, **pair, until=record.window_end)
    evidence = sequential.Evidence(totals.rows, totals.total, totals.total_sq)
    test = sequential.decide(evidence, alpha=config.alpha, min_effect=config.min_effect, windows=totals.windows,
                             min_windows=config.promote_after)
    bounds = {k: v if math.isfinite(v) else None for k, v in (("mean", test.mean), ("lower", test.lower),
                                                               ("upper", test.upper))}  # JSON for XCom
    return {"rule": "sequential", **test.to_dict(), **bounds, "reason": f"{versions}: {test.reason}",
            "needed": config.promote_after}
