"""Exceptions raised by ctflow. Each carries the data a caller needs to act on it."""

from __future__ import annotations


class CtflowError(Exception):
    """Base class of every ctflow error."""
