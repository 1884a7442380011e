"""Where an alert webhook is: the URL and extra headers of an HTTP endpoint, from an Airflow connection.

A spec's ``monitoring.alerts`` names a connection (never a URL with secrets in the spec). The
connection gives the URL:

* ``host`` may be a full URL (``https://hooks.example.com/services/x``); otherwise
* scheme: ``schema`` when it is ``http``/``https`` (the HttpHook convention), else the
  connection type when it is ``http``/``https``, else ``http``;
* ``host``, ``port``;
* path: ``schema`` when it is not a scheme (a connection made from the URI
  ``http://host:8080/alerts`` keeps ``alerts`` there), then ``extra.path`` / ``extra.endpoint``;
* ``extra.headers``: extra HTTP headers (e.g. a token), never logged.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from ctflow.hooks.base import CtflowHook


class WebhookHook(CtflowHook):
    """
    Resolve an alert webhook's endpoint.

    The connection's type is ``ctflow_webhook``; ``http``/``https`` and other connections are
    read the same way (see the module docs). Unlike ctflow's other connections this one has no
    default: a missing connection raises Airflow's not-found error.

    :param webhook_conn_id: Airflow connection id.
    """

    conn_name_attr = "webhook_conn_id"
    default_conn_name = "ctflow_webhook"
    conn_type = "ctflow_webhook"
    hook_name = "ctflow alert webhook"

    def __init__(self, webhook_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(webhook_conn_id, **kwargs)

    def endpoint(self) -> tuple[str, dict[str, str]]:
        """The URL and the extra headers to POST an alert with; ValueError when they make no URL."""
        conn = self.required_connection()
        extra = conn.extra_dejson or {}
        host = (conn.host or "").strip()
        if not host:
            raise ValueError(f"connection {self.conn_id!r} has no host")
        schema = (conn.schema or "").strip()
        path_parts = [] if schema in ("http", "https", "") else [schema]
        if "://" in host:
            base = host.rstrip("/")
        else:
            kind = (conn.conn_type or "").lower()
            scheme = schema if schema in ("http", "https") else kind if kind in ("http", "https") else "http"
            port = f":{conn.port}" if conn.port else ""
            base = f"{scheme}://{host}{port}"
        for key in ("path", "endpoint"):
            if extra.get(key):
                path_parts.append(str(extra[key]))
        path = "/".join(p.strip("/") for p in path_parts if p.strip("/"))
        url = f"{base}/{path}" if path else base
        if not urlsplit(url).hostname:
            raise ValueError(f"connection {self.conn_id!r} does not make a URL: {url!r}")
        headers = {str(k): str(v) for k, v in (extra.get("headers") or {}).items()}
        return url, headers
