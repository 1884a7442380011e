"""``ctflow.core.policy``: the retrain decision the monitoring DAG and the replay share, on facts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ctflow.core import policy
from ctflow.core.replay import override_spec
from ctflow.spec import load_spec
from tests.conftest import PROJECT

END = datetime(2013, 3, 15, tzinfo=UTC)


@pytest.fixture(scope="module")
def spec():
    return override_spec(load_spec(PROJECT / "dags" / "specs" / "flight_delay.yaml"), {
        "schedule.retrain_on": ["drift", "performance", "no_champion"], "schedule.retrain_cooldown": "14d"})


def test_breaches_listed_in_retrain_on_retrain_and_others_are_only_alerted(spec):
    decision = policy.decide_retrain(spec, breaches=["performance", "insufficient_data", "drift"], window_end=END)
    assert decision.retrain and decision.triggers == ["drift", "performance"]
    assert decision.breaches == ["drift", "insufficient_data", "performance"] and decision.held_back == []
    assert decision.reason == f"breach (drift, insufficient_data, performance): alert and trigger {spec.ct_dag_id}"
    only_alerted = policy.decide_retrain(spec, breaches=["insufficient_data"], window_end=END)
    assert not only_alerted.retrain and "does not retrain on it" in only_alerted.reason
    assert policy.decide_retrain(spec, window_end=END).reason == "no breach in this window"


def test_the_cooldown_holds_back_breaches_but_not_the_cron_or_a_missing_champion(spec):
    recent = END - timedelta(days=7)
    held = policy.decide_retrain(spec, breaches=["drift"], scheduled=True, window_end=END, last_trained=recent)
    assert held.triggers == ["schedule"] and held.held_back == ["drift"]
    assert held.cooldown == policy.cooldown_reason(spec, END, recent) and "7d before" in held.cooldown
    assert held.reason.startswith("schedule.train") and "alerted, not retrained" in held.reason
    old_enough = policy.decide_retrain(spec, breaches=["drift"], window_end=END, last_trained=END - timedelta(days=14))
    assert old_enough.triggers == ["drift"] and old_enough.cooldown is None
    cold = policy.decide_retrain(spec, has_champion=False, window_end=END, last_trained=recent)
    assert cold.triggers == ["no_champion"] and cold.reason.endswith(f"as of {END.isoformat()}")
    waits = override_spec(spec, {"schedule.retrain_on": ["performance"]})
    assert policy.decide_retrain(waits, has_champion=False, window_end=END).triggers == []


def test_assess_reads_the_performance_bound_the_step_recorded(spec):
    perf = {"available": True, "breach": spec.monitoring.performance.breach(0.1), "metric": "roc_auc",
            "champion": {"version": "3"}, "window_start": "a", "window_end": "b"}
    breaches = policy.assess(spec, data={"available": False}, predictions={}, perf=perf)
    assert [(b["kind"], b["what"]) for b in breaches] == [("performance", "performance")]
    assert "champion v3 roc_auc 0.1000 < min" in breaches[0]["reason"]
