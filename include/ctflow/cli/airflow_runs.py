"""Running a pipeline's DAG through Airflow from the command line, and saying what it did.

Shared by ``ctflow demo`` and ``ctflow run``: the embedded default's environment, ``airflow db
migrate`` (only when the DB is not at Airflow's migration heads), one ``airflow dags test DAG
DATE`` per run (logged to a file), the run's task states from Airflow's DB, and summaries read
from the run folder (which fit the task: a regression shows its regression metrics). Airflow is
imported only after the environment is set.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ctflow.spec import PipelineSpec

#: Holdout metrics a CT summary shows, by task (the spec's primary metric comes first).
SHOWN_METRICS = {"classification": ("roc_auc", "average_precision", "recall"), "regression": ("rmse", "mae", "r2")}


@dataclass
class DagRunOutcome:
    """One ``airflow dags test``: its exit code, log, run id, and the failed tasks with the reason."""

    dag_id: str
    date: str
    returncode: int
    log_file: Path
    seconds: float
    run_id: str | None
    failed: dict[str, str]  # task id -> the last error line of its log
    blocked: list[str]  # tasks not run because an upstream task failed

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.run_id is not None and not self.failed and not self.blocked


def environment(project: Path, home: Path) -> dict[str, str]:
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


def migrate(env: dict[str, str], logs: Path) -> None:
    """``airflow db migrate`` unless the DB is migrated already; SystemExit with the log's end if it fails.

    ``env`` must be in ``os.environ`` already: the check imports Airflow in this process.
    """
    if migrated():
        return
    check(airflow(["db", "migrate"], env, logs / "db-migrate.log"), "airflow db migrate", logs / "db-migrate.log")


def migrated() -> bool:
    """Whether Airflow's metadata DB is at the installed Airflow's migration heads.

    Then ``airflow db migrate`` would change nothing, yet it costs an Airflow start-up of its own
    at every ``ctflow run``; this process imports Airflow anyway to read the run's task states.
    A DB that cannot be read is not migrated: the command then runs and says why.
    """
    from sqlalchemy.exc import SQLAlchemyError

    with warnings.catch_warnings():  # a deprecation warned of by what it imports would be a line of ctflow's output
        warnings.simplefilter("ignore")
        from airflow.utils.db import check_migrations  # configures Airflow's logging: before the loggers are quieted

        quiet = [logging.getLogger(name) for name in ("alembic.runtime.migration", "airflow.utils.db")]  # its progress
        disabled = [logger.disabled for logger in quiet]
        for logger in quiet:
            logger.disabled = True
        try:
            check_migrations(timeout=0)
        except (TimeoutError, SQLAlchemyError):
            return False
        finally:
            for logger, was in zip(quiet, disabled, strict=True):
                logger.disabled = was
    return True


def dags_test(dag_id: str, date: str, env: dict[str, str], logs: Path) -> DagRunOutcome:
    """``airflow dags test DAG DATE``, then what Airflow's DB says of the run it made."""
    log_file = logs / f"{dag_id}-{date}.log"
    started = time.perf_counter()
    print(f"    airflow dags test {dag_id} {date}  (log: {log_file})", flush=True)
    result = airflow(["dags", "test", dag_id, date], env, log_file)
    seconds = time.perf_counter() - started
    run_id, states = _latest_run(dag_id)
    log_text = log_file.read_text(errors="replace") if log_file.exists() else ""
    failed = {task: _reason(task, log_text) for task, state in states.items() if state == "failed"}
    blocked = sorted(task for task, state in states.items() if state == "upstream_failed")
    return DagRunOutcome(dag_id, date, result.returncode, log_file, seconds, run_id, failed, blocked)


def run_folder(outcome: DagRunOutcome) -> Path | None:
    """The run folder of ``outcome``'s run (``$CTFLOW_HOME/runs/DAG/RUN``), if it left one."""
    from ctflow import settings

    if outcome.run_id is None:
        return None
    folder = settings.runs_dir() / f"{outcome.dag_id}/{outcome.run_id}".replace(":", "_").replace("+", "_")
    return folder if folder.is_dir() else None


def ct_lines(spec: PipelineSpec, run_dir: Path, date: str) -> list[str]:
    """What a CT run did: rows and window, holdout metrics of its task, the gate, the registration."""
    fetched, trained = load(run_dir / "features.json"), load(run_dir / "train.json")
    gate, registered = load(run_dir / "gate.json"), load(run_dir / "register.json")
    lines = [(f"  as of {date}: {fetched.get('rows', '?')} rows "
             f"[{fetched.get('window_start', '?')[:10]} .. {fetched.get('window_end', '?')[:10]}), "
             f"{len(trained.get('features', []))} model features")]
    metrics = trained.get("metrics", {})
    names = dict.fromkeys((spec.evaluation.metric, *SHOWN_METRICS[spec.model.task]))
    shown = ", ".join(f"{k} {metrics[k]:.4f}" for k in names if k in metrics)
    lines.append(f"    holdout ({trained.get('holdout_rows', '?')} rows): {shown}")
    lines.append(f"    gate: {gate.get('decision', '?')} — {gate.get('reason', '')}")
    lines.append(f"    registered: {'version ' + str(registered['version']) if registered else 'nothing'}")
    return lines


def champion_lines(spec: PipelineSpec) -> list[str]:
    """The champion now and the alias history that led to it."""
    from ctflow.core.registry import ModelRegistry

    model = ModelRegistry(spec.model_name)
    champion = model.champion()
    lines = [f"  champion: {spec.model_name} version {champion.version if champion else 'none'}"]
    for event in model.history(alias="champion"):
        lines.append(f"    {event.at[:19]}  v{event.previous or '-'} -> v{event.version}: {event.reason}")
    return lines


def where_to_look(spec: PipelineSpec) -> list[str]:
    from ctflow import settings

    home = settings.home()
    return [
        "  where to look:",
        f"    MLflow:  uv run mlflow ui --backend-store-uri sqlite:///{home / 'mlflow.db'}  (then http://127.0.0.1:5000)",
        (f"    Airflow: make up  (then http://127.0.0.1:8080, ctflow view -> {spec.pipeline}; "
        f"DAGs {spec.ct_dag_id} and {spec.monitor_dag_id})"),
        f"    files:   {settings.runs_dir()}",
    ]


def load(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def airflow(argv: list[str], env: dict[str, str], log_file: Path) -> subprocess.CompletedProcess:
    binary = str(Path(sys.executable).parent / "airflow")
    with log_file.open("w") as out:
        return subprocess.run([binary, *argv], env=env, stdout=out, stderr=subprocess.STDOUT)


def check(result: subprocess.CompletedProcess, what: str, log_file: Path | None = None) -> None:
    if result.returncode != 0:
        tail = ""
        if log_file and log_file.exists():
            tail = "\n".join(log_file.read_text(errors="replace").splitlines()[-40:])
        raise SystemExit(f"ctflow: {what} failed (exit {result.returncode})\n{tail}")


def say(text: str) -> None:
    print(f"==> {text}", flush=True)


def _latest_run(dag_id: str) -> tuple[str | None, dict[str, str]]:
    """The newest run of ``dag_id`` in Airflow's DB and its task states (``dags test`` made it just now)."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        run = session.scalars(select(DagRun).where(DagRun.dag_id == dag_id).order_by(DagRun.id.desc()).limit(1)).first()
        if run is None:
            return None, {}
        tis = session.scalars(select(TaskInstance).where(TaskInstance.dag_id == dag_id,
                                                         TaskInstance.run_id == run.run_id)).all()
        return run.run_id, {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in tis}


def _reason(task_id: str, log_text: str) -> str:
    """The rule or error a failed task stopped on: its last error line in the ``dags test`` log, or
    every rule of the last data-quality failure (its exception lists them on the lines after it)."""
    from ctflow.contract.tasks import CHECK_DATA_QUALITY

    rules = _failed_rules(log_text.splitlines()) if task_id == CHECK_DATA_QUALITY else []
    if rules:
        return "; ".join(rules)
    markers = ("FAIL ", "Error:", "Exception:", "rule(s) failed")
    lines = [line.strip() for line in log_text.splitlines() if any(m in line for m in markers)]
    mentioning = [line for line in lines if task_id.split(".")[-1] in line] or lines
    return mentioning[-1][-300:] if mentioning else "see the log"


def _failed_rules(lines: list[str]) -> list[str]:
    """The ``FAIL ...`` lines that follow the log's last ``N data-quality rule(s) failed:``."""
    starts = [i for i, line in enumerate(lines) if line.rstrip().endswith("rule(s) failed:")]
    if not starts:
        return []
    rules = []
    for line in lines[starts[-1] + 1:]:
        if not line.startswith("FAIL "):
            break
        rules.append(line.strip())
    return rules
