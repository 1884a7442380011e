"""The ``ctflow run-step`` command line: its exit codes and its argv, for the CLI and every container runner.

One place builds the argv from a step's declaration and run context, so a container runs the
same call the in-process operator makes (``tests/production/test_docker_runner.py``).
"""

from __future__ import annotations

from typing import Any

from ctflow.steps.protocol import RunContext, StepDeclaration

#: Bad arguments, spec or configuration: final, not worth a retry.
EXIT_CONFIGURATION = 2
#: The step refused its input (data quality): final, not worth a retry.
EXIT_REFUSED = 3

#: Run-context fields a command line carries as ``--flag`` (``tracking_uri`` always; ``run_dir``
#: comes from ``--run-key``, ``spec_text`` from ``--spec``).
FLAGS = ("as_of", "window_days", "feature_repo", "force", "reason", "dry_run", "actor")


def command_line(step: str, *, spec_path: str, run_key: str, as_of: str | None = None, **options: Any) -> list[str]:
    """The argv of ``ctflow run-step`` for ``step``: ``--flag value`` per option, ``--flag`` for True,
    nothing for None/False/empty."""
    argv = ["ctflow", "run-step", step, "--spec", spec_path, "--run-key", run_key]
    if as_of:
        argv += ["--as-of", as_of]
    for name, value in sorted(options.items()):
        flag = "--" + name.replace("_", "-")
        if value is True:
            argv.append(flag)
        elif value not in (None, False, ""):
            argv += [flag, str(value)]
    return argv


def command_for(declaration: StepDeclaration, context: RunContext, *, spec_path: str, run_key: str) -> list[str]:
    """The argv that runs ``declaration`` with what it needs of ``context``."""
    options: dict[str, Any] = {"tracking_uri": context.tracking_uri}
    options.update({name: getattr(context, name) for name in FLAGS if name in declaration.needs and name != "as_of"})
    as_of = context.as_of.isoformat() if "as_of" in declaration.needs and context.as_of else None
    return command_line(declaration.name, spec_path=spec_path, run_key=run_key, as_of=as_of, **options)


def carried_needs(declaration: StepDeclaration) -> frozenset[str]:
    """What a runner must resolve in the worker for the command line: the flags the step needs, and MLflow."""
    return frozenset(declaration.needs & set(FLAGS)) | {"tracking_uri"}
