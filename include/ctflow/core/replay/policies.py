"""The policies a replay compares, run step by step over a model bank."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ctflow.core.replay.bank import Candidate, ModelBank
from ctflow.core.replay.format import fmt as _fmt
from ctflow.core.replay.results import CTFLOW, DESCRIPTIONS, EVERY, NEVER, PolicyResult, StepRecord
from ctflow.core.replay.timeline import Step, cron_ticks

if TYPE_CHECKING:
    import pandas as pd

    from ctflow.core.monitoring.estimate import EstimateReference
    from ctflow.spec import PipelineSpec

log = logging.getLogger(__name__)


def _score(bank: ModelBank, model: Candidate | None, step: Step, rows: pd.DataFrame) -> float | None:
    if model is None:
        return None
    return bank.metrics(model, rows, ("step", step.index)).get(bank.spec.evaluation.metric)


def _run_fixed(bank: ModelBank, steps: list[Step], rows: list[pd.DataFrame], *, retrain: bool, name: str) -> PolicyResult:
    """``never`` (retrain=False) and ``every`` (retrain=True): no gate, always deploy."""
    records, model = [], None
    for step, step_rows in zip(steps, rows, strict=True):
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
    return PolicyResult(name, DESCRIPTIONS[NEVER if not retrain else EVERY], records,
                        higher_is_better=_higher_is_better(bank.spec))


def _run_ctflow(bank: ModelBank, spec: PipelineSpec, steps: list[Step], rows: list[pd.DataFrame], *,
                name: str = CTFLOW, overrides: Mapping[str, Any] | None = None) -> PolicyResult:
    """The spec's policy: at each step monitor the champion on the previous step, decide with
    :func:`ctflow.core.policy.decide_retrain` (the monitoring DAG's rule), check data quality,
    fit, gate with :func:`ctflow.core.gate.decide` and deploy what passes."""
    from ctflow.core.gate import decide
    from ctflow.core.policy import decide_retrain

    metric = spec.evaluation.metric
    champion: Candidate | None = None
    last_trained: datetime | None = None
    records: list[StepRecord] = []
    for step, step_rows in zip(steps, rows, strict=True):
        record = StepRecord(step.index, step.start, step.end, len(step_rows), None, None)
        triggers = ["initial"]
        if step.index > 0:
            previous = steps[step.index - 1]
            breaches = (_monitor(bank, spec, champion, previous, step, rows[previous.index], record)
                        if champion is not None else [])
            policy = decide_retrain(
                spec, breaches=breaches, has_champion=champion is not None, window_end=step.start,
                scheduled=bool(cron_ticks(spec.schedule.train, previous.start, step.start, spec.schedule.timezone)),
                last_trained=last_trained,
            )
            triggers = policy.triggers
            record.held_back = policy.held_back  # alerted, not retrained, as monitoring.actions decides
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
    return PolicyResult(name, DESCRIPTIONS[CTFLOW], records, dict(overrides or {}),
                        higher_is_better=_higher_is_better(spec))


def _monitor(bank: ModelBank, spec: PipelineSpec, champion: Candidate, previous: Step, step: Step,
             previous_rows: pd.DataFrame, record: StepRecord) -> list[str]:
    """The monitoring DAG's checks of the previous step against ``champion``: the breach kinds
    (:func:`ctflow.core.policy.assess`); the drift share, the monitored metric, the performance
    estimate beside the realized metric of the same rows and the breached checks go to ``record``."""
    from ctflow.core.drift import dataset_drift_from_profile
    from ctflow.core.policy import assess

    monitoring = spec.monitoring
    assert champion.features is not None  # only trained candidates are promoted
    data: dict[str, Any] = {"available": False}
    perf: dict[str, Any] = {"available": False}
    if len(previous_rows):
        columns = monitoring.drift.columns or champion.features.all
        config = monitoring.drift
        drift = dataset_drift_from_profile(
            bank.profile(champion, spec), previous_rows, columns=columns, method=config.method,
            threshold=config.threshold, max_drifted_share=config.max_drifted_share,
            calibration=config.calibration, quantile=config.calibration_quantile, weighting=config.weighting,
        )
        record.drift_share = drift.drifted_share
        record.drifted_columns = drift.drifted_columns
        data = {"available": True, **drift.to_dict(), "drifted_columns": drift.drifted_columns}
    if monitoring.performance is not None:
        # The previous step's rows, moved back by the label delay, whose labels are known at this step.
        delay = spec.label_available_after
        start, end = (previous.start, step.start) if delay is None else (delay.before(previous.start),
                                                                          delay.before(step.start))
        labelled = bank.data.labelled_by(start, end, step.start)
        value = bank.metrics(champion, labelled, ("labelled", previous.index, str(delay))).get(monitoring.performance.metric)
        record.monitored_metric = value
        perf = {"available": value is not None, "breach": monitoring.performance.breach(value),
                "metric": monitoring.performance.metric, "champion": {"version": champion.id, "value": value},
                "window_start": start.isoformat(), "window_end": end.isoformat()}
    current = _window_scores(bank, champion, previous, previous_rows)
    predictions = _prediction_drift(bank, spec, champion, current)
    if predictions:
        verdict = predictions["models"]["champion"]
        record.score_drift = verdict["p_value"] if verdict["p_value"] is not None else verdict["statistic"]
        record.scores_drifted = verdict["drifted"]
    estimated, reference = _estimate(bank, spec, champion, previous, previous_rows, current)
    if estimated:
        _record_estimate(bank, spec, champion, previous, previous_rows, estimated, reference, record)
    breaches = assess(spec, data=data, predictions=predictions, perf=perf, estimated=estimated)
    record.breaches = [b["what"] for b in breaches]
    return [b["kind"] for b in breaches]


def _window_scores(bank: ModelBank, champion: Candidate, previous: Step, previous_rows: pd.DataFrame) -> Any:
    """The champion's scores on the previous step, missing ones dropped (as the DAG's window frame
    ``dropna``); the same cached scores the step's metric is computed from."""
    import numpy as np

    if not len(previous_rows):
        return np.zeros(0)
    current = bank.scores(champion, previous_rows, ("step", previous.index))
    return current[~np.isnan(current)]


def _prediction_drift(bank: ModelBank, spec: PipelineSpec, champion: Candidate, current: Any) -> dict[str, Any]:
    """The champion's scores on the previous step against its holdout scores, judged by the
    monitoring DAG's function (:func:`ctflow.core.drift.scores.score_drift`)."""
    from ctflow.core.drift.scores import score_drift

    if not len(current):
        return {}
    verdict = score_drift(bank.reference_scores(champion), current,
                          config=spec.monitoring.prediction_drift, min_rows=spec.monitoring.min_rows,
                          version=champion.id, who="champion", null=bank.score_null(champion, spec))
    return {"available": True, "drifted": verdict["drifted"], "models": {"champion": verdict}}


def _estimate(bank: ModelBank, spec: PipelineSpec, champion: Candidate, previous: Step, previous_rows: pd.DataFrame,
              current: Any) -> tuple[dict[str, Any], EstimateReference | None]:
    """The champion's performance estimated on the previous step's scores (``current``, from
    :func:`_window_scores`) before their labels, and for DLE the same rows' features, judged by the
    monitoring DAG's function (:func:`ctflow.core.monitoring.estimated.judge_window`) against its
    time-ordered labelled holdout ({} on a step without rows), and that holdout fitted."""
    import numpy as np

    from ctflow.core.monitoring.estimated import estimation_problem, judge_window, reference_problem

    if not len(current):
        return {}, None
    problem = estimation_problem(spec, len(current)) or reference_problem(spec, len(champion.holdout_rows))
    features = None
    try:
        reference = None if problem else bank.estimate_reference(champion, spec)
        if reference is not None and reference.columns:
            scored = ~np.isnan(bank.scores(champion, previous_rows, ("step", previous.index)))
            features = previous_rows.loc[scored, list(reference.columns)].reset_index(drop=True)
    except Exception as err:  # noqa: BLE001 - as the DAG: the estimate is a hint, its failure must not stop monitoring
        log.warning("no performance estimate for champion %s: %s: %s", champion.id, type(err).__name__, err)
        reference, problem = None, f"{type(err).__name__}: {err}"
    return judge_window(spec, reference, current, features=features, version=champion.id, reason=problem,
                        window_start=previous.start.isoformat(), window_end=previous.end.isoformat()), reference


def _record_estimate(bank: ModelBank, spec: PipelineSpec, champion: Candidate, previous: Step,
                     previous_rows: pd.DataFrame, estimated: dict[str, Any], reference: EstimateReference | None,
                     record: StepRecord) -> None:
    """The estimate beside what the labels of the same rows say once they come: the champion's
    realized metric on the previous step and whether the estimate's rule would breach on it
    (:func:`ctflow.core.monitoring.estimated.realized_breach`)."""
    from ctflow.core.monitoring.estimated import realized_breach

    record.estimated_metric = estimated["value"]
    record.estimated_breach = estimated["breach"]
    realized = bank.metrics(champion, previous_rows, ("step", previous.index)).get(estimated["metric"])
    record.realized_metric = realized
    record.realized_breach = realized_breach(spec, reference, realized, len(previous_rows))


def _higher_is_better(spec: PipelineSpec) -> bool:
    from ctflow.spec.catalog import higher_is_better

    return higher_is_better(spec.model.task, spec.evaluation.metric)
