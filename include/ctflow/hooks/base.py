"""What ctflow's hooks share: an Airflow connection that may be absent, because ctflow has defaults.

A ctflow connection is optional: without ``ctflow_mlflow`` the embedded SQLite store is used,
without ``ctflow_feast`` the project's ``feature_repo/``, and so on. So "not defined" is an
answer here, not an error; any other failure (a secrets backend that is down) still raises.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseHook

if TYPE_CHECKING:
    from airflow.sdk import Connection

#: Names of the "no such connection" exception: its import path differs between SDK versions
#: and between a task (the supervisor answers) and the api-server (the metadata DB answers).
_NOT_FOUND_ERRORS = ("AirflowNotFoundException", "ConnectionNotFound")


def connection_or_none(conn_id: str) -> Connection | None:
    """The connection ``conn_id``, or None when it is not defined (the caller's default applies)."""
    try:
        return BaseHook.get_connection(conn_id)
    except Exception as err:
        if type(err).__name__ in _NOT_FOUND_ERRORS or "isn't defined" in str(err):
            return None
        raise


class CtflowHook(BaseHook):
    """
    Base of ctflow's hooks: one connection id, read through :meth:`connection`.

    Subclasses set ``conn_name_attr`` (the constructor argument holding the id),
    ``default_conn_name``, ``conn_type`` and ``hook_name``, as Airflow's providers do; the
    connection form of each ``conn_type`` is declared in :mod:`ctflow.provider_info`.
    """

    conn_name_attr: ClassVar[str]
    default_conn_name: ClassVar[str]

    def __init__(self, conn_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        setattr(self, self.conn_name_attr, conn_id)

    @property
    def conn_id(self) -> str:
        return getattr(self, self.conn_name_attr)

    def connection(self) -> Connection | None:
        """This hook's connection, or None when it is not defined."""
        return connection_or_none(self.conn_id)

    def required_connection(self) -> Connection:
        """This hook's connection; raises Airflow's not-found error when it is not defined."""
        return self.get_connection(self.conn_id)
