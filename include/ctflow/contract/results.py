"""What the CT steps return, typed; their XCom stays the plain JSON dict it always was.

The approval form, the ctflow view and downstream tasks read these dicts by key, so
``to_xcom()`` gives back exactly the keys the core step returned: the fields named here, plus
whatever else the step put in (``extra``, e.g. the frame's ``sha256``). ``from_xcom()`` is its
inverse. Nothing heavy is imported: the factory, the CLI and the UI may all use these.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, TypeVar

R = TypeVar("R", bound="StepResult")


@dataclass(frozen=True)
class StepResult:
    """Base of the typed results: named fields, plus ``extra`` for keys this class does not name."""

    extra: dict[str, Any] = field(default_factory=dict, kw_only=True)
    #: True for :class:`Skipped` only: the step had nothing to do, and says why.
    skipped: ClassVar[bool] = False

    def to_xcom(self) -> dict[str, Any]:
        named = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        return {**named, **self.extra}

    @classmethod
    def from_xcom(cls: type[R], data: dict[str, Any]) -> R:
        names = {f.name for f in fields(cls)} - {"extra"}
        return cls(**{k: v for k, v in data.items() if k in names},
                   extra={k: v for k, v in data.items() if k not in names})


@dataclass(frozen=True)
class Raw(StepResult):
    """A result without a type of its own (monitoring steps, a deployment's extra steps)."""

    @classmethod
    def from_xcom(cls, data: dict[str, Any]) -> Raw:
        return cls(extra=dict(data or {}))


@dataclass(frozen=True)
class Skipped(StepResult):
    """``{"skipped": true, "reason": ...}``: nothing to do (a dry run, a gate that refused); the task skips."""

    reason: str
    skipped: ClassVar[bool] = True

    def to_xcom(self) -> dict[str, Any]:
        return {"skipped": True, "reason": self.reason, **self.extra}

    @classmethod
    def from_xcom(cls, data: dict[str, Any]) -> Skipped:
        return cls(reason=data["reason"], extra={k: v for k, v in data.items() if k not in ("skipped", "reason")})


@dataclass(frozen=True)
class FeaturesFingerprint(StepResult):
    """``fetch_features``: the training frame's window and fingerprint (``extra``: start, end, sha256)."""

    rows: int
    window_start: str
    window_end: str
    as_of: str
    feature_service: str
    features: list[str]
    dropped_unlabelled: int = 0
    #: Labelled rows of the window left out because their label was not known at as_of.
    dropped_label_pending: int = 0
    positive_share: float | None = None
    seconds: float | None = None
    path: str | None = None


@dataclass(frozen=True)
class QualityResult(StepResult):
    """``check_quality`` that passed (a failure raises; its report is in the run folder)."""

    passed: bool
    rules: int


@dataclass(frozen=True)
class TrainResult(StepResult):
    """``train``: the candidate's MLflow run, logged model and holdout metrics."""

    run_id: str
    experiment_id: str
    model_uri: str
    metrics: dict[str, float]
    train_metrics: dict[str, float] = field(default_factory=dict)
    slices: dict[str, Any] = field(default_factory=dict)
    train_rows: int = 0
    holdout_rows: int = 0
    holdout_start: str | None = None
    features: list[str] = field(default_factory=list)
    fit_seconds: float | None = None
    decision_threshold: float | None = None


@dataclass(frozen=True)
class GateResult(StepResult):
    """``evaluate``: the gate's decision with the candidate's and the champion's metrics."""

    decision: str
    reason: str
    metric: str
    candidate: dict[str, float]
    promote: bool
    passed_floors: bool
    champion: dict[str, float] | None = None
    champion_version: str | None = None
    checks: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class RegisteredVersion(StepResult):
    """``register``: the model version this run registered (or found, on a retry)."""

    name: str
    version: str
    run_id: str | None
    source: str
    tags: dict[str, str] = field(default_factory=dict)
    aliases: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class AliasMove(StepResult):
    """``promote``, ``rollback`` and the alias history: one alias move (``moved=True``), or a refused/no-op
    request (``moved=False``, ``reason`` says why).

    ``version`` is None when the alias was removed; ``previous`` is None when it had no holder;
    ``at`` is an ISO 8601 UTC timestamp. ``action`` is ``promote``, ``rollback``, ``retire`` or
    ``external`` (a change made outside ctflow, recorded when ctflow next touched the alias).
    ``run_key`` identifies the requesting run, if it gave one. ``reason`` is why ctflow moved the
    alias (the gate's reason for a promotion); ``request_reason`` is what the person or run that
    asked for it said (a trigger's ``conf.reason``, e.g. why a promotion was forced), kept beside
    it, never instead of it. None when nobody gave one.
    """

    alias: str
    version: str | None
    previous: str | None
    at: str
    actor: str
    reason: str
    moved: bool
    action: str = "promote"
    run_key: str | None = None
    request_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serializable data (the XCom, a history event's body)."""
        return self.to_xcom()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AliasMove:
        """The inverse of :meth:`to_dict`; unknown keys (such as a history event's ``state``) are ignored."""
        names = {f.name for f in fields(cls)} - {"extra"}
        return cls(**{k: v for k, v in data.items() if k in names})


def parse(result_type: type[StepResult], data: dict[str, Any] | None) -> StepResult:
    """A step's returned dict as ``result_type``, or :class:`Skipped` when it skipped."""
    data = data or {}
    if data.get("skipped"):
        return Skipped.from_xcom(data)
    return result_type.from_xcom(data)
