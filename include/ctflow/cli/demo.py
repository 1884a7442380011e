"""``ctflow demo``: the demo CT cycle on the embedded default, through real Airflow.

Bootstraps the Feast repository (idempotent), migrates Airflow's SQLite DB, runs
``airflow dags test ct_<pipeline> DATE`` for each date, and prints what happened.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="run the demo CT cycle through Airflow and print a summary")
    parser.add_argument("--pipeline", default="flight_delay")
    parser.add_argument("--dates", nargs="+", default=["2013-03-01", "2013-06-01"], help="logical dates to run")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ctflow import settings

    project = settings.project_root()
    home = settings.home()
    env = demo_environment(project, home)
    os.environ.update(env)
    logs = home / "demo-logs"
    logs.mkdir(exist_ok=True)

    _say("1/3 feature repository (Feast, DuckDB offline store)")
    _check(subprocess.run([sys.executable, str(project / "feature_repo" / "bootstrap.py")], env=env), "bootstrap")
    _say("2/3 Airflow metadata DB (SQLite)")
    _check(_airflow(["db", "migrate"], env, logs / "db-migrate.log"), "airflow db migrate", logs / "db-migrate.log")

    dag_id = f"ct_{args.pipeline}"
    _say(f"3/3 running {dag_id} through Airflow for {', '.join(args.dates)}")
    for date in args.dates:
        log_file = logs / f"{dag_id}-{date}.log"
        started = time.perf_counter()
        print(f"    airflow dags test {dag_id} {date}  (log: {log_file})", flush=True)
        _check(_airflow(["dags", "test", dag_id, date], env, log_file), f"dags test {date}", log_file)
        print(f"    done in {time.perf_counter() - started:.0f} s", flush=True)
    print()
    print(summary(args.pipeline, args.dates))
    return 0


def demo_environment(project: Path, home: Path) -> dict[str, str]:
    """Airflow and ctflow settings of the embedded default, kept under ``$CTFLOW_HOME``."""
    airflow_home = home / "airflow"
    return {
        **os.environ,
        "CTFLOW_HOME": str(home),
        "CTFLOW_PROJECT": str(project),
        "AIRFLOW_HOME": os.environ.get("AIRFLOW_HOME", str(airflow_home)),
        "AIRFLOW__CORE__DAGS_FOLDER": str(project / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(project / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": os.environ.get(
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{airflow_home / 'airflow.db'}"
        ),
        "MLFLOW_TRACKING_URI": os.environ.get("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}"),
        "GIT_PYTHON_REFRESH": "quiet",
    }


def summary(pipeline: str, dates: list[str]) -> str:
    """What each run did, read from the run folders and the registry."""
    from ctflow import settings
    from ctflow.core.registry import ModelRegistry

    lines = [f"ctflow demo: {pipeline}", ""]
    for date in dates:
        run_dir = _run_dir(pipeline, date)
        if run_dir is None:
            lines.append(f"  {date}: no run folder found")
            continue
        fetched = _load(run_dir / "features.json")
        trained = _load(run_dir / "train.json")
        gate = _load(run_dir / "gate.json")
        registered = _load(run_dir / "register.json")
        lines.append(f"  as of {date}: {fetched.get('rows', '?')} rows "
                     f"[{fetched.get('window_start', '?')[:10]} .. {fetched.get('window_end', '?')[:10]}), "
                     f"{len(trained.get('features', []))} model features")
        metrics = trained.get("metrics", {})
        shown = ", ".join(f"{k} {metrics[k]:.4f}" for k in ("roc_auc", "average_precision", "recall") if k in metrics)
        lines.append(f"    holdout ({trained.get('holdout_rows', '?')} rows): {shown}")
        lines.append(f"    gate: {gate.get('decision', '?')} — {gate.get('reason', '')}")
        lines.append(f"    registered: {'version ' + str(registered['version']) if registered else 'nothing'}")
    model = ModelRegistry(pipeline)
    champion = model.champion()
    lines += ["", f"  champion: {pipeline} version {champion.version if champion else 'none'}"]
    for event in model.history(alias="champion"):
        lines.append(f"    {event.at[:19]}  v{event.previous or '-'} -> v{event.version}: {event.reason}")
    home = settings.home()
    lines += [
        "",
        "  where to look:",
        f"    MLflow:  uv run mlflow ui --backend-store-uri sqlite:///{home / 'mlflow.db'}  (then http://127.0.0.1:5000)",
        f"    Airflow: make up  (then http://127.0.0.1:8080, DAGs ct_{pipeline} and monitor_{pipeline})",
        f"    files:   {settings.runs_dir() / ('ct_' + pipeline)}",
    ]
    return "\n".join(lines)


def _run_dir(pipeline: str, date: str) -> Path | None:
    from ctflow import settings

    # Run folders are named after Airflow's run id; the date the run is about is in features.json.
    matches = [
        path.parent
        for path in (settings.runs_dir() / f"ct_{pipeline}").glob("*/features.json")
        if _load(path).get("as_of", "").startswith(date)
    ]
    return max(matches, key=lambda p: p.stat().st_mtime) if matches else None


def _load(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def _airflow(argv: list[str], env: dict[str, str], log_file: Path) -> subprocess.CompletedProcess:
    airflow = str(Path(sys.executable).parent / "airflow")
    with log_file.open("w") as out:
        return subprocess.run([airflow, *argv], env=env, stdout=out, stderr=subprocess.STDOUT)


def _check(result: subprocess.CompletedProcess, what: str, log_file: Path | None = None) -> None:
    if result.returncode != 0:
        tail = ""
        if log_file and log_file.exists():
            tail = "\n".join(log_file.read_text(errors="replace").splitlines()[-40:])
        raise SystemExit(f"ctflow demo: {what} failed (exit {result.returncode})\n{tail}")


def _say(text: str) -> None:
    print(f"==> {text}", flush=True)
