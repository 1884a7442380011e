"""Errors as people read them: an HTML page for a browser, a JSON body with one clear sentence in
``detail`` for the API (what the page's script shows), never pydantic's raw error list."""

from __future__ import annotations

import difflib
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

#: What a date-time field accepts, said once for every such error.
DATETIME_HINT = "an ISO 8601 date or date-time such as 2013-10-01 or 2013-10-01T00:00:00Z"


def readable(errors: list[dict[str, Any]]) -> str:
    """``field: problem (got 'value')`` per error, joined: pydantic's list said in sentences."""
    parts = []
    for error in errors:
        loc = [str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path")]
        field = ".".join(loc) or "request body"
        kind = str(error.get("type", ""))
        if kind == "extra_forbidden":
            parts.append(f"{field}: unknown field")
            continue
        if kind == "missing":
            parts.append(f"{field}: required")
            continue
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        if kind.startswith(("datetime", "date_")):
            message = f"not a valid date: expected {DATETIME_HINT}"
        got = error.get("input")
        suffix = f" (got {got!r})" if isinstance(got, (str, int, float)) and not isinstance(got, bool) else ""
        parts.append(f"{field}: {message}{suffix}")
    return "; ".join(parts) or "invalid request"


def unknown_pipeline(name: str, known: list[str]) -> str:
    """The 404 sentence, with the closest pipeline name when there is one."""
    message = f"no valid ctflow spec defines pipeline {name!r}"
    close = difflib.get_close_matches(name, known, n=1)
    return message + (f"; did you mean {close[0]!r}?" if close else "")


def install(app: FastAPI) -> None:
    """Validation errors of every route as one readable sentence (422): ``detail`` of a JSON body
    for the API, a page for a page."""

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, err: RequestValidationError) -> Response:
        errors = list(err.errors())
        if "/api/" not in request.url.path:  # a page: say it on a page
            from ctflow.ui.app import _render

            return _render(request, None, "message.html", status_code=status.HTTP_422_UNPROCESSABLE_ENTITY,
                           heading="This address is not valid", message=readable(errors))
        return JSONResponse(
            {"detail": readable(errors), "errors": [_brief(e) for e in errors]},
            status_code=status.HTTP_422_UNPROCESSABLE_ENTITY,
        )


def _brief(error: dict[str, Any]) -> dict[str, str]:
    loc = [str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path")]
    return {"field": ".".join(loc), "problem": readable([error])}
