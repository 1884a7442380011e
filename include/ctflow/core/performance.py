"""Performance once ground truth has arrived, and what a challenger's record of windows decides.

Pure logic over numbers (no I/O): :mod:`ctflow.core.monitoring` feeds it. Whether a value breaches
the spec's bounds is the spec's own check (:meth:`ctflow.spec.models.Bounded.breach`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

KEEP = "keep"
PROMOTE = "promote"
RETIRE = "retire"


def metric_value(task: str, metric: str, y_true: Any, scores: Any, *, threshold: float | None = None) -> float | None:
    """``metric`` of ``scores`` against ``y_true``; None when undefined (no rows, one class only).

    ``threshold``: a classifier's decision threshold for label metrics (the spec's ``model.decision_threshold``).
    """
    from ctflow.core.evaluation import compute_metrics

    y_true = np.asarray(y_true)
    if len(y_true) == 0:
        return None
    value = compute_metrics(task, y_true, np.asarray(scores, dtype=float), threshold=threshold).get(metric)
    return None if value is None else float(value)


def challenger_wins(task: str, metric: str, challenger: float | None, champion: float | None, min_improvement: float) -> bool | None:
    """Did the challenger win this window (the CT gate's rule)? None when either value is unknown."""
    from ctflow.core.gate import beats

    if challenger is None or champion is None:
        return None
    return beats(task, metric, challenger, champion, min_improvement)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ChallengerDecision:
    """What to do with the challenger after this window."""

    action: str  # keep | promote | retire
    wins: int
    losses: int
    needed: int
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide_challenger(wins: int, losses: int, promote_after: int, *, challenger: str, champion: str) -> ChallengerDecision:
    """Promote after ``promote_after`` consecutive wins, retire after as many consecutive losses."""
    if wins >= promote_after:
        return ChallengerDecision(PROMOTE, wins, losses, promote_after,
                                  f"challenger v{challenger} beat champion v{champion} in {wins} consecutive windows")
    if losses >= promote_after:
        return ChallengerDecision(RETIRE, wins, losses, promote_after,
                                  f"challenger v{challenger} lost to champion v{champion} in {losses} consecutive windows")
    run = f"{wins} win(s)" if wins else f"{losses} loss(es)"
    return ChallengerDecision(KEEP, wins, losses, promote_after,
                              f"challenger v{challenger} has {run} in a row against champion v{champion}; "
                              f"{promote_after} decide")


__all__ = ["KEEP", "PROMOTE", "RETIRE", "ChallengerDecision", "challenger_wins", "decide_challenger",
           "metric_value"]
