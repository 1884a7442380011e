"""Turn one validated spec into its Airflow DAGs: ``ct_<name>`` and ``monitor_<name>``.

Only ``airflow.sdk`` and ctflow's own light modules are imported here: this runs at every
DAG parse.
"""

from __future__ import annotations

from datetime import datetime, time, timezone
from typing import TYPE_CHECKING

from airflow.sdk import DAG, Asset, AssetAny, AssetOrTimeSchedule, CronTriggerTimetable, TaskGroup

from ctflow.contract import tasks
from ctflow.contract.assets import breach_asset, monitor_promotion_alias_name, promoted_asset
from ctflow.factory.docs import render_doc_md
from ctflow.factory.params import ct_params, monitor_params
from ctflow.operators import (
    ActOnBreachOperator,
    ChooseActionOperator,
    DataDriftOperator,
    DataQualityOperator,
    EvaluateGateOperator,
    FetchFeaturesOperator,
    MonitoringReportOperator,
    PerformanceOperator,
    PredictionDriftOperator,
    PromoteModelOperator,
    RegisterModelOperator,
    RollbackModelOperator,
    ScoreBatchOperator,
    TrainModelOperator,
)

if TYPE_CHECKING:
    from ctflow.spec import PipelineSpec


def build_dags(
    spec: PipelineSpec,
    *,
    source_text: str | None = None,
    source_name: str | None = None,
    source_path: str | None = None,
) -> list[DAG]:
    """Both DAGs of ``spec``; ``source_text`` (the YAML) is shown in the Airflow UI's docs."""
    doc_md = render_doc_md(spec, source_text=source_text, source_name=source_name)
    return [
        build_ct_dag(spec, doc_md=doc_md, spec_path=source_path),
        build_monitor_dag(spec, doc_md=doc_md, spec_path=source_path),
    ]


def build_ct_dag(spec: PipelineSpec, *, doc_md: str | None = None, spec_path: str | None = None) -> DAG:
    """``ct_<name>``: features -> data checks -> train -> gate -> register -> [approve] -> promote.

    With ``runner: {kind: docker, image: ...}`` the four training steps run ``ctflow run-step``
    in a container of that image (:mod:`ctflow.operators.docker`); the registry steps stay in
    the worker. The docker provider is imported only then, so other specs parse without it.
    """
    if spec.runner.kind == "docker":
        from ctflow.operators.docker import CtflowDockerOperator

        def heavy(in_process: type, step_name: str, **kwargs):
            return CtflowDockerOperator(step=step_name, image=spec.runner.image, **kwargs)
    else:

        def heavy(in_process: type, step_name: str, **kwargs):
            return in_process(**kwargs)

    with DAG(
        dag_id=spec.ct_dag_id,
        description=f"Continuous training of {spec.pipeline}: {spec.description}".strip(": "),
        schedule=_ct_schedule(spec),
        **_common(spec, kind="ct", doc_md=doc_md),
        params=ct_params(spec),
        max_active_runs=4,
    ) as dag:
        step = {"spec": spec, "spec_path": spec_path}
        choose = ChooseActionOperator(
            task_id=tasks.CHOOSE_ACTION, train_task_id=tasks.FETCH_FEATURES, rollback_task_id=tasks.ROLLBACK
        )
        with TaskGroup(tasks.TRAINING_GROUP, tooltip="Build the frame, check it, train and gate a candidate"):
            features = heavy(FetchFeaturesOperator, "fetch_features", task_id=tasks.local_id(tasks.FETCH_FEATURES), **step)
            quality = heavy(DataQualityOperator, "check_quality", task_id=tasks.local_id(tasks.CHECK_DATA_QUALITY), **step)
            train = heavy(TrainModelOperator, "train", task_id=tasks.local_id(tasks.TRAIN), **step)
            evaluate = heavy(EvaluateGateOperator, "evaluate", task_id=tasks.local_id(tasks.EVALUATE), **step)
            features >> quality >> train >> evaluate
        with TaskGroup(tasks.PROMOTION_GROUP, tooltip="Register the candidate and move the alias"):
            register = RegisterModelOperator(task_id=tasks.local_id(tasks.REGISTER), **step)
            promote = PromoteModelOperator(
                task_id=tasks.local_id(tasks.PROMOTE),
                **step,
                outlets=[promoted_asset(spec.pipeline)] if spec.registry.strategy == "direct" else [],
            )
            if spec.registry.approval == "manual":
                register >> _approval_task(spec) >> promote
            else:
                register >> promote
        rollback = RollbackModelOperator(task_id=tasks.ROLLBACK, **step, outlets=[promoted_asset(spec.pipeline)])
        choose >> [features, rollback]
        evaluate >> register
    return dag


def build_monitor_dag(spec: PipelineSpec, *, doc_md: str | None = None, spec_path: str | None = None) -> DAG:
    """``monitor_<name>``: score the window -> drift, prediction drift, performance -> report -> act.

    ``act_on_breach`` has the breach asset as outlet and is skipped (so emits nothing) unless a
    breach retrains, or there is no champion and ``retrain_on`` has ``no_champion``. With
    shadow/canary, ``performance`` may promote the challenger; it then announces the new
    champion on the promoted asset through an asset alias (an alias emits only what the task
    adds to it, a plain outlet would emit on every success).
    """
    with DAG(
        dag_id=spec.monitor_dag_id,
        description=f"Monitoring of {spec.pipeline}: drift, prediction drift, performance",
        schedule=_cron(spec.schedule.monitor, spec),
        **_common(spec, kind="monitor", doc_md=doc_md),
        params=monitor_params(spec),
        max_active_runs=1,  # windows are judged in order (consecutive wins of a challenger)
    ) as dag:
        step = {"spec": spec, "spec_path": spec_path}
        score = ScoreBatchOperator(task_id=tasks.SCORE_BATCH, **step)
        checks = [
            DataDriftOperator(task_id=tasks.DATA_DRIFT, **step),
            PredictionDriftOperator(task_id=tasks.PREDICTION_DRIFT, **step),
            PerformanceOperator(task_id=tasks.PERFORMANCE, **step, **_monitor_promotion(spec)),
        ]
        report = MonitoringReportOperator(task_id=tasks.REPORT, **step)
        # none_failed: it still runs when scoring was skipped for want of a champion (cold start).
        act = ActOnBreachOperator(task_id=tasks.ACT_ON_BREACH, **step, outlets=[breach_asset(spec.pipeline)],
                                  trigger_rule="none_failed")
        score >> checks >> report >> act
    return dag


def _monitor_promotion(spec: PipelineSpec) -> dict:
    """Outlet of a monitoring-driven promotion (shadow/canary only)."""
    if spec.registry.strategy == "direct":
        return {}
    from airflow.sdk import AssetAlias

    promoted = promoted_asset(spec.pipeline)
    return {
        "outlets": [AssetAlias(name=monitor_promotion_alias_name(spec.pipeline), group="ctflow")],
        "promoted_uri": promoted.uri,
        "promoted_name": promoted.name,
    }


def _common(spec: PipelineSpec, *, kind: str, doc_md: str | None) -> dict:
    schedule = spec.schedule
    return {
        "start_date": _utc(schedule.start_date),
        "end_date": _utc(schedule.end_date) if schedule.end_date else None,
        "catchup": schedule.catchup,
        "tags": sorted({"ctflow", kind, *spec.tags}),
        # The DAG files publish the DAGs through their globals; not registering them on `with` lets
        # ctflow_spec_errors.py build a spec to check it without defining its DAGs a second time.
        "auto_register": False,
        "doc_md": doc_md,
        "default_args": {
            "owner": spec.owner,
            "retries": spec.defaults.retries,
            "retry_delay": spec.defaults.retry_delay,
            "execution_timeout": spec.defaults.task_timeout,
        },
    }


def _ct_schedule(spec: PipelineSpec):
    # Which breaches retrain is decided by the monitor DAG when it emits the event.
    triggers = [breach_asset(spec.pipeline)] if spec.schedule.retrain_on else []
    triggers += [promoted_asset(upstream) for upstream in spec.schedule.after]
    triggers += [Asset(uri=uri) for uri in spec.schedule.assets]
    timetable = _cron(spec.schedule.train, spec)
    if not triggers:
        return timetable
    assets = AssetAny(*triggers)
    return AssetOrTimeSchedule(timetable=timetable, assets=assets) if timetable else assets


def _cron(expression: str | None, spec: PipelineSpec) -> CronTriggerTimetable | None:
    return CronTriggerTimetable(expression, timezone=spec.schedule.timezone) if expression else None


def _approval_task(spec: PipelineSpec):
    from ctflow.factory.approval import approval_task

    return approval_task(spec)


def _utc(day) -> datetime:
    return datetime.combine(day, time(0), tzinfo=timezone.utc)
