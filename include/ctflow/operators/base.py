"""The base of ctflow's operators: a spec, a run key, and the core doing the work.

Operators are thin. ``__init__`` stores arguments; ``execute`` builds the step's
:class:`~ctflow.steps.RunContext` from Airflow's context (only what the step's
:class:`~ctflow.steps.StepDeclaration` needs) and calls :func:`~ctflow.steps.run_step`, which
imports the Airflow-free core function then and not at module level, so that parsing a DAG never
imports pandas, scikit-learn, MLflow or Feast. A step's typed result goes to XCom as the plain
dict it always was; a ``skipped`` result skips the task with its reason; the step's refusal
(``StepDeclaration.refusal``, e.g. a data-quality failure) fails it for good.

An error a retry cannot change fails the task for good, ``AirflowFailException``; which errors
those are is :func:`ctflow.exceptions.not_retried`'s to say: a
:class:`~ctflow.exceptions.ConfigurationError` from the core (an unknown feature service, a
missing entity file or column, a user's table ctflow cannot read as declared) or DuckDB failing
to convert or bind the same data again. Everything else keeps the task's retries (MLflow down,
a lock timeout, a file being written). A task failing for good leaves why in XCom
(:func:`record_final_error`), so the ctflow view shows the fix beside the failed run.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from ctflow.steps.protocol import RunContext, StepDeclaration, airflow_lineage, run_step

if TYPE_CHECKING:
    from airflow.sdk import Context

    from ctflow.contract.results import StepResult
    from ctflow.hooks.feast import FeastHook
    from ctflow.hooks.mlflow import MlflowHook
    from ctflow.spec import PipelineSpec

#: One folder per DAG run for the files tasks hand to each other (frames, models, reports).
RUN_KEY_TEMPLATE = "{{ dag.dag_id }}/{{ run_id }}"


class FinalFailure(AirflowFailException):
    """A final failure whose kind the operator knows (``configuration``, ``data`` or ``refused``,
    :data:`~ctflow.contract.tasks.FINAL_ERROR_KINDS`): what the view labels it. The docker runner
    knows it from the container's exit code, where no exception crosses the process boundary."""

    def __init__(self, message: str, *, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


def final_on_permanent_error(execute: Callable[..., Any]) -> Callable[..., Any]:
    """``execute`` with an error a retry cannot change (:func:`~ctflow.exceptions.not_retried`) raised
    as ``AirflowFailException`` (no retries), its message naming what is wrong and the fix; that message,
    or an ``AirflowFailException`` of the operator's own, recorded by :func:`record_final_error`."""

    @functools.wraps(execute)
    def wrapper(self: BaseOperator, *args: Any, **kwargs: Any) -> Any:
        context = kwargs.get("context", args[0] if args else None)
        try:
            return execute(self, *args, **kwargs)
        except AirflowFailException as err:
            from ctflow.exceptions import final_reason

            # One that knows its kind, an inner execute's of an error below, or a step's refusal.
            found = final_reason(err.__cause__) if err.__cause__ is not None else None
            kind = err.kind if isinstance(err, FinalFailure) else found[0] if found else "refused"
            record_final_error(self, context, kind=kind, message=str(err))
            raise
        except Exception as err:
            from ctflow.exceptions import final_reason

            found = final_reason(err)
            if found is None:
                raise
            kind, reason = found
            record_final_error(self, context, kind=kind, message=reason)
            raise FinalFailure(reason, kind=kind) from err

    return wrapper


def record_final_error(operator: BaseOperator, context: Context | None, *, kind: str, message: str) -> None:
    """Leave why the task fails for good under :data:`~ctflow.contract.tasks.FINAL_ERROR_XCOM`, for the
    ctflow view. Airflow keeps a failed try's XComs (a retry's start clears them; this try has no retry)."""
    ti = context.get("ti") if context else None
    if ti is None:  # called outside a task (a test of execute alone)
        return
    from ctflow.contract import tasks

    try:
        ti.xcom_push(key=tasks.FINAL_ERROR_XCOM, value={"task_id": operator.task_id, "kind": kind, "message": message})
    except Exception:  # the record is for the view: failing to leave it must not turn a final failure into retries
        operator.log.warning("could not record why %s fails for good", operator.task_id, exc_info=True)


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
    #: The step this operator runs (a deployment's extra step passes its own to ``__init__``).
    declaration: ClassVar[StepDeclaration | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Every execute of a ctflow operator, subclasses' included: permanent errors are final.
        super().__init_subclass__(**kwargs)
        if "execute" in cls.__dict__:
            cls.execute = final_on_permanent_error(cls.__dict__["execute"])  # type: ignore[method-assign]

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
    def mlflow_hook(self) -> MlflowHook:
        from ctflow.hooks.mlflow import MlflowHook

        return MlflowHook(mlflow_conn_id=self.mlflow_conn_id)

    @cached_property
    def feast_hook(self) -> FeastHook:
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

    def predictions_url(self) -> str | None:
        """The predictions store; None: the environment's (monitoring operators read a connection)."""
        return None

    @final_on_permanent_error
    def execute(self, context: Context) -> dict[str, Any]:
        """Run the declared step; its result to XCom, or a skip with its reason."""
        result = self.run_declared(context)
        if result.skipped:
            from airflow.sdk.exceptions import AirflowSkipException

            raise AirflowSkipException(result.to_xcom()["reason"])
        return result.to_xcom()

    def run_declared(self, context: Context) -> StepResult:
        """:func:`~ctflow.steps.run_step` of :attr:`declaration`; its refusal is final (no retries)."""
        declaration = self.declaration
        if declaration is None:
            raise NotImplementedError(f"{type(self).__name__} declares no step: set `declaration` or override execute")
        refusal = declaration.refusal_type()
        try:
            return run_step(declaration, self.spec, self.run_context(context, declaration.needs))
        except refusal as err:
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(str(err)) from err

    def run_context(self, context: Context, needs: frozenset[str]) -> RunContext:
        """The :class:`~ctflow.steps.RunContext` of this try, resolving only ``needs`` (connections are looked up
        only for steps that use them)."""
        return airflow_run_context(
            context,
            needs,
            run_key=self.run_key,
            run_dir=self.run_dir,
            tracking_uri=lambda: self.tracking_uri,
            feature_repo=lambda: self.feast_hook.repo_path(self.spec),
            predictions_url=self.predictions_url,
            spec_text=self.spec_text,
        )

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


def airflow_run_context(
    context: Context,
    needs: frozenset[str],
    *,
    run_key: str,
    run_dir: Callable[[], Path | None],
    tracking_uri: Callable[[], str | None],
    feature_repo: Callable[[], Path | None],
    predictions_url: Callable[[], str | None],
    spec_text: Callable[[], str | None],
) -> RunContext:
    """A :class:`~ctflow.steps.RunContext` from Airflow's context: the one place params, the task instance
    (actor, lineage) and the connections become a step's inputs. Fields not in ``needs`` stay unset."""
    params = context.get("params") or {}
    ti = context.get("ti")
    resolvers: dict[str, Callable[[], Any]] = {
        "as_of": lambda: CtflowOperator.as_of(context),
        "run_dir": run_dir,
        "run_key": lambda: run_key,
        "tracking_uri": tracking_uri,
        "feature_repo": feature_repo,
        "predictions_url": predictions_url,
        "actor": lambda: f"airflow:{ti.dag_id}/{ti.run_id}",
        "lineage": lambda: airflow_lineage(ti),
        "spec_text": spec_text,
        "window_days": lambda: params.get("window_days"),
        "force": lambda: params.get("force_promotion", False),
        "reason": lambda: params.get("reason") or "",
        "dry_run": lambda: bool(params.get("dry_run", False)),
    }
    return RunContext(**{name: resolvers[name]() for name in sorted(needs)})


def announce_promotion(operator: BaseOperator, context: Context, *, uri: str, name: str | None,
                       extra: dict[str, Any]) -> bool:
    """Emit ``uri`` through the task's :class:`~airflow.sdk.AssetAlias` outlet, if it has one.

    An alias emits only what the task adds to it, a plain outlet on every success: call this only
    when the alias really moved. Returns whether an event was added.
    """
    from airflow.sdk import Asset, AssetAlias

    aliases = [o for o in operator.outlets if isinstance(o, AssetAlias)]
    if not aliases:
        return False
    context["outlet_events"][aliases[0]].add(Asset(uri=uri, name=name or uri, group="ctflow"), extra=extra)
    operator.log.info("announced the new champion v%s on %s", extra.get("version"), uri)
    return True


def not_built_yet(what: str) -> NotImplementedError:
    """An honest failure for a step whose core is not written yet."""
    return NotImplementedError(f"{what} is not implemented yet in this version of ctflow")
