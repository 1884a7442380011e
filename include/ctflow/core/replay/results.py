"""What a replay found: per step, per policy, and the table and goal it reports."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from ctflow.core.replay.format import fmt as _fmt
from ctflow.core.replay.format import round_metric as _round

if TYPE_CHECKING:
    from ctflow.spec.catalog import TaskType
    from ctflow.spec.durations import CalendarDuration

NEVER, CTFLOW, EVERY = "never", "ctflow", "every"
POLICIES = (NEVER, CTFLOW, EVERY)
DESCRIPTIONS = {
    NEVER: "trained once at the start, never retrained",
    CTFLOW: "the spec's policy: scheduled and breach-triggered retraining, gated promotion",
    EVERY: "retrained at every step, always deployed",
}
#: The goal the replay reports on: ctflow's mean metric within this share of ``every``'s ...
GOAL_METRIC_GAP = 0.01
#: ... with at most this share of its trainings.
GOAL_TRAINING_SHARE = 0.25


@dataclass
class StepRecord:
    """What one policy did at one step and how its model scored there."""

    step: int
    start: datetime
    end: datetime
    rows: int
    metric: float | None
    model: str | None
    trained: bool = False
    promoted: bool = False
    triggers: list[str] = field(default_factory=list)
    #: breaches that did not retrain: within schedule.retrain_cooldown of the last training
    held_back: list[str] = field(default_factory=list)
    decision: str | None = None
    reason: str | None = None
    candidate_metric: float | None = None
    champion_metric: float | None = None
    drift_share: float | None = None
    drifted_columns: list[str] = field(default_factory=list)
    monitored_metric: float | None = None
    #: the champion's score drift statistic (p-value or distance) and verdict, as the DAG's prediction_drift
    score_drift: float | None = None
    scores_drifted: bool | None = None
    #: the champion's metric estimated on the previous step's scores before their labels (the DAG's
    #: estimated_performance), and its breach (acted on only under monitoring.estimated_performance)
    estimated_metric: float | None = None
    estimated_breach: str | None = None
    #: the same metric on the same rows once their labels came, and monitoring.performance's bound check of it
    realized_metric: float | None = None
    realized_breach: str | None = None
    #: the checks that breached at this step (assess's ``what``: data_drift, performance, estimated_performance, ...)
    breaches: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "rows": self.rows,
            "metric": _round(self.metric),
            "model": self.model,
            "trained": self.trained,
            "promoted": self.promoted,
            "triggers": list(self.triggers),
            "held_back": list(self.held_back),
            "decision": self.decision,
            "reason": self.reason,
            "candidate_metric": _round(self.candidate_metric),
            "champion_metric": _round(self.champion_metric),
            "drift_share": _round(self.drift_share),
            "drifted_columns": list(self.drifted_columns),
            "monitored_metric": _round(self.monitored_metric),
            "score_drift": _round(self.score_drift),
            "scores_drifted": self.scores_drifted,
            "estimated_metric": _round(self.estimated_metric),
            "estimated_breach": self.estimated_breach,
            "realized_metric": _round(self.realized_metric),
            "realized_breach": self.realized_breach,
            "breaches": list(self.breaches),
        }


@dataclass
class PolicyResult:
    policy: str
    description: str
    steps: list[StepRecord]
    overrides: dict[str, Any] = field(default_factory=dict)
    #: the metric's direction (rmse: lower is better), for which step is the worst
    higher_is_better: bool = True

    @property
    def values(self) -> list[float]:
        return [s.metric for s in self.steps if s.metric is not None]

    @property
    def mean_metric(self) -> float | None:
        return float(np.mean(self.values)) if self.values else None

    @property
    def worst_metric(self) -> float | None:
        """The worst step's metric: the lowest when higher is better, else the highest."""
        if not self.values:
            return None
        return float(np.min(self.values) if self.higher_is_better else np.max(self.values))

    @property
    def trainings(self) -> int:
        return sum(s.trained for s in self.steps)

    @property
    def promotions(self) -> int:
        return sum(s.promoted for s in self.steps)

    def estimate_summary(self) -> dict[str, Any] | None:
        """How the label-free estimate tracked the realized metric of the same steps: the mean
        absolute error, and its breaches against the realized breaches of the same windows
        (``early``: confirmed by the labels, raised before them; ``false_alarms``; ``missed``:
        realized breaches it did not raise). None when no step was estimated."""
        pairs = [(s.estimated_metric, s.realized_metric) for s in self.steps
                 if s.estimated_metric is not None and s.realized_metric is not None]
        if not pairs:
            return None
        estimated, realized = (np.asarray(v, dtype=float) for v in zip(*pairs, strict=True))
        return {
            "steps": len(pairs),
            "mae": _round(float(np.mean(np.abs(estimated - realized))), 6),
            "estimated_breaches": sum(1 for s in self.steps if s.estimated_breach),
            "early": sum(1 for s in self.steps if s.estimated_breach and s.realized_breach),
            "false_alarms": sum(1 for s in self.steps if s.estimated_breach and not s.realized_breach),
            "missed": sum(1 for s in self.steps if s.realized_breach and not s.estimated_breach),
            "realized_breaches": sum(1 for s in self.steps if s.realized_breach),
        }

    def paired(self, reference: PolicyResult) -> tuple[float, float, int] | None:
        """Mean metric of this policy and of ``reference`` over the steps both scored, and how many.

        A policy without a model at some steps (ctflow before its first promotion) is compared
        on the same steps only, not on an easier or harder subset of the weeks.
        """
        pairs = self._pairs(reference)
        if not pairs:
            return None
        mine, theirs = zip(*pairs, strict=True)
        return float(np.mean(mine)), float(np.mean(theirs)), len(pairs)

    def _pairs(self, reference: PolicyResult) -> list[tuple[float, float]]:
        """``(this policy's metric, reference's)`` at each step both scored."""
        return [(a.metric, b.metric) for a, b in zip(self.steps, reference.steps, strict=True)
                if a.metric is not None and b.metric is not None]

    def paired_difference(self, reference: PolicyResult) -> tuple[float, float | None] | None:
        """The mean step-by-step difference of this policy's metric minus ``reference``'s over the
        steps both scored, and its standard error (the steps taken as independent: neighbouring
        windows are not quite, so it is a lower bound), or None without a common step."""
        differences = [mine - theirs for mine, theirs in self._pairs(reference)]
        if not differences:
            return None
        error = float(np.std(differences, ddof=1) / np.sqrt(len(differences))) if len(differences) > 1 else None
        return float(np.mean(differences)), error

    def to_dict(self, *, reference: PolicyResult | None = None, steps: bool = True) -> dict[str, Any]:
        triggers = Counter(t for s in self.steps if s.trained for t in s.triggers)
        decisions = Counter(s.decision for s in self.steps if s.decision)
        out: dict[str, Any] = {
            "policy": self.policy,
            "mean_metric": _round(self.mean_metric),
            "worst_metric": _round(self.worst_metric),
            "trainings": self.trainings,
            "promotions": self.promotions,
            "description": self.description,
            "steps": len(self.steps),
            "steps_scored": len(self.values),
            "rows_scored": sum(s.rows for s in self.steps if s.metric is not None),
            "training_triggers": dict(sorted(triggers.items())),
            "decisions": dict(sorted(decisions.items())),
            "breaches_held_back": sum(1 for s in self.steps if s.held_back),
            "estimate": self.estimate_summary(),
        }
        paired = self.paired(reference) if reference is not None else None
        if reference is not None and paired is not None and paired[1]:
            # relative difference of the means over the steps both policies scored
            out["mean_metric_vs_every"] = _round(paired[0] / paired[1] - 1, 6)
            out["paired_steps"] = paired[2]
            difference = self.paired_difference(reference)
            if difference is not None:
                out["paired_difference_vs_every"] = _round(difference[0], 6)
                out["paired_difference_se"] = _round(difference[1], 6)
            out["trainings_vs_every"] = _round(self.trainings / reference.trainings, 4) if reference.trainings else None
        if self.overrides:
            out["overrides"] = self.overrides
        if steps:
            out["per_step"] = [s.to_dict() for s in self.steps]  # one record per step, whatever its length
        return out


@dataclass
class ReplayResult:
    pipeline: str
    task: TaskType
    metric: str
    start: datetime
    end: datetime
    every: CalendarDuration
    policies: list[PolicyResult]
    fits: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def _every_seconds(self) -> float:
        # A calendar step ("1mo") has no fixed length: its average one.
        return self.every.approx().total_seconds()

    def policy(self, name: str) -> PolicyResult:
        return next(p for p in self.policies if p.policy == name)

    def records(self, *, steps: bool = True) -> list[dict[str, Any]]:
        """One JSON-ready object per policy (what ``ctflow replay --json`` prints)."""
        every = self.policy(EVERY)
        return [
            {**p.to_dict(reference=every, steps=steps), "metric": self.metric, "start": self.start.isoformat(),
             "end": self.end.isoformat(), "every": str(self.every), "every_seconds": self._every_seconds}
            for p in self.policies
        ]

    def goal(self, policy: str = CTFLOW) -> dict[str, Any]:
        """Is ``policy`` within 1 % of ``every``'s mean metric, with at most a quarter of its
        trainings, and better than ``never`` (each over the steps both scored)?

        ``mean_metric_gap`` is signed in the metric's direction: positive when ``policy`` is better
        than ``every``, negative when worse.
        """
        mine, every = self.policy(policy), self.policy(EVERY)
        paired = mine.paired(every)
        if paired is None or not paired[1]:
            return {"policy": policy, "met": False, "reason": "no metric"}
        gap = self._better_by(paired)
        share = mine.trainings / every.trainings if every.trainings else math.inf
        close, cheap = gap >= -GOAL_METRIC_GAP, share <= GOAL_TRAINING_SHARE
        difference = mine.paired_difference(every)
        versus_never = mine.paired(self.policy(NEVER))
        above_never = versus_never is not None and bool(versus_never[1]) and self._better_by(versus_never) > 0
        return {"policy": policy, "mean_metric_gap": round(gap, 6), "paired_steps": paired[2],
                "trainings_share": round(share, 4), "within_metric_gap": close, "within_training_share": cheap,
                "above_never": above_never, "met": close and cheap and above_never,
                "paired_difference": None if difference is None else _round(difference[0], 6),
                "paired_difference_se": None if difference is None else _round(difference[1], 6)}

    def _better_by(self, paired: tuple[float, float, int]) -> float:
        """How much better the first mean of ``paired`` is than the second, relative, in the metric's direction."""
        from ctflow.spec.catalog import higher_is_better

        gap = paired[0] / paired[1] - 1
        return gap if higher_is_better(self.task, self.metric) else -gap

    def table(self) -> str:
        """A markdown table of the policies, then the goal for each ctflow policy."""
        every = self.policy(EVERY)
        m = self.metric
        lines = [
            (
                f"| policy | mean {m} | worst {m} | trainings | promotions | steps scored | "
                "mean vs every (same steps) | paired difference vs every (SE) | trainings vs every |"
            ),
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for p in self.policies:
            d = p.to_dict(reference=every, steps=False)
            gap = d.get("mean_metric_vs_every")
            share = d.get("trainings_vs_every")
            lines.append(
                f"| {p.policy} | {_fmt(p.mean_metric)} | {_fmt(p.worst_metric)} | {p.trainings} | {p.promotions} | "
                f"{len(p.values)}/{len(p.steps)} | {'' if gap is None else f'{gap:+.2%}'} | "
                f"{_difference(d.get('paired_difference_vs_every'), d.get('paired_difference_se'))} | {'' if share is None else f'{share:.0%}'} |"
            )
        lines.append("")
        for p in self.policies:
            if p.policy.startswith(CTFLOW):
                g = self.goal(p.policy)
                if "mean_metric_gap" not in g:
                    lines.append(f"goal for {p.policy}: NOT MET ({p.policy} scored no step: no candidate passed "
                                 "the gate)")
                    continue
                gap = g["mean_metric_gap"]
                lines.append(
                    f"goal for {p.policy} (mean {m} within {GOAL_METRIC_GAP:.0%} of every, at most "
                    f"{GOAL_TRAINING_SHARE:.0%} of its trainings, better than never): "
                    f"{'MET' if g['met'] else 'NOT MET'} ({abs(gap):.2%} {'better' if gap >= 0 else 'worse'} than "
                    f"every over the {g['paired_steps']} steps both scored, paired difference "
                    f"{_difference(g['paired_difference'], g['paired_difference_se'])}, "
                    f"trainings {g['trainings_share']:.0%}, "
                    f"{'better' if g['above_never'] else 'not better'} than never)"
                )
        summaries = [(p.policy, p.estimate_summary()) for p in self.policies]
        lines += [_estimate_line(policy, e) for policy, e in summaries if e is not None]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "pipeline": self.pipeline, "task": self.task, "metric": self.metric, "start": self.start.isoformat(),
            "end": self.end.isoformat(), "every": str(self.every), "every_seconds": self._every_seconds,
            "fits": self.fits,
            "seconds": self.seconds, "notes": self.notes, "policies": self.records(),
        }


def _estimate_line(policy: str, e: dict[str, Any]) -> str:
    """One line of a policy's :meth:`PolicyResult.estimate_summary` under the table."""
    return (f"estimate for {policy}: the monitored metric estimated before the labels vs realized on the same "
            f"{e['steps']} steps, mean absolute error {e['mae']:.4f}; {e['estimated_breaches']} estimated "
            f"breach(es): {e['early']} before the realized breach of the same window, {e['false_alarms']} false "
            f"alarm(s); {e['missed']} of {e['realized_breaches']} realized breach(es) not estimated")


def _difference(value: float | None, error: float | None) -> str:
    """A paired difference with every and its standard error, for the table and the goal line."""
    if value is None:
        return "-"
    return f"{value:+.4f}" + ("" if error is None else f" (SE {error:.4f})")
