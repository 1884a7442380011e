"""The promotion gate: absolute thresholds (overall and per slice), then the champion.

Pure logic over numbers, so every rule is testable without a model in sight.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ctflow.spec.catalog import higher_is_better
from ctflow.spec.models import Bound, Evaluation, TaskType

PROMOTE = "promote"
REJECT_FLOOR = "reject_floor"  # below an absolute threshold: marked as failed in the registry
REJECT_CHAMPION = "reject_champion"  # good enough, but not better than the champion


@dataclass
class GateDecision:
    decision: str
    reason: str
    metric: str
    candidate: dict[str, float]
    champion: dict[str, float] | None = None
    champion_version: str | None = None
    checks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def promote(self) -> bool:
        return self.decision == PROMOTE

    @property
    def passed_floors(self) -> bool:
        return self.decision != REJECT_FLOOR

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "promote": self.promote, "passed_floors": self.passed_floors}

    def lines(self) -> list[str]:
        """The decision and every compared number, for the task log."""
        out = [f"gate decision: {self.decision} — {self.reason}"]
        out += [
            f"  {'ok  ' if c['passed'] else 'FAIL'} {c['check']}: {c['observed']} (needs {c['needs']})" for c in self.checks
        ]
        return out


def decide(
    *,
    task: TaskType,
    evaluation: Evaluation,
    candidate: dict[str, float],
    champion: dict[str, float] | None,
    champion_version: str | None,
    slices: dict[str, dict[str, dict]] | None = None,
) -> GateDecision:
    """Absolute floors first (a candidate below one is never promoted); with a champion,
    the candidate must also beat it on the primary metric by ``min_improvement``.
    With no champion (the first run), only the absolute thresholds apply."""
    checks: list[dict[str, Any]] = []
    for name, bound in evaluation.thresholds.items():
        checks.append(_bound_check(name, candidate.get(name), bound))
    for column, groups in (slices or {}).items():
        for value, result in groups.items():
            if result["rows"] < evaluation.min_slice_rows:
                continue
            for name, bound in evaluation.slice_bounds.items():
                checks.append(_bound_check(f"{name}[{column}={value}]", result.get(name), bound))
    metric = evaluation.metric
    failed = [c for c in checks if not c["passed"]]

    def decided(decision: str, reason: str) -> GateDecision:
        # Every outcome reports the same numbers; only the verdict and its reason differ.
        return GateDecision(
            decision,
            reason,
            metric=metric,
            candidate=candidate,
            champion=champion,
            champion_version=champion_version,
            checks=checks,
        )

    if failed:
        reason = "below absolute threshold: " + ", ".join(f"{c['check']}={c['observed']}" for c in failed)
        return decided(REJECT_FLOOR, reason)
    if champion is None or not evaluation.versus_champion.enabled:
        why = "no champion yet: absolute thresholds only" if champion is None else "champion comparison disabled"
        return decided(PROMOTE, why)
    better = beats(task, metric, candidate.get(metric), champion.get(metric), evaluation.versus_champion.min_improvement)
    sign = ">" if higher_is_better(task, metric) else "<"
    checks.append({
        "check": f"{metric} versus champion v{champion_version}",
        "observed": _round(candidate.get(metric)),
        "needs": f"{sign} {_round(champion.get(metric))} by {evaluation.versus_champion.min_improvement}",
        "passed": better,
    })
    if better:
        return decided(
            PROMOTE,
            f"beats champion v{champion_version} on {metric} "
            f"({_round(candidate.get(metric))} vs {_round(champion.get(metric))})",
        )
    return decided(
        REJECT_CHAMPION,
        f"does not beat champion v{champion_version} on {metric} "
        f"({_round(candidate.get(metric))} vs {_round(champion.get(metric))})",
    )


def beats(task: TaskType, metric: str, candidate: float | None, champion: float | None, min_improvement: float) -> bool:
    """Is ``candidate`` better than ``champion`` by at least ``min_improvement``?"""
    if candidate is None:
        return False
    if champion is None:
        return True
    if higher_is_better(task, metric):
        return candidate >= champion + min_improvement
    return candidate <= champion - min_improvement


def _bound_check(name: str, value: float | None, bound: Bound) -> dict[str, Any]:
    # An unknown (or NaN) value passes no bound: the gate promotes only what it has measured.
    ok = value is not None and value == value and bound.breach(value) is None
    return {"check": name, "observed": _round(value), "needs": bound.needs, "passed": ok}


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)
