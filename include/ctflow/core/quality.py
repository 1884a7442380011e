"""Data-quality rules run on the training frame before any training happens."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ctflow.exceptions import CtflowError
from ctflow.spec.durations import format_duration

if TYPE_CHECKING:
    import pandas as pd

    from ctflow.spec.models import Data, Quality


@dataclass(frozen=True)
class RuleResult:
    rule: str
    passed: bool
    observed: Any
    expected: str
    column: str | None = None

    def line(self) -> str:
        mark = "ok  " if self.passed else "FAIL"
        where = f"[{self.column}] " if self.column else ""
        return f"{mark} {self.rule} {where}observed {self.observed} (expected {self.expected})"


@dataclass
class QualityReport:
    rules: list[RuleResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.rules)

    @property
    def failures(self) -> list[RuleResult]:
        return [r for r in self.rules if not r.passed]

    def text(self) -> str:
        head = f"data quality: {len(self.rules) - len(self.failures)}/{len(self.rules)} rules passed"
        failed = [r.line() for r in self.failures]
        passed = [r.line() for r in self.rules if r.passed]
        return "\n".join([head, *failed, *passed])

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "rules": [asdict(r) for r in self.rules]}


class DataQualityError(CtflowError):
    """The training frame broke at least one rule; ``report`` says which and by how much."""

    def __init__(self, report: QualityReport):
        self.report = report
        failed = "\n".join(r.line() for r in report.failures)
        super().__init__(f"{len(report.failures)} data-quality rule(s) failed:\n{failed}")


def check_quality(
    frame: pd.DataFrame,
    *,
    quality: Quality,
    data: Data,
    features: list[str],
    label: str,
    as_of: datetime,
    window: timedelta | None = None,
) -> QualityReport:
    """Apply ``quality`` to ``frame`` (model ``features`` and the derived ``label`` column).

    ``window`` is the length the frame was fetched for (``data.window`` unless a run overrode it).

    A frame that lacks a column the rules need (a feature, the label, the timestamp) is refused
    like any other failed rule (``required_columns``, so :class:`DataQualityError`, exit 3): the
    frame on disk is this run's input and a retry would check the same one. The spec naming a
    column its data does not have is caught earlier, when the frame is fetched, as a
    configuration error.
    """
    report = QualityReport()
    add = report.rules.append
    needed = [*features, label, data.timestamp]
    absent = [c for c in dict.fromkeys(needed) if c not in frame.columns]
    add(RuleResult("required_columns", not absent, ", ".join(absent) + " absent" if absent else "all present",
                   "the features, the label and the timestamp in the frame"))
    if absent:
        return report  # the other rules would read the missing columns
    rows = len(frame)
    add(RuleResult("min_rows", rows >= quality.min_rows, rows, f">= {quality.min_rows}"))
    report.rules.extend(_missing_rules(frame, quality=quality, features=features))
    if quality.max_staleness is not None:
        add(_staleness_rule(frame, timestamp=data.timestamp, max_staleness=quality.max_staleness, as_of=as_of))
    if quality.min_window_coverage is not None:
        # A calendar window's length depends on where it ends: measure it back from as_of.
        add(_window_coverage(frame, timestamp=data.timestamp, window=window or as_of - data.window.before(as_of),
                             as_of=as_of,
                             minimum=quality.min_window_coverage))
    report.rules.extend(_range_rules(frame, quality=quality))
    if quality.label_balance is not None and rows:
        share = round(float(frame[label].mean()), 4)
        balance = quality.label_balance
        ok = balance.min_positive_share <= share <= balance.max_positive_share
        expected = f"in [{balance.min_positive_share}, {balance.max_positive_share}]"
        add(RuleResult("label_balance", ok, share, expected, label))
    return report


def _missing_rules(frame: pd.DataFrame, *, quality: Quality, features: list[str]) -> list[RuleResult]:
    """Each feature's share of missing values, and each ``max_missing`` column the frame lacks."""
    results = []
    if len(frame):
        for column, share in frame[features].isna().mean().items():
            name = str(column)
            limit = quality.max_missing.get(name, quality.max_missing_fraction)
            results.append(
                RuleResult("max_missing_fraction", bool(share <= limit), round(float(share), 4), f"<= {limit}", name)
            )
    for column in quality.max_missing:
        if column not in frame.columns:
            results.append(RuleResult("max_missing_fraction", False, "column absent", "a column of the frame", column))
    return results


def _staleness_rule(frame: pd.DataFrame, *, timestamp: str, max_staleness: timedelta, as_of: datetime) -> RuleResult:
    newest = frame[timestamp].max() if len(frame) else None
    age = as_of - newest.to_pydatetime() if newest is not None else None
    return RuleResult(
        "max_staleness",
        age is not None and age <= max_staleness,
        str(age) if age is not None else "no rows",
        f"newest row at most {max_staleness} before {as_of.isoformat()}",
    )


def _range_rules(frame: pd.DataFrame, *, quality: Quality) -> list[RuleResult]:
    """Each ``ranges`` column's observed [min, max] within its bounds (an all-missing column passes)."""
    results = []
    for column, bound in quality.ranges.items():
        if column not in frame.columns:
            results.append(RuleResult("range", False, "column absent", "a column of the frame", column))
            continue
        values = frame[column].dropna()
        low: float | None = None
        high: float | None = None
        ok = True
        if len(values):
            low, high = float(values.min()), float(values.max())
            ok = (bound.min is None or low >= bound.min) and (bound.max is None or high <= bound.max)
        results.append(RuleResult("range", bool(ok), f"[{low}, {high}]", f"within [{bound.min}, {bound.max}]", column))
    return results


def _window_coverage(frame: pd.DataFrame, *, timestamp: str, window: timedelta, as_of: datetime,
                     minimum: float) -> RuleResult:
    """How much of ``[as_of - window, as_of)`` the rows span, from the oldest one on."""
    oldest = frame[timestamp].min() if len(frame) else None
    if oldest is None:
        observed, share = "no rows", 0.0
    else:
        start = oldest.to_pydatetime()
        share = min(1.0, max(0.0, (as_of - start) / window))
        observed = f"{share:.2f} (oldest row {start.isoformat()})"
    return RuleResult("min_window_coverage", share >= minimum, observed,
                      f">= {minimum} of the {format_duration(window)} window before {as_of.isoformat()}")
