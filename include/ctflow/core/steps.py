"""The steps of a continuous-training run as plain functions over a run folder.

The same functions run inside Airflow operators, from ``ctflow run-step`` (what a
DockerOperator calls), in tests and in benchmarks. Each step reads what earlier steps left
in ``run_dir``, writes its own result there as JSON, and returns that result (XCom-sized).
Steps are idempotent: a retry finds the MLflow run or model version an earlier try made.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ctflow.contract import mlflow_tags
from ctflow.core import fit, model_logging
from ctflow.core.run_files import read_result as _read
from ctflow.core.run_files import write_result as _write
from ctflow.core.timing import window as time_window
from ctflow.exceptions import ConfigurationError
from ctflow.spec import PipelineSpec

if TYPE_CHECKING:
    import pandas as pd

    from ctflow.core.registry import ModelRegistry, ModelVersionInfo

log = logging.getLogger(__name__)

FRAME = "frame.parquet"
FEATURES = "features.json"
QUALITY = "quality.json"
TRAIN = "train.json"
GATE = "gate.json"
REGISTER = "register.json"
PROMOTE = "promote.json"

#: The derived label, added to the frame beside the label's source column.
LABEL = fit.LABEL


def fetch_features(
    spec: PipelineSpec,
    *,
    as_of: datetime,
    run_dir: Path,
    window_days: int | None = None,
    feature_repo: Path | None = None,
) -> dict[str, Any]:
    """Entity rows of ``[as_of - window, as_of)`` whose label is known at ``as_of``
    (:mod:`ctflow.core.labels`), joined point-in-time with Feast."""
    from ctflow.core import features as feast
    from ctflow.core.features import pipeline_repo
    from ctflow.core.labels import known_by

    repo = pipeline_repo(spec, feature_repo)
    if window_days is not None and (isinstance(window_days, bool) or not isinstance(window_days, int) or window_days <= 0):
        raise ConfigurationError(f"window_days is {window_days!r}, which is no window", field="params.window_days",
                                 fix="give a whole number of days > 0, or leave it out for data.window")
    length = timedelta(days=window_days) if window_days else spec.data.window
    start, end = time_window(as_of, length)
    started = time.perf_counter()
    rows = entity_rows(spec, feature_repo=repo, feature_service=spec.data.features, start=start, end=end)
    rows, unlabelled = derive_label(rows, spec)
    # A backfill or replay finds every label in the table: keep only those known at as_of.
    rows, pending = known_by(rows, as_of)
    service_features = feast.feature_names(repo, spec.data.features)
    known = [*map(str, rows.columns), *service_features]
    absent = [c for c in spec.data.columns if c not in known]
    if absent:  # before the join, which is the expensive part
        raise ConfigurationError(
            f"column(s) {', '.join(map(repr, absent))} are neither in the entity table {spec.data.entities} nor "
            f"features of {spec.data.features!r}", field="data.columns",
            fix=f"list only columns of the entity table ({', '.join(map(str, rows.columns))}) or of the service",
        )
    frame = feast.get_historical_features(repo, spec.data.features, rows, timestamp=spec.data.timestamp)
    features = fit.feature_candidates(spec, service_features)
    frame.to_parquet(run_dir / FRAME, index=False)
    result = {
        **feast.fingerprint(frame, timestamp=spec.data.timestamp),
        "window_start": start.isoformat(),
        "window_end": end.isoformat(),
        "as_of": as_of.isoformat(),
        "dropped_unlabelled": unlabelled,
        "dropped_label_pending": pending,
        "feature_service": spec.data.features,
        "features": features,
        "positive_share": round(float(frame[LABEL].mean()), 4) if len(frame) and spec.model.task == "classification" else None,
        "seconds": round(time.perf_counter() - started, 2),
        "path": str(run_dir / FRAME),
    }
    _write(run_dir / FEATURES, result)
    log.info("training frame: %s rows in [%s, %s), %s features from %s (dropped %s unlabelled rows and %s whose "
             "label was not known yet)", result["rows"], start, end, len(features), spec.data.features, unlabelled,
             pending)
    return result


def derive_label(rows: pd.DataFrame, spec: PipelineSpec) -> tuple[pd.DataFrame, int]:
    """Add :data:`LABEL` and :data:`~ctflow.core.labels.KNOWN_AT` (when it became known) per the spec;
    rows whose label is unknown are dropped (and counted)."""
    import numpy as np

    from ctflow.core.labels import with_known_at

    if spec.data.label.column not in rows.columns:
        raise ConfigurationError(
            f"the entity table {spec.data.entities} has no column {spec.data.label.column!r}",
            field="data.label.column", fix=f"name one of its columns: {', '.join(map(str, rows.columns))}",
        )
    source = rows[spec.data.label.column]
    known = source.notna()
    rows = rows.loc[known].copy()
    comparison = spec.data.label.comparison
    if comparison is None:
        rows[LABEL] = rows[spec.data.label.column]
    else:
        op, value = comparison
        ops = {">": np.greater, ">=": np.greater_equal, "<": np.less, "<=": np.less_equal,
               "==": np.equal, "!=": np.not_equal}
        source = rows[spec.data.label.column]
        # A text label ('== yes') compares as text, whatever type the column's values have.
        values = source.astype(str).to_numpy() if isinstance(value, str) else source.to_numpy(dtype=float)
        rows[LABEL] = ops[op](values, value).astype("int64")
    return with_known_at(rows, spec), int((~known).sum())


def check_quality(spec: PipelineSpec, *, as_of: datetime, run_dir: Path) -> dict[str, Any]:
    """Apply the spec's data-quality rules; raise :class:`DataQualityError` with the report."""
    import pandas as pd

    from ctflow.core.quality import DataQualityError
    from ctflow.core.quality import check_quality as run_rules

    frame = pd.read_parquet(run_dir / FRAME)
    fetched = _read(run_dir / FEATURES)
    # The run may have fetched another window than the spec's (params.window_days).
    window = datetime.fromisoformat(fetched["window_end"]) - datetime.fromisoformat(fetched["window_start"])
    report = run_rules(frame, quality=spec.quality, data=spec.data, features=fetched["features"], label=LABEL,
                       as_of=as_of, window=window)
    _write(run_dir / QUALITY, report.to_dict())
    for line in report.text().splitlines():
        log.info("%s", line)
    if not report.passed:
        raise DataQualityError(report)
    return {"passed": True, "rules": len(report.rules)}


def train(
    spec: PipelineSpec,
    *,
    as_of: datetime,
    run_dir: Path,
    run_key: str,
    lineage: dict[str, str] | None = None,
    tracking_uri: str | None = None,
    spec_text: str | None = None,
) -> dict[str, Any]:
    """Fit the spec's pipeline on the older part of the frame, score the holdout, log it all to MLflow."""
    import mlflow
    import pandas as pd

    from ctflow.core import evaluation, tracking
    from ctflow.core.fit import fit_candidate, split_window
    from ctflow.core.training import predict_scores

    client = tracking.client(tracking_uri)
    experiment_id = tracking.ensure_experiment(client, spec.pipeline)
    earlier = tracking.find_run(client, experiment_id, run_key, "candidate")
    if earlier is not None and (run_dir / TRAIN).exists():
        log.info("reusing MLflow run %s made by an earlier try of this run", earlier.info.run_id)
        return _read(run_dir / TRAIN)
    if abandoned := tracking.fail_abandoned_runs(client, experiment_id, run_key, "candidate"):
        log.info("marked MLflow runs of killed earlier tries FAILED: %s", ", ".join(abandoned))

    frame = pd.read_parquet(run_dir / FRAME)
    fetched = _read(run_dir / FEATURES)
    split = split_window(spec, frame, as_of=as_of).checked()
    holdout_start, train_rows, holdout_rows = split.holdout_start, split.train_rows, split.holdout_rows
    holdout_rows.to_parquet(run_dir / "holdout.parquet", index=False)

    tags = {
        mlflow_tags.RUN_KEY: run_key,
        mlflow_tags.STAGE: "candidate",
        mlflow_tags.PIPELINE: spec.pipeline,
        mlflow_tags.AS_OF: as_of.isoformat(),
        mlflow_tags.FEATURE_SERVICE: spec.data.features,
        "ctflow.data_sha256": fetched["sha256"],
        mlflow_tags.CODE_VERSION: tracking.code_version(),
        **(lineage or {}),
    }
    if spec_text:
        tags["ctflow.spec_sha256"] = tracking.text_sha256(spec_text)
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"{spec.pipeline} as of {as_of:%Y-%m-%d %H:%M}", tags=tags) as run:
        # Fitted inside the run: a fit that fails leaves a FAILED run with the run's tags.
        fitted = fit_candidate(spec, split, candidates=fetched["features"])
        pipeline, features, scores, metrics = fitted.pipeline, fitted.features, fitted.holdout_scores, fitted.metrics
        fit_seconds, y_holdout = fitted.fit_seconds, fitted.holdout_labels
        threshold = fitted.threshold  # a rule's is known only now, chosen on the holdout
        if threshold is not None:
            mlflow.set_tag(mlflow_tags.DECISION_THRESHOLD, str(threshold))
        mlflow.log_params({
            "estimator": spec.model.estimator,
            **{f"param.{k}": v for k, v in spec.model.params.items()},
            "seed": spec.model.seed,
            "task": spec.model.task,
            "data.window_start": fetched["window_start"],
            "data.window_end": fetched["window_end"],
            "data.holdout_start": holdout_start.isoformat(),
            "data.train_rows": len(train_rows),
            "data.holdout_rows": len(holdout_rows),
            "features.service": spec.data.features,
            "features.numeric": len(features.numeric),
            "features.categorical": len(features.categorical),
            **({"decision_threshold": threshold} if threshold is not None else {}),
        })
        # Every training row is scored once: the score-drift null needs them all, the training
        # metrics a sample of them.
        train_scores = predict_scores(pipeline, train_rows[features.all], spec.model.task)
        train_sample = train_rows.sample(min(len(train_rows), 20000), random_state=spec.model.seed)
        train_metrics = evaluation.compute_metrics(
            spec.model.task, train_sample[LABEL].to_numpy(), train_scores[train_rows.index.get_indexer(train_sample.index)],
            threshold=threshold,
        )
        slices = evaluation.slice_metrics(spec.model.task, holdout_rows, y_holdout, scores, spec.evaluation.slices,
                                          threshold=threshold)
        mlflow.log_metrics({**metrics, **{f"train_{k}": v for k, v in train_metrics.items()},
                            "fit_seconds": fit_seconds, "train_rows": len(train_rows), "holdout_rows": len(holdout_rows)})
        mlflow.log_metrics({
            f"slice.{column}.{value}.{name}": v
            for column, groups in slices.items() for value, result in groups.items()
            for name, v in result.items() if name in (spec.evaluation.metric, "rows")
        })
        importances, importance_rows = evaluation.model_reliance(
            spec.model.task, pipeline, holdout=holdout_rows, y_holdout=y_holdout, training=train_sample,
            y_training=train_sample[LABEL].to_numpy(), features=features.all, rows=4000, seed=spec.model.seed)
        if importances is not None:
            mlflow.set_tag(mlflow_tags.IMPORTANCE_ROWS, importance_rows)
        plots = evaluation.save_plots(spec.model.task, y_holdout, scores, model=pipeline, frame=holdout_rows,
                                      features=features.all, folder=run_dir / "plots", seed=spec.model.seed,
                                      threshold=threshold, importances=importances)
        for plot in plots:
            mlflow.log_artifact(str(plot), "plots")
        mlflow.log_dict({"numeric": features.numeric, "categorical": features.categorical,
                         "service": spec.data.features}, "features.json")
        mlflow.log_dict({k: v for k, v in fetched.items() if k != "path"}, "data_fingerprint.json")
        mlflow.log_dict(slices, "slices.json")
        if spec_text:
            mlflow.log_text(spec_text, "spec.yaml")
        model_logging.log_reference(
            spec, run_dir, train_rows, features.all, holdout_scores=scores, holdout_labels=y_holdout,
            holdout_times=holdout_rows[spec.data.timestamp].to_numpy(), holdout_features=holdout_rows[features.all],
            train_scores=train_scores,
            importances=None if importances is None else {str(k): float(v) for k, v in importances.items()})
        model_logging.log_datasets(spec, {"training": train_rows, "holdout": holdout_rows}, [*features.all, LABEL],
                                   source=str(resolve_path(spec.data.entities)))
        model_info = model_logging.log_model(pipeline, train_rows, holdout_rows, features, task=spec.model.task,
                                             threshold=threshold, positive=model_logging.positive_class(spec))
        result = {
            "run_id": run.info.run_id,
            "experiment_id": experiment_id,
            "model_uri": model_info.model_uri,
            "metrics": metrics,
            "train_metrics": train_metrics,
            "slices": slices,
            "train_rows": len(train_rows),
            "holdout_rows": len(holdout_rows),
            "holdout_start": holdout_start.isoformat(),
            "features": features.all,
            "fit_seconds": round(fit_seconds, 2),
            "decision_threshold": threshold,
        }
    _write(run_dir / TRAIN, result)
    log.info("trained %s on %s rows in %.1f s; holdout (%s rows): %s", spec.model.estimator, len(train_rows),
             fit_seconds, len(holdout_rows), _fmt(metrics))
    return result


def evaluate(spec: PipelineSpec, *, run_dir: Path, tracking_uri: str | None = None) -> dict[str, Any]:
    """Gate the candidate: absolute thresholds, then the champion scored on the same holdout."""
    import mlflow

    from ctflow.core import tracking
    from ctflow.core.gate import decide
    from ctflow.core.registry import ModelRegistry

    trained = _read(run_dir / TRAIN)
    registry = ModelRegistry(spec.model_name, tracking_uri=tracking_uri)
    champion = registry.champion()
    champion_metrics, note = None, ""
    if champion is not None:
        try:
            champion_metrics = score_version(spec, champion.version, run_dir, tracking_uri=tracking_uri)
        except Exception as err:  # noqa: BLE001 - a champion with another schema cannot score this holdout
            note = f"; champion v{champion.version} cannot score this holdout ({type(err).__name__}: {err})"
            log.warning("champion v%s cannot score the holdout: %s", champion.version, err)
    decision = decide(
        task=spec.model.task,
        evaluation=spec.evaluation,
        candidate=trained["metrics"],
        champion=champion_metrics,
        champion_version=champion.version if champion is not None else None,
        slices=trained["slices"],
    )
    decision.reason += note
    for line in decision.lines():
        log.info("%s", line)
    client = tracking.client(tracking_uri)
    client.set_tag(trained["run_id"], mlflow_tags.GATE, "passed" if decision.passed_floors else "failed")
    client.set_tag(trained["run_id"], mlflow_tags.GATE_DECISION, decision.decision)
    client.set_tag(trained["run_id"], mlflow_tags.GATE_REASON, decision.reason[:5000])
    with mlflow.start_run(run_id=trained["run_id"]):
        if champion_metrics:
            mlflow.log_metrics({f"champion_{k}": v for k, v in champion_metrics.items()})
        mlflow.log_dict(decision.to_dict(), "gate.json")
    result = decision.to_dict()
    _write(run_dir / GATE, result)
    return result


def score_version(spec: PipelineSpec, version: str, run_dir: Path, *, tracking_uri: str | None = None) -> dict[str, float]:
    """Metrics of registered ``version`` on this run's holdout."""
    import mlflow
    import pandas as pd

    from ctflow.core import tracking
    from ctflow.core.evaluation import compute_metrics
    from ctflow.core.threshold import of_version
    from ctflow.core.training import predict_scores

    client = tracking.client(tracking_uri)
    holdout = pd.read_parquet(run_dir / "holdout.parquet")
    model = mlflow.sklearn.load_model(f"models:/{spec.model_name}/{version}")
    scores = predict_scores(model, holdout, spec.model.task)
    threshold = of_version(spec.model, client.get_model_version(spec.model_name, str(version)).tags)
    return compute_metrics(spec.model.task, holdout[LABEL].to_numpy(), scores, threshold=threshold)


def register(
    spec: PipelineSpec,
    *,
    run_dir: Path,
    run_key: str,
    force: bool = False,
    reason: str = "",
    dry_run: bool = False,
    tracking_uri: str | None = None,
) -> dict[str, Any]:
    """Register the gated candidate (idempotent per run key). Returns ``{"skipped": True, "reason"}``
    when there is nothing to register."""
    from ctflow.core.registry import ModelRegistry

    gate = _read(run_dir / GATE)
    trained = _read(run_dir / TRAIN)
    if dry_run:
        return {"skipped": True, "reason": "dry run: nothing is registered or promoted"}
    if not gate["promote"]:
        if not (force and gate["passed_floors"]):
            why = gate["reason"] + ("" if gate["passed_floors"] else " (absolute floors cannot be forced)")
            return {"skipped": True, "reason": f"promotion skipped: {why}"}
        if not reason.strip():
            raise ConfigurationError("force_promotion has no reason", field="params.reason",
                                     fix="say why in the 'reason' parameter: it goes into the alias history")
    registry = ModelRegistry(spec.model_name, tracking_uri=tracking_uri)
    version = registry.register(
        trained["model_uri"],
        run_key=run_key,
        run_id=trained["run_id"],
        tags={
            mlflow_tags.GATE: "forced" if not gate["promote"] else "passed",
            mlflow_tags.GATE_REASON: gate["reason"][:5000],
            f"ctflow.metric.{spec.evaluation.metric}": str(trained["metrics"].get(spec.evaluation.metric)),
            mlflow_tags.PIPELINE: spec.pipeline,
            # The served probability's cut-off: a consumer reproduces ctflow's labels with it.
            **({mlflow_tags.DECISION_THRESHOLD: str(trained["decision_threshold"])}
               if trained.get("decision_threshold") is not None else {}),
        },
    )
    _describe(registry, version.version, spec, run_dir=run_dir, trained=trained, gate=gate)
    result = version.to_dict()
    _write(run_dir / REGISTER, result)
    log.info("registered %s version %s (run %s)", spec.model_name, version.version, trained["run_id"])
    return result


def _describe(registry: ModelRegistry, version: str, spec: PipelineSpec, *, run_dir: Path, trained: dict, gate: dict) -> None:
    """The version's description: its model card (:mod:`ctflow.core.model_card`); rewritten by a retry."""
    from ctflow.core.model_card import model_card

    lineage = registry.client.get_run(trained["run_id"]).data.tags
    card = model_card(spec, fetched=_read(run_dir / FEATURES), trained=trained, gate=gate, lineage=lineage)
    registry.client.update_model_version(spec.model_name, version, description=card)


def promote(
    spec: PipelineSpec,
    *,
    run_dir: Path,
    actor: str,
    run_key: str | None = None,
    force: bool = False,
    reason: str = "",
    tracking_uri: str | None = None,
) -> dict[str, Any]:
    """Move ``champion`` (strategy ``direct``) or ``challenger`` (shadow/canary) to the registered version.

    A shadow/canary candidate gated without a champion becomes champion directly: there is
    nothing to run beside it, and monitoring (which promotes challengers) needs a champion.
    """
    from ctflow.core.gate import beats
    from ctflow.core.registry import ModelRegistry

    gate = _read(run_dir / GATE)
    version = _read(run_dir / REGISTER)["version"]
    registry = ModelRegistry(spec.model_name, tracking_uri=tracking_uri)
    # The gate's reason is why ctflow moves the alias; the requester's (a trigger's conf.reason,
    # e.g. why a promotion was forced) is recorded beside it, not instead of it.
    why, requested = gate["reason"], reason.strip() or None
    if spec.registry.strategy != "direct" and gate.get("champion_version") is not None:
        change = registry.set_challenger(version, reason=why, actor=actor, request_reason=requested)
        _write(run_dir / PROMOTE, change.to_dict())
        return change.to_dict()

    metric = spec.evaluation.metric
    mine = gate["candidate"].get(metric)

    def still_wins(current: ModelVersionInfo | None) -> bool:
        """Another run moved the champion since this candidate was gated: beat that one too."""
        if current is None or force:
            return True
        theirs = score_version(spec, current.version, run_dir, tracking_uri=tracking_uri).get(metric)
        won = beats(spec.model.task, metric, mine, theirs, spec.evaluation.versus_champion.min_improvement)
        log.info("champion moved to v%s meanwhile: %s %s vs %s -> %s", current.version, metric, mine, theirs,
                 "still wins" if won else "loses")
        return won

    change = registry.promote(
        version, alias="champion", reason=why, actor=actor, expected_current=gate.get("champion_version"),
        still_wins=still_wins,
        run_key=run_key,
        request_reason=requested,
    )
    result = change.to_dict()
    _write(run_dir / PROMOTE, result)
    log.info("champion: %s", result)
    return result


def rollback(
    spec: PipelineSpec, *, actor: str, reason: str, run_key: str | None = None, tracking_uri: str | None = None
) -> dict[str, Any]:
    from ctflow.core.registry import ModelRegistry

    if not reason.strip():
        raise ConfigurationError("a rollback has no reason", field="params.reason",
                                 fix="say why in the 'reason' parameter: it goes into the alias history")
    change = ModelRegistry(spec.model_name, tracking_uri=tracking_uri).rollback(
        alias="champion", reason=reason, actor=actor, run_key=run_key
    )
    log.info("rolled back: %s", change.to_dict())
    return change.to_dict()


def entity_rows(spec: PipelineSpec, *, feature_repo: Path, feature_service: str, start: datetime,
                end: datetime) -> pd.DataFrame:
    """The entity table's rows of ``[start, end)``, once the column types of ``feature_service``'s
    tables and of the entity table's join keys are checked (parquet footers only: a mismatch would
    fail the point-in-time join late, or give NaN features). What training, scoring and the replay read.

    :raises SourceDataError: a column stored otherwise than declared (final).
    """
    from ctflow.core import features as feast

    entities = resolve_path(spec.data.entities)
    feast.check_column_types(feature_repo, feature_service, entities=entities, shown=spec.data.entities)
    return feast.load_entity_rows(entities, timestamp=spec.data.timestamp, start=start, end=end)


def resolve_path(path: str) -> Path:
    """A spec path, relative to the project root, confined when it is opened as when it was validated.

    Checked again here because the file system can change after validation (a symbolic link
    swapped in): a path leading outside the project and ``$CTFLOW_DATA_ROOTS`` is a configuration
    error, final.
    """
    from ctflow.spec.paths import PathOutsideError, resolve_spec_path

    try:
        return resolve_spec_path(path)
    except PathOutsideError as err:
        raise ConfigurationError(str(err), field="data.entities",
                                 fix="keep the file inside the project, or add its folder to $CTFLOW_DATA_ROOTS") from err


def _fmt(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items()))
