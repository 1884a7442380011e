"""The CT DAG's first task routes the run, and refuses an audited action without its reason."""

from __future__ import annotations

import pytest

from ctflow.operators.promotion import ChooseActionOperator


@pytest.fixture
def choose() -> ChooseActionOperator:
    return ChooseActionOperator(task_id="choose_action", train_task_id="training.fetch_features",
                                rollback_task_id="rollback")


def test_routes_to_training_by_default_and_to_rollback_when_asked(choose):
    assert choose.choose_branch({"params": {}}) == "training.fetch_features"
    assert choose.choose_branch({"params": {"action": "rollback", "reason": "bad v3"}}) == "rollback"
    assert choose.choose_branch({"params": {"force_promotion": True, "reason": "hotfix"}}) == "training.fetch_features"


@pytest.mark.parametrize("params, what", [
    ({"action": "rollback"}, "a rollback"),
    ({"action": "rollback", "reason": "   "}, "a rollback"),
    ({"force_promotion": True, "reason": None}, "a forced promotion"),
])
def test_an_audited_action_without_a_reason_fails_before_training(choose, params, what):
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException, match=f"{what} needs params.reason"):
        choose.choose_branch({"params": params})
