"""Turn one validated spec into its Airflow DAGs: ``ct_<name>`` and ``monitor_<name>``.

Only ``airflow.sdk`` and ctflow's own light modules are imported here: this runs at every
DAG parse.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import TYPE_CHECKING, Any

from airflow.sdk import DAG, Asset, AssetAny, AssetOrTimeSchedule, CronTriggerTimetable, TaskGroup, chain

from ctflow import extensions
from ctflow.contract import tasks
from ctflow.contract.assets import (
    breach_asset,
    ct_promotion_alias_name,
    monitor_promotion_alias_name,
    promoted_asset,
)
from ctflow.factory.docs import render_doc_md
from ctflow.factory.params import ct_params, monitor_params
from ctflow.operators import OPERATORS, ChooseActionOperator
from ctflow.runners import runner_for
from ctflow.steps import ct, monitor, online

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator

    from ctflow.operators.approval import ApprovalOperator
    from ctflow.spec import PipelineSpec
    from ctflow.steps import StepDeclaration


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
    """``ct_<name>``: features -> data checks -> train -> gate -> register -> [approve] -> promote -> materialize.

    Each task is its step's declaration (:mod:`ctflow.steps.ct`) run by an operator: the
    deployment's subclass if one is registered (:mod:`ctflow.extensions`), else ctflow's. Steps
    declared ``container=True`` go through the runner of ``runner.kind`` (:mod:`ctflow.runners`):
    with ``docker`` the four training steps run ``ctflow run-step`` in a container of the spec's
    image; the registry steps stay in the worker. A deployment's steps at ``ct.after_evaluate``
    run between the gate and registration, those at ``ct.after_promote`` after the promotion.
    ``materialize_online`` brings the feature service's views into Feast's online store after a promotion.
    """
    runner = runner_for(spec.runner.kind)
    with DAG(
        dag_id=spec.ct_dag_id,
        description=f"Continuous training of {spec.pipeline}: {spec.description}".strip(": "),
        schedule=_ct_schedule(spec),
        **_common(spec, kind="ct", doc_md=doc_md),
        params=ct_params(spec),
        max_active_runs=4,
    ) as dag:
        common = {"spec": spec, "spec_path": spec_path}

        def task(declaration: StepDeclaration, **kwargs: Any) -> BaseOperator:
            operator = extensions.operator_class(declaration.name, OPERATORS[declaration.name])
            kwargs = {"task_id": tasks.local_id(declaration.dag_task_id), **common, **kwargs}
            if declaration.container:
                return runner(declaration=declaration, operator_class=operator, **kwargs)
            return operator(**kwargs)

        choose = ChooseActionOperator(
            task_id=tasks.CHOOSE_ACTION, train_task_id=tasks.FETCH_FEATURES, rollback_task_id=tasks.ROLLBACK
        )
        with TaskGroup(tasks.TRAINING_GROUP, tooltip="Build the frame, check it, train and gate a candidate"):
            training = [task(ct.FETCH_FEATURES), task(ct.CHECK_QUALITY), task(ct.TRAIN), task(ct.EVALUATE)]
            training += _extra_tasks("ct.after_evaluate", common)
            chain(*training)
        with TaskGroup(tasks.PROMOTION_GROUP, tooltip="Register the candidate and move the alias"):
            register = task(ct.REGISTER)
            promote = task(ct.PROMOTE, **_ct_promotion(spec))
            approval = [_approval_task(spec)] if spec.registry.approval == "manual" else []
            chain(register, *approval, promote, *_extra_tasks("ct.after_promote", common))
        # Only after a promotion (the new champion may read another service); monitoring keeps it fresh.
        promote >> task(online.MATERIALIZE)
        rollback = task(ct.ROLLBACK, outlets=[promoted_asset(spec.pipeline)])
        choose >> [training[0], rollback]
        training[-1] >> register
    return dag


def _extra_tasks(position: str, common: dict) -> list[BaseOperator]:
    """The deployment's steps at ``position`` (``ctflow.steps`` entry points), in the current task group."""
    from ctflow.operators.extension import ExtraStepOperator

    return [ExtraStepOperator(task_id=step.name, declaration=step, **common) for step in extensions.steps_at(position)]


def _ct_promotion(spec: PipelineSpec) -> dict:
    """Outlet of the CT promotion (strategy direct): an alias, so only a real move of the champion emits."""
    if spec.registry.strategy != "direct":
        return {}
    from airflow.sdk import AssetAlias

    promoted = promoted_asset(spec.pipeline)
    return {
        "outlets": [AssetAlias(name=ct_promotion_alias_name(spec.pipeline), group="ctflow")],
        "promoted_uri": promoted.uri,
        "promoted_name": promoted.name,
    }


def build_monitor_dag(spec: PipelineSpec, *, doc_md: str | None = None, spec_path: str | None = None) -> DAG:
    """``monitor_<name>``: score the window -> drift, prediction drift, performance -> report -> act.

    A deployment's steps at ``monitor.after_report`` run between the report and ``act_on_breach``.
    ``materialize_online``, beside them, keeps the online store up to the window's end.
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
        common = {"spec": spec, "spec_path": spec_path}

        def task(declaration: StepDeclaration, **kwargs: Any) -> BaseOperator:
            operator = extensions.operator_class(declaration.name, OPERATORS[declaration.name])
            return operator(task_id=declaration.dag_task_id, **common, **kwargs)

        score = task(monitor.SCORE_BATCH)
        checks = [
            task(monitor.DATA_DRIFT),
            task(monitor.PREDICTION_DRIFT),
            task(monitor.PERFORMANCE, **_monitor_promotion(spec)),
        ]
        report = task(monitor.REPORT)
        # none_failed: it still runs when scoring was skipped for want of a champion (cold start).
        act = task(monitor.ACT_ON_BREACH, outlets=[breach_asset(spec.pipeline)], trigger_rule="none_failed")
        score >> checks >> report
        task(online.MATERIALIZE)  # on its own: the online store does not wait for the window's verdict
        chain(report, *_extra_tasks("monitor.after_report", common), act)
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


def _ct_schedule(spec: PipelineSpec) -> CronTriggerTimetable | AssetAny | AssetOrTimeSchedule | None:
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


def _approval_task(spec: PipelineSpec) -> ApprovalOperator:
    from ctflow.factory.approval import approval_task

    return approval_task(spec)


def _utc(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)
