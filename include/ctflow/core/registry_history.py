"""Alias history: the record of every alias move, and how a rollback reads it.

History lives in the MLflow registry itself, as registered-model tags, one per event
(``ctflow.history.000007`` -> JSON), rather than one growing JSON blob: tag values are
size-limited, and one tag per event also makes appending a single small write. Each event has
a ``state``: ``pending`` while its alias is being moved, ``done`` once it has moved (see
:class:`ctflow.core.registry.ModelRegistry`); only ``done`` events are history.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ctflow.contract.results import AliasMove

log = logging.getLogger(__name__)

HISTORY_PREFIX = "ctflow.history."
#: Well below MLflow's tag value limit (100 kB in 3.x; 5 kB in older and some hosted registries).
MAX_EVENT_CHARS = 4000


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def history_key(seq: int) -> str:
    """The tag holding event ``seq``; zero-padded so that tags also sort by name."""
    return f"{HISTORY_PREFIX}{seq:06d}"


def encode_event(change: AliasMove | dict[str, Any], state: str) -> str:
    """The tag value of an event, shortening its reasons (the longer first) if it would not fit."""
    fields = change.to_dict() if isinstance(change, AliasMove) else change
    record = {k: v for k, v in fields.items() if k != "moved"}
    if record.get("request_reason") is None:
        record.pop("request_reason", None)  # events without one read as before
    record["state"] = state
    text = json.dumps(record, separators=(",", ":"), ensure_ascii=False)
    while len(text) > MAX_EVENT_CHARS and any(len(record.get(k) or "") > 3 for k in _FREE_TEXT):
        _shorten(record, len(text) - MAX_EVENT_CHARS)  # the reasons are the only free text
        text = json.dumps(record, separators=(",", ":"), ensure_ascii=False)
    return text


_FREE_TEXT = ("reason", "request_reason")


def _shorten(record: dict[str, Any], excess: int) -> None:
    """Cut ``excess`` characters from the reasons, sharing what is left fairly between them."""
    fields = [k for k in _FREE_TEXT if record.get(k)]
    lengths = {k: len(record[k]) for k in fields}
    remaining = max(0, sum(lengths.values()) - excess - 3 * len(fields))
    for i, field in enumerate(sorted(fields, key=lambda k: lengths[k])):  # the shorter one first
        keep = min(lengths[field], remaining // (len(fields) - i))
        remaining -= keep
        if keep < lengths[field]:
            record[field] = record[field][:keep] + "..."


def parse_events(tags: dict[str, str]) -> list[tuple[int, dict[str, Any]]]:
    """The events among a registered model's tags as ``(seq, event)``, oldest first."""
    events = []
    for key, value in tags.items():
        if not key.startswith(HISTORY_PREFIX):
            continue
        try:
            seq, event = int(key[len(HISTORY_PREFIX) :]), json.loads(value)
        except ValueError:
            event = None
        if not isinstance(event, dict) or not {"alias", "version", "state"} <= event.keys():
            log.warning("Ignoring unreadable alias history tag %s", key)
            continue
        events.append((seq, event))
    return sorted(events, key=lambda item: item[0])


def as_change(event: dict[str, Any]) -> AliasMove:
    """A recorded (hence completed) event as an :class:`AliasMove`."""
    return AliasMove.from_dict({"actor": "", "reason": "", "at": "", "previous": None, **event, "moved": True})


def rollback_target(
    events: list[AliasMove], current: str | None, usable: Callable[[str], bool] = lambda _: True
) -> str | None:
    """
    The version a rollback of one alias goes to, given its completed moves (oldest first).

    Replays the moves as a stack of holders: a move pushes its version; a rollback pops back to
    its target and marks the version it left as rolled back from, until an explicit move pushes
    that version again (so two rollbacks never bounce between two versions). The answer is the
    newest stacked holder that is not ``current``, not rolled back from, and ``usable`` (e.g.
    still exists and did not fail its gate); None if there is none.
    """
    stack: list[str | None] = []
    rolled_back_from: set[str | None] = set()
    for event in events:
        if event.action == "rollback":
            rolled_back_from.add(event.previous)
            if event.version in stack:
                del stack[len(stack) - stack[::-1].index(event.version) :]  # keep up to its last occurrence
                continue
        else:
            rolled_back_from.discard(event.version)
        stack.append(event.version)
    for version in reversed(stack):
        if version is not None and version != current and version not in rolled_back_from and usable(version):
            return version
    return None
