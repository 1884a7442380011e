"""Monitoring step 6: what the window's breaches call for (alerts, the breach event that retrains).

The decision itself is :mod:`ctflow.core.policy`'s, which the replay applies too.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ctflow.core.monitoring.files import NO_CHAMPION, REPORT, read_result
from ctflow.core.policy import decide_retrain

if TYPE_CHECKING:
    from ctflow.spec import PipelineSpec


def actions(spec: PipelineSpec, *, run_dir: Path, dry_run: bool = False,
            last_trained: datetime | None = None) -> dict[str, Any]:
    """What the window's breaches call for: alerts, and the breach event (which retrains).

    A window that was not scored because there is no champion yet asks for a training when
    ``schedule.retrain_on`` has ``no_champion``: a cold start whose first candidates failed
    (data quality, floors) retries with every monitoring run instead of waiting for the cron.

    :param last_trained: the data time of the newest training
        (:func:`ctflow.core.tracking.latest_training_as_of`), for ``schedule.retrain_cooldown``.
    """
    if not (run_dir / REPORT).exists():
        return _without_report(spec, run_dir=run_dir, dry_run=dry_run)
    summary = read_result(run_dir / REPORT)
    policy = decide_retrain(spec, breaches=[b["kind"] for b in summary["breaches"]],
                            window_end=datetime.fromisoformat(summary["window_end"]), last_trained=last_trained)
    kinds, retrain_kinds = policy.breaches, policy.breach_triggers
    decision = {
        "breach": bool(kinds),
        "kinds": kinds,
        "alert": bool(kinds) and not dry_run,
        "emit": bool(retrain_kinds) and not dry_run,
        "retrain_kinds": retrain_kinds,
        "dry_run": dry_run,
        "window_start": summary["window_start"],
        "window_end": summary["window_end"],
        "champion_version": summary["champion_version"],
        "mlflow_run_id": summary.get("mlflow_run_id"),
        "reason": policy.reason,
    }
    if kinds and dry_run:
        decision["reason"] = f"dry run: breach ({', '.join(kinds)}) reported, no alert and no retraining"
    return decision


def _without_report(spec: PipelineSpec, *, run_dir: Path, dry_run: bool) -> dict[str, Any]:
    decision: dict[str, Any] = {"breach": False, "kinds": [], "alert": False, "emit": False, "retrain_kinds": [],
                                "dry_run": dry_run}
    if not (run_dir / NO_CHAMPION).exists():
        return {**decision, "reason": "nothing to act on: the window was neither scored nor reported"}
    facts = read_result(run_dir / NO_CHAMPION)
    policy = decide_retrain(spec, has_champion=False, window_end=datetime.fromisoformat(facts["window_end"]))
    wanted = policy.retrain
    decision.update(kinds=["no_champion"], retrain_kinds=policy.triggers, emit=wanted and not dry_run,
                    window_start=facts["window_start"], window_end=facts["window_end"], champion_version=None,
                    mlflow_run_id=None, reason=policy.reason)
    if wanted and dry_run:
        decision["reason"] = "dry run: no champion to monitor, no training requested"
    return decision
