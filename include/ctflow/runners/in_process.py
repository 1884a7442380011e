"""``runner: {kind: in_process}``: the step's ctflow operator runs it in the Airflow worker."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator

    from ctflow.spec import PipelineSpec
    from ctflow.steps import StepDeclaration


def build(*, declaration: StepDeclaration, operator_class: type[BaseOperator], spec: PipelineSpec,
          **task_kwargs: Any) -> BaseOperator:
    return operator_class(spec=spec, **task_kwargs)
