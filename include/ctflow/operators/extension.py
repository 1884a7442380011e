"""The operator of a deployment's own step (:mod:`ctflow.extensions`): runs its declaration as a task."""

from __future__ import annotations

from typing import Any

from ctflow.operators.monitoring import MonitoringOperator
from ctflow.steps.protocol import StepDeclaration


class ExtraStepOperator(MonitoringOperator):
    """
    Run a step a deployment added at one of :data:`ctflow.steps.POSITIONS`.

    Its function is called like ctflow's own steps, ``function(spec, **needs)`` with what the
    declaration needs of the run context (the run folder holds what earlier steps wrote: e.g.
    ``gate.json`` after ``evaluate``); its returned dict goes to XCom; ``{"skipped": True,
    "reason": ...}`` skips the task. It derives from :class:`MonitoringOperator` only to resolve
    the predictions store like the monitoring steps, wherever it sits.

    :param declaration: the step, as its entry point declared it.
    """

    ui_color = "#eceff1"

    def __init__(self, *, declaration: StepDeclaration, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.declaration = declaration  # type: ignore[misc]  # per instance: each extra step is its own
