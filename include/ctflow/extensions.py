"""Extension points of a deployment: its own operator for a step, its own steps, its own runners.

They come from Python entry points of the packages installed beside ctflow, never from a spec
(specs are untrusted: a spec names no code). Groups:

* ``ctflow.operators``: ``<step name> = package.module:OperatorClass``, a subclass of the step's
  ctflow operator (``train = audit_pkg:AuditedTrainOperator``), used wherever the step runs in
  the worker (for a step a container runner runs, the container runs ctflow's core function);
* ``ctflow.steps``: ``<step name> = package.module:DECLARATION``, a
  :class:`~ctflow.steps.StepDeclaration` with a ``position`` (:data:`ctflow.steps.POSITIONS`:
  ``ct.after_evaluate``, ``ct.after_promote``, ``monitor.after_report``); it runs as a task there;
* ``ctflow.runners``: ``<runner.kind> = package.module:build`` (:mod:`ctflow.runners`).

Entry points are read once per process (cached) and loaded when a DAG is built: only the
packages that declare them are imported, so parsing stays as light as those packages are. A
broken extension fails the DAG's import with a message naming the entry point: a deployment
error must not pass unseen.
"""

from __future__ import annotations

import functools
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any

from ctflow.exceptions import CtflowError

if TYPE_CHECKING:
    from importlib.metadata import SelectableGroups

OPERATORS_GROUP = "ctflow.operators"
STEPS_GROUP = "ctflow.steps"
RUNNERS_GROUP = "ctflow.runners"


class ExtensionError(CtflowError):
    """An entry point of a ctflow group that cannot be used as it is declared."""


@functools.cache
def _installed() -> SelectableGroups:
    # One scan of the installed distributions per process (~0.1 s), whichever groups are asked for.
    # Python 3.11 answers every group (SelectableGroups, read through .select); 3.12 an EntryPoints.
    return entry_points()


@functools.cache
def _declared(group: str) -> tuple[EntryPoint, ...]:
    return tuple(sorted(_installed().select(group=group), key=lambda ep: ep.name))


def _load(entry: EntryPoint) -> Any:
    try:
        return entry.load()
    except Exception as err:
        raise ExtensionError(f"entry point {entry.group}: {entry.name} = {entry.value} cannot be loaded: "
                             f"{type(err).__name__}: {err}") from err


@functools.cache
def operator_overrides() -> dict[str, type]:
    """``{step name: operator class}`` from the ``ctflow.operators`` entry points."""
    return {entry.name: _load(entry) for entry in _declared(OPERATORS_GROUP)}


def operator_class(step: str, default: type) -> type:
    """The operator of ``step``: a deployment's subclass of ``default`` if one is registered, else ``default``."""
    chosen = operator_overrides().get(step, default)
    if not (isinstance(chosen, type) and issubclass(chosen, default)):
        raise ExtensionError(f"entry point {OPERATORS_GROUP}: {step} = {chosen!r} must be a subclass of "
                             f"{default.__module__}.{default.__name__}")
    return chosen


@functools.cache
def extra_steps() -> tuple[Any, ...]:
    """The :class:`~ctflow.steps.StepDeclaration` of every ``ctflow.steps`` entry point."""
    from ctflow.steps.protocol import StepDeclaration

    steps = []
    for entry in _declared(STEPS_GROUP):
        declared = _load(entry)
        if not isinstance(declared, StepDeclaration) or declared.position is None:
            raise ExtensionError(f"entry point {STEPS_GROUP}: {entry.name} = {entry.value} must be a "
                                 "StepDeclaration with a position")
        if declared.name != entry.name:
            raise ExtensionError(f"entry point {STEPS_GROUP}: {entry.name} declares a step named {declared.name!r}: "
                                 "use the step's name as the entry point's")
        steps.append(declared)
    return tuple(steps)


def steps_at(position: str) -> list[Any]:
    """The deployment's steps at ``position``, by name."""
    return [step for step in extra_steps() if step.position == position]


@functools.cache
def runners() -> dict[str, Any]:
    """``{runner.kind: build}`` from the ``ctflow.runners`` entry points."""
    return {entry.name: _load(entry) for entry in _declared(RUNNERS_GROUP)}


def clear_cache() -> None:
    """Read the entry points again (tests, or a process whose environment changed)."""
    for cached in (_installed, _declared, operator_overrides, extra_steps, runners):
        cached.cache_clear()
