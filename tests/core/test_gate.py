"""The promotion gate's rules, on numbers."""

from __future__ import annotations

from ctflow.core.gate import PROMOTE, REJECT_CHAMPION, REJECT_FLOOR, beats, decide
from ctflow.spec.models import Evaluation


def evaluation(**kwargs) -> Evaluation:
    return Evaluation.model_validate({"metric": "roc_auc", "thresholds": {"roc_auc": {"min": 0.7}}, **kwargs})


def test_first_run_uses_absolute_thresholds_only():
    result = decide(task="classification", evaluation=evaluation(), candidate={"roc_auc": 0.71}, champion=None,
                    champion_version=None)
    assert result.decision == PROMOTE and "no champion" in result.reason


def test_below_floor_is_rejected_and_marked_even_without_champion():
    result = decide(task="classification", evaluation=evaluation(), candidate={"roc_auc": 0.69}, champion=None,
                    champion_version=None)
    assert result.decision == REJECT_FLOOR and not result.passed_floors
    assert result.checks[0] == {"check": "roc_auc", "observed": 0.69, "needs": ">= 0.7", "passed": False}


def test_candidate_must_beat_champion_by_min_improvement():
    ev = evaluation(versus_champion={"min_improvement": 0.01})
    lose = decide(task="classification", evaluation=ev, candidate={"roc_auc": 0.805}, champion={"roc_auc": 0.8},
                  champion_version="3")
    win = decide(task="classification", evaluation=ev, candidate={"roc_auc": 0.811}, champion={"roc_auc": 0.8},
                 champion_version="3")
    assert lose.decision == REJECT_CHAMPION and lose.passed_floors and "v3" in lose.reason
    assert win.decision == PROMOTE


def test_lower_is_better_metrics_compare_the_other_way():
    assert beats("regression", "rmse", 9.0, 10.0, 0.5)
    assert not beats("regression", "rmse", 9.8, 10.0, 0.5)
    assert beats("classification", "log_loss", 0.40, 0.45, 0.0)


def test_a_slice_below_the_floor_blocks_promotion_but_small_slices_do_not():
    slices = {"origin": {"EWR": {"rows": 500, "roc_auc": 0.65}, "LGA": {"rows": 50, "roc_auc": 0.1},
                         "JFK": {"rows": 900, "roc_auc": 0.75}}}
    result = decide(task="classification", evaluation=evaluation(min_slice_rows=100), candidate={"roc_auc": 0.74},
                    champion=None, champion_version=None, slices=slices)
    assert result.decision == REJECT_FLOOR
    assert "roc_auc[origin=EWR]=0.65" in result.reason and "LGA" not in result.reason


def test_slices_have_their_own_floors_when_the_spec_gives_them():
    slices = {"origin": {"EWR": {"rows": 500, "roc_auc": 0.65}, "JFK": {"rows": 900, "roc_auc": 0.58}}}
    looser = evaluation(slices=["origin"], slice_thresholds={"roc_auc": {"min": 0.6}})
    result = decide(task="classification", evaluation=looser, candidate={"roc_auc": 0.74},
                    champion=None, champion_version=None, slices=slices)
    assert result.decision == REJECT_FLOOR
    assert result.reason == "below absolute threshold: roc_auc[origin=JFK]=0.58"  # EWR passes 0.6, not 0.7
    fine = {"origin": {"EWR": {"rows": 500, "roc_auc": 0.65}, "JFK": {"rows": 900, "roc_auc": 0.61}}}
    assert decide(task="classification", evaluation=looser, candidate={"roc_auc": 0.74}, champion=None,
                  champion_version=None, slices=fine).decision == PROMOTE
    # The overall floor still applies to the whole holdout.
    assert decide(task="classification", evaluation=looser, candidate={"roc_auc": 0.69}, champion=None,
                  champion_version=None, slices=fine).decision == REJECT_FLOOR


def test_champion_comparison_can_be_disabled():
    result = decide(task="classification", evaluation=evaluation(versus_champion={"enabled": False}),
                    candidate={"roc_auc": 0.71}, champion={"roc_auc": 0.9}, champion_version="1")
    assert result.decision == PROMOTE and "disabled" in result.reason


def test_one_bound_check_for_the_gate_and_monitoring():
    """The gate's floors and monitoring's performance bounds are the spec's one check, inclusive."""
    from ctflow.spec.models import Bound, Performance

    bound = Bound(min=0.7, max=0.9)
    assert [bound.breach(v) for v in (0.7, 0.9, None)] == [None, None, None]
    assert bound.breach(0.69) == "0.6900 < min 0.7" and bound.breach(0.95) == "0.9500 > max 0.9"
    assert bound.needs == ">= 0.7 and <= 0.9"
    assert Performance(metric="rmse", max=3.0).breach(3.5) == "3.5000 > max 3.0"
    # The gate passes only a measured value: unknown or NaN fails the floor.
    for value in (None, float("nan")):
        assert decide(task="classification", evaluation=evaluation(), candidate={"roc_auc": value}, champion=None,
                      champion_version=None).decision == REJECT_FLOOR
    checked = decide(task="classification", evaluation=evaluation(), candidate={"roc_auc": 0.7}, champion=None,
                     champion_version=None)
    assert checked.decision == PROMOTE and checked.checks[0]["needs"] == ">= 0.7"
