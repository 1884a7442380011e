"""DAG parse time: N ctflow specs against N hand-written Python DAG files with the same DAGs.

    uv run python benchmarks/parse.py [--n 100] [--repeat 3]

Both folders are parsed by Airflow's own ``DagBag`` in a fresh interpreter per measurement
(so module caches do not favour either side), alternating sides; the median is reported.
The hand-written files build the same two DAGs per pipeline with the same operators, task
ids, groups, dependencies, params and default args, but with no YAML and no validation.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]

HAND_WRITTEN = '''\
"""Hand-written airflow DAGs for pipeline {name} (benchmark baseline)."""
from datetime import datetime, timedelta, timezone

from airflow.sdk import DAG, Asset, AssetAny, AssetOrTimeSchedule, CronTriggerTimetable, Param, TaskGroup

from ctflow.operators import (
    ActOnBreachOperator, ChooseActionOperator, DataDriftOperator, DataQualityOperator, EvaluateGateOperator,
    FetchFeaturesOperator, MonitoringReportOperator, PerformanceOperator, PredictionDriftOperator,
    PromoteModelOperator, RegisterModelOperator, RollbackModelOperator, ScoreBatchOperator, TrainModelOperator,
)

SPEC = None  # operators accept the spec object; the baseline has none to parse
DEFAULT_ARGS = {{"owner": "data-science-flights", "retries": 2, "retry_delay": timedelta(minutes=2),
                "execution_timeout": timedelta(hours=1)}}
START = datetime(2013, 2, 1, tzinfo=timezone.utc)
END = datetime(2014, 1, 1, tzinfo=timezone.utc)
BREACH = Asset(uri="ctflow://{name}/breach", name="{name}_breach", group="ctflow")
PROMOTED = Asset(uri="ctflow://{name}/promoted", name="{name}_promoted", group="ctflow")

with DAG(
    dag_id="ct_{name}",
    description="Continuous training of {name}",
    schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable("0 2 * * 1", timezone="UTC"), assets=AssetAny(BREACH)),
    start_date=START, end_date=END, catchup=False, tags=["classification", "ct", "ctflow", "flights"],
    doc_md="### ct_{name}", default_args=DEFAULT_ARGS, max_active_runs=4,
    params={{
        "action": Param("train", enum=["train", "rollback"], description="train or rollback"),
        "as_of": Param(None, type=["null", "string"], format="date-time", description="as of"),
        "window_days": Param(None, type=["null", "integer"], minimum=1, maximum=3660, description="window"),
        "force_promotion": Param(False, type="boolean", description="force"),
        "dry_run": Param(False, type="boolean", description="dry run"),
        "reason": Param("", type="string", maxLength=500, description="reason"),
    }},
) as ct:
    choose = ChooseActionOperator(task_id="choose_action", train_task_id="training.fetch_features",
                                  rollback_task_id="rollback")
    with TaskGroup("training"):
        features = FetchFeaturesOperator(task_id="fetch_features", spec=SPEC)
        quality = DataQualityOperator(task_id="check_data_quality", spec=SPEC)
        train = TrainModelOperator(task_id="train", spec=SPEC)
        evaluate = EvaluateGateOperator(task_id="evaluate", spec=SPEC)
        features >> quality >> train >> evaluate
    with TaskGroup("promotion"):
        register = RegisterModelOperator(task_id="register", spec=SPEC)
        promote = PromoteModelOperator(task_id="promote", spec=SPEC, outlets=[PROMOTED])
        register >> promote
    rollback = RollbackModelOperator(task_id="rollback", spec=SPEC, outlets=[PROMOTED])
    choose >> [features, rollback]
    evaluate >> register

with DAG(
    dag_id="monitor_{name}",
    description="Monitoring of {name}",
    schedule=CronTriggerTimetable("0 6 * * *", timezone="UTC"),
    start_date=START, end_date=END, catchup=False, tags=["classification", "ctflow", "flights", "monitor"],
    doc_md="### monitor_{name}", default_args=DEFAULT_ARGS, max_active_runs=1,
    params={{
        "as_of": Param(None, type=["null", "string"], format="date-time", description="as of"),
        "dry_run": Param(False, type="boolean", description="dry run"),
    }},
) as monitor:
    score = ScoreBatchOperator(task_id="score_batch", spec=SPEC)
    checks = [DataDriftOperator(task_id="data_drift", spec=SPEC),
              PredictionDriftOperator(task_id="prediction_drift", spec=SPEC),
              PerformanceOperator(task_id="performance", spec=SPEC)]
    report = MonitoringReportOperator(task_id="report", spec=SPEC)
    act = ActOnBreachOperator(task_id="act_on_breach", spec=SPEC, outlets=[BREACH])
    score >> checks >> report >> act
'''

_MEASURE = """
import json, sys, time
import airflow.sdk, ctflow.operators  # imported by both sides alike: not part of the comparison
from airflow.dag_processing.dagbag import DagBag
start = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1])
elapsed = time.perf_counter() - start
print(json.dumps({"seconds": elapsed, "dags": len(bag.dag_ids), "errors": len(bag.import_errors)}))
"""


def make_folders(root: Path, n: int) -> tuple[Path, Path]:
    spec_text = (PROJECT / "dags" / "specs" / "flight_delay.yaml").read_text()
    specs = root / "ctflow" / "dags"
    (specs / "specs").mkdir(parents=True)
    for loader in (PROJECT / "dags").glob("*.py"):
        shutil.copy(loader, specs / loader.name)
    hand = root / "hand_written" / "dags"
    hand.mkdir(parents=True)
    for i in range(n):
        name = f"pipeline_{i:03d}"
        (specs / "specs" / f"{name}.yaml").write_text(spec_text.replace("pipeline: flight_delay", f"pipeline: {name}"))
        (hand / f"{name}.py").write_text(HAND_WRITTEN.format(name=name))
    return specs, hand


def measure(folder: Path) -> dict:
    env_python = sys.executable
    out = subprocess.run(
        [env_python, "-c", _MEASURE, str(folder)], capture_output=True, text=True, check=True, cwd=PROJECT
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="number of pipelines (default 100)")
    parser.add_argument("--repeat", type=int, default=3, help="measurements per side (default 3)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ctflow-parse-bench-") as tmp:
        specs, hand = make_folders(Path(tmp), args.n)
        times: dict[str, list[float]] = {"ctflow specs": [], "hand-written": []}
        for _ in range(args.repeat):
            for label, folder in (("ctflow specs", specs), ("hand-written", hand)):
                result = measure(folder)
                expected = 2 * args.n
                if result["dags"] != expected or result["errors"]:
                    raise SystemExit(f"{label}: {result['dags']} DAGs, {result['errors']} import errors")
                times[label].append(result["seconds"])
    spec_s, hand_s = (statistics.median(times[k]) for k in ("ctflow specs", "hand-written"))
    print(f"DagBag parse of {args.n} pipelines ({2 * args.n} DAGs), median of {args.repeat} fresh interpreters:")
    print(f"  ctflow specs:  {spec_s:6.2f} s   runs: {', '.join(f'{t:.2f}' for t in times['ctflow specs'])}")
    print(f"  hand-written:  {hand_s:6.2f} s   runs: {', '.join(f'{t:.2f}' for t in times['hand-written'])}")
    print(f"  ratio ctflow / hand-written: {spec_s / hand_s:.2f}x (goal <= 1.5x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
