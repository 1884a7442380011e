"""Spec paths stay inside the project or a data root the deployment configured.

A spec names files ctflow opens (``data.entities``). Relative paths are relative to the project
(:func:`ctflow.settings.project_root`); absolute paths are allowed inside the project or one of
``$CTFLOW_DATA_ROOTS``. A path that leaves them by ``..``, by being absolute elsewhere, or
through a symbolic link is refused: otherwise anyone who may add a spec could make a task read
``/etc/passwd`` or another team's data.
"""

from __future__ import annotations

import os
from pathlib import Path

from ctflow import settings

#: Fields of :class:`~ctflow.spec.models.PipelineSpec` that name a file, as paths into the spec.
PATH_FIELDS: tuple[tuple[str, ...], ...] = (("data", "entities"), ("data", "feature_repo"))


class PathOutsideError(ValueError):
    """A spec path that leads outside the project and the data roots."""


def resolve_spec_path(value: str) -> Path:
    """The real location of spec path ``value``; :class:`PathOutsideError` if it is not confined."""
    roots = settings.data_roots()
    given = Path(value).expanduser() if value.startswith("~") else Path(value)
    candidate = given if given.is_absolute() else roots[0] / given
    real = Path(os.path.realpath(candidate))
    real_roots = [Path(os.path.realpath(root)) for root in roots]
    if any(real.is_relative_to(root) for root in real_roots):
        return real
    lexical = Path(os.path.normpath(candidate))
    if any(lexical.is_relative_to(root) for root in roots):
        how = f"it is inside, but a symbolic link on the way leads to {real}"
    elif given.is_absolute():
        how = "it is an absolute path elsewhere"
    else:
        how = f"'..' leads to {lexical}"
    where = ", ".join(str(r) for r in roots)
    raise PathOutsideError(
        f"{value!r} is outside the project and the data roots ({where}): {how}. Keep the file inside the "
        "project, or add its folder to $CTFLOW_DATA_ROOTS"
    )
