"""The ctflow view: a FastAPI app that the Airflow api-server mounts at ``/ctflow`` (see the plugin).

Pages (HTML) and a JSON API over the same data (:mod:`ctflow.ui.data`):

=========================================  ===========================================================
``GET  /ctflow/``                          every pipeline: last CT run and gate, champion, challenger,
                                           monitoring state, next run
``GET  /ctflow/pipelines/{name}``          one pipeline: metric timeline, monitoring trend, drift, alias
                                           history, spec
``GET  /ctflow/dag/{dag_id}``              from a DAG's page (``ct_x``/``monitor_x``) to its pipeline
``GET  /ctflow/api/pipelines[/{name}]``    the same as JSON
``POST /ctflow/api/pipelines/{name}/...``  ``retrain`` and ``rollback`` (:mod:`ctflow.ui.actions`)
=========================================  ===========================================================

Authentication and permissions are Airflow's: the user comes from Airflow's own ``get_user``
(a ``Authorization: Bearer`` JWT, else the UI's ``_token`` cookie), and every pipeline is
authorized as its ``ct_<name>`` DAG by the configured auth manager (GET to see it, POST on DAG
runs to act on it). Without a valid login the API answers 401 (403 for an invalid token) and the
pages redirect to Airflow's login. Actions (:mod:`ctflow.ui.actions`) also refuse what a page of
another origin could send with the login cookie, and are forwarded, with the caller's own token,
to Airflow's REST API, which checks the permission again and writes the audit log.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import quote, urlsplit

from fastapi import FastAPI, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import jinja2
    from airflow.api_fastapi.auth.managers.models.base_user import BaseUser

    from ctflow.factory.discover import LoadedSpec
    from ctflow.spec import PipelineSpec
    from ctflow.ui.airflow_runs import RunPage

log = logging.getLogger(__name__)

URL_PREFIX = "/ctflow"
#: Query parameters of run lists: a 1-based page, and one Airflow run state (or all).
RunsPage = Annotated[int, Query(ge=1, le=100_000)]
RunsState = Annotated[Literal["queued", "running", "success", "failed"] | None, Query()]
HERE = Path(__file__).parent


def view_href(path: str = "/") -> str:
    """``/ctflow<path>`` below Airflow's own path prefix (the path of ``[api] base_url``)."""
    try:
        from airflow.configuration import conf

        prefix = urlsplit(conf.get("api", "base_url", fallback="") or "").path.rstrip("/")
    except Exception:  # no Airflow configuration: at the site root
        prefix = ""
    return f"{prefix}{URL_PREFIX}{path}"


# -- the app --------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Import MLflow and the registry in the background at api-server start, so that the first
    page does not wait for them (about 5 s on a small machine)."""
    threading.Thread(target=_warm_up, name="ctflow-ui-warm-up", daemon=True).start()
    yield


def _warm_up() -> None:
    try:
        import mlflow  # noqa: F401

        import ctflow.core.registry
        import ctflow.ui.data  # noqa: F401
    except Exception:  # the first request will report it
        log.exception("ctflow view: warm-up import failed")


def create_app() -> FastAPI:  # noqa: C901 - the route closures count in; each route is a few lines
    app = FastAPI(
        lifespan=_lifespan,
        title="ctflow",
        description="Continuous-training pipelines: overview, per-pipeline history, retrain and rollback.",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def overview_page(request: Request) -> Response:
        user = await _page_user(request)
        if isinstance(user, RedirectResponse):
            return user
        from starlette.concurrency import run_in_threadpool

        from ctflow.ui import data

        payload = await run_in_threadpool(_overview, request, user)
        return _render(request, user, "overview.html", data=payload, specs_folder=_shown_path(data.specs_folder()))

    @app.get("/pipelines/{name}", response_class=HTMLResponse, include_in_schema=False)
    async def pipeline_page(request: Request, name: str, runs_page: RunsPage = 1,
                            runs_state: RunsState = None) -> Response:
        user = await _page_user(request)
        if isinstance(user, RedirectResponse):
            return user
        from starlette.concurrency import run_in_threadpool

        from ctflow.ui.chart import metric_timeline_svg
        from ctflow.ui.trend_chart import monitoring_trend_svg

        try:
            payload = await run_in_threadpool(_detail, request, user, name, _runs(runs_page, runs_state))
        except HTTPException as err:  # an unknown or forbidden pipeline: a page, not a JSON body
            return _render(request, user, "message.html", status_code=err.status_code,
                           heading="Pipeline not found" if err.status_code == 404 else "Not allowed",
                           message=str(err.detail))
        bound = payload.get("thresholds", {}).get(payload["metric"], {})
        chart = metric_timeline_svg(payload["timeline"], metric=payload["metric"], floor=bound.get("min"),
                                    ceiling=bound.get("max"))
        trend = monitoring_trend_svg(payload["monitoring_trend"], max_drifted_share=payload["max_drifted_share"],
                                     champion=(payload.get("champion") or {}).get("version"))
        return _render(request, user, "pipeline.html", p=payload, chart=chart, trend=trend)

    @app.get("/dag/{dag_id}", include_in_schema=False)
    async def from_dag(request: Request, dag_id: str) -> Response:
        user = await _page_user(request)
        if isinstance(user, RedirectResponse):
            return user
        for prefix in ("ct_", "monitor_"):
            if dag_id.startswith(prefix):
                return RedirectResponse(f"{_base(request)}/pipelines/{quote(dag_id[len(prefix):])}", status_code=303)
        return _render(request, user, "message.html", heading=dag_id,
                       message="This DAG is not a ctflow pipeline (ctflow DAGs are named ct_<pipeline> and monitor_<pipeline>).")

    @app.get("/api/pipelines")
    async def list_pipelines(request: Request) -> dict[str, Any]:
        user = await _api_user(request)
        from starlette.concurrency import run_in_threadpool

        return await run_in_threadpool(_overview, request, user)

    @app.get("/api/pipelines/{name}")
    async def get_pipeline(request: Request, name: str, runs_page: RunsPage = 1,
                           runs_state: RunsState = None) -> dict[str, Any]:
        user = await _api_user(request)
        from starlette.concurrency import run_in_threadpool

        return await run_in_threadpool(_detail, request, user, name, _runs(runs_page, runs_state))

    @app.get("/api/pipelines/{name}/runs/{run_id:path}")
    async def get_run(request: Request, name: str, run_id: str) -> dict[str, Any]:
        """One run of ``ct_<name>``: what the page polls to follow a run it triggered to its end."""
        user = await _api_user(request)
        from starlette.concurrency import run_in_threadpool

        return await run_in_threadpool(_run, request, user, name, run_id)

    from ctflow.ui import errors
    from ctflow.ui.actions import router as actions  # retrain, rollback

    errors.install(app)

    app.include_router(actions)
    return app


# -- authentication and permissions (Airflow's own) -----------------------------------------


async def _api_user(request: Request) -> BaseUser:
    """The caller, as Airflow's API sees it; raises 401/403 like every Airflow endpoint."""
    from airflow.api_fastapi.core_api.security import bearer_scheme, get_user

    credentials = await bearer_scheme(request)
    return await get_user(request, None, credentials)


async def _page_user(request: Request) -> BaseUser | RedirectResponse:
    """The caller, or a redirect to Airflow's login page that comes back here."""
    try:
        return await _api_user(request)
    except HTTPException as err:
        if err.status_code not in (status.HTTP_401_UNAUTHORIZED, status.HTTP_403_FORBIDDEN):
            raise
        from airflow.api_fastapi.app import get_auth_manager

        login = get_auth_manager().get_url_login(next_url=str(request.url))
        return RedirectResponse(login, status_code=status.HTTP_303_SEE_OTHER)


def _may(user: BaseUser, dag_id: str, method: str = "GET", run: bool = False) -> bool:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
    from airflow.models.dag import DagModel

    try:
        team = DagModel.get_team_name(dag_id)
    except Exception:  # a DB without teams: not a multi-team deployment
        team = None
    return get_auth_manager().is_authorized_dag(
        method=method,
        access_entity=DagAccessEntity.RUN if run else None,
        details=DagDetails(id=dag_id, team_name=team),
        user=user,
    )


def _may_all(user: BaseUser) -> bool:
    from airflow.api_fastapi.app import get_auth_manager

    return get_auth_manager().is_authorized_dag(method="GET", user=user)


def _user_name(user: BaseUser | None) -> str:
    if user is None:  # a page rendered before the caller is known (an invalid request)
        return ""
    try:
        return user.get_name()
    except Exception:
        return str(getattr(user, "username", "unknown"))


def _visible_spec(user: BaseUser, name: str) -> tuple[LoadedSpec, PipelineSpec]:
    """The loaded file of pipeline ``name`` and its spec, if the user may read its DAG; 404 otherwise
    (403 if forbidden)."""
    from ctflow.ui import data
    from ctflow.ui.errors import unknown_pipeline

    loaded = [(i, i.spec) for i in data.load_specs() if i.spec is not None]
    found = next(((i, spec) for i, spec in loaded if spec.pipeline == name), None)
    if found is None:
        known = [spec.pipeline for _, spec in loaded if _may(user, spec.ct_dag_id)]
        raise HTTPException(status.HTTP_404_NOT_FOUND, unknown_pipeline(name, known))
    if not _may(user, found[1].ct_dag_id):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Forbidden")
    return found


def _spec_for_action(user: BaseUser, name: str) -> PipelineSpec:
    _, spec = _visible_spec(user, name)
    if not _may(user, spec.ct_dag_id, method="POST", run=True):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"Forbidden: you may not trigger {spec.ct_dag_id}")
    return spec


# -- data -----------------------------------------------------------------------------------


def _overview(request: Request, user: BaseUser) -> dict[str, Any]:
    from ctflow.ui import data

    specs = [item.spec for item in data.load_specs() if item.spec is not None]
    visible = {s.pipeline for s in specs if _may(user, s.ct_dag_id)}
    # Invalid specs name files and errors of DAGs that do not exist: shown to who may read every DAG.
    return data.overview(data.Sources.default(_airflow_root(request)), visible=visible, show_invalid=_may_all(user))


def _runs(page: int, state: str | None) -> RunPage:
    from ctflow.ui.airflow_runs import RunPage
    from ctflow.ui.data import RECENT_RUNS

    return RunPage(size=RECENT_RUNS, page=page, state=state)


def _run(request: Request, user: BaseUser, name: str, run_id: str) -> dict[str, Any]:
    from ctflow.ui.airflow_runs import run_state

    dag_id = _visible_spec(user, name)[1].ct_dag_id
    run = run_state(dag_id, run_id)
    if run is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"{dag_id} has no run {run_id!r}")
    return {**run, "dag_id": dag_id, "finished": run["state"] in ("success", "failed")}


def _detail(request: Request, user: BaseUser, name: str, runs: RunPage | None = None) -> dict[str, Any]:
    from ctflow.ui import data

    item, spec = _visible_spec(user, name)
    payload = data.detail(item, data.Sources.default(_airflow_root(request)), runs)
    payload["rollback_to"] = _rollback_target(spec)
    payload["may_trigger"] = _may(user, spec.ct_dag_id, method="POST", run=True)
    return payload


def _rollback_target(spec: PipelineSpec) -> str | None:
    from ctflow.core.registry import ModelRegistry
    from ctflow.core.registry_history import rollback_target
    from ctflow.ui import data

    registry = ModelRegistry(spec.model_name, tracking_uri=data.tracking_uri())
    versions = {v.version: v for v in data.versions_with_aliases(registry)}
    if not versions:
        return None
    current = next((v.version for v in versions.values() if "champion" in v.aliases), None)
    usable = lambda version: version in versions and versions[version].gate != "failed"  # noqa: E731
    return rollback_target(registry.history(alias="champion"), current, usable=usable)


# -- rendering ------------------------------------------------------------------------------


def _shown_path(path: Path) -> str:
    """``path`` relative to the ctflow project when it is inside it (short, and no host details)."""
    from ctflow import settings

    try:
        return str(path.resolve().relative_to(settings.project_root()))
    except ValueError:
        return str(path)


def _base(request: Request) -> str:
    """This app's URL prefix as the browser sees it (``/ctflow``, below Airflow's own prefix)."""
    return request.scope.get("root_path", "").rstrip("/") or URL_PREFIX


def _airflow_root(request: Request) -> str:
    return _base(request).removesuffix(URL_PREFIX)


@functools.cache
def _templates() -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(HERE / "templates")),
        autoescape=jinja2.select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    from ctflow.ui.formats import FILTERS

    env.filters.update(FILTERS)
    return env


def _render(request: Request, user: BaseUser | None, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    from ctflow.ui.formats import zone_name

    html = _templates().get_template(template).render(
        base=_base(request), airflow_root=_airflow_root(request), user=_user_name(user), timezone=zone_name(),
        **context
    )
    return HTMLResponse(html, status_code=status_code, headers={"Cache-Control": "no-store"})


app = create_app()
