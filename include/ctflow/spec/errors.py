"""Spec errors that point at the file, the line and the field, and suggest a fix."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ctflow.exceptions import CtflowError


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """The closest of ``choices`` to ``word``, if any is close enough to be a likely typo."""
    matches = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    if not matches:
        # Estimator paths are long: compare on the class name too ("HistGradientBoostingClasifier").
        by_tail = {c.rsplit(".", 1)[-1]: c for c in choices}
        tail = difflib.get_close_matches(str(word).rsplit(".", 1)[-1], list(by_tail), n=1, cutoff=0.75)
        matches = [by_tail[tail[0]]] if tail else []
    return matches[0] if matches else None


def format_path(path: Sequence[str | int]) -> str:
    """``("model", "params", "max_iter")`` -> ``model.params.max_iter``; list items as ``[2]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a spec."""

    file: str
    line: int | None
    path: tuple[str | int, ...]
    message: str
    suggestion: str | None = None
    column: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        text = f"{where}: {format_path(self.path)}: {self.message}" if self.path else f"{where}: {self.message}"
        if self.suggestion:
            text += f" (did you mean {self.suggestion!r}?)"
        return text


class SpecError(CtflowError):
    """A spec that cannot be used. ``problems`` lists every problem found, in file order."""

    def __init__(self, problems: Sequence[Problem]):
        self.problems = sorted(problems, key=lambda p: (p.file, p.line or 0))
        super().__init__("\n".join(str(p) for p in self.problems))

    @property
    def file(self) -> str:
        return self.problems[0].file if self.problems else ""
