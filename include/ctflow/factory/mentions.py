"""Which pipeline names a spec file may hold, told from its text alone: no YAML parsing, no validation.

A shard loader must apply the cross-spec rules (unique names, ``schedule.after``, cycles) to its
own specs, which depend only on the specs that name the same pipelines. Validating every other
spec to learn its names costs ~12 ms each, reading its words ~0.2 ms: so a spec of another
shard is validated only if its words include a name that matters (:func:`may_name`).

Why the words of the text are enough: a pipeline name is ``[a-z][a-z0-9_]*`` and YAML writes a
scalar's characters as they are, except for escapes (``"\\x61"``), which need a backslash, and
ctflow's ``${VAR}`` interpolation. Quoting, tags, anchors and block scalars keep the name's
characters together, and folding lines inserts a space, which no name holds. So a name held by
a spec is a whole word of its text, or of its text with its variables put in; a text with a
backslash may hold any name (:data:`ANY`).
"""

from __future__ import annotations

import os
import re

from ctflow import settings

#: The words of a text that may hold any name (it has a backslash escape, or cannot be read).
ANY = None
_WORD = re.compile(r"\w+", re.ASCII)
# The same references as ctflow.spec.load interpolates: ${NAME} and ${NAME:-default}.
_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def words(text: str) -> frozenset[str] | None:
    """Every word a value of spec ``text`` may hold once read, or :data:`ANY`.

    :param text: the spec file's text.
    """
    if "\\" in text:
        return ANY
    found = set(_WORD.findall(text))
    if "${" in text:
        found.update(_WORD.findall(_REFERENCE.sub(_value, text)))
    return frozenset(found)


def may_name(text_words: frozenset[str] | None, names: set[str]) -> bool:
    """Whether a spec whose words are ``text_words`` may hold one of ``names``.

    :param text_words: what :func:`words` gave for the spec.
    :param names: pipeline names.
    """
    return text_words is ANY or not text_words.isdisjoint(names)


def _value(match: re.Match[str]) -> str:
    """What ``${NAME}`` or ``${NAME:-default}`` becomes, as ctflow.spec.load interpolates it."""
    name, default = match.group(1), match.group(2)
    if settings.spec_env_refusal(name):  # never read; such a spec is invalid anyway
        return match.group(0)
    value = os.environ.get(name)
    if default is not None and not value:
        return default
    return value if value is not None else match.group(0)
