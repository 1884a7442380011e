"""The view's state-changing routes: retrain and roll back a pipeline, safe from forged requests.

=================================================  ===================================================
``POST /ctflow/api/pipelines/{name}/retrain``      trigger ``ct_<name>`` (``action=train``)
``POST /ctflow/api/pipelines/{name}/rollback``     trigger ``ct_<name>`` (``action=rollback``, reason)
``POST /ctflow/api/pipelines/{name}/unpause``      unpause ``ct_<name>`` (no body; a queued run starts)
=================================================  ===================================================

A browser sends Airflow's login cookie (``_token``, SameSite=Lax) with requests from any page of
the same *site*, which includes every other port of the host (the MLflow UI and the HTML
artifacts it serves, say). So an action is performed only when all of these hold, in this order:

1. the caller is logged in (Airflow's own ``get_user``: 401/403 otherwise);
2. if the login came from the cookie, not from an ``Authorization: Bearer`` header (which a
   page of another origin cannot set without a CORS preflight the api-server does not grant),
   the request's ``Origin`` (else its ``Referer``) is the api-server's own: the origin of
   Airflow's ``[api] base_url``, or the scheme and ``Host`` the request was sent to (403);
3. a body, if the action takes one, is ``application/json`` (415): an HTML form cannot send that;
4. the body has every required field and no unknown one (422): an empty body never retrains or
   rolls back, and a retrain states ``dry_run`` and ``force_promotion`` explicitly. An unpause
   has nothing to state, so it takes no body (or ``{}``); only the origin check guards it.

Actions are not performed here: they are forwarded, with the caller's own token, to Airflow's
REST API (``POST /api/v2/dags/ct_<name>/dagRuns``), which checks the permission again and writes
the audit log under the caller's name.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Body, Depends, FastAPI, HTTPException, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

if TYPE_CHECKING:
    import httpx
    from airflow.api_fastapi.auth.managers.models.base_user import BaseUser

log = logging.getLogger(__name__)

router = APIRouter()

# ctflow.ui.app (Airflow's auth, the specs) is imported inside the functions that use it: it
# includes this module's router when it is imported itself.


# -- request bodies -------------------------------------------------------------------------


class _Action(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RetrainRequest(_Action):
    """``ct_<name>`` params of a training run. ``dry_run`` and ``force_promotion`` are required:
    a request that does not say whether it registers and promotes does nothing."""

    dry_run: StrictBool = Field(..., description="Train and evaluate, register nothing.")
    force_promotion: StrictBool = Field(..., description="Promote even if the gate rejects (needs a reason).")
    as_of: datetime | None = Field(None, description="Run as of this instant (default: now).")
    window_days: int | None = Field(None, ge=1, le=3660, description="Override the spec's training window.")
    reason: str = Field("", max_length=500)

    @field_validator("reason")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()

    @field_validator("as_of")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


class RollbackRequest(_Action):
    reason: str = Field(..., min_length=1, max_length=500, description="Why: recorded in the alias history.")

    @field_validator("reason")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("a rollback needs a reason")
        return value.strip()


class UnpauseRequest(_Action):
    """Nothing to state: an unpause takes no body, or ``{}`` (an unknown field is still refused)."""


# -- who may act, from where ----------------------------------------------------------------


async def acting_user(request: Request) -> BaseUser:
    """The caller of an action, once the request is known not to be forged (see the module doc).

    A dependency, so it runs before the body is validated: no login is 401, not 422.
    """
    user = await _logged_in_same_origin(request)
    _require_json(request)
    return user


async def acting_user_without_body(request: Request) -> BaseUser:
    """:func:`acting_user` for an action that states nothing: no body is fine, one must be JSON."""
    user = await _logged_in_same_origin(request)
    if await request.body():
        _require_json(request)
    return user


async def _logged_in_same_origin(request: Request) -> BaseUser:
    from ctflow.ui.app import _api_user

    user = await _api_user(request)
    if _bearer_token(request) is None:  # the cookie logged the caller in
        _require_same_origin(request)
    return user


def _require_json(request: Request) -> None:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, "actions take an application/json body"
                            + (f", not {media_type}" if media_type else " (this request has no Content-Type)"))


def _bearer_token(request: Request) -> str | None:
    """The ``Authorization: Bearer`` token, parsed as Airflow's ``get_user`` does (None: the cookie is used)."""
    from fastapi.security.utils import get_authorization_scheme_param

    scheme, token = get_authorization_scheme_param(request.headers.get("authorization"))
    return token if scheme.lower() == "bearer" and token else None


def _require_same_origin(request: Request) -> None:
    origin = request.headers.get("origin")
    source = origin if origin is not None else request.headers.get("referer")
    own = own_origins(request)
    if not source:
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            "refused: a request authenticated by the login cookie must carry an Origin or Referer "
                            "header (API clients: send Authorization: Bearer <token>)")
    if normalized_origin(source) not in own:
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            f"refused: cross-origin request from {source[:200]!r}; actions are accepted from "
                            f"{' or '.join(sorted(own))} only")


def own_origins(request: Request) -> set[str]:
    """The api-server's own origins: that of ``[api] base_url`` and the one the request was sent to."""
    origins = set()
    try:
        from airflow.configuration import conf

        base_url = conf.get("api", "base_url", fallback="") or ""
    except Exception:  # no Airflow configuration
        base_url = ""
    for url in (base_url, f"{request.url.scheme}://{request.headers.get('host', '')}"):
        origin = normalized_origin(url)
        if origin:
            origins.add(origin)
    return origins


def normalized_origin(url: str) -> str | None:
    """``scheme://host[:port]`` of ``url``, lower case, without a default port; None if it has none."""
    try:
        parts = urlsplit(url.strip())
        scheme, host, port = parts.scheme.lower(), parts.hostname, parts.port
    except ValueError:
        return None
    if scheme not in ("http", "https") or not host:
        return None
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443}[scheme]
    return f"{scheme}://{host}" + (f":{port}" if port and port != default else "")


# -- the routes -----------------------------------------------------------------------------


# response_model=None: the answer is Airflow's error as it came (JSONResponse), else the run (a dict).
@router.post("/api/pipelines/{name}/retrain", response_model=None)
async def retrain(request: Request, name: str, body: RetrainRequest = Body(...),
                  user: BaseUser = Depends(acting_user)) -> dict[str, Any] | JSONResponse:
    from starlette.concurrency import run_in_threadpool

    from ctflow.ui.app import _spec_for_action, _user_name

    spec = await run_in_threadpool(_spec_for_action, user, name)
    if body.force_promotion and not body.reason:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY,
                            "force_promotion needs a reason: it goes into the alias history")
    holdout_days = spec.data.holdout.longest().days
    if body.window_days is not None and body.window_days <= holdout_days:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY,
                            f"window_days must be longer than the holdout ({holdout_days} days)")
    conf: dict[str, Any] = {"action": "train", "force_promotion": body.force_promotion, "dry_run": body.dry_run,
                            "reason": body.reason}
    if body.as_of is not None:
        conf["as_of"] = body.as_of.isoformat()
    if body.window_days is not None:
        conf["window_days"] = body.window_days
    note = f"Retrain requested in the ctflow view by {_user_name(user)}"
    note += f": {body.reason}" if body.reason else ""
    return await _trigger(request, spec.ct_dag_id, conf, note)


@router.post("/api/pipelines/{name}/rollback", response_model=None)
async def rollback(request: Request, name: str, body: RollbackRequest = Body(...),
                   user: BaseUser = Depends(acting_user)) -> dict[str, Any] | JSONResponse:
    from starlette.concurrency import run_in_threadpool

    from ctflow.ui.app import _rollback_target, _spec_for_action, _user_name

    spec = await run_in_threadpool(_spec_for_action, user, name)
    target = await run_in_threadpool(_rollback_target, spec)
    if target is None:
        raise HTTPException(status.HTTP_409_CONFLICT,
                            f"champion of {spec.model_name!r} has no earlier holder to roll back to")
    note = f"Rollback to v{target} requested in the ctflow view by {_user_name(user)}: {body.reason}"
    return await _trigger(request, spec.ct_dag_id, {"action": "rollback", "reason": body.reason}, note)


# -- forwarding to Airflow's REST API --------------------------------------------------------


@router.post("/api/pipelines/{name}/unpause", response_model=None)
async def unpause(request: Request, name: str, body: UnpauseRequest | None = Body(None),
                  user: BaseUser = Depends(acting_user_without_body)) -> dict[str, Any] | JSONResponse:
    """Unpause ``ct_<name>`` (``PATCH /api/v2/dags/ct_<name>`` as the caller), so a queued run starts.
    The body is empty or ``{}``."""
    from starlette.concurrency import run_in_threadpool

    from ctflow.ui.app import _spec_for_action

    spec = await run_in_threadpool(_spec_for_action, user, name)
    response = await _forward(request, "PATCH", f"/api/v2/dags/{quote(spec.ct_dag_id, safe='')}",
                              {"is_paused": False})
    payload = _json(response)
    if response.status_code >= 400:
        return JSONResponse(payload, status_code=response.status_code)
    return {"dag_id": spec.ct_dag_id, "paused": payload.get("is_paused")}


async def _trigger(request: Request, dag_id: str, conf: dict[str, Any], note: str) -> dict[str, Any] | JSONResponse:
    """``POST /api/v2/dags/{dag_id}/dagRuns`` as the caller; Airflow's answer is passed on, with
    whether the DAG is paused (a run of a paused DAG stays queued until it is unpaused)."""
    from starlette.concurrency import run_in_threadpool

    from ctflow.ui.app import _airflow_root

    body = {"logical_date": None, "conf": conf, "note": note}
    response = await _forward(request, "POST", f"/api/v2/dags/{quote(dag_id, safe='')}/dagRuns", body)
    payload = _json(response)
    if response.status_code >= 400:
        return JSONResponse(payload, status_code=response.status_code)
    airflow_root = _airflow_root(request)
    return {
        "dag_id": payload.get("dag_id", dag_id),
        "dag_run_id": payload.get("dag_run_id"),
        "state": payload.get("state"),
        "conf": payload.get("conf", conf),
        "url": f"{airflow_root}/dags/{dag_id}/runs/{quote(str(payload.get('dag_run_id')), safe='')}",
        "paused": await run_in_threadpool(_paused, dag_id),
    }


def _paused(dag_id: str) -> bool | None:
    from ctflow.ui.airflow_runs import airflow_state

    return airflow_state([dag_id]).get(dag_id, {}).get("paused")


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        return response.json()
    except ValueError:
        return {"detail": response.text[:500]}


async def _forward(request: Request, method: str, api_path: str, body: dict[str, Any]) -> httpx.Response:
    """``method api_path`` on Airflow's REST API with the caller's own token."""
    import httpx

    from ctflow.ui.app import _airflow_root

    token = _caller_token(request)
    airflow_root = _airflow_root(request)
    path = f"{airflow_root}{api_path}"
    root = _api_server_app()
    if root is not None:  # in-process: the same app, middlewares, permissions and audit log
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=root, client=("127.0.0.1", 0)),
                                   base_url="http://api-server.internal", timeout=60)
    else:  # not inside `airflow api-server`: over HTTP to the configured base URL
        from airflow.configuration import conf as airflow_conf

        base = airflow_conf.get("api", "base_url", fallback="") or "http://127.0.0.1:8080"
        client = httpx.AsyncClient(base_url=base.rstrip("/").removesuffix(airflow_root), timeout=60)
    async with client:
        return await client.request(method, path, json=body, headers={"Authorization": f"Bearer {token}"})


def _caller_token(request: Request) -> str:
    """The JWT the caller authenticated with: the bearer header, else the UI's cookie."""
    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN

    return _bearer_token(request) or request.cookies.get(COOKIE_NAME_JWT_TOKEN, "")


def _api_server_app() -> FastAPI | None:
    """The api-server's root FastAPI app (``airflow.api_fastapi.main:app``, what uvicorn and
    gunicorn serve), or None outside an api-server process."""
    module = sys.modules.get("airflow.api_fastapi.main")
    return getattr(module, "app", None)
