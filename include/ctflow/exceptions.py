"""Exceptions raised by ctflow. Each carries the data a caller needs to act on it."""

from __future__ import annotations


class CtflowError(Exception):
    """Base class of every ctflow error."""


class ConfigurationError(CtflowError):
    """The spec or the deployment asks for something that does not exist or does not fit the data.

    A retry cannot change it: operators fail the task for good (``AirflowFailException``),
    ``ctflow run-step`` exits 2. Only a fix of the spec, the data or the deployment does.

    :ivar field: what is wrong, as the spec (``data.features``) or the deployment names it.
    :ivar fix: what to change.
    """

    def __init__(self, problem: str, *, field: str, fix: str) -> None:
        self.problem = problem
        self.field = field
        self.fix = fix
        super().__init__(f"{field}: {problem}; fix: {fix}")
