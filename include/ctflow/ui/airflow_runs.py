"""What the view reads from Airflow's metadata DB (the api-server's own): DAGs, a page of their
runs (optionally of one state), the gate's XCom of CT runs, which tasks a failed run failed at and
why (when a ctflow task failed for good), and who triggered a run."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ctflow.contract import tasks

if TYPE_CHECKING:
    from airflow.models.dagrun import DagRun
    from sqlalchemy.orm import Session

#: The states a run list can be filtered on (Airflow's DagRunState values).
RUN_STATES = ("queued", "running", "success", "failed")


@dataclass(frozen=True)
class RunPage:
    """Which runs of a DAG to list: ``size`` per page, page ``page`` (1-based), all states or one."""

    size: int = 1
    page: int = 1
    state: str | None = None

    def __post_init__(self) -> None:
        if self.state is not None and self.state not in RUN_STATES:
            raise ValueError(f"state must be one of {', '.join(RUN_STATES)}, not {self.state!r}")
        if self.page < 1 or self.size < 1:
            raise ValueError("page and size start at 1")


def airflow_state(dag_ids: list[str], *, runs: int | RunPage = 1) -> dict[str, dict[str, Any]]:
    """Per known DAG: paused, next run, one page of its runs (newest first, with the gate's XCom for
    CT runs) and how many runs match (``total``)."""
    page = runs if isinstance(runs, RunPage) else RunPage(size=runs)
    if not dag_ids:
        return {}
    try:
        from airflow.models.dag import DagModel
        from airflow.models.dagrun import DagRun
        from airflow.utils.session import create_session
        from sqlalchemy import func, select
    except ImportError:  # not inside Airflow
        return {}
    out: dict[str, dict[str, Any]] = {}
    with create_session() as session:
        for dag in session.scalars(select(DagModel).where(DagModel.dag_id.in_(dag_ids))):
            nxt = dag.next_dagrun_create_after or dag.next_dagrun
            out[dag.dag_id] = {
                "paused": dag.is_paused,
                "next_run": None if dag.is_paused else iso(nxt),
                "next_logical_date": iso(dag.next_dagrun),
                "runs": [],
            }
        for dag_id in out:
            where = [DagRun.dag_id == dag_id] + ([DagRun.state == page.state] if page.state else [])
            out[dag_id]["total"] = session.scalar(select(func.count()).select_from(DagRun).where(*where))
            found = session.scalars(
                select(DagRun).where(*where).order_by(DagRun.run_after.desc(), DagRun.id.desc())
                .offset((page.page - 1) * page.size).limit(page.size)
            ).all()
            out[dag_id]["runs"] = [_record(session, dag_id, run) for run in found]
    return out


def _record(session: Session, dag_id: str, run: DagRun) -> dict[str, Any]:
    from airflow.models.xcom import XComModel

    record = {
        "run_id": run.run_id,
        "state": str(getattr(run.state, "value", run.state)),
        "run_type": str(getattr(run.run_type, "value", run.run_type)),
        "logical_date": iso(run.logical_date),
        "run_after": iso(run.run_after),
        "start_date": iso(run.start_date),
        "end_date": iso(run.end_date),
        "conf": run.conf or {},
        # what the run is about (a data date): params.as_of, else the logical date, else when it ran
        "as_of": (run.conf or {}).get("as_of") or iso(run.logical_date) or iso(run.run_after),
        "triggered_by": getattr(run, "triggering_user_name", None),
        "gate": None,
    }
    if record["state"] == "failed":
        record["failure"] = _failure(session, dag_id, run.run_id)
    if tasks.is_ct_dag(dag_id):
        row = session.scalars(
            XComModel.get_many(key="return_value", run_id=run.run_id, dag_ids=dag_id, task_ids=tasks.EVALUATE)
        ).first()
        gate = XComModel.deserialize_value(row) if row is not None else None
        if isinstance(gate, dict):
            record["gate"] = {k: gate.get(k) for k in ("decision", "reason", "metric", "candidate",
                                                        "champion", "champion_version")}
        # A run waiting for a human shows "running" in Airflow; say what it waits for.
        record["awaiting_approval"] = _awaiting_approval(session, dag_id, run.run_id)
    return record


def run_state(dag_id: str, run_id: str) -> dict[str, Any] | None:
    """One run's state and times (what the page polls after triggering it); None if unknown."""
    try:
        from airflow.models.dagrun import DagRun
        from airflow.utils.session import create_session
        from sqlalchemy import select
    except ImportError:
        return None
    with create_session() as session:
        run = session.scalar(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
        return _record(session, dag_id, run) if run is not None else None


def triggering_users(keys: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """``(dag_id, run_id)`` -> the user who triggered that run, for the runs Airflow knows a user of."""
    if not keys:
        return {}
    try:
        from airflow.models.dagrun import DagRun
        from airflow.utils.session import create_session
        from sqlalchemy import select, tuple_
    except ImportError:
        return {}
    with create_session() as session:
        rows = session.execute(
            select(DagRun.dag_id, DagRun.run_id, DagRun.triggering_user_name)
            .where(tuple_(DagRun.dag_id, DagRun.run_id).in_(keys))
        ).all()
    return {(dag_id, run_id): user for dag_id, run_id, user in rows if user}


def _failure(session: Session, dag_id: str, run_id: str) -> dict[str, Any]:
    """The run's failed tasks, those that did not run because of them, and the reasons ctflow tasks
    left when they failed for good (:data:`~ctflow.contract.tasks.FINAL_ERROR_XCOM`)."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from sqlalchemy import select

    rows = session.execute(select(TaskInstance.task_id, TaskInstance.state).where(
        TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id,
        TaskInstance.state.in_(("failed", "upstream_failed")))).all()
    states = {task_id: str(getattr(state, "value", state)) for task_id, state in rows}
    failed = sorted(t for t, state in states.items() if state == "failed")
    reasons = [XComModel.deserialize_value(row) for row in session.scalars(
        XComModel.get_many(key=tasks.FINAL_ERROR_XCOM, run_id=run_id, dag_ids=dag_id, task_ids=failed))] if failed else []
    return {
        "failed": failed,
        "upstream_failed": sorted(t for t, state in states.items() if state == "upstream_failed"),
        "reasons": sorted((r for r in reasons if isinstance(r, dict)), key=lambda r: str(r.get("task_id"))),
    }


def _awaiting_approval(session: Session, dag_id: str, run_id: str) -> bool:
    """Whether the run's approval task waits for a human's answer (Airflow's ``awaiting_input``)."""
    from airflow.models.taskinstance import TaskInstance
    from sqlalchemy import select

    state = session.scalar(select(TaskInstance.state).where(
        TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id, TaskInstance.task_id == tasks.APPROVE))
    return str(getattr(state, "value", state)) == "awaiting_input"


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="seconds")
