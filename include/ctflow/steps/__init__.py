"""The step protocol: one declaration per step, one run context, one way to call a step.

* :mod:`ctflow.steps.protocol`: :class:`StepDeclaration`, :class:`RunContext`, :func:`run_step`;
* :mod:`ctflow.steps.ct` and :mod:`ctflow.steps.monitor`: the declarations of ctflow's own steps;
* :mod:`ctflow.steps.command`: the ``ctflow run-step`` command line and its exit codes, shared by
  the CLI and the docker runner.

Everything here is light (no pandas, scikit-learn, MLflow, Feast, Airflow): a declaration names
its core function as ``"module:function"``, imported only when the step runs.
"""

from ctflow.steps.protocol import POSITIONS, RunContext, StepDeclaration, run_step

__all__ = ["POSITIONS", "RunContext", "StepDeclaration", "run_step"]
