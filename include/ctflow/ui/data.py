"""What the ctflow view shows, gathered from the specs, MLflow and Airflow's metadata DB.

Plain functions returning JSON-ready dicts: the HTML pages and the JSON API render the same
data. Sources:

* specs: :func:`ctflow.factory.discover.load_folder` on ``<dags_folder>/specs``;
* registry: :class:`ctflow.core.registry.ModelRegistry` (versions, aliases, alias history);
* MLflow runs: candidate runs (``ctflow.stage=candidate``) and monitoring runs
  (:mod:`ctflow.ui.monitoring`), on the tracking URI of :class:`ctflow.hooks.mlflow.MlflowHook`;
* Airflow: DAGs, runs and the gate's XCom, read from the metadata DB of the api-server this
  runs in.

Heavy modules (mlflow, Airflow models) are imported inside the functions.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ctflow import links
from ctflow.contract import mlflow_tags, tasks
from ctflow.ui.airflow_runs import RunPage, airflow_state, triggering_users
from ctflow.ui.airflow_runs import iso as _iso

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from ctflow.contract.results import AliasMove
    from ctflow.core.registry import ModelRegistry, ModelVersionInfo
    from ctflow.factory.discover import LoadedSpec
    from ctflow.spec import PipelineSpec

log = logging.getLogger(__name__)

MAX_CANDIDATES = 200
RECENT_RUNS = 10


def specs_folder() -> Path:
    """``$CTFLOW_SPECS_FOLDER``, else ``<Airflow dags_folder>/specs``."""
    if folder := os.environ.get("CTFLOW_SPECS_FOLDER"):
        return Path(folder)
    from airflow.configuration import conf

    return Path(conf.get("core", "dags_folder")) / "specs"


def load_specs() -> list[LoadedSpec]:
    from ctflow.factory.discover import load_folder

    return load_folder(specs_folder())


def tracking_uri() -> str:
    """The MLflow tracking URI ctflow's tasks use: connection ``ctflow_mlflow``, else the settings."""
    try:
        from ctflow.hooks.mlflow import MlflowHook

        return MlflowHook().tracking_uri()
    except Exception as err:  # no Airflow context: the embedded default
        log.debug("MlflowHook unavailable (%s): using ctflow settings", err)
        from ctflow import settings

        return settings.mlflow_tracking_uri()


@dataclass
class Sources:
    """Where to read from; one per request."""

    tracking_uri: str
    mlflow_ui: str
    airflow_root: str = ""  # path prefix of the Airflow UI (empty at the site root)

    @classmethod
    def default(cls, airflow_root: str = "") -> Sources:
        return cls(tracking_uri=tracking_uri(), mlflow_ui=links.mlflow_ui_url(), airflow_root=airflow_root)

    def client(self) -> MlflowClient:
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def dag_url(self, dag_id: str) -> str:
        return f"{self.airflow_root}/dags/{dag_id}"

    def run_url(self, dag_id: str, run_id: str) -> str:
        from urllib.parse import quote

        return f"{self.airflow_root}/dags/{dag_id}/runs/{quote(run_id, safe='')}"


# -- overview -------------------------------------------------------------------------------


def overview(sources: Sources, *, visible: set[str] | None = None, show_invalid: bool = True) -> dict[str, Any]:
    """Every pipeline (``visible``: only these pipeline names), and the specs that are invalid."""
    loaded = load_specs()
    specs = [item.spec for item in loaded if item.spec is not None]
    if visible is not None:
        specs = [s for s in specs if s.pipeline in visible]
    airflow = airflow_state([d for s in specs for d in (s.ct_dag_id, s.monitor_dag_id)], runs=1)
    client = sources.client()
    pipelines = []
    for spec in specs:
        try:
            pipelines.append(summary(spec, sources, client=client, airflow=airflow))
        except Exception as err:  # one unreadable pipeline never hides the others
            log.exception("cannot summarize %s", spec.pipeline)
            pipelines.append({"pipeline": spec.pipeline, "owner": spec.owner, "error": f"{type(err).__name__}: {err}"})
    invalid = [
        {"file": item.display_name, "problems": [str(p) for p in item.error.problems]}
        for item in loaded
        if item.error is not None
    ]
    return {"pipelines": pipelines, "invalid_specs": invalid if show_invalid else [], "mlflow_ui": sources.mlflow_ui}


def summary(spec: PipelineSpec, sources: Sources, *, client: MlflowClient | None = None,
            airflow: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """One row of the overview."""
    from ctflow.core.registry import ModelRegistry
    from ctflow.ui import monitoring

    client = client or sources.client()
    airflow = airflow if airflow is not None else airflow_state([spec.ct_dag_id, spec.monitor_dag_id], runs=1)
    registry = ModelRegistry(spec.model_name, tracking_uri=sources.tracking_uri)
    versions = {v.version: v for v in versions_with_aliases(registry)}
    champion = _holder(versions, "champion")
    challenger = _holder(versions, "challenger")
    ct, mon = airflow.get(spec.ct_dag_id, {}), airflow.get(spec.monitor_dag_id, {})
    last = (ct.get("runs") or [None])[0]
    experiment = client.get_experiment_by_name(f"ctflow/{spec.pipeline}")
    try:
        monitor = monitoring.summarize(client, spec, monitoring.latest_run(client, spec.pipeline))
    except Exception as err:
        log.warning("cannot read monitoring runs of %s: %s", spec.pipeline, err)
        monitor = {"status": "unknown", "message": f"cannot read monitoring runs: {err}"}
    metric = spec.evaluation.metric
    return {
        "pipeline": spec.pipeline,
        "description": spec.description,
        "owner": spec.owner,
        "tags": list(spec.tags),
        "model_name": spec.model_name,
        "metric": metric,
        "higher_is_better": spec.metrics.get(metric, True),
        "strategy": spec.registry.strategy,
        "approval": spec.registry.approval,
        "champion": _version_view(champion, client, metric, sources) if champion else None,
        "challenger": _version_view(challenger, client, metric, sources) if challenger else None,
        "last_ct_run": _run_view(last, spec.ct_dag_id, sources) if last else None,
        "last_decision": _last_decision(versions, sources),
        "monitoring": monitor,
        "next_ct_run": ct.get("next_run"),
        "next_monitor_run": mon.get("next_run"),
        "dags": {
            "ct": {"dag_id": spec.ct_dag_id, "url": sources.dag_url(spec.ct_dag_id), "known": bool(ct),
                   "paused": ct.get("paused")},
            "monitor": {"dag_id": spec.monitor_dag_id, "url": sources.dag_url(spec.monitor_dag_id), "known": bool(mon),
                        "paused": mon.get("paused")},
        },
        "mlflow": {
            "experiment": links.experiment_url(experiment.experiment_id, sources.mlflow_ui) if experiment else None,
            "model": links.model_url(spec.model_name, sources.mlflow_ui) if versions else None,
        },
    }


# -- one pipeline ---------------------------------------------------------------------------


def detail(item: LoadedSpec, sources: Sources, runs: RunPage | None = None) -> dict[str, Any]:
    """Everything the pipeline page shows; ``runs``: which page of the CT runs (default: the newest)."""
    from ctflow.core.registry import ModelRegistry
    from ctflow.ui import monitoring

    spec = item.spec
    assert spec is not None
    client = sources.client()
    runs = runs or RunPage(size=RECENT_RUNS)
    airflow = airflow_state([spec.ct_dag_id], runs=runs)
    airflow.update(airflow_state([spec.monitor_dag_id], runs=RECENT_RUNS))
    data = summary(spec, sources, client=client, airflow=airflow)
    registry = ModelRegistry(spec.model_name, tracking_uri=sources.tracking_uri)
    versions = versions_with_aliases(registry)
    data["versions"] = [_version_view(v, client, spec.evaluation.metric, sources) for v in reversed(versions)]
    data["timeline"] = timeline(spec, client, versions, sources)
    data["history"] = _history(registry.history(), sources)
    ct = airflow.get(spec.ct_dag_id, {})
    data["ct_runs"] = [_run_view(r, spec.ct_dag_id, sources) for r in ct.get("runs", [])]
    total = ct.get("total", 0)
    data["ct_runs_page"] = {"page": runs.page, "size": runs.size, "state": runs.state, "total": total,
                            "pages": max(1, -(-total // runs.size))}
    data["monitor_runs"] = [
        _run_view(r, spec.monitor_dag_id, sources) for r in airflow.get(spec.monitor_dag_id, {}).get("runs", [])
    ]
    try:
        data["monitoring_trend"] = monitoring.recent_windows(client, spec)
        for window in data["monitoring_trend"]:
            window["url"] = links.run_url(window["experiment_id"], window["run_id"], sources.mlflow_ui)
    except Exception as err:  # the rest of the page still shows
        log.warning("cannot read the monitoring windows of %s: %s", spec.pipeline, err)
        data["monitoring_trend"] = []
    data["max_drifted_share"] = spec.monitoring.drift.max_drifted_share
    if data["monitoring"].get("status") in ("ok", "breach", "insufficient_data"):
        try:
            run = client.get_run(data["monitoring"]["run_id"])
            data["monitoring"] = monitoring.summarize(client, spec, run, with_columns=True)
        except Exception as err:
            log.warning("cannot read drift of %s: %s", spec.pipeline, err)
        mon = data["monitoring"]
        mon["url"] = links.run_url(mon["experiment_id"], mon["run_id"], sources.mlflow_ui)
        if mon.get("report_path"):
            mon["report_url"] = links.artifact_url(mon["experiment_id"], mon["run_id"], mon["report_path"], sources.mlflow_ui)
    data["spec_file"] = item.display_name
    data["spec_text"] = item.text
    data["thresholds"] = {k: v.model_dump() for k, v in spec.evaluation.thresholds.items()}
    return data


def timeline(spec: PipelineSpec, client: MlflowClient, versions: list[ModelVersionInfo],
             sources: Sources) -> list[dict[str, Any]]:
    """The primary metric of every candidate (oldest first), with its version and gate outcome."""
    metric = spec.evaluation.metric
    experiment = client.get_experiment_by_name(f"ctflow/{spec.pipeline}")
    by_run = {v.run_id: v for v in versions if v.run_id}
    points = []
    seen_runs = set()
    if experiment is not None:
        runs = client.search_runs(
            [experiment.experiment_id],
            filter_string="tags.`ctflow.stage` = 'candidate'",
            order_by=["attributes.start_time DESC"],
            max_results=MAX_CANDIDATES,
        )
        for run in reversed(runs):
            value = run.data.metrics.get(metric)
            version = by_run.get(run.info.run_id)
            seen_runs.add(run.info.run_id)
            points.append(_point(run.info.run_id, run.info.experiment_id, run.data.tags, run.info.start_time,
                                 value, version, sources))
    for version in versions:  # versions registered from runs outside the experiment (rare)
        if version.run_id in seen_runs or version.run_id is None:
            continue
        try:
            run = client.get_run(version.run_id)
        except Exception:
            continue
        points.append(_point(run.info.run_id, run.info.experiment_id, run.data.tags, run.info.start_time,
                             run.data.metrics.get(metric), version, sources))
    points.sort(key=lambda p: (p["as_of"] or "", p["started"] or ""))
    return points


def _point(run_id: str, experiment_id: str, tags: dict[str, str], start_ms: int | None, value: float | None,
           version: ModelVersionInfo | None, sources: Sources) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "run_url": links.run_url(experiment_id, run_id, sources.mlflow_ui),
        "as_of": tags.get(mlflow_tags.AS_OF),
        "started": _iso_ms(start_ms),
        "value": value,
        "decision": tags.get(mlflow_tags.GATE_DECISION),
        "reason": tags.get(mlflow_tags.GATE_REASON),  # the gate's like-for-like comparison, shown inline
        "gate": tags.get(mlflow_tags.GATE),
        "version": version.version if version else None,
        "aliases": list(version.aliases) if version else [],
        "airflow_run_id": tags.get("airflow.run_id"),
    }


# -- Airflow --------------------------------------------------------------------------------


def versions_with_aliases(registry: ModelRegistry) -> list[ModelVersionInfo]:
    """Every version, oldest first, with its aliases (MLflow's version search leaves them out)."""
    from dataclasses import replace

    versions = registry.versions()
    if not versions:
        return []
    by_version: dict[str, list[str]] = {}
    for alias, version in registry.client.get_registered_model(registry.model_name).aliases.items():
        by_version.setdefault(str(version), []).append(alias)
    return [replace(v, aliases=sorted(by_version.get(v.version, []))) for v in versions]


# -- helpers --------------------------------------------------------------------------------


def _holder(versions: dict[str, ModelVersionInfo], alias: str) -> ModelVersionInfo | None:
    return next((v for v in versions.values() if alias in v.aliases), None)


def _version_view(version: ModelVersionInfo, client: MlflowClient, metric: str, sources: Sources) -> dict[str, Any]:
    value, run_started, as_of, experiment_id = None, None, None, None
    if tag := version.tags.get(f"ctflow.metric.{metric}"):
        try:
            value = float(tag)
        except ValueError:
            value = None
    if version.run_id:
        try:
            run = client.get_run(version.run_id)
            value = run.data.metrics.get(metric, value)
            run_started = _iso_ms(run.info.start_time)
            as_of = run.data.tags.get(mlflow_tags.AS_OF)
            experiment_id = run.info.experiment_id
        except Exception:  # run deleted
            pass
    return {
        "version": version.version,
        "aliases": list(version.aliases),
        "metric": metric,
        "value": value,
        "run_id": version.run_id,
        "run_url": (links.run_url(experiment_id, version.run_id, sources.mlflow_ui)
                    if experiment_id and version.run_id else None),
        "url": links.model_version_url(version.name, version.version, sources.mlflow_ui),
        "gate": version.tags.get(mlflow_tags.GATE),
        "gate_reason": version.tags.get(mlflow_tags.GATE_REASON),
        "approval": version.tags.get(mlflow_tags.APPROVAL),
        "approval_by": version.tags.get(mlflow_tags.APPROVAL_BY),
        "approval_note": version.tags.get(mlflow_tags.APPROVAL_NOTE),
        "airflow_run": version.tags.get(mlflow_tags.RUN_KEY),
        "trained": run_started,
        "as_of": as_of,
    }


def _run_view(run: dict[str, Any], dag_id: str, sources: Sources) -> dict[str, Any]:
    view = {**run, "dag_id": dag_id, "url": sources.run_url(dag_id, run["run_id"])}
    if run.get("awaiting_approval"):
        view["approval_url"] = _approval_url(dag_id, run["run_id"], sources)
    return view


def _approval_url(dag_id: str, run_id: str, sources: Sources) -> str:
    """Airflow's own form for the approval task's required action (it shows the answer once given)."""
    return f"{sources.run_url(dag_id, run_id)}/tasks/{tasks.APPROVE}/required_actions"


def _last_decision(versions: dict[str, ModelVersionInfo], sources: Sources) -> dict[str, Any] | None:
    """The latest human decision on a version (``approved``/``rejected``), who made it and why, as
    the approval task recorded it on the version, with the Airflow form it was made in."""
    decided = [v for v in versions.values() if v.tags.get(mlflow_tags.APPROVAL)]
    if not decided:
        return None
    version = max(decided, key=lambda v: (v.tags.get(mlflow_tags.APPROVAL_AT) or "", int(v.version)))
    dag_id, _, run_id = (version.tags.get(mlflow_tags.RUN_KEY) or "").partition("/")
    return {
        "version": version.version,
        "decision": version.tags[mlflow_tags.APPROVAL],
        "by": version.tags.get(mlflow_tags.APPROVAL_BY),
        "at": version.tags.get(mlflow_tags.APPROVAL_AT),
        "note": version.tags.get(mlflow_tags.APPROVAL_NOTE),
        "url": _approval_url(dag_id, run_id, sources) if dag_id and run_id else None,
    }


def _history(changes: list[AliasMove], sources: Sources) -> list[dict[str, Any]]:
    """The alias history, newest first; "by" is the user who triggered the run that moved the alias
    (Airflow's ``triggering_user_name``), else the actor the registry recorded."""
    runs = {change.actor: _actor_run(change.actor) for change in changes}
    users = triggering_users([key for key in runs.values() if key])
    out = []
    for change in reversed(changes):
        key = runs[change.actor]
        out.append({**change.to_dict(), "run_url": sources.run_url(*key) if key else None,
                    "by": users.get(key) if key else None})
        out[-1]["by"] = out[-1]["by"] or _actor_name(change.actor)
    return out


def _actor_run(actor: str | None) -> tuple[str, str] | None:
    """``airflow:ct_x/manual__...`` → ``(ct_x, manual__...)``."""
    if not actor or not actor.startswith("airflow:") or "/" not in actor:
        return None
    dag_id, _, run_id = actor[len("airflow:"):].partition("/")
    return dag_id, run_id


def _actor_name(actor: str | None) -> str:
    """Who the registry recorded, when no user is known: a scheduled run says so, not its id."""
    key = _actor_run(actor)
    if key is None:
        return actor or "—"
    return "schedule" if key[1].startswith(("scheduled__", "asset_triggered__")) else key[1]


def _iso_ms(ms: int | None) -> str | None:
    return _iso(datetime.fromtimestamp(ms / 1000, tz=UTC)) if ms else None
