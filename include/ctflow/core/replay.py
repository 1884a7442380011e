"""Replay retraining policies over history, step by step, with the core code of the DAGs.

Three policies are compared on the same real rows:

``never``
    the model trained at the first step, used for every step after it;
``ctflow``
    the spec's own policy: retrain on the spec's ``schedule.train`` and on monitoring breaches
    (``schedule.retrain_on``), gate every candidate with :func:`ctflow.core.gate.decide`
    (absolute thresholds, per slice too, then the champion scored on the candidate's holdout)
    and deploy it only when it passes;
``every``
    retrain at every step and always deploy.

At each step ``t_k = start + k * every`` each policy may train, then its current model is
scored on the rows of ``[t_k, t_k + every)`` with the spec's ``evaluation.metric``.

How the replay maps the DAGs' behaviour onto steps (documented approximations):

* **One feature frame.** The labelled entity rows of ``[start - data.window, end)`` are joined
  with the spec's Feast feature service once (:func:`load_frame`); every training window,
  holdout and scored step is a slice of it by entity timestamp. Feast's join is per entity
  row, as of that row's timestamp, so a slice holds exactly the rows and values that
  ``steps.fetch_features`` would build for that window, in the same order.
* **Training** is ``steps.train`` without MLflow: the window ``[t_k - data.window, t_k)``,
  the newest ``data.holdout`` of it held out, ``training.infer_features`` /
  ``build_pipeline`` / ``split_by_time``, ``evaluation.compute_metrics`` and
  ``slice_metrics`` on the holdout. Each ``t_k`` is trained at most once and shared by every
  policy that trains then (:class:`ModelBank`): the three policies' first models are one fit.
* **Schedule.** Cron ticks of ``schedule.train`` (in ``schedule.timezone``) are enumerated
  exactly; a tick in ``(t_{k-1}, t_k]`` makes step ``k`` retrain, as of ``t_k``. The replay
  cannot train more often than its step: several ticks in one step are one training.
* **Monitoring** runs at each step on the previous step's rows, against the champion:
  data drift of ``monitoring.drift.columns`` (default: the model's features) against the
  champion's reference profile (its training rows, as ``steps.train`` stores it), breach when
  the drifted share reaches ``max_drifted_share``; and ``monitoring.performance`` on the rows
  whose labels have arrived by ``t_k`` (``[t_{k-1}, t_k)`` shifted back by
  ``monitoring.ground_truth_delay``). The monitoring DAG checks ``monitoring.window`` (daily)
  windows; the replay checks one window per step, and a breach retrains as of the next step.
* **Data quality** (``quality``) is checked before each ctflow training, as in the DAG; a
  window that fails is not trained on. ``never`` and ``every`` do not check.
* **Registry.** Promotion is ``direct`` and ``auto``; shadow/canary strategies and manual
  approval are replayed as direct, auto promotion (noted in the result).
* Until the ctflow policy has a champion (its first candidates may fail the data-quality rules
  or the floors) its steps are not scored. It tries again at every step when
  ``schedule.retrain_on`` has ``no_champion``, as the monitoring DAG asks for a training when it
  finds no champion; otherwise only at the cron's ticks.
* ``schedule.retrain_cooldown``: a drift or performance breach at a step less than that after
  the last fit (of any trigger) does not retrain (``held_back``), as the monitoring DAG
  declines to emit the breach event then.

MLflow is not used here; the command line can log one summary run (``--mlflow``).
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ctflow.exceptions import CtflowError

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

    from ctflow.core.drift import ReferenceProfile
    from ctflow.core.training import FeatureSet
    from ctflow.spec import PipelineSpec
    from ctflow.spec.catalog import TaskType

log = logging.getLogger(__name__)

NEVER, CTFLOW, EVERY = "never", "ctflow", "every"
POLICIES = (NEVER, CTFLOW, EVERY)
DESCRIPTIONS = {
    NEVER: "trained once at the start, never retrained",
    CTFLOW: "the spec's policy: scheduled and breach-triggered retraining, gated promotion",
    EVERY: "retrained at every step, always deployed",
}
#: Spec sections a what-if ctflow policy may change: none of them changes a trained model.
WHAT_IF_SECTIONS = ("schedule", "monitoring", "evaluation", "registry", "quality")
#: The goal the replay reports on: ctflow's mean metric within this share of ``every``'s ...
GOAL_METRIC_GAP = 0.01
#: ... with at most this share of its trainings.
GOAL_TRAINING_SHARE = 0.25

_CRON_PRESETS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@quarterly": "0 0 1 */3 *",
    "@yearly": "0 0 1 1 *",
}


class ReplayError(CtflowError, ValueError):
    """A replay that cannot run as asked (bad range, step, override or data)."""


# --------------------------------------------------------------------------- time


@dataclass(frozen=True)
class Step:
    """Step ``index``: the policies act as of ``start`` and are scored on ``[start, end)``."""

    index: int
    start: datetime
    end: datetime


def make_steps(start: datetime, end: datetime, every: timedelta) -> list[Step]:
    """``[start, end)`` cut every ``every``; the last step may be shorter."""
    start, end = as_utc(start), as_utc(end)
    if every <= timedelta(0):
        raise ReplayError(f"the step must be positive, got {every}")
    if end <= start:
        raise ReplayError(f"end {end.date()} must be after start {start.date()}")
    out: list[Step] = []
    moment = start
    while moment < end:
        out.append(Step(len(out), moment, min(moment + every, end)))
        moment += every
    return out


def as_utc(moment: datetime | date | str) -> datetime:
    """A timezone-aware UTC datetime; dates and naive values are taken as UTC."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    if not isinstance(moment, datetime):
        moment = datetime(moment.year, moment.month, moment.day)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def cron_ticks(cron: str | None, start: datetime, end: datetime, tz: str = "UTC") -> list[datetime]:
    """Ticks of ``cron`` (or an Airflow preset) in ``(start, end]``, in UTC; none for ``None``."""
    if cron is None:
        return []
    from zoneinfo import ZoneInfo

    from croniter import croniter

    expression = _CRON_PRESETS.get(cron, cron)
    it = croniter(expression, as_utc(start).astimezone(ZoneInfo(tz)))
    ticks: list[datetime] = []
    while True:
        tick = as_utc(it.get_next(datetime))
        if tick > end:
            return ticks
        ticks.append(tick)


# --------------------------------------------------------------------------- the frame


@dataclass
class ReplayFrame:
    """The labelled, feature-joined rows of the whole replay and the feature candidates."""

    frame: pd.DataFrame
    features: list[str]
    timestamp: str
    unlabelled: int = 0
    seconds: float = 0.0

    def between(self, start: datetime, end: datetime) -> pd.DataFrame:
        """Rows with ``start <= timestamp < end``, in frame (file) order: what a Feast call for
        that window alone would return (see :func:`load_frame`)."""
        ts = self.frame[self.timestamp]
        return self.frame.loc[(ts >= pd.Timestamp(start)) & (ts < pd.Timestamp(end))]


def load_frame(spec: PipelineSpec, start: datetime, end: datetime, *, feature_repo: Path | None = None) -> ReplayFrame:
    """Rows of ``[start - data.window, end)`` with labels and point-in-time features: one Feast call.

    The same functions as ``steps.fetch_features`` (``features.load_entity_rows``,
    ``steps.derive_label``, ``features.get_historical_features``) over the whole range.
    """
    from ctflow import settings
    from ctflow.core import features as feast
    from ctflow.core.steps import derive_label, resolve_path

    repo = Path(feature_repo or settings.feature_repo())
    started = time.perf_counter()
    rows = feast.load_entity_rows(resolve_path(spec.data.entities), timestamp=spec.data.timestamp,
                                  start=as_utc(start) - spec.data.window, end=as_utc(end))
    rows, unlabelled = derive_label(rows, spec)
    frame = feast.get_historical_features(repo, spec.data.features, rows, timestamp=spec.data.timestamp)
    service = feast.feature_names(repo, spec.data.features)
    names = [*spec.data.columns, *[f for f in service if f not in spec.data.columns]]
    seconds = time.perf_counter() - started
    log.info("replay frame: %s labelled rows of [%s, %s) joined with %s in %.1f s", len(frame),
             (as_utc(start) - spec.data.window).date(), as_utc(end).date(), spec.data.features, seconds)
    return ReplayFrame(frame, names, spec.data.timestamp, unlabelled, seconds)


# --------------------------------------------------------------------------- models


@dataclass
class Candidate:
    """A model trained as of ``as_of`` exactly as ``steps.train`` trains it (no MLflow)."""

    id: str
    as_of: datetime
    pipeline: Pipeline | None
    features: FeatureSet | None
    metrics: dict[str, float]
    train_rows: pd.DataFrame
    holdout_rows: pd.DataFrame
    fit_seconds: float = 0.0
    error: str | None = None


class ModelBank:
    """Trains each ``as_of`` once and caches what the policies ask of the models.

    Scores of a model on a step, its metrics on another candidate's holdout, its reference
    profile and the data-quality report of a window are each computed once.
    """

    def __init__(self, spec: PipelineSpec, data: ReplayFrame):
        self.spec = spec
        self.data = data
        self.fits = 0
        self.fit_seconds = 0.0
        self.fit_cpu_seconds = 0.0
        self._models: dict[datetime, Candidate] = {}
        self._scores: dict[tuple[str, Any], np.ndarray] = {}
        self._profiles: dict[tuple[str, tuple[str, ...]], ReferenceProfile] = {}
        self._slices: dict[tuple[str, tuple[str, ...]], dict[str, Any]] = {}
        self._quality: dict[tuple[datetime, Any], Any] = {}

    def window(self, as_of: datetime) -> pd.DataFrame:
        return self.data.between(as_of - self.spec.data.window, as_of)

    def train(self, as_of: datetime) -> Candidate:
        if as_of in self._models:
            return self._models[as_of]
        from ctflow.core.evaluation import compute_metrics
        from ctflow.core.steps import LABEL
        from ctflow.core.training import build_pipeline, infer_features, predict_scores, split_by_time

        spec = self.spec
        frame = self.window(as_of)
        holdout_start = as_of - spec.data.holdout
        train_rows, holdout_rows = split_by_time(frame, timestamp=spec.data.timestamp, holdout_start=holdout_start)
        key = f"{as_of:%Y-%m-%d}" if as_of.time() == datetime.min.time() else as_of.isoformat()
        if train_rows.empty or holdout_rows.empty:
            candidate = Candidate(key, as_of, None, None, {}, train_rows, holdout_rows,
                                  error=f"time split at {holdout_start} leaves {len(train_rows)} training and "
                                        f"{len(holdout_rows)} holdout rows")
            self._models[as_of] = candidate
            return candidate
        features = infer_features(frame, self.data.features, spec.model)
        pipeline = build_pipeline(spec.model, features)
        started, cpu = time.perf_counter(), time.process_time()
        pipeline.fit(train_rows[features.all], train_rows[LABEL])
        seconds = time.perf_counter() - started
        self.fit_cpu_seconds += time.process_time() - cpu
        scores = predict_scores(pipeline, holdout_rows[features.all], spec.model.task)
        y_holdout = holdout_rows[LABEL].to_numpy()
        metrics = compute_metrics(spec.model.task, y_holdout, scores, threshold=spec.model.threshold)
        candidate = Candidate(key, as_of, pipeline, features, metrics, train_rows, holdout_rows, seconds)
        self._scores[(key, ("holdout", key))] = scores
        self._models[as_of] = candidate
        self.fits += 1
        self.fit_seconds += seconds
        log.info("trained as of %s on %s rows in %.1f s; holdout %s=%s", key, len(train_rows), seconds,
                 spec.evaluation.metric, _fmt(metrics.get(spec.evaluation.metric)))
        return candidate

    def scores(self, model: Candidate, rows: pd.DataFrame, key: Any) -> np.ndarray:
        """``model``'s scores on ``rows`` (cached under ``key``, which names those rows)."""
        from ctflow.core.training import predict_scores

        cache_key = (model.id, key)
        assert model.pipeline is not None and model.features is not None, "a candidate that failed to train"
        if cache_key not in self._scores:
            self._scores[cache_key] = (
                predict_scores(model.pipeline, rows[model.features.all], self.spec.model.task)
                if len(rows) else np.zeros(0)
            )
        return self._scores[cache_key]

    def metrics(self, model: Candidate, rows: pd.DataFrame, key: Any) -> dict[str, float]:
        from ctflow.core.evaluation import compute_metrics
        from ctflow.core.steps import LABEL

        if not len(rows):
            return {}
        return compute_metrics(self.spec.model.task, rows[LABEL].to_numpy(), self.scores(model, rows, key),
                               threshold=self.spec.model.threshold)

    def on_holdout(self, model: Candidate, candidate: Candidate) -> dict[str, float]:
        """``model`` scored on ``candidate``'s holdout: what ``steps.evaluate`` gives the gate."""
        return self.metrics(model, candidate.holdout_rows, ("holdout", candidate.id))

    def slices(self, candidate: Candidate, columns: Sequence[str]) -> dict[str, Any]:
        """Per-slice holdout metrics of ``candidate`` for these slice columns (a what-if may change them)."""
        from ctflow.core.evaluation import slice_metrics
        from ctflow.core.steps import LABEL

        key = (candidate.id, tuple(columns))
        if key not in self._slices:
            rows = candidate.holdout_rows
            scores = self.scores(candidate, rows, ("holdout", candidate.id))
            self._slices[key] = slice_metrics(self.spec.model.task, rows, rows[LABEL].to_numpy(), scores, list(columns))
        return self._slices[key]

    def profile(self, model: Candidate, columns: Sequence[str]) -> ReferenceProfile:
        """The model's reference profile: its training rows, as ``steps.train`` stores it."""
        from ctflow.core.drift import ReferenceProfile

        key = (model.id, tuple(columns))
        if key not in self._profiles:
            self._profiles[key] = ReferenceProfile.from_frame(model.train_rows, columns=list(columns))
        return self._profiles[key]

    def quality(self, spec: PipelineSpec, as_of: datetime):
        """The data-quality report of the training window as of ``as_of`` under ``spec.quality``."""
        from ctflow.core.quality import check_quality
        from ctflow.core.steps import LABEL

        key = (as_of, spec.quality.model_dump_json())
        if key not in self._quality:
            self._quality[key] = check_quality(self.window(as_of), quality=spec.quality, data=spec.data,
                                               features=self.data.features, label=LABEL, as_of=as_of)
        return self._quality[key]


# --------------------------------------------------------------------------- results


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
        }


@dataclass
class PolicyResult:
    policy: str
    description: str
    steps: list[StepRecord]
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def values(self) -> list[float]:
        return [s.metric for s in self.steps if s.metric is not None]

    @property
    def mean_metric(self) -> float | None:
        return float(np.mean(self.values)) if self.values else None

    @property
    def worst_metric(self) -> float | None:
        return float(np.min(self.values)) if self.values else None

    @property
    def trainings(self) -> int:
        return sum(s.trained for s in self.steps)

    @property
    def promotions(self) -> int:
        return sum(s.promoted for s in self.steps)

    def paired(self, reference: PolicyResult) -> tuple[float, float, int] | None:
        """Mean metric of this policy and of ``reference`` over the steps both scored, and how many.

        A policy without a model at some steps (ctflow before its first promotion) is compared
        on the same steps only, not on an easier or harder subset of the weeks.
        """
        pairs = [(a.metric, b.metric) for a, b in zip(self.steps, reference.steps)
                 if a.metric is not None and b.metric is not None]
        if not pairs:
            return None
        mine, theirs = zip(*pairs)
        return float(np.mean(mine)), float(np.mean(theirs)), len(pairs)

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
        }
        paired = self.paired(reference) if reference is not None else None
        if paired is not None and paired[1]:
            # relative difference of the means over the steps both policies scored
            out["mean_metric_vs_every"] = _round(paired[0] / paired[1] - 1, 6)
            out["paired_steps"] = paired[2]
            out["trainings_vs_every"] = (_round(self.trainings / reference.trainings, 4)
                                         if reference is not None and reference.trainings else None)
        if self.overrides:
            out["overrides"] = self.overrides
        if steps:
            out["weekly"] = [s.to_dict() for s in self.steps]
        return out


@dataclass
class ReplayResult:
    pipeline: str
    task: TaskType
    metric: str
    start: datetime
    end: datetime
    every: timedelta
    policies: list[PolicyResult]
    fits: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def policy(self, name: str) -> PolicyResult:
        return next(p for p in self.policies if p.policy == name)

    def records(self, *, steps: bool = True) -> list[dict[str, Any]]:
        """One JSON-ready object per policy (what ``ctflow replay --json`` prints)."""
        every = self.policy(EVERY)
        return [
            {**p.to_dict(reference=every, steps=steps), "metric": self.metric, "start": self.start.isoformat(),
             "end": self.end.isoformat(), "every_seconds": self.every.total_seconds()}
            for p in self.policies
        ]

    def goal(self, policy: str = CTFLOW) -> dict[str, Any]:
        """Is ``policy`` within 1 % of ``every``'s mean metric with at most a quarter of its trainings?"""
        mine, every = self.policy(policy), self.policy(EVERY)
        paired = mine.paired(every)
        if paired is None or not paired[1]:
            return {"policy": policy, "met": False, "reason": "no metric"}
        from ctflow.spec.catalog import higher_is_better

        gap = paired[0] / paired[1] - 1
        if not higher_is_better(self.task, self.metric):
            gap = -gap
        share = mine.trainings / every.trainings if every.trainings else math.inf
        close, cheap = gap >= -GOAL_METRIC_GAP, share <= GOAL_TRAINING_SHARE
        return {"policy": policy, "mean_metric_gap": round(gap, 6), "paired_steps": paired[2],
                "trainings_share": round(share, 4), "within_metric_gap": close, "within_training_share": cheap,
                "met": close and cheap}

    def table(self) -> str:
        """A markdown table of the policies, then the goal for each ctflow policy."""
        every = self.policy(EVERY)
        m = self.metric
        lines = [
            f"| policy | mean {m} | worst {m} | trainings | promotions | steps scored | "
            "mean vs every (same steps) | trainings vs every |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for p in self.policies:
            d = p.to_dict(reference=every, steps=False)
            gap = d.get("mean_metric_vs_every")
            share = d.get("trainings_vs_every")
            lines.append(
                f"| {p.policy} | {_fmt(p.mean_metric)} | {_fmt(p.worst_metric)} | {p.trainings} | {p.promotions} | "
                f"{len(p.values)}/{len(p.steps)} | {'' if gap is None else f'{gap:+.2%}'} | "
                f"{'' if share is None else f'{share:.0%}'} |"
            )
        lines.append("")
        for p in self.policies:
            if p.policy.startswith(CTFLOW):
                g = self.goal(p.policy)
                if "mean_metric_gap" not in g:
                    lines.append(f"goal for {p.policy}: NOT MET ({p.policy} scored no step: no candidate passed "
                                 "the gate)")
                    continue
                lines.append(
                    f"goal for {p.policy} (mean {m} within {GOAL_METRIC_GAP:.0%} of every, at most "
                    f"{GOAL_TRAINING_SHARE:.0%} of its trainings): {'MET' if g['met'] else 'NOT MET'} "
                    f"(gap {g['mean_metric_gap']:+.2%} over the {g['paired_steps']} steps both scored, "
                    f"trainings {g['trainings_share']:.0%})"
                )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "pipeline": self.pipeline, "task": self.task, "metric": self.metric, "start": self.start.isoformat(),
            "end": self.end.isoformat(), "every_seconds": self.every.total_seconds(), "fits": self.fits,
            "seconds": self.seconds, "notes": self.notes, "policies": self.records(),
        }


# --------------------------------------------------------------------------- policies


def _score(bank: ModelBank, model: Candidate | None, step: Step, rows: pd.DataFrame) -> float | None:
    if model is None:
        return None
    return bank.metrics(model, rows, ("step", step.index)).get(bank.spec.evaluation.metric)


def _run_fixed(bank: ModelBank, steps: list[Step], rows: list[pd.DataFrame], *, retrain: bool, name: str) -> PolicyResult:
    """``never`` (retrain=False) and ``every`` (retrain=True): no gate, always deploy."""
    records, model = [], None
    for step, step_rows in zip(steps, rows):
        trained = False
        if model is None or retrain:
            candidate = bank.train(step.start)
            trained = True
            if candidate.pipeline is not None:
                model = candidate
        record = StepRecord(step.index, step.start, step.end, len(step_rows), _score(bank, model, step, step_rows),
                            model.id if model else None, trained=trained, promoted=trained and model is not None,
                            triggers=["initial" if step.index == 0 else "every_step"] if trained else [])
        records.append(record)
    return PolicyResult(name, DESCRIPTIONS[NEVER if not retrain else EVERY], records)


def _run_ctflow(bank: ModelBank, spec: PipelineSpec, steps: list[Step], rows: list[pd.DataFrame], *,
                name: str = CTFLOW, overrides: Mapping[str, Any] | None = None) -> PolicyResult:
    from ctflow.core.drift import dataset_drift_from_profile
    from ctflow.core.gate import decide
    from ctflow.core.monitoring import cooldown_reason

    metric = spec.evaluation.metric
    monitoring = spec.monitoring
    champion: Candidate | None = None
    last_trained: datetime | None = None
    records: list[StepRecord] = []
    for step, step_rows in zip(steps, rows):
        record = StepRecord(step.index, step.start, step.end, len(step_rows), None, None)
        triggers: list[str] = []
        if step.index == 0:
            triggers.append("initial")
        else:
            previous = steps[step.index - 1]
            if cron_ticks(spec.schedule.train, previous.start, step.start, spec.schedule.timezone):
                triggers.append("schedule")
            if champion is None:
                if "no_champion" in spec.schedule.retrain_on:
                    triggers.append("no_champion")
            else:
                assert champion.features is not None  # only trained candidates are promoted
                columns = monitoring.drift.columns or champion.features.all
                drift = dataset_drift_from_profile(
                    bank.profile(champion, columns), rows[previous.index], columns=columns,
                    method=monitoring.drift.method, threshold=monitoring.drift.threshold,
                    max_drifted_share=monitoring.drift.max_drifted_share,
                ) if len(rows[previous.index]) else None
                if drift is not None:
                    record.drift_share = drift.drifted_share
                    record.drifted_columns = drift.drifted_columns
                    if drift.drifted and "drift" in spec.schedule.retrain_on:
                        triggers.append("drift")
                if monitoring.performance is not None:
                    delay = monitoring.ground_truth_delay
                    labelled = bank.data.between(previous.start - delay, step.start - delay)
                    value = bank.metrics(champion, labelled, ("labelled", previous.index, delay)).get(
                        monitoring.performance.metric)
                    record.monitored_metric = value
                    low, high = monitoring.performance.min, monitoring.performance.max
                    breach = value is not None and ((low is not None and value < low) or
                                                    (high is not None and value > high))
                    if breach and "performance" in spec.schedule.retrain_on:
                        triggers.append("performance")
        breaches = [t for t in triggers if t in ("drift", "performance")]
        if breaches and cooldown_reason(spec, step.start, last_trained):
            record.held_back = breaches  # alerted, not retrained, as monitoring.actions decides
            triggers = [t for t in triggers if t not in breaches]
        record.triggers = triggers
        if triggers:
            report = bank.quality(spec, step.start)
            if not report.passed:
                record.decision = "quality_failed"
                record.reason = "; ".join(f"{r.rule}{f'[{r.column}]' if r.column else ''}={r.observed}"
                                          for r in report.failures)[:500]
            else:
                candidate = bank.train(step.start)
                record.trained = True
                last_trained = step.start
                if candidate.pipeline is None:
                    record.decision, record.reason = "training_failed", candidate.error
                else:
                    champion_metrics = bank.on_holdout(champion, candidate) if champion is not None else None
                    decision = decide(task=spec.model.task, evaluation=spec.evaluation, candidate=candidate.metrics,
                                      champion=champion_metrics, champion_version=champion.id if champion else None,
                                      slices=bank.slices(candidate, spec.evaluation.slices))
                    record.decision, record.reason = decision.decision, decision.reason
                    record.candidate_metric = candidate.metrics.get(metric)
                    record.champion_metric = champion_metrics.get(metric) if champion_metrics else None
                    if decision.promote:
                        champion = candidate
                        record.promoted = True
        record.model = champion.id if champion else None
        record.metric = _score(bank, champion, step, step_rows)
        records.append(record)
        log.info("%s step %s (%s): %s%s", name, step.index, step.start.date(),
                 f"trained ({', '.join(triggers)}) -> {record.decision}" if record.trained else
                 (f"not trained ({record.decision})" if triggers else "kept"),
                 f"; {metric}={_fmt(record.metric)}")
    return PolicyResult(name, DESCRIPTIONS[CTFLOW], records, dict(overrides or {}))


# --------------------------------------------------------------------------- the replay


def replay(
    spec: PipelineSpec,
    data: ReplayFrame,
    *,
    start: datetime | date | str,
    end: datetime | date | str,
    every: timedelta,
    what_if: Mapping[str, tuple[PipelineSpec, Mapping[str, Any]]] | None = None,
    threads: int | None = 1,
) -> ReplayResult:
    """Replay ``never``, ``ctflow`` and ``every`` (plus what-if ctflow policies) over ``[start, end)``.

    :param data: from :func:`load_frame`; must cover ``[start - data.window, end)``.
    :param what_if: extra ctflow policies, name -> (spec variant, the overrides that made it,
        see :func:`override_spec`). A variant may only differ in :data:`WHAT_IF_SECTIONS`, so
        that its candidates are the same models as the others'.
    :param threads: OpenMP/BLAS threads for fitting and scoring. One by default: on a shared
        machine histogram gradient boosting spends most of a second thread spin-waiting.
    """
    started, cpu = time.perf_counter(), time.process_time()
    start, end = as_utc(start), as_utc(end)
    steps = make_steps(start, end, every)
    for variant_name, (variant, _) in (what_if or {}).items():
        _check_variant(spec, variant, variant_name)
    bank = ModelBank(spec, data)
    rows = [data.between(s.start, s.end) for s in steps]
    notes = []
    if spec.registry.strategy != "direct" or spec.registry.approval != "auto":
        notes.append(f"registry strategy {spec.registry.strategy!r} with {spec.registry.approval!r} approval is "
                     "replayed as direct, automatic promotion")
    import importlib
    from contextlib import nullcontext

    from threadpoolctl import threadpool_limits

    import ctflow.core.evaluation
    import ctflow.core.training  # noqa: F401

    # threadpoolctl limits only the libraries already loaded: load the estimator's OpenMP first.
    importlib.import_module(spec.model.estimator.rsplit(".", 1)[0])
    with threadpool_limits(limits=threads) if threads else nullcontext():
        policies = [
            _run_fixed(bank, steps, rows, retrain=False, name=NEVER),
            _run_ctflow(bank, spec, steps, rows),
            *[_run_ctflow(bank, variant, steps, rows, name=variant_name, overrides=overrides)
              for variant_name, (variant, overrides) in (what_if or {}).items()],
            _run_fixed(bank, steps, rows, retrain=True, name=EVERY),
        ]
    first = bank.train(steps[0].start).train_rows  # fitted already: every policy trains at step 0
    earliest = first[spec.data.timestamp].min() if len(first) else None
    if earliest is not None and earliest > pd.Timestamp(start - spec.data.window) + timedelta(days=1):
        notes.append(f"the first training window starts at {start - spec.data.window:%Y-%m-%d} but the data at "
                     f"{earliest:%Y-%m-%d}: the first model trains on {len(first)} rows only")
    return ReplayResult(
        pipeline=spec.pipeline, task=spec.model.task, metric=spec.evaluation.metric, start=start, end=end,
        every=every, policies=policies, fits=bank.fits, notes=notes,
        seconds={"frame": round(data.seconds, 1), "fit": round(bank.fit_seconds, 1),
                 "fit_cpu": round(bank.fit_cpu_seconds, 1), "replay": round(time.perf_counter() - started, 1),
                 "replay_cpu": round(time.process_time() - cpu, 1)},
    )


# --------------------------------------------------------------------------- spec variants


def override_spec(spec: PipelineSpec, overrides: Mapping[str, Any], *, name: str = "<override>") -> PipelineSpec:
    """``spec`` with dotted keys replaced (``{"schedule.train": "@monthly"}``), validated like a file.

    Raises :class:`ctflow.spec.SpecError` naming the key when the result is not a valid spec.
    """
    import yaml

    from ctflow.spec import parse_spec

    data = spec.model_dump(mode="json", exclude_unset=False)
    for dotted, value in overrides.items():
        parts = str(dotted).split(".")
        node = data
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {} if node.get(part) is None else node[part]
            node = node[part]
            if not isinstance(node, dict):
                raise ReplayError(f"cannot set {dotted!r}: {part!r} is not a section")
        node[parts[-1]] = value
    return parse_spec(yaml.safe_dump(data, sort_keys=False), name)


def _check_variant(spec: PipelineSpec, variant: PipelineSpec, name: str) -> None:
    base = spec.model_dump(mode="json")
    other = variant.model_dump(mode="json")
    changed = sorted(k for k in base if base[k] != other[k] and k not in WHAT_IF_SECTIONS)
    if changed:
        raise ReplayError(
            f"what-if {name!r} changes {', '.join(changed)}: a what-if may only change "
            f"{', '.join(WHAT_IF_SECTIONS)} (other changes make other models; replay another spec with --spec)"
        )


# --------------------------------------------------------------------------- the plot


_COLOURS = {NEVER: "#9e9e9e", CTFLOW: "#1f77b4", EVERY: "#ff7f0e"}
_WHAT_IF_COLOURS = ["#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#d62728", "#7f7f7f",
                    "#aec7e8", "#98df8a"]


def plot_timeline(result: ReplayResult, path: str | Path, *, title: str | None = None) -> Path:
    """The metric of never / ctflow / every per step, and below it when each policy (what-ifs
    included) trained a model and whether it was deployed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    colours = dict(_COLOURS)
    extra = iter(_WHAT_IF_COLOURS)
    for p in result.policies:
        if p.policy not in colours:
            colours[p.policy] = next(extra, "#333333")
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(13.5, 6.2 + 0.25 * len(result.policies)), sharex=True,
        gridspec_kw={"height_ratios": [3, 0.45 + 0.3 * len(result.policies)]},
    )
    for p in result.policies:
        if p.policy not in POLICIES:
            continue  # what-ifs: in the trainings strip and the table, not as more lines here
        xs = [s.start + (s.end - s.start) / 2 for s in p.steps if s.metric is not None]
        ys = [s.metric for s in p.steps if s.metric is not None]
        scored = "" if len(ys) == len(p.steps) else f" ({len(ys)}/{len(p.steps)} steps scored)"
        label = (f"{p.policy}: mean {_fmt(p.mean_metric)}{scored}\nworst {_fmt(p.worst_metric)}, "
                 f"{p.trainings} trainings, {p.promotions} promotions")
        top.plot(xs, ys, color=colours[p.policy], lw=2.2 if p.policy == CTFLOW else 1.4,
                 marker="o", ms=3, label=label, zorder=3 if p.policy == CTFLOW else 2)
    if any(p.policy == CTFLOW for p in result.policies):
        ct = result.policy(CTFLOW)
        labelled = False
        for s in ct.steps:
            if s.model is None:
                top.axvspan(s.start, s.end, color=_COLOURS[CTFLOW], alpha=0.08, lw=0,
                            label=None if labelled else "ctflow: no champion yet")
                labelled = True
        xs = [s.start + (s.end - s.start) / 2 for s in ct.steps if s.promoted and s.metric is not None]
        ys = [s.metric for s in ct.steps if s.promoted and s.metric is not None]
        top.scatter(xs, ys, marker="^", s=70, color=_COLOURS[CTFLOW], edgecolor="black", zorder=4,
                    label="ctflow: new champion deployed")
    top.set_ylabel(f"weekly {result.metric}" if result.every == timedelta(days=7) else f"{result.metric} per step")
    top.grid(alpha=0.3)
    top.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8.5, frameon=False, labelspacing=1.0)
    top.set_title(title or f"Replay of {result.pipeline}: {result.start:%Y-%m-%d} to {result.end:%Y-%m-%d}, "
                           f"model {result.metric} on each step's rows")

    names = [p.policy for p in result.policies]
    for row, p in enumerate(result.policies):
        y = len(names) - 1 - row
        trained = [s.start for s in p.steps if s.trained and not s.promoted]
        promoted = [s.start for s in p.steps if s.promoted]
        bottom.scatter(trained, [y] * len(trained), marker="o", s=28, facecolor="white",
                       edgecolor=colours[p.policy], linewidth=1.3, zorder=3)
        bottom.scatter(promoted, [y] * len(promoted), marker="^", s=45, color=colours[p.policy],
                       edgecolor="black", linewidth=0.5, zorder=3)
        refused = [s.start for s in p.steps if s.decision == "quality_failed"]
        bottom.scatter(refused, [y] * len(refused), marker="x", s=22, color=colours[p.policy], linewidth=1.1, zorder=3)
    bottom.set_yticks(range(len(names)), labels=list(reversed(names)), fontsize=9)
    bottom.set_ylim(-0.6, len(names) - 0.4)
    bottom.grid(axis="x", alpha=0.3)
    bottom.legend(handles=[
        Line2D([], [], marker="o", ls="", markerfacecolor="white", markeredgecolor="black", label="trained, not deployed"),
        Line2D([], [], marker="^", ls="", color="grey", markeredgecolor="black", label="trained and deployed"),
        Line2D([], [], marker="x", ls="", color="black", label="refused by data quality (no fit)"),
    ], loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8.5, frameon=False)
    bottom.set_title("trainings", fontsize=9, loc="left")
    bottom.xaxis.set_major_formatter(mdates.DateFormatter("%b %d"))
    bottom.xaxis.set_major_locator(mdates.MonthLocator())
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------- helpers


def _round(value: float | None, digits: int = 4) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return round(float(value), digits)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


__all__ = [
    "POLICIES",
    "WHAT_IF_SECTIONS",
    "ModelBank",
    "PolicyResult",
    "ReplayError",
    "ReplayFrame",
    "ReplayResult",
    "Step",
    "StepRecord",
    "cron_ticks",
    "load_frame",
    "make_steps",
    "override_spec",
    "plot_timeline",
    "replay",
]
