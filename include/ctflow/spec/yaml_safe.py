"""Read spec YAML within bounds, so that no file can exhaust the process that reads it.

A spec is read by the dag-processor, by the api-server (the ctflow view re-reads specs on every
page) and by ``ctflow validate``. A file that is too big, not UTF-8, nested too deep, or whose
aliases expand to a huge tree (a "billion laughs") or to themselves is refused here with the
line where it goes wrong, before anything large is built:

* the file size is checked before reading, and at most :data:`MAX_BYTES` + 1 bytes are read;
* the bytes must be UTF-8 text without NUL characters;
* the YAML is composed by :class:`_BoundedComposer` (libyaml's parser, when present, under a
  Python composer): collections at most :data:`MAX_DEPTH` deep, at most :data:`MAX_NODES`
  values once every alias is expanded, and no alias inside its own anchor. The composer stops
  at the first event over a limit, so a 100,000-deep file is not even parsed to its end.
"""

from __future__ import annotations

import os
import stat
from typing import TYPE_CHECKING, Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.events import AliasEvent, Event, MappingStartEvent, SequenceStartEvent
from yaml.resolver import Resolver

try:  # libyaml's parser: 5-10x faster than the pure-Python one, and not recursive
    from yaml._yaml import CParser as _Parser  # what yaml.cyaml re-exports (its stub does not export it)
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml.parser import Parser
    from yaml.reader import Reader
    from yaml.scanner import Scanner

    class _Parser(Reader, Scanner, Parser):  # type: ignore[no-redef]
        def __init__(self, stream: str):
            Reader.__init__(self, stream)
            Scanner.__init__(self)
            Parser.__init__(self)

MAX_BYTES = 1024 * 1024
MAX_DEPTH = 50
MAX_NODES = 100_000


class LimitError(Exception):
    """A spec file over one of the limits, or not text; ``line`` is where (None: the whole file)."""

    def __init__(self, line: int | None, message: str):
        super().__init__(message)
        self.line = line
        self.message = message


def read_text(path: str | os.PathLike[str]) -> str:
    """The UTF-8 text of the spec file ``path``; :class:`LimitError` if it is too big or not text.

    ``OSError`` (missing, unreadable) is left to the caller.
    """
    # O_NONBLOCK: a FIFO (or a link to one) must not hang the reader waiting for a writer
    with open(os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)), "rb") as file:
        status = os.fstat(file.fileno())
        if not stat.S_ISREG(status.st_mode):
            raise LimitError(None, "not a regular file: a spec is a YAML file")
        size = status.st_size
        if size > MAX_BYTES:
            raise LimitError(None, _too_big(size))
        data = file.read(MAX_BYTES + 1)  # a file that grew, or a pipe that reports no size
    if len(data) > MAX_BYTES:
        raise LimitError(None, _too_big(len(data)))
    return decode(data)


def decode(data: bytes) -> str:
    """``data`` as text: UTF-8 (a BOM is allowed) without NUL characters."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line, column = _position(data, err.start)
        raise LimitError(
            line,
            f"the file is not UTF-8 text: byte 0x{data[err.start]:02x} at line {line}, column {column} "
            "cannot be decoded (save the spec as UTF-8)",
        ) from None
    check_text(text)
    return text


def check_text(text: str) -> None:
    """Refuse text that is too long or holds a NUL character (a binary file)."""
    if len(text) > MAX_BYTES // 4 and len(text.encode("utf-8")) > MAX_BYTES:
        raise LimitError(None, _too_big(len(text.encode("utf-8"))))
    nul = text.find("\0")
    if nul >= 0:
        line, column = _position(text, nul)
        raise LimitError(line, f"the file contains a NUL character at line {line}, column {column}: a spec is text")


def compose(text: str) -> yaml.Node | None:
    """The node tree of the single YAML document ``text`` (None if empty), within the limits.

    Raises :class:`LimitError` over a limit and :class:`yaml.YAMLError` for invalid YAML.
    """
    check_text(text)
    loader = _Loader(text)
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()


class _BoundedComposer(Composer):
    """PyYAML's composer, counting depth and the values an expanded tree would hold."""

    def __init__(self) -> None:
        super().__init__()
        self._depth = 0
        self._built = 0  # values of the expanded tree so far: an alias counts its anchor's size
        self._sizes: dict[str, int] = {}
        self._open: dict[str, int] = {}  # anchors whose node is being composed -> their line

    if TYPE_CHECKING:  # given by the parser this composer is mixed with (see _Loader)

        def check_event(self, *choices: type[Event]) -> bool: ...

        def peek_event(self) -> Any: ...

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(AliasEvent):
            event = self.peek_event()
            line = event.start_mark.line + 1
            if event.anchor in self._open:
                raise LimitError(
                    line,
                    f"alias *{event.anchor} refers to itself: it is used inside its own anchor "
                    f"&{event.anchor} (line {self._open[event.anchor]}), which would make an endless value",
                )
            self._count(self._sizes.get(event.anchor, 1), line)
            return super().compose_node(parent, index)
        event = self.peek_event()
        line = event.start_mark.line + 1
        collection = isinstance(event, (SequenceStartEvent, MappingStartEvent))
        if collection:
            self._depth += 1
            if self._depth > MAX_DEPTH:
                raise LimitError(
                    line, f"the document is nested too deep: expected at most {MAX_DEPTH} levels of lists and mappings"
                )
        before = self._built
        self._count(1, line)
        anchor = event.anchor
        if anchor is not None:
            self._open[anchor] = line
        node = super().compose_node(parent, index)
        if anchor is not None:
            del self._open[anchor]
            self._sizes[anchor] = self._built - before
        if collection:
            self._depth -= 1
        return node

    def _count(self, values: int, line: int) -> None:
        self._built += values
        if self._built > MAX_NODES:
            raise LimitError(
                line,
                f"aliases expand to more than {MAX_NODES:,} values (an alias repeats its anchor's whole value): "
                "a spec this large is refused",
            )


class _Loader(_BoundedComposer, _Parser, SafeConstructor, Resolver):
    def __init__(self, stream: str):
        _Parser.__init__(self, stream)
        _BoundedComposer.__init__(self)
        SafeConstructor.__init__(self)
        Resolver.__init__(self)


def _too_big(size: int) -> str:
    return f"the file is {size / 1024 / 1024:.1f} MB, larger than the {MAX_BYTES // 1024 // 1024} MB a spec may be"


def _position(data: bytes | str, offset: int) -> tuple[int, int]:
    newline = b"\n" if isinstance(data, bytes) else "\n"
    line = data.count(newline, 0, offset) + 1  # type: ignore[arg-type]
    return line, offset - (data.rfind(newline, 0, offset) + 1) + 1  # type: ignore[arg-type]
