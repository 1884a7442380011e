"""Which pipeline names a spec file may hold, told from its text alone: no YAML parsing, no validation.

A shard loader must apply the cross-spec rules (unique names, ``schedule.after``, cycles) to its
own specs, which depend only on the specs that name the same pipelines. Validating every other
spec to learn its names costs ~12 ms each, reading its words ~0.2 ms: so a spec of another
shard is validated only if its text holds a name that matters as a word (:func:`may_name`).

Why the words of the text are enough: a pipeline name is ``[a-z][a-z0-9_]*`` and YAML writes a
scalar's characters as they are, except for escapes (``"\\x61"``), which need a backslash, and
ctflow's ``${VAR}`` interpolation. Quoting, tags, anchors and block scalars keep the name's
characters together, and folding lines inserts a space, which no name holds. So a name held by
a spec is a whole word of its text, or of its text with its variables put in; a text with a
backslash may hold any name.
"""

from __future__ import annotations

import os
import re

from ctflow import settings

_NAME = re.compile(r"[a-z][a-z0-9_]*")
# The same references as ctflow.spec.load interpolates: ${NAME} and ${NAME:-default}.
_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def names_pattern(names: set[str]) -> re.Pattern[str]:
    """A pattern that finds any of the pipeline ``names`` as a whole word (one search per text).

    :param names: pipeline names (``[a-z][a-z0-9_]*``; any other is left out, no spec can hold it).
    """
    alternatives = "|".join(sorted((n for n in names if _NAME.fullmatch(n)), key=lambda n: (-len(n), n)))
    return re.compile(rf"\b(?:{alternatives})\b" if alternatives else r"(?!)", re.ASCII)


def may_name(text: str | None, names: re.Pattern[str]) -> bool:
    """Whether spec ``text`` may hold one of the names ``names`` finds (see :func:`names_pattern`).

    :param text: the spec file's text; None if it cannot be read (it may hold anything).
    :param names: the pattern of the names.
    """
    if text is None or "\\" in text:  # an escape may write any name
        return True
    if names.search(text):
        return True
    return "${" in text and names.search(_REFERENCE.sub(_value, text)) is not None


def _value(match: re.Match[str]) -> str:
    """What ``${NAME}`` or ``${NAME:-default}`` becomes, as ctflow.spec.load interpolates it."""
    name, default = match.group(1), match.group(2)
    if settings.spec_env_refusal(name):  # never read; such a spec is invalid anyway
        return match.group(0)
    value = os.environ.get(name)
    if default is not None and not value:
        return default
    return value if value is not None else match.group(0)
