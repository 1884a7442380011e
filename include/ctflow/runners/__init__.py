"""How a heavy step runs, by the spec's ``runner.kind``: a small registry the factory consults.

A runner is a function that builds the Airflow task of one step::

    def build(*, declaration: StepDeclaration, operator_class: type, spec: PipelineSpec,
              **task_kwargs) -> BaseOperator

``operator_class`` is the in-process operator of the step (a deployment's subclass, if one was
registered); ``task_kwargs`` are the factory's (``task_id``, ``spec_path``, ``outlets``, ...). Only
steps declared ``container=True`` go through a runner; the registry steps stay in the worker.

Built in: ``in_process`` (:mod:`ctflow.runners.in_process`) and ``docker``
(:mod:`ctflow.runners.docker`). Adding one, e.g. a Kubernetes pod runner, is one module (a
``build`` that returns a pod operator running :func:`ctflow.steps.command.command_for`'s argv) and
one registry entry: a line in :data:`BUILT_IN`, or, from another package, an entry point in group
``ctflow.runners`` (``kubernetes = my_pkg.runner:build``); ``runner.kind`` must also accept the
name (``ctflow.spec.models.Runner``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

#: ``runner.kind`` -> ``"module:function"``, imported only when a spec uses it.
BUILT_IN: dict[str, str] = {
    "in_process": "ctflow.runners.in_process:build",
    "docker": "ctflow.runners.docker:build",
}

Runner = Callable[..., Any]


def runner_for(kind: str) -> Runner:
    """The runner of ``kind``: built in, else a ``ctflow.runners`` entry point."""
    from ctflow import extensions

    if kind in BUILT_IN:
        module, _, name = BUILT_IN[kind].partition(":")
        return getattr(importlib.import_module(module), name)
    found = extensions.runners()
    if kind in found:
        return found[kind]
    known = sorted({*BUILT_IN, *found})
    raise ValueError(f"no runner {kind!r}: expected one of {', '.join(known)}")
