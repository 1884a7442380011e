"""Whole ct_ run through Airflow against the same core steps in one plain Python process.

    uv run python benchmarks/ct_run.py [--as-of 2013-06-01] [--pipeline flight_delay]

Both sides start from empty state (fresh MLflow DB, no champion) and do the same work: build
the frame with Feast, check it, train, gate, register, promote. The Airflow side is
``airflow dags test`` (the Airflow metadata DB is migrated beforehand and not timed). Reports
wall time, the overhead ratio and the peak memory (max RSS) of each side, measured in one run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

PLAIN = """
import sys, time
from datetime import datetime, timezone
from pathlib import Path
from ctflow.core import steps
from ctflow.spec import load_spec
spec_path, run_dir = sys.argv[1], Path(sys.argv[3])
as_of = datetime.fromisoformat(sys.argv[2]).replace(tzinfo=timezone.utc)
window_days = int(sys.argv[4]) or None
run_dir.mkdir(parents=True, exist_ok=True)
spec = load_spec(spec_path)
key = "plain/" + sys.argv[2]
steps.fetch_features(spec, as_of=as_of, run_dir=run_dir, window_days=window_days)
steps.check_quality(spec, as_of=as_of, run_dir=run_dir)
steps.train(spec, as_of=as_of, run_dir=run_dir, run_key=key, spec_text=Path(spec_path).read_text())
steps.evaluate(spec, run_dir=run_dir)
if not steps.register(spec, run_dir=run_dir, run_key=key).get("skipped"):
    steps.promote(spec, run_dir=run_dir, actor="benchmark", run_key=key)
"""


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of the child process tree's largest member."""
    started = time.perf_counter()
    result = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=PROJECT)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{argv[:3]} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return elapsed, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--as-of", default="2013-06-01")
    parser.add_argument("--pipeline", default="flight_delay")
    parser.add_argument("--window-days", type=int, default=0, help="override the spec's training window")
    args = parser.parse_args()
    spec = PROJECT / "dags" / "specs" / f"{args.pipeline}.yaml"
    subprocess.run([sys.executable, str(PROJECT / "feature_repo" / "bootstrap.py")], check=True, capture_output=True)

    with tempfile.TemporaryDirectory(prefix="ctflow-bench-run-") as tmp:
        root = Path(tmp)
        base = {**os.environ, "CTFLOW_PROJECT": str(PROJECT), "GIT_PYTHON_REFRESH": "quiet"}
        plain_env = {
            **base, "CTFLOW_HOME": str(root / "plain"), "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'plain.db'}"
        }
        airflow_home = root / "airflow"
        airflow_env = {
            **base,
            "CTFLOW_HOME": str(root / "airflow-ctflow"),
            "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'airflow-mlflow.db'}",
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
        }
        airflow_home.mkdir()
        subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=airflow_env, check=True, capture_output=True)

        plain_argv = [
            sys.executable, "-c", PLAIN, str(spec), args.as_of, str(root / "plain-run"), str(args.window_days)
        ]
        plain_s, plain_mb = timed(plain_argv, plain_env)
        airflow_s, airflow_mb = timed(
            [str(BIN / "airflow"), "dags", "test", f"ct_{args.pipeline}", args.as_of,
             "--conf", json.dumps({"window_days": args.window_days or None})],
            airflow_env,
        )
    window = f"{args.window_days}-day window" if args.window_days else "the spec's window"
    print(f"ct_{args.pipeline} as of {args.as_of}, {window}, from empty state, measured in one run:")
    print(f"  plain Python (core steps):   {plain_s:6.1f} s   peak RSS {plain_mb:6.0f} MB")
    print(f"  airflow dags test:           {airflow_s:6.1f} s   peak RSS so far {airflow_mb:6.0f} MB"
          " (max over both sides)")
    print(f"  overhead: {airflow_s - plain_s:.1f} s, ratio airflow / plain: {airflow_s / plain_s:.2f}x (goal <= 1.5x); "
          "peak memory goal < 2048 MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
