"""The step protocol: each step declared once, and every place that runs it derives from that.

The built DAGs have a task per declared step, run by the operator that names it; the files a step
reads are written by a step declared before it; typed results give back the very dict the core
returned (the XCom the UI and the approval form read); the command line a container runs carries
exactly what the step needs.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import DAGS_FOLDER

SPEC_PATH = DAGS_FOLDER / "specs" / "flight_delay.yaml"


@pytest.fixture(scope="module")
def spec():
    from ctflow.spec import load_spec

    return load_spec(SPEC_PATH)


@pytest.mark.parametrize("module", ["ct", "monitor"])
def test_every_declared_step_is_a_task_run_by_its_operator(spec, module):
    from ctflow.factory.build import build_ct_dag, build_monitor_dag
    from ctflow.operators import OPERATORS
    from ctflow.steps import ct, monitor

    declared = (ct if module == "ct" else monitor).STEPS
    dag = (build_ct_dag if module == "ct" else build_monitor_dag)(spec)
    for name, step in declared.items():
        assert OPERATORS[name].declaration is step
        assert isinstance(dag.get_task(step.task_id), OPERATORS[name]), name


def test_a_step_reads_only_what_an_earlier_step_writes():
    from ctflow.steps import ct

    order = list(ct.STEPS)
    for name, step in ct.STEPS.items():
        for _, writer in step.reads:
            assert order.index(writer) < order.index(name), (name, writer)


def test_run_step_choices_and_docker_steps_come_from_the_declarations():
    import argparse

    from ctflow.cli import run_step as cli
    from ctflow.operators.docker import DOCKER_STEPS
    from ctflow.steps import ct

    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    [action] = [a for a in parser._subparsers._group_actions[0].choices["run-step"]._actions if a.dest == "step"]
    assert list(action.choices) == list(ct.STEPS)
    assert DOCKER_STEPS == ("fetch_features", "check_quality", "train", "evaluate")


def test_the_command_line_carries_what_the_step_needs():
    from ctflow.steps import RunContext, ct
    from ctflow.steps.command import command_for

    context = RunContext(as_of=datetime(2013, 3, 1, tzinfo=UTC), tracking_uri="http://mlflow:5000",
                         feature_repo=Path("/repo"), window_days=30, reason="", force=False)
    argv = command_for(ct.FETCH_FEATURES, context, spec_path="/s.yaml", run_key="ct_x/r1")
    assert argv == ["ctflow", "run-step", "fetch_features", "--spec", "/s.yaml", "--run-key", "ct_x/r1",
                    "--as-of", "2013-03-01T00:00:00+00:00", "--feature-repo", "/repo",
                    "--tracking-uri", "http://mlflow:5000", "--window-days", "30"]
    assert command_for(ct.EVALUATE, context, spec_path="/s.yaml", run_key="ct_x/r1")[7:] == [
        "--tracking-uri", "http://mlflow:5000"]


def test_a_declaration_that_needs_what_no_run_has_is_refused_at_once():
    from ctflow.steps import StepDeclaration

    with pytest.raises(ValueError, match="needs \\['gpu'\\]"):
        StepDeclaration(name="x", function="m:f", needs={"gpu"})
    with pytest.raises(ValueError, match="position 'ct.after_lunch'"):
        StepDeclaration(name="x", function="m:f", position="ct.after_lunch")


def test_typed_results_give_back_the_dict_the_core_returned(spec):
    from ctflow.contract import results
    from ctflow.contract.results import AliasMove
    from ctflow.core.gate import decide

    gate = decide(task="classification", evaluation=spec.evaluation, candidate={"roc_auc": 0.8, "recall": 0.5},
                  champion={"roc_auc": 0.7, "recall": 0.5}, champion_version="3").to_dict()
    typed = results.parse(results.GateResult, gate)
    assert isinstance(typed, results.GateResult) and typed.champion_version == "3"
    assert typed.to_xcom() == gate

    move = AliasMove("champion", "2", "1", "2013-03-01T00:00:00+00:00", "airflow:ct/r", "won", False).to_dict()
    typed = results.parse(results.AliasMove, move)
    assert typed.moved is False and typed.to_xcom() == move

    fingerprint = {"rows": 3, "start": "a", "end": "b", "sha256": "f" * 64, "window_start": "w0", "window_end": "w1",
                   "as_of": "w1", "dropped_unlabelled": 0, "dropped_label_pending": 0, "feature_service": "s", "features": ["x"],
                   "positive_share": 0.2, "seconds": 1.0, "path": "/p"}
    typed = results.parse(results.FeaturesFingerprint, fingerprint)
    assert typed.extra == {"start": "a", "end": "b", "sha256": "f" * 64} and typed.to_xcom() == fingerprint

    skipped = results.parse(results.RegisteredVersion, {"skipped": True, "reason": "dry run"})
    assert skipped.skipped and skipped.to_xcom() == {"skipped": True, "reason": "dry run"}
