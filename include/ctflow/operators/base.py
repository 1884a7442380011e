"""The base of ctflow's operators: a spec, a run key, and the core doing the work.

Operators are thin. ``__init__`` stores arguments; ``execute`` resolves run-time values
and calls an Airflow-free function of :mod:`ctflow.core`, imported there and not at module
level, so that parsing a DAG never imports pandas, scikit-learn, MLflow or Feast.

A :class:`~ctflow.exceptions.ConfigurationError` from the core (an unknown feature service, a
missing entity file or column) fails the task for good, ``AirflowFailException``: a retry cannot
fix a spec. Everything else keeps the task's retries (MLflow down, a lock timeout).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

    from ctflow.spec import PipelineSpec

#: One folder per DAG run for the files tasks hand to each other (frames, models, reports).
RUN_KEY_TEMPLATE = "{{ dag.dag_id }}/{{ run_id }}"


class CtflowOperator(BaseOperator):
    """
    Base class of ctflow operators.

    :param spec: the validated pipeline spec this task belongs to.
    :param spec_path: the spec file, logged with the model for reproducibility.
    :param run_key: identifies the DAG run; names its working folder and tags what it
        registers, so retries find their own earlier work. (templated)
    :param mlflow_conn_id: Airflow connection of the MLflow tracking server/registry.
    :param feast_conn_id: Airflow connection naming the Feast repository.
    """

    template_fields: Sequence[str] = ("run_key",)
    ui_color = "#dfeefe"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Every execute of a ctflow operator, subclasses' included: configuration errors are final.
        super().__init_subclass__(**kwargs)
        if "execute" in cls.__dict__:
            cls.execute = final_on_configuration_error(cls.__dict__["execute"])  # type: ignore[method-assign]

    def __init__(
        self,
        *,
        spec: PipelineSpec,
        spec_path: str | None = None,
        run_key: str = RUN_KEY_TEMPLATE,
        mlflow_conn_id: str = "ctflow_mlflow",
        feast_conn_id: str = "ctflow_feast",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.spec = spec
        self.spec_path = spec_path
        self.run_key = run_key
        self.mlflow_conn_id = mlflow_conn_id
        self.feast_conn_id = feast_conn_id

    @cached_property
    def mlflow_hook(self):
        from ctflow.hooks.mlflow import MlflowHook

        return MlflowHook(mlflow_conn_id=self.mlflow_conn_id)

    @cached_property
    def feast_hook(self):
        from ctflow.hooks.feast import FeastHook

        return FeastHook(feast_conn_id=self.feast_conn_id)

    @property
    def tracking_uri(self) -> str:
        return self.mlflow_hook.tracking_uri()

    def spec_text(self) -> str | None:
        return Path(self.spec_path).read_text(encoding="utf-8") if self.spec_path else None

    def run_dir(self) -> Path:
        """This DAG run's working folder under ``$CTFLOW_HOME/runs``."""
        from ctflow import settings

        return settings.run_dir(self.run_key)

    @staticmethod
    def as_of(context: Context) -> datetime:
        """The instant the run is about: ``params.as_of``, else the logical date, else the instant
        named by the asset events that triggered the run (a breach names its window), else when
        it ran. Asset-triggered and some manual runs have no logical date in Airflow 3.
        """
        from ctflow.core.timing import as_of_from_events, resolve_as_of

        dag_run = context.get("dag_run")
        events = context.get("triggering_asset_events") or {}
        extras = [event.extra for asset in events for event in events[asset]]
        return resolve_as_of(
            (context.get("params") or {}).get("as_of"),
            context.get("logical_date"),
            getattr(dag_run, "run_after", None),
            triggered_as_of=as_of_from_events(extras),
        )


def final_on_configuration_error(execute: Callable[..., Any]) -> Callable[..., Any]:
    """``execute`` with :class:`~ctflow.exceptions.ConfigurationError` raised as ``AirflowFailException``
    (no retries), its message naming the field and the fix."""

    @functools.wraps(execute)
    def wrapper(self: BaseOperator, *args: Any, **kwargs: Any) -> Any:
        from ctflow.exceptions import ConfigurationError

        try:
            return execute(self, *args, **kwargs)
        except ConfigurationError as err:
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(f"configuration error (not retried): {err}") from err

    return wrapper


def not_built_yet(what: str) -> NotImplementedError:
    """An honest failure for a step whose core is not written yet."""
    return NotImplementedError(f"{what} is not implemented yet in this version of ctflow")
