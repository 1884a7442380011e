"""Issue #15's findings, each put back into a copy of the code: the test that guards it must fail.

Each :class:`Mutation` re-creates one defect the audit of d8686a7 found (a reader that uses the old
metric name, a tag that only counts as a breach when it says "true", a rejection recorded after
Airflow's skip has already raised, ...) as a textual change of today's source, and names the tests
that must catch it. ``python -m tests.proof.run`` applies each one to a throw-away copy of the
repository (``git worktree``), runs those tests there and records whether they failed; the table
it writes is ``tests/proof/results.md``. A guard that still passes with its defect back is a
finding of its own.

Not collected by pytest (no ``test_`` prefix): every row runs real tests, some of them minutes long.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mutation:
    finding: str  # the numbering: "1", "6", "11 (report link)" ...
    what: str  # the defect, as the audit saw it
    path: str  # file changed, relative to the repository root
    old: str  # today's text (must occur exactly once)
    new: str  # the defect put back
    tests: tuple[str, ...]  # pytest node ids that must fail with the defect


VIEW_STATE = "tests/ui/test_view_parts.py::test_the_views_data_on_the_state_the_steps_made"

MUTATIONS: tuple[Mutation, ...] = (
    Mutation(
        "1", "the view read `data_drift.drifted_share`, the writer logs `data_drift.share`",
        "include/ctflow/ui/monitoring.py",
        "share = _metric(metrics, names.DRIFT_SHARE_METRIC)",
        'share = _metric(metrics, "data_drift.drifted_share")',
        (VIEW_STATE,),
    ),
    Mutation(
        "1", "the view read per-feature drift from `data_drift.json` at the run's root",
        "include/ctflow/ui/monitoring.py",
        "data = _json_artifact(client, run, names.DATA_DRIFT_ARTIFACT, listed)",
        'data = _json_artifact(client, run, "data_drift.json", listed)',
        (VIEW_STATE,),
    ),
    Mutation(
        "2", "catchup did not reach the DAGs",
        "include/ctflow/factory/build.py",
        '"catchup": schedule.catchup,',
        '"catchup": False,',
        ("tests/dags/test_schedule_wiring.py::test_timezone_start_end_and_catchup_reach_both_dags",),
    ),
    Mutation(
        "3", "`run-step` argument errors exited 1 (argparse's usage) instead of 2",
        "include/ctflow/cli/run_step.py",
        "parser.exit(EXIT_CONFIGURATION,",
        "parser.exit(1,",
        ("tests/cli/test_run_step_cli.py::test_bad_arguments_exit_2_with_one_line",),
    ),
    Mutation(
        "6", "`ctflow.breach=drift` counted as a breach only when it said true/1/yes",
        "include/ctflow/contract/monitoring.py",
        "return [] if kinds == [NO_BREACH] else sorted(set(kinds))",
        'return ["drift"] if tag.strip().lower() in ("true", "1", "yes") else []',
        ("tests/ui/test_view_parts.py::test_monitoring_summary_without_the_steps_verdict_judges_the_metrics",),
    ),
    Mutation(
        "7", "Reject: Airflow's skip raised before ctflow recorded the decision",
        "include/ctflow/operators/approval.py",
        "            self._record_decision(context, event)\n            raise",
        "            raise",
        ("tests/ui/test_view_parts.py::test_approval_records_the_decision",),
    ),
    Mutation(
        "8", "the trigger form's `reason` was a required string: Trigger stayed disabled",
        "include/ctflow/factory/params.py",
        'a plain retrain needs no reason.\n            None,\n            type=["null", "string"],',
        'a plain retrain needs no reason.\n            "",\n            type="string",\n            minLength=1,',
        ("tests/ui/test_view_parts.py::test_ct_params_explain_themselves",),
    ),
    Mutation(
        "9", "a retrain of a paused DAG said \"queued\" and nothing about the pause",
        "include/ctflow/ui/actions.py",
        '"paused": await run_in_threadpool(_paused, dag_id),',
        '"paused": None,',
        ("tests/ui/test_plugin_api.py::test_run_lists_are_paged_and_filtered_and_a_triggered_run_can_be_followed",),
    ),
    Mutation(
        "10", "the gate's reason only in a tooltip: the view's data had no reason per candidate",
        "include/ctflow/ui/data.py",
        '"reason": tags.get(mlflow_tags.GATE_REASON),',
        '"reason": None,',
        (VIEW_STATE,),
    ),
    Mutation(
        "11", "the monitoring report's extra link read `run_id`; the task returns `mlflow_run_id`",
        "include/ctflow/links.py",
        'run_id = value.get("run_id") or value.get("mlflow_run_id")',
        'run_id = value.get("run_id")',
        ("tests/ui/test_links_on_real_state.py::test_the_report_link_of_a_real_monitoring_run",),
    ),
    Mutation(
        "11", "times always in UTC, whatever Airflow's zone",
        "include/ctflow/ui/formats.py",
        "def airflow_timezone() -> tzinfo:\n",
        "def airflow_timezone() -> tzinfo:\n    return UTC\n",
        ("tests/ui/test_view_format.py::test_times_follow_airflows_zone_and_data_dates_stay_utc",),
    ),
    Mutation(
        "12", "status pills below WCAG AA (light theme): a green text on its pale green",
        "include/ctflow/ui/static/ctflow.css",
        "--ok: light-dark(#137333, #6fd08a);",
        "--ok: light-dark(#34a853, #6fd08a);",
        ("tests/ui/test_contrast.py::test_every_text_colour_on_its_background_meets_wcag_aa",),
    ),
    Mutation(
        "12", "no dark mode: the light palette's muted text kept on the dark background",
        "include/ctflow/ui/static/ctflow.css",
        "--muted: light-dark(#525e6f, #a9b2c0);",
        "--muted: light-dark(#525e6f, #525e6f);",
        ("tests/ui/test_contrast.py::test_every_text_colour_on_its_background_meets_wcag_aa",),
    ),
    Mutation(
        "12", "a bad as-of date answered with pydantic's raw error list",
        "include/ctflow/ui/errors.py",
        'return "; ".join(parts) or "invalid request"',
        "return str(errors)",
        ("tests/ui/test_errors.py",),
    ),
    Mutation(
        "12", "version labels overlap when there are many candidates",
        "include/ctflow/ui/chart.py",
        "            continue\n        placed.append",
        "            pass\n        placed.append",
        ("tests/ui/test_view_format.py",),
    ),
    Mutation(
        "12", "date labels overlap when there are many candidates",
        "include/ctflow/ui/chart.py",
        "step = max(1, math.ceil(DATE_LABEL_WIDTH / spacing))",
        "step = 1",
        ("tests/ui/test_view_format.py",),
    ),
    Mutation(
        "4", "a drift share off by half still passed `0 <= share <= 1`",
        "include/ctflow/core/drift/compare.py",
        "share = weighted_share(",
        "share = 0.5 * weighted_share(",
        ("tests/core/test_drift.py", "tests/core/test_drift_calibration.py"),
    ),
    Mutation(
        "2", "a promote that moved nothing still announced `promoted` (and started `after:` pipelines)",
        "include/ctflow/operators/promotion.py",
        "if isinstance(move, AliasMove) and move.moved and move.alias",
        "if isinstance(move, AliasMove) and move.alias",
        ("tests/integration/test_scheduler.py",),
    ),
    Mutation(
        "3", "canary: the scoring step routes a different share of rows than the spec's fraction",
        "include/ctflow/core/monitoring/scoring.py",
        "to_challenger = canary_mask(keys, spec.registry.canary_fraction, salt=spec.model_name)",
        "to_challenger = canary_mask(keys, spec.registry.canary_fraction / 2, salt=spec.model_name)",
        ("tests/integration/test_canary_dag.py",),
    ),
)
