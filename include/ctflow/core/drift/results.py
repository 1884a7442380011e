"""What drift reports: the per-column verdict, the dataset verdict, and the input error."""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from ctflow.core.drift import sufficiency
from ctflow.exceptions import CtflowError

Kind = Literal["numeric", "categorical"]

#: The per-column methods (see :mod:`ctflow.core.drift`).
METHODS: tuple[str, ...] = ("ks", "chi2", "z", "psi", "wasserstein", "jensenshannon")
P_VALUE_METHODS = frozenset({"ks", "chi2", "z"})
NUMERIC_ONLY_METHODS = frozenset({"ks", "wasserstein"})
DEFAULT_THRESHOLDS: dict[str, float] = {
    "ks": 0.05,
    "chi2": 0.05,
    "z": 0.05,
    "psi": 0.1,
    "wasserstein": 0.1,
    "jensenshannon": 0.1,
}


class DriftInputError(CtflowError, ValueError):
    """Input that drift cannot be computed on: unknown column, bad dtype or method."""


def suggest(name: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest known name, or ''."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


def json_float(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


@dataclass(frozen=True)
class ColumnDrift:
    """Drift verdict for one column.

    ``statistic`` is the test statistic or distance; ``p_value`` is set for the
    p-value methods only. ``score`` is what is compared to ``threshold``.
    """

    column: str
    method: str
    statistic: float
    p_value: float | None
    threshold: float
    drifted: bool
    kind: Kind
    n_reference: int = 0
    n_current: int = 0
    missing_reference: int = 0
    missing_current: int = 0
    #: The threshold comes from the reference's empirical null (:mod:`.calibration`), not the default.
    calibrated: bool = False
    #: The column's weight in the drifted share (its importance to the model), None when unweighted.
    weight: float | None = None

    @property
    def score(self) -> float:
        """The value compared to ``threshold``: the p-value or the distance (the statistic when calibrated)."""
        if self.method in P_VALUE_METHODS and not self.calibrated:
            return math.nan if self.p_value is None else self.p_value
        return self.statistic

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN becomes None)."""
        return {
            "column": self.column,
            "method": self.method,
            "kind": self.kind,
            "statistic": json_float(self.statistic),
            "p_value": json_float(self.p_value),
            "threshold": float(self.threshold),
            "drifted": bool(self.drifted),
            "n_reference": int(self.n_reference),
            "n_current": int(self.n_current),
            "missing_reference": int(self.missing_reference),
            "missing_current": int(self.missing_current),
            "calibrated": bool(self.calibrated),
            "weight": json_float(self.weight),
        }


@dataclass(frozen=True)
class DriftResult:
    """Per-column verdicts and the dataset verdict.

    ``drifted`` is ``drifted_share >= max_drifted_share`` (Evidently's
    ``drift_share`` rule); the share counts only columns that could be evaluated.
    ``insufficient`` says why the window cannot be judged (then ``drifted`` is False
    and :attr:`state` is ``insufficient_data``), None when it can.
    """

    columns: list[ColumnDrift]
    drifted_share: float
    drifted: bool
    max_drifted_share: float = 0.5
    insufficient: str | None = None

    @property
    def state(self) -> str:
        """``drift``, ``no_drift`` or ``insufficient_data``."""
        return sufficiency.state(drifted=self.drifted, insufficient=self.insufficient)

    @property
    def drifted_columns(self) -> list[str]:
        return [c.column for c in self.columns if c.drifted]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN becomes None)."""
        return {
            "columns": [c.to_dict() for c in self.columns],
            "drifted_share": float(self.drifted_share),
            "drifted": bool(self.drifted),
            "max_drifted_share": float(self.max_drifted_share),
            "state": self.state,
            "insufficient": self.insufficient,
        }

