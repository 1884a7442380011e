"""Canary deployment end to end through real Airflow DAG runs, Feast, MLflow and the predictions store.

One story, in order, on the pipeline ``canary_flights`` (strategy canary, daily monitoring windows):

1. ``ct_`` trains a deliberately weak champion: a one-split decision tree with balanced class
   weights (an allowlisted estimator; it barely ranks flights - a daily ROC AUC of 0.42-0.5 here -
   and its probabilities sit near 0.5, far from the ~20% delay rate, so it loses on ranking and on
   calibration alike);
2. a second ``ct_`` run's normal model (gradient boosting) beats it on the holdout and becomes
   ``challenger``; the champion keeps serving;
3. ``monitor_`` runs, one per day: each routes the window's rows between the two (the routing is
   checked against a binomial tolerance, and a dry run then the real run of the first window route
   the same rows), and once the ground truth shows the challenger better, monitoring promotes it,
   retires the ``challenger`` alias and records both moves in the registry's history;
4. a third ``ct_`` run registers the weak model again, now ungated against the champion
   (``versus_champion.enabled: false``), as challenger; monitoring retires it and the champion stays.

The decision rule is the spec's default apart from ``registry.promote_after: 2`` (the streak rule's
length, to keep the runs few). The gaps are large, so any sound rule decides within
:data:`MAX_WINDOWS` windows; the test runs windows until the challenger alias is gone.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import QUICK_TRIGGER_ONLY, demo_spec, write_dags_folder

pytestmark = pytest.mark.integration

PIPELINE = "canary_flights"
FRACTION = 0.3
#: Standard deviations of the routing's binomial allowed around FRACTION (two-sided: a sound
#: router fails one window in ~16,000).
TOLERANCE_SD = 4
MAX_WINDOWS = 4
NORMAL = re.sub(r"  slice_thresholds:.*\n(    .*\n)+", "", demo_spec(
    *QUICK_TRIGGER_ONLY,
    ("pipeline: flight_delay", f"pipeline: {PIPELINE}"),
    ("slices: [origin]", "slices: []"),
    ("strategy: direct", f"strategy: canary\n  canary_fraction: {FRACTION}\n  promote_after: 2"),
    ("  window: 7d\n", "  window: 1d\n"),  # monitoring: a day of departures (~900 rows) per window
    ("performance: {metric: roc_auc, min: 0.62}", "performance: {metric: roc_auc, min: 0.5}"),
))
WEAK = NORMAL.replace("sklearn.ensemble.HistGradientBoostingClassifier", "sklearn.tree.DecisionTreeClassifier") \
    .replace("params: {max_iter: 60}", "params: {max_depth: 1, class_weight: balanced}")
WEAK_UNGATED = WEAK.replace("versus_champion: {min_improvement: 0.0}", "versus_champion: {enabled: false}")
assert "train: null" in NORMAL and "slice_thresholds" not in NORMAL and "  window: 1d\n" in NORMAL
assert "max_depth: 1" in WEAK and "DecisionTreeClassifier" in WEAK and "enabled: false" in WEAK_UNGATED

WEAK_AS_OF, NORMAL_AS_OF = datetime(2013, 3, 1, tzinfo=UTC), datetime(2013, 6, 1, tzinfo=UTC)
WEAK_AGAIN_AS_OF = datetime(2013, 6, 10, tzinfo=UTC)
# Daily runs at 06:00: window [as_of - 1d, as_of); the demo's labels are known when a flight lands.
PROMOTION_DAYS = [datetime(2013, 6, 4, 6, tzinfo=UTC) + timedelta(days=d) for d in range(MAX_WINDOWS)]
RETIREMENT_DAYS = [datetime(2013, 6, 11, 6, tzinfo=UTC) + timedelta(days=d) for d in range(MAX_WINDOWS)]


def routing_tolerance(keys: list[str], fraction: float, sds: float = TOLERANCE_SD) -> float:
    """``sds`` standard deviations of the challenger's share of a window's rows.

    The router hashes each row's entity key, so the unit it assigns is the key, not the row: if
    each key's side were an independent Bernoulli(``fraction``) draw, the challenger's row count
    would have mean ``fraction * n`` and variance ``fraction * (1 - fraction) * sum(g_k ** 2)``,
    ``g_k`` the window's rows of key ``k`` - a binomial over keys, each weighted by its rows. With
    one row per key this is exactly Binomial(n, fraction). Its share's standard deviation divides
    by ``n``.
    """
    sizes = Counter(keys).values()
    return sds * math.sqrt(fraction * (1 - fraction) * sum(g * g for g in sizes)) / len(keys)


def _dags(tmp_path, name: str, spec: str):
    """The DagBag of a DAGs folder holding ``spec``, serialized to Airflow's DB (dag.test() runs only those)."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    bag = DagBag(dag_folder=str(write_dags_folder(tmp_path / name, {f"{PIPELINE}.yaml": spec})))
    assert not bag.import_errors, bag.import_errors
    DagBundlesManager().sync_bundles_to_db()
    sync_bag_to_db(bag, "dags-folder", None)
    return bag


def _monitor_until_decided(bag, days: list[datetime]) -> list[dict]:
    """monitor_ runs over ``days`` until the challenger alias is gone; each window's routed rows."""
    from ctflow.core.predictions import PredictionStore
    from ctflow.core.registry import ModelRegistry
    from ctflow.settings import runs_dir

    registry, store, windows = ModelRegistry(PIPELINE), PredictionStore(), []
    for as_of in days:
        serving = (registry.champion().version, registry.alias_version("challenger").version)
        run = bag.get_dag(f"monitor_{PIPELINE}").test(logical_date=as_of)
        assert run.state == "success"
        rows = store.window_rows(pipeline=PIPELINE, window_start=as_of - timedelta(days=1), window_end=as_of)
        judged = json.loads((runs_dir() / run.dag_id / run.run_id.replace(":", "_").replace("+", "_")
                             / "performance.json").read_text())
        windows.append({"as_of": as_of, "serving": serving, "rows": rows,
                        "judged": {k: judged.get(k) for k in ("rows", "champion", "challenger", "decision", "reason")}})
        if registry.alias_version("challenger") is None:
            return windows
    raise AssertionError(f"no decision after {len(days)} windows: {[w['judged'] for w in windows]}")


@pytest.fixture(scope="module")
def promotion(airflow_db, feature_repo_ready, tmp_path_factory):
    """A weak champion, a normal challenger, a dry run of the first window, then windows until a decision."""
    from airflow.dag_processing.dagbag import DagBag

    from ctflow.core.predictions import PredictionStore
    from ctflow.core.registry import ModelRegistry

    tmp = tmp_path_factory.mktemp("canary")
    registry = ModelRegistry(PIPELINE)
    assert _dags(tmp, "weak", WEAK).get_dag(f"ct_{PIPELINE}").test(logical_date=WEAK_AS_OF).state == "success"
    weak = registry.champion()
    assert weak is not None and registry.alias_version("challenger") is None  # the first model is champion

    bag = _dags(tmp, "normal", NORMAL)
    assert bag.get_dag(f"ct_{PIPELINE}").test(logical_date=NORMAL_AS_OF).state == "success"
    challenger = registry.alias_version("challenger")
    assert challenger is not None and challenger.version != weak.version, "the normal model did not beat the weak one"
    assert registry.champion().version == weak.version  # canary: the champion keeps serving

    first = PROMOTION_DAYS[0]
    # The dry run gets a DAG object of its own: Airflow resolves a run's conf into the DAG's own
    # Param objects (airflow.sdk.definitions.param.process_params), so within one process a
    # conf would outlive its run and turn the following dag.test() runs into dry runs too.
    dry = DagBag(dag_folder=bag.dag_folder).get_dag(f"monitor_{PIPELINE}").test(logical_date=first,
                                                                              run_conf={"dry_run": True})
    assert dry.state == "success"
    dry_rows = PredictionStore().window_rows(pipeline=PIPELINE, window_start=first - timedelta(days=1),
                                             window_end=first)
    assert registry.alias_version("challenger").version == challenger.version  # a dry run decides nothing
    return {"weak": weak.version, "normal": challenger.version, "dry_rows": dry_rows,
            "windows": _monitor_until_decided(bag, PROMOTION_DAYS), "tmp": tmp}


def test_canary_routes_the_stated_share_of_rows_the_same_way_every_run(promotion):
    from ctflow.core.scoring import canary_mask

    for window in promotion["windows"]:
        rows, (champion, challenger) = window["rows"], window["serving"]
        n = len(rows)
        assert n > 500, f"{window['as_of']}: {n} rows"  # a day of New York departures
        assert len({r["row"] for r in rows}) == n  # each row served once, by one model
        routed = [r["alias"] == "challenger" for r in rows]
        assert {(r["alias"], r["model_version"]) for r in rows} == {("champion", champion), ("challenger", challenger)}
        share, tolerance = sum(routed) / n, routing_tolerance([r["entity_key"] for r in rows], FRACTION)
        assert abs(share - FRACTION) <= tolerance, (
            f"{window['as_of']}: challenger share {share:.3f} of {n} rows, outside {FRACTION} +/- {tolerance:.3f}")
        # The side is the entity key's hash (salted by the model name), nothing else.
        assert routed == canary_mask([r["entity_key"] for r in rows], FRACTION, salt=PIPELINE).tolist()

    # A re-run of a window (here: its dry run, then the real run) routes the same rows the same way.
    first = promotion["windows"][0]["rows"]
    assert [(r["row"], r["entity_key"], r["alias"]) for r in promotion["dry_rows"]] == \
        [(r["row"], r["entity_key"], r["alias"]) for r in first]
    # An entity seen on two days is served by the same side both times (sticky routing).
    sides: dict[str, set[str]] = {}
    for window in promotion["windows"]:
        for r in window["rows"]:
            sides.setdefault(r["entity_key"], set()).add(r["alias"])
    assert all(len(s) == 1 for s in sides.values())


def test_a_clearly_better_challenger_is_promoted_by_monitoring(promotion):
    from ctflow.core.registry import ModelRegistry

    registry = ModelRegistry(PIPELINE)
    weak, normal = promotion["weak"], promotion["normal"]
    assert registry.champion().version == normal
    assert registry.alias_version("challenger") is None  # retired: it is champion now
    assert all(w["serving"] == (weak, normal) for w in promotion["windows"])  # nothing moved before the decision

    moves = [(e.previous, e.version) for e in registry.history(alias="champion") if e.moved]
    assert moves == [(None, weak), (weak, normal)]
    promoted = registry.history(alias="champion")[-1]
    assert promoted.action == "promote" and promoted.actor.startswith(f"airflow:monitor_{PIPELINE}/")
    assert promoted.reason.startswith("monitoring: ") and f"v{normal}" in promoted.reason
    retired = registry.history(alias="challenger")[-1]
    assert (retired.action, retired.version, retired.previous) == ("retire", None, normal)
    assert retired.reason.startswith("promoted to champion")


def test_a_clearly_worse_challenger_is_retired_by_monitoring(promotion):
    from ctflow.core.registry import ModelRegistry

    registry = ModelRegistry(PIPELINE)
    champion = promotion["normal"]
    bag = _dags(promotion["tmp"], "weak_ungated", WEAK_UNGATED)
    assert bag.get_dag(f"ct_{PIPELINE}").test(logical_date=WEAK_AGAIN_AS_OF).state == "success"
    worse = registry.alias_version("challenger")
    assert worse is not None and worse.version not in (promotion["weak"], champion)

    windows = _monitor_until_decided(bag, RETIREMENT_DAYS)
    assert registry.champion().version == champion
    assert registry.alias_version("challenger") is None
    assert all(w["serving"] == (champion, worse.version) for w in windows)
    assert [(e.previous, e.version) for e in registry.history(alias="champion") if e.moved][-1] == \
        (promotion["weak"], champion)  # no champion move since the promotion
    retired = registry.history(alias="challenger")[-1]
    assert (retired.action, retired.version, retired.previous) == ("retire", None, worse.version)
    assert retired.reason.startswith("monitoring: ") and f"v{worse.version}" in retired.reason
    assert retired.actor.startswith(f"airflow:monitor_{PIPELINE}/")
