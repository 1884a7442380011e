"""What starts each DAG and what each DAG announces, as the scheduler reads it.

Every case is a real spec (``tests/fixtures/good_specs/churn.yaml``, ``train: "0 3 * * 1"``) with
its schedule section edited as text, loaded by the spec loader from a folder (so the cross-spec
rules of ``schedule.after`` apply), built by the factory, then serialized and deserialized as the
dag-processor and the scheduler do: the timetables and outlets asserted are the scheduler's.
Expected URIs come from :mod:`ctflow.contract.assets`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ctflow.contract import assets, tasks
from tests.conftest import PROJECT

CHURN = (PROJECT / "tests" / "fixtures" / "good_specs" / "churn.yaml").read_text()
CRON = "0 3 * * 1"


def churn(*changes: tuple[str, str], schedule: str = "", extra: str = "") -> str:
    """churn.yaml with each ``(old, new)`` replaced (an ``old`` it lacks fails at once), ``schedule``
    lines added under ``schedule:`` and ``extra`` (top-level sections) appended."""
    text = CHURN
    for old, new in changes:
        assert old in text, f"churn.yaml no longer contains {old!r}"
        text = text.replace(old, new)
    if schedule:
        text = text.replace("schedule:\n", "schedule:\n" + "".join(f"  {line}\n" for line in schedule.splitlines()), 1)
    return text + extra


def build(tmp_path: Path, **texts: str) -> dict[str, object]:
    """``{dag_id: the scheduler's DAG}`` of the specs ``texts`` (file stem -> YAML) in one folder."""
    from airflow.serialization.serialized_objects import DagSerialization

    from ctflow.factory.build import build_dags
    from ctflow.factory.discover import load_folder

    folder = tmp_path / "specs"
    folder.mkdir()
    for stem, text in texts.items():
        (folder / f"{stem}.yaml").write_text(text)
    loaded = load_folder(folder)
    assert [item.error for item in loaded] == [None] * len(loaded), [str(item.error) for item in loaded]
    dags = [dag for item in loaded for dag in build_dags(item.spec, source_text=item.text)]
    return {dag.dag_id: DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag)) for dag in dags}


def trigger_uris(timetable) -> list[str]:
    return [asset.uri for _, asset in timetable.asset_condition.iter_assets()]


def listens_to_assets(timetable) -> bool:
    return bool(list(timetable.asset_condition.iter_assets()))


def outlet_uris(dag, task_id: str) -> list[str]:
    return [outlet.uri for outlet in dag.get_task(task_id).outlets if hasattr(outlet, "uri")]


def promotion_alias(dag) -> str:
    """The name of the promote task's one outlet, an asset alias."""
    (alias,) = dag.get_task(tasks.PROMOTE).outlets
    assert not hasattr(alias, "uri"), alias
    return alias.name


# --------------------------------------------------------------------------- ct_: what starts it


def test_a_cron_alone_when_nothing_else_retrains(tmp_path):
    from airflow.timetables.trigger import CronTriggerTimetable

    dags = build(tmp_path, churn=churn(schedule="retrain_on: []"))
    timetable = dags["ct_churn"].timetable
    assert type(timetable) is CronTriggerTimetable
    assert timetable.summary == CRON and str(timetable._timezone) == "UTC"


def test_a_breach_alone_when_there_is_no_cron(tmp_path):
    from airflow.timetables.simple import AssetTriggeredTimetable

    dags = build(tmp_path, churn=churn(('train: "0 3 * * 1"', "train: null"), schedule="retrain_on: [drift]"))
    timetable = dags["ct_churn"].timetable
    assert type(timetable) is AssetTriggeredTimetable
    assert trigger_uris(timetable) == [assets.breach_uri("churn")]


def test_no_cron_and_no_trigger_runs_only_when_triggered(tmp_path):
    from airflow.timetables.simple import NullTimetable

    dags = build(tmp_path, churn=churn(('train: "0 3 * * 1"', "train: null"), schedule="retrain_on: []"))
    assert type(dags["ct_churn"].timetable) is NullTimetable


def test_cron_or_breach_by_default(tmp_path):
    """The default ``retrain_on`` is [drift, performance]: the cron or a breach, whichever comes first."""
    from airflow.timetables.assets import AssetOrTimeSchedule

    timetable = build(tmp_path, churn=churn())["ct_churn"].timetable
    assert type(timetable) is AssetOrTimeSchedule
    assert timetable.timetable.summary == CRON
    assert trigger_uris(timetable) == [assets.breach_uri("churn")]


def test_after_an_upstream_pipeline_promotes_and_on_extra_assets(tmp_path):
    """``after: [upstream]`` listens to the upstream's promoted asset; ``assets:`` to the given URIs;
    with the breach and the cron, any of them starts a retraining."""
    from airflow.timetables.assets import AssetOrTimeSchedule

    upstream = churn(("pipeline: churn", "pipeline: features_refresh"), schedule="retrain_on: []")
    downstream = churn(schedule="after: [features_refresh]\nassets: ['s3://lake/churn/labels', 'postgres://warehouse:5432/crm/public/accounts']")
    dags = build(tmp_path, features_refresh=upstream, churn=downstream)
    timetable = dags["ct_churn"].timetable
    assert type(timetable) is AssetOrTimeSchedule and timetable.timetable.summary == CRON
    assert trigger_uris(timetable) == [assets.breach_uri("churn"), assets.promoted_uri("features_refresh"),
                                       "s3://lake/churn/labels", "postgres://warehouse:5432/crm/public/accounts"]
    # The upstream announces what the downstream listens to: its promote task adds the promoted asset's
    # event to this alias only when the champion moved (tests/integration/test_ct_dag.py sees it fire).
    assert promotion_alias(dags["ct_features_refresh"]) == assets.ct_promotion_alias_name("features_refresh")


def test_after_without_cron_or_breach_is_purely_asset_triggered(tmp_path):
    from airflow.timetables.simple import AssetTriggeredTimetable

    upstream = churn(("pipeline: churn", "pipeline: up"))
    downstream = churn(('train: "0 3 * * 1"', "train: null"), schedule="retrain_on: []\nafter: [up]")
    timetable = build(tmp_path, up=upstream, churn=downstream)["ct_churn"].timetable
    assert type(timetable) is AssetTriggeredTimetable
    assert trigger_uris(timetable) == [assets.promoted_uri("up")]


# --------------------------------------------------------------------------- time fields


def test_timezone_start_end_and_catchup_reach_both_dags(tmp_path):
    dags = build(tmp_path, churn=churn(schedule="timezone: Europe/Paris\nend_date: 2024-06-30\ncatchup: true\n"
                                                "monitor: '30 6 * * *'\nretrain_on: []"))
    for dag in (dags["ct_churn"], dags["monitor_churn"]):
        assert str(dag.timetable._timezone) == "Europe/Paris", dag.dag_id
        assert dag.start_date == datetime(2024, 1, 1, tzinfo=UTC)
        assert dag.end_date == datetime(2024, 6, 30, tzinfo=UTC)
        assert dag.catchup is True
    assert dags["ct_churn"].timetable.summary == CRON and dags["monitor_churn"].timetable.summary == "30 6 * * *"
    # The cron is read in the spec's zone: 03:00 in Paris on a Monday of winter is 02:00 UTC.
    first = dags["ct_churn"].next_dagrun_info(last_automated_run_info=None)
    assert first.run_after == datetime(2024, 1, 1, 2, tzinfo=UTC)


def test_defaults_when_the_spec_says_nothing(tmp_path):
    dags = build(tmp_path, churn=churn())
    ct, monitor = dags["ct_churn"], dags["monitor_churn"]
    assert ct.end_date is None and ct.catchup is False and str(ct.timetable.timetable._timezone) == "UTC"
    assert monitor.timetable.summary == "0 0 * * *"  # the model's default "@daily"


# --------------------------------------------------------------------------- monitor_


def test_monitor_runs_on_its_cron_or_not_at_all(tmp_path):
    from airflow.timetables.simple import NullTimetable
    from airflow.timetables.trigger import CronTriggerTimetable

    dags = build(tmp_path, churn=churn(schedule="monitor: '0 6 * * 1'"))
    assert type(dags["monitor_churn"].timetable) is CronTriggerTimetable
    assert dags["monitor_churn"].timetable.summary == "0 6 * * 1"
    # Monitoring is never asset-triggered, whatever the ct_ DAG listens to.
    assert not listens_to_assets(dags["monitor_churn"].timetable)
    (tmp_path / "off").mkdir()
    off = build(tmp_path / "off", churn=churn(schedule="monitor: null"))
    assert type(off["monitor_churn"].timetable) is NullTimetable


# --------------------------------------------------------------------------- what each DAG announces


def test_direct_promotion_announces_the_new_champion_on_the_promoted_asset(tmp_path):
    dags = build(tmp_path, churn=churn(extra="registry: {strategy: direct}\n"))
    # An alias, not the asset: a plain outlet would announce every success, a lost compare-and-set or a
    # dry run included; the task adds the promoted asset's event only when the champion moved.
    assert promotion_alias(dags["ct_churn"]) == assets.ct_promotion_alias_name("churn")
    assert outlet_uris(dags["ct_churn"], tasks.PROMOTE) == []
    assert outlet_uris(dags["ct_churn"], tasks.ROLLBACK) == [assets.promoted_uri("churn")]
    # Monitoring never promotes with direct: its performance task announces nothing.
    assert dags["monitor_churn"].get_task(tasks.PERFORMANCE).outlets == []


@pytest.mark.parametrize("strategy", ["shadow", "canary"])
def test_shadow_and_canary_announce_through_monitorings_alias(tmp_path, strategy):
    """The CT run only sets a challenger (no new champion, so no promoted event); monitoring promotes
    it later and announces that through an asset alias that resolves to the promoted asset."""
    dags = build(tmp_path, churn=churn(extra=f"registry: {{strategy: {strategy}}}\n"))
    assert outlet_uris(dags["ct_churn"], tasks.PROMOTE) == []
    assert outlet_uris(dags["ct_churn"], tasks.ROLLBACK) == [assets.promoted_uri("churn")]
    (alias,) = dags["monitor_churn"].get_task(tasks.PERFORMANCE).outlets
    assert alias.name == assets.monitor_promotion_alias_name("churn") and not hasattr(alias, "uri")


def test_act_on_breach_is_the_only_task_that_announces_a_breach(tmp_path):
    dags = build(tmp_path, churn=churn())
    announcing = {task.task_id: outlet_uris(dag, task.task_id) for dag in dags.values() for task in dag.tasks
                  if assets.breach_uri("churn") in outlet_uris(dag, task.task_id)}
    assert announcing == {tasks.ACT_ON_BREACH: [assets.breach_uri("churn")]}


def test_a_pipeline_listens_to_its_own_breach_only_when_retrain_on_says_so(tmp_path):
    """The monitor DAG announces breaches either way (alerts, other listeners); ``retrain_on: []``
    only stops this pipeline's own ct_ DAG from listening."""
    dags = build(tmp_path, churn=churn(schedule="retrain_on: []"))
    assert outlet_uris(dags["monitor_churn"], tasks.ACT_ON_BREACH) == [assets.breach_uri("churn")]
    assert not listens_to_assets(dags["ct_churn"].timetable)


# --------------------------------------------------------------------------- defaults.*


def test_defaults_reach_every_task_of_both_dags(tmp_path):
    dags = build(tmp_path, churn=churn(extra="defaults: {retries: 5, retry_delay: 90s, task_timeout: 20m}\n"))
    for dag in dags.values():
        for task in dag.tasks:
            if task.task_type == "ApprovalOperator":  # waits for a human, bounded by its response timeout
                continue
            assert (task.retries, task.retry_delay, task.execution_timeout, task.owner) == (
                5, timedelta(seconds=90), timedelta(minutes=20), "data-science"), f"{dag.dag_id}.{task.task_id}"
