"""``runner: {kind: docker, image: ...}``: the step runs ``ctflow run-step`` in a container
(:class:`ctflow.operators.docker.CtflowDockerOperator`). The docker provider is imported only
here, so specs with another runner parse without it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator

    from ctflow.spec import PipelineSpec
    from ctflow.steps import StepDeclaration


def build(*, declaration: StepDeclaration, operator_class: type[BaseOperator], spec: PipelineSpec,
          **task_kwargs: Any) -> BaseOperator:
    from ctflow.operators.docker import CtflowDockerOperator

    image = spec.runner.image
    if not image:  # the spec model refuses this; a spec built around it must not start an image-less container
        raise ValueError(f"runner.kind docker of pipeline {spec.pipeline!r} needs runner.image")
    return CtflowDockerOperator(step=declaration.name, image=image, spec=spec, **task_kwargs)
