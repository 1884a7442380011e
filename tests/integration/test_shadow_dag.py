"""Shadow deployment end to end through real Airflow DAG runs, Feast, MLflow and the predictions store.

ct_ (strategy shadow) trains a first model, which becomes champion since there is nothing to
shadow; a second ct_ run's better candidate becomes ``challenger``; then weekly monitor_ runs
score both models on the same rows, and once the sequential test on their per-row loss
differences (``registry.challenger_test: sequential``, the default) shows the challenger better,
after at least ``promote_after`` windows, monitoring promotes it through the registry's alias
history. (Under the streak rule this test expected two consecutive wins; the June candidate is
clearly better here, a Brier improvement of about 0.04 with its 95% bounds well above 0, so the
test decides at the same window.)
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import QUICK_TRIGGER_ONLY, demo_spec

pytestmark = pytest.mark.integration

PIPELINE = "shadow_flights"
SPEC = re.sub(r"  slice_thresholds:.*\n(    .*\n)+", "", demo_spec(
    *QUICK_TRIGGER_ONLY,
    ("pipeline: flight_delay", f"pipeline: {PIPELINE}"),
    ("slices: [origin]", "slices: []"),
    ("strategy: direct", "strategy: shadow\n  promote_after: 2"),
))
FIRST, SECOND = datetime(2013, 3, 1, tzinfo=UTC), datetime(2013, 6, 1, tzinfo=UTC)
# Mondays 06:00: windows [06-03, 06-10) and [06-10, 06-17); ground truth one day behind each.
MONITORED = [datetime(2013, 6, 10, 6, tzinfo=UTC), datetime(2013, 6, 17, 6, tzinfo=UTC)]


def test_challenger_wins_two_windows_and_monitoring_promotes_it(airflow_db, feature_repo_ready, dags_folder_with):
    assert "strategy: shadow" in SPEC and "train: null" in SPEC and "slice_thresholds" not in SPEC
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    from ctflow.core.predictions import PredictionStore
    from ctflow.core.registry import ModelRegistry

    bag = DagBag(dag_folder=str(dags_folder_with({f"{PIPELINE}.yaml": SPEC})))
    assert not bag.import_errors, bag.import_errors
    # dag.test() runs only DAGs the DB knows (serialized), of a bundle the DB knows.
    DagBundlesManager().sync_bundles_to_db()
    sync_bag_to_db(bag, "dags-folder", None)
    registry = ModelRegistry(PIPELINE)

    assert bag.get_dag(f"ct_{PIPELINE}").test(logical_date=FIRST).state == "success"
    first = registry.champion()
    assert first is not None and registry.alias_version("challenger") is None  # nothing to shadow yet

    assert bag.get_dag(f"ct_{PIPELINE}").test(logical_date=SECOND).state == "success"
    shadowed = registry.alias_version("challenger")
    assert shadowed is not None and shadowed.version != first.version
    challenger = shadowed.version
    assert registry.champion().version == first.version  # shadow: the champion keeps serving

    store = PredictionStore()
    monitor = bag.get_dag(f"monitor_{PIPELINE}")
    for week, as_of in enumerate(MONITORED, start=1):
        run = monitor.test(logical_date=as_of)
        assert run.state == "success"
        window = dict(pipeline=PIPELINE, window_start=as_of - timedelta(days=7), window_end=as_of)
        # Shadow: both models scored every row of the window.
        assert store.count(**window, alias="champion") == store.count(**window, alias="challenger") > 4000
        if week == 1:
            assert registry.champion().version == first.version, "promoted after one window"

    assert registry.champion().version == challenger
    assert registry.alias_version("challenger") is None  # it is champion now
    moves = [(e.previous, e.version) for e in registry.history(alias="champion") if e.moved]
    assert moves == [(None, first.version), (first.version, challenger)]
    last = registry.history(alias="champion")[-1]
    assert "better by more than 0" in last.reason and "over 2 window(s)" in last.reason
    assert last.actor.startswith(f"airflow:monitor_{PIPELINE}/")
