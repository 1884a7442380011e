"""``ctflow.core.replay`` and ``ctflow replay`` on the real 2013 flights, through real Feast.

Short and cheap: 2013-03-01..2013-04-15 in weekly steps, the flight_delay spec with a 14-day
window and a small gradient-boosting model. The feature frame is built once per module.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import yaml

from ctflow.cli import main
from ctflow.core import replay
from ctflow.core.replay import CTFLOW, EVERY, NEVER
from ctflow.spec import load_spec
from tests.conftest import PROJECT

pytestmark = pytest.mark.integration

START, END, EVERY_STEP = "2013-03-01", "2013-04-15", timedelta(days=7)
SMALL = {
    "data.window": "14d",
    "data.holdout": "4d",
    "quality.min_rows": 1000,
    "model.params": {"max_iter": 20, "max_leaf_nodes": 15},
    "schedule.train": "0 2 * * 1",  # weekly: every step trains, whatever the demo spec's cadence
}


@pytest.fixture(scope="module")
def spec():
    return replay.override_spec(load_spec(PROJECT / "dags" / "specs" / "flight_delay.yaml"), SMALL)


@pytest.fixture(scope="module")
def data(feature_repo_ready, spec) -> replay.ReplayFrame:
    return replay.load_frame(spec, replay.as_utc(START), replay.as_utc(END), feature_repo=feature_repo_ready)


@pytest.fixture(scope="module")
def result(spec, data) -> replay.ReplayResult:
    return replay.replay(spec, data, start=START, end=END, every=EVERY_STEP)


# --- pure time arithmetic ---------------------------------------------------------------------


def test_steps_cover_the_range_and_the_last_may_be_short():
    steps = replay.make_steps(replay.as_utc(START), replay.as_utc(END), EVERY_STEP)
    assert len(steps) == 7
    assert steps[0].start == datetime(2013, 3, 1, tzinfo=UTC)
    assert all(a.end == b.start for a, b in zip(steps, steps[1:]))
    assert steps[-1].end == datetime(2013, 4, 15, tzinfo=UTC)
    assert steps[-1].end - steps[-1].start == timedelta(days=3)
    with pytest.raises(replay.ReplayError):
        replay.make_steps(replay.as_utc(END), replay.as_utc(START), EVERY_STEP)


def test_the_worst_step_follows_the_metric_direction():
    """roc_auc: the worst step is the lowest; rmse (lower is better): the highest."""
    at = datetime(2013, 3, 1, tzinfo=UTC)
    records = [replay.StepRecord(i, at, at, 10, value, "m") for i, value in enumerate([0.7, 0.5, None, 0.9])]
    assert replay.PolicyResult("p", "", records).worst_metric == 0.5
    assert replay.PolicyResult("p", "", records, higher_is_better=False).worst_metric == 0.9
    assert replay.PolicyResult("p", "", records[2:3]).worst_metric is None


def test_cron_ticks_of_the_weekly_monday_schedule():
    ticks = replay.cron_ticks("0 2 * * 1", replay.as_utc("2013-03-01"), replay.as_utc("2013-03-15"))
    assert ticks == [datetime(2013, 3, 4, 2, tzinfo=UTC), datetime(2013, 3, 11, 2, tzinfo=UTC)]
    assert len(replay.cron_ticks("@monthly", replay.as_utc("2013-02-01"), replay.as_utc("2013-12-31"))) == 10
    assert replay.cron_ticks(None, replay.as_utc("2013-02-01"), replay.as_utc("2013-12-31")) == []
    # Presets expand as the spec defines them (one table for the spec's validation and the replay).
    assert replay.cron_ticks("@weekly", replay.as_utc("2013-03-01"), replay.as_utc("2013-03-15")) == \
        replay.cron_ticks("0 0 * * 0", replay.as_utc("2013-03-01"), replay.as_utc("2013-03-15"))


# --- the replay -------------------------------------------------------------------------------


def test_a_slice_of_the_year_frame_is_what_fetch_features_builds(spec, data, tmp_path, feature_repo_ready):
    """Point in time: slicing the one big Feast frame equals the DAG's own per-window fetch."""
    from ctflow.core import features, steps

    as_of = datetime(2013, 3, 22, tzinfo=UTC)
    fetched = steps.fetch_features(spec, as_of=as_of, run_dir=tmp_path, feature_repo=feature_repo_ready)
    window = data.labelled_by(spec.data.window.before(as_of), as_of, as_of)  # labels known at as_of
    assert features.fingerprint(window, timestamp=spec.data.timestamp)["sha256"] == fetched["sha256"]
    assert fetched["features"] == data.features


def test_training_counts_per_policy(result):
    steps = len(result.policy(EVERY).steps)
    assert steps == 7
    assert (result.policy(NEVER).trainings, result.policy(NEVER).promotions) == (1, 1)
    assert (result.policy(EVERY).trainings, result.policy(EVERY).promotions) == (steps, steps)
    ctflow = result.policy(CTFLOW)
    # The weekly Monday cron ticks once in every weekly step: ctflow trains at each step that passes quality.
    assert ctflow.trainings == sum(1 for s in ctflow.steps if s.decision not in (None, "quality_failed")) == steps
    assert 1 <= ctflow.promotions <= ctflow.trainings
    assert [s.triggers[0] for s in ctflow.steps[1:]] == ["schedule"] * (steps - 1)
    # Each as_of is fitted once and shared: never's model is every's first, ctflow's candidates are every's.
    assert result.fits == steps
    assert result.policy(NEVER).steps[-1].model == result.policy(EVERY).steps[0].model == "2013-03-01"
    every_models = {s.model for s in result.policy(EVERY).steps}
    assert {s.model for s in ctflow.steps if s.model} <= every_models
    # Each step is scored on its own rows by every policy with a model.
    assert all(s.rows > 1000 for s in ctflow.steps)
    assert all(s.metric is not None and 0.4 < s.metric < 1 for s in result.policy(EVERY).steps)


def test_the_goal_is_judged_in_the_metrics_direction_and_against_never_too(result):
    """roc_auc: higher is better; the goal's gap is positive when ctflow is better than every, and
    the goal needs ctflow better than never as well (each over the steps both scored)."""
    ctflow, every, never = (result.policy(name) for name in (CTFLOW, EVERY, NEVER))
    goal = result.goal()
    mine, theirs, steps = ctflow.paired(every)
    assert goal["mean_metric_gap"] == pytest.approx(mine / theirs - 1, abs=1e-6) and goal["paired_steps"] == steps
    mine, theirs, _ = ctflow.paired(never)
    assert goal["above_never"] is (mine > theirs)
    assert goal["met"] is (goal["within_metric_gap"] and goal["within_training_share"] and goal["above_never"])
    # The paired difference: the mean of the step-by-step differences, and its standard error.
    differences = [a.metric - b.metric for a, b in zip(ctflow.steps, every.steps, strict=True)
                   if a.metric is not None and b.metric is not None]
    assert goal["paired_difference"] == pytest.approx(np.mean(differences), abs=1e-6)
    assert goal["paired_difference_se"] == pytest.approx(np.std(differences, ddof=1) / np.sqrt(steps), abs=1e-6)
    [line] = [line for line in result.table().splitlines() if line.startswith("goal for ctflow ")]
    direction = "better" if goal["mean_metric_gap"] >= 0 else "worse"
    assert f"{abs(goal['mean_metric_gap']):.2%} {direction} than every over the {steps} steps" in line
    assert f"paired difference {goal['paired_difference']:+.4f} (SE {goal['paired_difference_se']:.4f})" in line
    [row] = [row for row in result.table().splitlines() if row.startswith("| ctflow |")]
    assert f"| {goal['paired_difference']:+.4f} (SE {goal['paired_difference_se']:.4f}) |" in row
    assert line.endswith(f"{'better' if goal['above_never'] else 'not better'} than never)")


def test_ctflow_never_deploys_a_candidate_that_failed_the_gate(result, spec):
    ctflow = result.policy(CTFLOW)
    trained = [s for s in ctflow.steps if s.trained]
    assert any(s.decision != "promote" for s in trained), "this range should exercise a rejected candidate"
    floor = spec.evaluation.thresholds[spec.evaluation.metric].min
    champion = None
    for s in ctflow.steps:
        assert s.promoted == (s.decision == "promote")
        if s.promoted:
            assert s.candidate_metric >= floor
            assert s.champion_metric is None or s.candidate_metric >= s.champion_metric
            champion = f"{s.start:%Y-%m-%d}"
        # The model in use is always the last promoted candidate (none before the first promotion).
        assert s.model == champion
        assert (s.metric is None) == (champion is None)
    # Rejected candidates never served a single step.
    rejected = {f"{s.start:%Y-%m-%d}" for s in trained if s.decision != "promote"}
    assert not rejected & {s.model for s in ctflow.steps}


def test_monitoring_is_recorded_against_the_champion(result, spec):
    ctflow = result.policy(CTFLOW)
    monitored = [s for s in ctflow.steps[1:] if ctflow.steps[s.step - 1].model is not None]
    assert monitored
    watched = set(spec.monitoring.drift.columns or [])
    for s in monitored:
        assert s.drift_share is not None and 0 <= s.drift_share <= 1
        assert not watched or set(s.drifted_columns) <= watched
        assert s.monitored_metric is not None
        assert s.scores_drifted is not None
        drifted = s.drift_share >= spec.monitoring.drift.max_drifted_share or s.scores_drifted
        assert ("drift" in s.triggers) == drifted
        assert ("performance" in s.triggers) == (s.monitored_metric < spec.monitoring.performance.min)


def test_prediction_drift_is_judged_as_the_monitoring_dag_judges_the_same_scores(spec, data, result, tmp_path):
    """Each monitored step's champion scores and holdout scores, laid out as the DAG reads them
    (window frame, ``reference/scores.npy``, ``reference/labels.npy``, ``reference/scores_null.json``),
    through the DAG's ``prediction_drift``: the replay breached on prediction drift exactly when
    that check said drifted, and its performance estimate is the DAG's ``estimated_performance``."""
    import numpy as np
    import pandas as pd

    from ctflow.core import monitoring
    from ctflow.core.drift.scores import model_score_null
    from ctflow.core.fit import LABEL
    from ctflow.core.monitoring.estimated import realized_breach
    from ctflow.core.training import predict_scores

    ctflow, bank = result.policy(CTFLOW), replay.ModelBank(spec, data)
    steps = replay.make_steps(replay.as_utc(START), replay.as_utc(END), EVERY_STEP)
    monitored = [s for s in ctflow.steps[1:] if ctflow.steps[s.step - 1].model is not None]
    assert monitored
    verdicts = []
    for s in monitored:
        model_id = ctflow.steps[s.step - 1].model
        champion = bank.train(replay.as_utc(model_id))
        assert champion.id == model_id
        previous = steps[s.step - 1]
        current = bank.scores(champion, data.between(previous.start, previous.end), previous.index)
        holdout = champion.holdout_rows
        order = np.argsort(holdout[spec.data.timestamp].to_numpy(), kind="stable")  # as steps.train stores them
        run_dir = tmp_path / f"step-{s.step}"
        folder = run_dir / "reference" / "champion"
        folder.mkdir(parents=True)
        np.save(folder / "scores.npy", bank.reference_scores(champion)[order])
        np.save(folder / "labels.npy", holdout[LABEL].to_numpy(dtype="float64")[order])
        # The score null as steps.train computes it: the champion's scores on its training rows.
        train = champion.train_rows
        null = model_score_null(spec, predict_scores(champion.pipeline, train[champion.features.all], spec.model.task),
                                train[spec.data.timestamp].to_numpy(), holdout_rows=len(holdout))
        # 10 training days hold fewer than three 7-day windows: no null, the scores are judged raw
        # (tests/core/test_monitoring.py checks a calibrated one through the real train step).
        assert null is None
        pd.DataFrame({monitoring.CHAMPION_SCORE: current, monitoring.CHALLENGER_SCORE: np.nan}).to_parquet(
            run_dir / monitoring.WINDOW_FRAME, index=False)
        (run_dir / monitoring.SCORE).write_text(json.dumps({"champion": {"version": model_id, "run_id": model_id}}))
        dag = monitoring.prediction_drift(spec, run_dir=run_dir)
        breaches = {b["what"] for b in monitoring.assess(spec, data={}, predictions=dag, perf={})}
        champion_verdict = dag["models"]["champion"]
        assert s.scores_drifted == champion_verdict["drifted"] == ("prediction_drift" in breaches)
        statistic = champion_verdict["p_value"] if champion_verdict["p_value"] is not None else champion_verdict["statistic"]
        assert s.score_drift == pytest.approx(statistic, abs=1e-4)
        assert champion_verdict["calibrated"] is False and champion_verdict["threshold"] == 0.1
        if s.scores_drifted and "drift" in spec.schedule.retrain_on:
            assert "drift" in s.triggers or "drift" in s.held_back
        verdicts.append(s.scores_drifted)
        estimated = json.loads((run_dir / monitoring.ESTIMATED_PERFORMANCE).read_text())
        assert estimated["available"] and estimated["enabled"] is False  # the demo spec logs it, acts not
        assert s.estimated_metric == pytest.approx(estimated["value"], abs=1e-12)
        assert s.estimated_breach == estimated["breach"]
        # beside it, the same champion's realized metric on the same rows: that step's own score
        assert s.realized_metric == pytest.approx(ctflow.steps[s.step - 1].metric, abs=1e-12)
        # and the same rule judging it: the floor, or a drop beyond the band of realized metrics
        rows = len(data.between(previous.start, previous.end))
        assert s.realized_breach == realized_breach(spec, bank.estimate_reference(champion, spec), s.realized_metric, rows)
        if spec.monitoring.performance.breach(s.realized_metric):
            assert s.realized_breach == spec.monitoring.performance.breach(s.realized_metric)
    assert len(verdicts) == len(monitored)
    summary = ctflow.estimate_summary()
    assert summary["steps"] == len(monitored)
    assert summary["mae"] == pytest.approx(
        np.mean([abs(s.estimated_metric - s.realized_metric) for s in monitored]), abs=1e-6)


def test_estimated_performance_breaches_retrain_when_the_spec_acts_on_them(spec, data):
    """A floor no week reaches (0.99): the estimate breaches at every monitored step. With
    ``monitoring.estimated_performance`` on, each raises a ``performance`` breach from the estimate
    (before the labels); off, the same estimates are recorded but raise nothing."""
    floor = {"schedule.train": None, "schedule.retrain_on": ["performance"],
             "monitoring.performance": {"metric": "roc_auc", "min": 0.99},
             "evaluation.thresholds": {"roc_auc": {"min": 0.5}}, "evaluation.slices": []}
    out = replay.replay(spec, data, start=START, end=END, every=EVERY_STEP, what_if={
        name: (replay.override_spec(spec, {**floor, "monitoring.estimated_performance": on}), {})
        for name, on in (("acts", True), ("logs", False))
    })
    acts, logs = out.policy("acts"), out.policy("logs")
    for policy in (acts, logs):
        monitored = policy.steps[1:]
        assert all(s.estimated_breach and s.estimated_breach.endswith("< min 0.99") for s in monitored)
        assert all(s.realized_breach for s in monitored)
    assert all("estimated_performance" in s.breaches and "performance" in s.triggers for s in acts.steps[1:])
    assert not any("estimated_performance" in s.breaches for s in logs.steps)
    summary = acts.estimate_summary()
    assert summary["estimated_breaches"] == summary["early"] == summary["realized_breaches"] == 6
    assert summary["false_alarms"] == summary["missed"] == 0
    assert "estimate for acts:" in out.table()
    per_step = next(r for r in out.records() if r["policy"] == "acts")["per_step"]
    assert per_step[1]["estimated_metric"] is not None and "estimated_performance" in per_step[1]["breaches"]


def test_without_a_champion_ctflow_retries_at_each_step_only_if_retrain_on_says_no_champion(spec, data):
    """As the monitoring DAG does: with no champion it asks for a training only under ``no_champion``."""
    never_passes = {"schedule.train": None, "evaluation.thresholds": {"roc_auc": {"min": 0.99}}}
    out = replay.replay(spec, data, start=START, end=END, every=EVERY_STEP, what_if={
        name: (replay.override_spec(spec, {**never_passes, "schedule.retrain_on": kinds}), {})
        for name, kinds in (("retries", ["performance", "no_champion"]), ("waits", ["performance"]))
    })
    retries, waits = out.policy("retries"), out.policy("waits")
    assert [s.triggers for s in retries.steps] == [["initial"]] + [["no_champion"]] * 6
    assert retries.trainings == 7 and retries.promotions == 0
    assert [s.triggers for s in waits.steps] == [["initial"]] + [[]] * 6 and waits.trainings == 1
    assert out.fits == 7  # the what-ifs reuse the shared fits


def test_retrain_cooldown_holds_back_breaches_soon_after_a_fit(spec, data):
    """Every monitored week breaches (floor 0.99): without a cool-down each one retrains; with
    14 days, every other one is held back (7 days after a fit) and alerted only."""
    always_breaching = {"schedule.train": None, "schedule.retrain_on": ["performance"],
                        "monitoring.performance": {"metric": "roc_auc", "min": 0.99},
                        "evaluation.thresholds": {"roc_auc": {"min": 0.5}}, "evaluation.slices": []}
    out = replay.replay(spec, data, start=START, end=END, every=EVERY_STEP, what_if={
        name: (replay.override_spec(spec, {**always_breaching, **extra}), {})
        for name, extra in (("eager", {}), ("cooling", {"schedule.retrain_cooldown": "14d"}))
    })
    eager, cooling = out.policy("eager"), out.policy("cooling")
    assert [s.triggers for s in eager.steps] == [["initial"]] + [["performance"]] * 6 and eager.trainings == 7
    assert [s.triggers for s in cooling.steps] == [["initial"], [], ["performance"], [], ["performance"], [],
                                                  ["performance"]]
    assert [s.step for s in cooling.steps if s.held_back == ["performance"]] == [1, 3, 5]
    assert cooling.trainings == 4 and out.fits == 7
    summaries = {r["policy"]: r for r in out.records()}
    assert (summaries["eager"]["breaches_held_back"], summaries["cooling"]["breaches_held_back"]) == (0, 3)
    assert [step["held_back"] for step in summaries["cooling"]["per_step"]][:3] == [[], ["performance"], []]


def test_replay_is_deterministic(spec, data, result):
    again = replay.replay(spec, data, start=START, end=END, every=EVERY_STEP)
    assert again.records() == result.records()


def test_what_if_policy_reuses_the_models_and_may_not_change_them(spec, data, result):
    variant = replay.override_spec(spec, {"schedule.train": None, "schedule.retrain_on": ["performance"]})
    no_slices = replay.override_spec(spec, {"evaluation.slices": []})
    out = replay.replay(spec, data, start=START, end=END, every=EVERY_STEP,
                        what_if={"ctflow[triggers]": (variant, {"schedule.train": None}),
                                 "ctflow[no slices]": (no_slices, {"evaluation.slices": []})})
    names = [p.policy for p in out.policies]
    assert names == [NEVER, CTFLOW, "ctflow[triggers]", "ctflow[no slices]", EVERY]
    triggered = out.policy("ctflow[triggers]")
    assert all("schedule" not in s.triggers and "drift" not in s.triggers for s in triggered.steps)
    # The what-if's own gate applies: without slices no candidate is rejected for a slice.
    assert any("[origin=" in (s.reason or "") for s in out.policy(CTFLOW).steps)
    assert not any("[origin=" in (s.reason or "") for s in out.policy("ctflow[no slices]").steps)
    assert out.fits == 7
    base = [r for r in out.records() if r["policy"] in (NEVER, CTFLOW, EVERY)]
    assert base == result.records()  # a what-if changes nothing of the other policies
    other_model = replay.override_spec(spec, {"model.params": {"max_iter": 5}})
    with pytest.raises(replay.ReplayError, match="model"):
        replay.replay(spec, data, start=START, end=END, every=EVERY_STEP, what_if={"x": (other_model, {})})


# --- the command line -------------------------------------------------------------------------


def test_cli_json_shape_and_same_result(spec, data, result, tmp_path, monkeypatch, capsys):
    spec_file = tmp_path / "flight_delay.yaml"
    spec_file.write_text(yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False))
    calls = []

    def cached_frame(spec_arg, start, end, **kwargs):
        calls.append((start, end))
        return data

    monkeypatch.setattr(replay, "load_frame", cached_frame)
    plot = tmp_path / "timeline.png"
    code = main(["replay", "flight_delay", "--start", START, "--end", END, "--every", "7d", "--spec", str(spec_file),
                 "--json", "--plot", str(plot), "--quiet"])
    out = capsys.readouterr().out
    assert code == 0
    assert calls == [(replay.as_utc(START), replay.as_utc(END))]
    records = json.loads(out)
    assert [r["policy"] for r in records] == [NEVER, CTFLOW, EVERY]
    for r in records:
        assert {"policy", "mean_metric", "worst_metric", "trainings", "promotions"} <= set(r)
        assert isinstance(r["mean_metric"], float) and isinstance(r["worst_metric"], float)
        assert r["worst_metric"] <= r["mean_metric"]
        assert isinstance(r["trainings"], int) and isinstance(r["promotions"], int)
        assert len(r["per_step"]) == 7 and r["metric"] == "roc_auc"
        assert r["paired_steps"] == r["steps_scored"]  # compared with every on the steps both scored
    assert records == json.loads(json.dumps(result.records()))  # a second run, through the CLI: same numbers
    assert plot.stat().st_size > 10_000 and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_table_and_bad_input(spec, data, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(replay, "load_frame", lambda *a, **k: data)
    spec_file = tmp_path / "flight_delay.yaml"
    spec_file.write_text(yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False))
    code = main(["replay", "flight_delay", "--start", START, "--end", "2013-03-15", "--spec", str(spec_file), "--quiet"])
    out = capsys.readouterr().out
    assert code == 0
    assert "| policy | mean roc_auc | worst roc_auc | trainings | promotions |" in out
    assert "| never | " in out and "| every | " in out and "2 steps of 7d" in out
    assert "goal for ctflow" in out
    assert main(["replay", "flight_delay", "--start", END, "--end", START, "--spec", str(spec_file), "--quiet"]) == 2
    assert "must be after start" in capsys.readouterr().err
    assert main(["replay", "no_such_pipeline", "--start", START, "--end", END, "--quiet"]) == 2
    assert "no spec" in capsys.readouterr().err
    bad = ["replay", "flight_delay", "--start", START, "--end", END, "--spec", str(spec_file), "--quiet",
           "--what-if", "{model.estimator: sklearn.linear_model.LogisticRegression}"]
    assert main(bad) == 2
    assert "may only change" in capsys.readouterr().err
