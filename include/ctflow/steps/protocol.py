"""A step of a pipeline, declared once: what it calls, what it needs, what it reads, where it runs.

Every place that runs a step derives what it does from its :class:`StepDeclaration`: the
in-process operators (:meth:`ctflow.operators.base.CtflowOperator.execute`), ``ctflow run-step``
(its choices, its argument checks, its call), the docker runner's command line, and the
factory (task ids, which steps a runner may move into a container). A deployment declares its
own extra steps the same way (:mod:`ctflow.extensions`).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ctflow.contract.results import Raw, StepResult, parse

if TYPE_CHECKING:
    from collections.abc import Callable

    from ctflow.spec import PipelineSpec

#: Where a deployment may add its own steps (``StepDeclaration.position``).
POSITIONS = ("ct.after_evaluate", "ct.after_promote", "monitor.after_report")


@dataclass(frozen=True)
class RunContext:
    """
    Everything a step may need of the run it belongs to; a step receives only what it declares.

    Field names are the keyword arguments of the core functions (``ctflow.core.steps``,
    ``ctflow.core.monitoring``). Built from Airflow's context by the operators
    (:func:`ctflow.operators.base.airflow_run_context`) and from arguments by ``ctflow run-step``.

    :param as_of: the instant the run is about.
    :param run_dir: the run's working folder (files the steps hand to each other).
    :param run_key: identifies the run (``dag_id/run_id``): names its folder, tags what it registers.
    :param tracking_uri: MLflow tracking URI (None: the environment's).
    :param feature_repo: the Feast repository (None: the project's).
    :param predictions_url: the predictions store's SQLAlchemy URL (None: the environment's).
    :param actor: who runs it, recorded in the alias history (``airflow:<dag_id>/<run_id>``).
    :param lineage: tags naming the Airflow task that ran it (:func:`airflow_lineage`).
    :param spec_text: the spec file's text, logged with the model.
    :param window_days: override of the training window (``params.window_days``).
    :param force: force the promotion (``params.force_promotion``); needs ``reason``.
    :param reason: why (``params.reason``), recorded in the alias history.
    :param dry_run: compute and log, but change no registry and trigger nothing.
    """

    as_of: datetime | None = None
    run_dir: Path | None = None
    run_key: str | None = None
    tracking_uri: str | None = None
    feature_repo: Path | None = None
    predictions_url: str | None = None
    actor: str = "ctflow-cli"
    lineage: dict[str, str] | None = None
    spec_text: str | None = None
    window_days: int | None = None
    force: bool = False
    reason: str = ""
    dry_run: bool = False


#: What a declaration may ask for.
CONTEXT_FIELDS = frozenset(f.name for f in fields(RunContext))


def airflow_lineage(ti: Any) -> dict[str, str]:
    """The tags that tie an MLflow run to the Airflow task instance that made it: the one place they are built."""
    return {
        "airflow.dag_id": ti.dag_id,
        "airflow.run_id": ti.run_id,
        "airflow.task_id": ti.task_id,
        "airflow.try_number": str(ti.try_number),
    }


@dataclass(frozen=True)
class StepDeclaration:
    """
    One step, declared once.

    :param name: the step's name (``ctflow run-step NAME``, the extension key).
    :param function: the core function as ``"module:function"``, imported when the step runs so
        that declarations stay light for DAG parsing. Called as ``function(spec, **needs)``.
    :param needs: the :class:`RunContext` fields the function takes, as keyword arguments.
    :param reads: ``(file, step)`` pairs: files of the run folder it reads and the step that writes them.
    :param container: whether a runner (``runner.kind``) may run it in a container.
    :param task_id: its task id (:mod:`ctflow.contract.tasks`); a deployment's step: its name.
    :param result: the type of what it returns (:mod:`ctflow.contract.results`).
    :param refusal: ``"module:Exception"`` raised when it refuses its input: final, no retries.
    :param reason_required: it cannot run without a reason (a rollback).
    :param position: a deployment's step only: where it goes (one of :data:`POSITIONS`).
    """

    name: str
    function: str
    needs: frozenset[str] = field(default_factory=frozenset)
    reads: tuple[tuple[str, str], ...] = ()
    container: bool = False
    task_id: str | None = None
    result: type[StepResult] = Raw
    refusal: str | None = None
    reason_required: bool = False
    position: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "needs", frozenset(self.needs))
        if not self.name.isidentifier():
            raise ValueError(f"step name {self.name!r} must be an identifier (it becomes a task id)")
        if ":" not in self.function:
            raise ValueError(f"step {self.name!r}: function {self.function!r} must be 'module:function'")
        if unknown := sorted(self.needs - CONTEXT_FIELDS):
            raise ValueError(f"step {self.name!r} needs {unknown}, which a run context does not have; "
                             f"expected some of {sorted(CONTEXT_FIELDS)}")
        if self.position is not None and self.position not in POSITIONS:
            raise ValueError(f"step {self.name!r}: position {self.position!r}, expected one of {', '.join(POSITIONS)}")

    @property
    def dag_task_id(self) -> str:
        """Its task id in the DAG: ``task_id``, else (a deployment's step) its name."""
        return self.task_id or self.name

    def load(self) -> Callable[..., Any]:
        """The core function (imports its module: call it when the step runs, not at parse)."""
        return _resolve(self.function)

    def refusal_type(self) -> type[BaseException]:
        """The exception meaning "refused its input" (:class:`NoRefusal` if the step has none): catch it
        to fail for good."""
        return _resolve(self.refusal) if self.refusal else NoRefusal


class NoRefusal(Exception):
    """The refusal of a step that never refuses its input: never raised."""


def run_step(declaration: StepDeclaration, spec: PipelineSpec, context: RunContext) -> StepResult:
    """Call the step's core function with what it declares it needs; its result, typed."""
    arguments = {name: getattr(context, name) for name in sorted(declaration.needs)}
    return parse(declaration.result, declaration.load()(spec, **arguments))


def _resolve(reference: str) -> Any:
    module, _, attribute = reference.partition(":")
    target: Any = importlib.import_module(module)
    for part in attribute.split("."):
        target = getattr(target, part)
    return target
