"""Read a spec file: bounded safe YAML with line numbers, opted-in ``${ENV}`` interpolation, validation.

Every problem becomes a :class:`~ctflow.spec.errors.Problem` naming file, line and field, and
all problems of a file are reported together, so a spec author fixes them in one pass.
"""

from __future__ import annotations

import os
import re
import warnings
from typing import Any, cast

import yaml
from pydantic import BaseModel, ValidationError

from ctflow import settings
from ctflow.spec import yaml_safe
from ctflow.spec.checks import check_spec
from ctflow.spec.errors import Problem, SpecError, did_you_mean
from ctflow.spec.models import IDENTIFIER_PATTERN, PipelineSpec, SpecDeprecationWarning

Path_ = tuple[str | int, ...]

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_STANDARD_TAGS = {
    "tag:yaml.org,2002:" + name
    for name in ("str", "int", "float", "bool", "null", "map", "seq", "timestamp", "binary", "merge")
}
_KINDS = {
    "tag:yaml.org,2002:timestamp": "date",
    "tag:yaml.org,2002:int": "integer",
    "tag:yaml.org,2002:float": "number",
    "tag:yaml.org,2002:bool": "boolean",
}


class _Document:
    """Turns a composed YAML node tree into plain data, remembering where each value stood."""

    def __init__(self, filename: str):
        self.filename = filename
        self.lines: dict[Path_, int] = {}
        self.problems: list[Problem] = []
        self._scalars = yaml.SafeLoader("")  # only its scalar constructors are used

    def problem(self, path: Path_, line: int | None, message: str, suggestion: str | None = None) -> None:
        self.problems.append(Problem(self.filename, line, path, message, suggestion))

    def build(self, node: yaml.Node, path: Path_ = ()) -> Any:
        line = node.start_mark.line + 1
        self.lines.setdefault(path, line)
        if node.tag not in _STANDARD_TAGS:
            self.problem(path, line, f"YAML tag {node.tag!r} is not allowed: a spec is data, not code")
            return None
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        value = self._scalar(cast(yaml.ScalarNode, node), path)  # the third and last kind of node
        if isinstance(value, str) and "$" in value:
            value = self._interpolate(value, path, line)
        return value

    def _mapping(self, node: yaml.MappingNode, path: Path_) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                self.problem(path, line, "merge keys and complex keys are not supported in a spec")
                continue
            key = str(self._scalar(key_node, path))
            if key in out:
                first = self.lines.get((*path, key))
                self.problem((*path, key), line, f"duplicate key (first defined on line {first})")
                continue
            self.lines[(*path, key)] = line
            out[key] = self.build(value_node, (*path, key))
        return out

    def _scalar(self, node: yaml.ScalarNode, path: Path_) -> Any:
        """The value of a scalar; a problem (not a crash) for ``2024-13-01`` or ``!!int abc``."""
        try:
            return self._scalars.construct_object(node)
        except (ValueError, KeyError, TypeError, AttributeError, yaml.YAMLError) as err:
            kind = _KINDS.get(node.tag, node.tag.rsplit(":", 1)[-1])
            detail = f": {err}" if kind == "date" and isinstance(err, ValueError) else ""
            self.problem(path, node.start_mark.line + 1, f"{node.value!r} is not a valid {kind}{detail}")
            return None

    def _interpolate(self, text: str, path: Path_, line: int) -> str:
        def replace(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            refusal = settings.spec_env_refusal(name)
            if refusal:  # never read, so neither its value nor whether it is set can leak
                allowed = [n for n in os.environ if not settings.spec_env_refusal(n)]
                self.problem(path, line, f"environment variable ${{{name}}} is not allowed in a spec: {refusal}",
                             did_you_mean(name, allowed))
                return match.group(0)
            value = os.environ.get(name)
            if default is not None and not value:  # as in the shell: unset or empty
                return default
            if value is not None:
                return value
            message = f"environment variable ${{{name}}} is not set (write ${{{name}:-default}} for a default)"
            self.problem(path, line, message)
            return match.group(0)

        return _ENV.sub(replace, text)


def load_spec(path: str | os.PathLike[str], *, display_name: str | None = None) -> PipelineSpec:
    """Read and validate one spec file; raise :class:`SpecError` listing every problem."""
    name = display_name or str(path)
    return parse_spec(read_spec_text(path, name), name)


def read_spec_text(path: str | os.PathLike[str], display_name: str | None = None) -> str:
    """The text of a spec file, read within :mod:`~ctflow.spec.yaml_safe`'s limits; else :class:`SpecError`."""
    name = display_name or str(path)
    try:
        return yaml_safe.read_text(path)
    except yaml_safe.LimitError as err:
        raise SpecError([Problem(name, err.line, (), err.message)]) from None
    except OSError as err:
        raise SpecError([Problem(name, None, (), f"cannot read spec: {err.strerror or err}")]) from None


def parse_spec(text: str, filename: str = "<spec>") -> PipelineSpec:
    """Validate spec ``text``; ``filename`` is used in error messages."""
    doc = _Document(filename)
    data = _compose(text, doc)
    if doc.problems:
        raise SpecError(doc.problems)
    if data is None:
        raise SpecError([Problem(filename, None, (), "the spec is empty: expected a YAML mapping (key: value)")])
    if not isinstance(data, dict):
        kinds: dict[type, str] = {list: "a list", str: "text"}
        kind = kinds.get(type(data), f"a single {type(data).__name__} value")
        message = f"a spec is a YAML mapping (key: value), got {kind}"
        raise SpecError([Problem(filename, doc.lines.get((), 1), (), message)])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SpecDeprecationWarning)
        try:
            spec = PipelineSpec.model_validate(data)
        except ValidationError as err:
            raise SpecError(_problems_from(err, doc, data)) from None
    for warning in caught:  # said once per spec, where it is written
        if isinstance(warning.message, SpecDeprecationWarning):
            found = warning.message
            warnings.warn(f"{filename}:{_line_of(found.path, doc)}: {found}", FutureWarning, stacklevel=2)
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    findings = check_spec(spec)
    if findings:
        raise SpecError([Problem(filename, _line_of(f.path, doc), f.path, f.message, f.suggestion) for f in findings])
    return spec


def _compose(text: str, doc: _Document) -> Any:
    try:
        node = yaml_safe.compose(text)
    except yaml_safe.LimitError as err:
        doc.problem((), err.line, err.message)
        return None
    except yaml.MarkedYAMLError as err:
        doc.problem((), *_yaml_error(err, text))
        return None
    except yaml.reader.ReaderError as err:  # a control character: report where, not the raw offset
        line = text.count("\n", 0, err.position) + 1
        doc.problem((), line, f"invalid character #x{err.character:04x} on line {line}: a spec is plain text")
        return None
    except yaml.YAMLError as err:
        doc.problem((), None, f"invalid YAML: {err}")
        return None
    return doc.build(node) if node is not None else None


def _yaml_error(err: yaml.MarkedYAMLError, text: str) -> tuple[int | None, str]:
    """Line and message of a YAML syntax error, worded for someone editing the file.

    An unclosed ``[``, ``{`` or quote is reported where it was opened (the parser notices
    only lines later, or at the end of the file); anything else where the parser stopped.
    """
    lines = text.splitlines()
    problem, context = err.problem_mark, err.context_mark
    unclosed = context and (
        problem is None or "end of stream" in (err.problem or "") or "flow" in (err.context or "")
    )
    mark = context if unclosed else problem or context
    line = mark.line + 1 if mark else None
    message = "invalid YAML: " + " ".join(filter(None, [err.context, err.problem]))
    if line and line <= len(lines) and "\t" in lines[line - 1]:
        message += " (tab characters are not allowed for indentation: use spaces)"
    else:
        message += next((hint for problem, hint in _YAML_HINTS.items() if problem in (err.problem or "")), "")
    return line, message


#: libyaml's words for the usual slips, and what they mean to a spec author.
_YAML_HINTS = {
    "did not find expected key": " (is this line indented like the keys above it?)",
    "mapping values are not allowed": " (is this line indented too far, or does a value contain ': ' and need quotes?)",
    "found unexpected end of stream": " (is a quote left open?)",
}


def _line_of(path: Path_, doc: _Document) -> int | None:
    for end in range(len(path), -1, -1):
        if path[:end] in doc.lines:
            return doc.lines[path[:end]]
    return None


def _problems_from(err: ValidationError, doc: _Document, data: Any) -> list[Problem]:
    problems = [_problem_from(e, doc) for e in _resolve_unions([dict(e) for e in err.errors(include_url=False)], data)]
    # "unknown key 'estimater' (did you mean 'estimator'?)" already says the field is missing.
    misspelt = {(*p.path[:-1], p.suggestion) for p in problems if p.suggestion and p.message.startswith("unknown key")}
    return [p for p in problems if not (p.message == "required field is missing" and p.path in misspelt)]


def _resolve_unions(errors: list[dict[str, Any]], data: Any) -> list[dict[str, Any]]:
    """Report a value that fits no member of a union once, at its real path.

    Pydantic reports such a value once per member, under a location naming the member
    (``monitoring.alerts.0.WebhookAlert``, ``model.params.x.int``). When the value has the
    shape of a member (a mapping for a model, a list for a list) and fails inside it, that
    member's errors are what the author needs; otherwise one "expected A, B or C" error is.
    """
    out: list[dict[str, Any]] = []
    unions: dict[Path_, list[dict[str, Any]]] = {}
    for error in errors:
        loc = tuple(error["loc"])
        real = _real_prefix(loc, data)
        if real == len(loc):
            out.append(error)
        else:
            unions.setdefault(loc[:real], []).append(error)
    for path, members in unions.items():
        inside = [e for e in members if len(e["loc"]) > len(path) + 1]
        if inside:
            out += _resolve_unions([{**e, "loc": (*path, *e["loc"][len(path) + 1 :])} for e in inside], data)
            continue
        expected: list[str] = []
        suggestion = None
        for member in members:
            message, hint = _message(member)
            suggestion = suggestion or hint
            phrase = message.removeprefix("expected ").rsplit(", got ", 1)[0]
            if phrase not in expected:
                expected.append(phrase)
        alternatives = ", ".join(expected[:-1]) + " or " + expected[-1] if len(expected) > 1 else expected[0]
        value = members[0].get("input")
        out.append({"type": "union", "loc": path, "input": value, "ctx": {"suggestion": suggestion},
                    "msg": f"expected {alternatives}, got {_short(value)}"})
    return out


def _real_prefix(loc: Path_, data: Any) -> int:
    """How many leading parts of ``loc`` are keys or indexes of the document ``data``, or
    fields the document leaves out; the next part, if any, names a union member."""
    for i, part in enumerate(loc):
        is_key = isinstance(data, dict) and part in data
        if is_key or (isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data)):
            data = data[part]
        elif part in _fields_at(loc[:i]):  # missing, or a default being validated
            data = None
        else:
            return i
    return len(loc)


def _problem_from(error: dict[str, Any], doc: _Document) -> Problem:
    path: Path_ = tuple(error["loc"])
    message, suggestion = _message(error)
    return Problem(doc.filename, _line_of(path, doc), path, message, suggestion)


def _message(error: dict[str, Any]) -> tuple[str, str | None]:
    """The message and "did you mean" suggestion of one pydantic error."""
    path: Path_ = tuple(error["loc"])
    kind, value, ctx = error["type"], error.get("input"), error.get("ctx") or {}
    suggestion = ctx.get("suggestion")
    if kind == "extra_forbidden":
        fields = _fields_at(path[:-1])
        suggestion = did_you_mean(str(path[-1]), fields)
        message = f"unknown key; expected one of: {', '.join(fields)}"
    elif kind == "missing":
        message = "required field is missing"
    else:
        template = _EXPECTED.get(kind)
        values = {k: v for k, v in ctx.items() if k not in {"value", "msg", "suggestion"}}
        if kind == "string_pattern_mismatch":
            values["pattern"] = _PATTERNS.get(values["pattern"], f"text matching {values['pattern']}")
        message = template.format(value=_short(value), msg=error["msg"], **values) if template else error["msg"]
        if kind == "literal_error":
            suggestion = did_you_mean(str(value), re.findall(r"'([^']*)'", str(ctx.get("expected", ""))))
    return message, suggestion


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


#: Patterns of the spec models, as a spec author would describe them.
_PATTERNS = {IDENTIFIER_PATTERN: "a lower_snake_case name starting with a letter (at most 63 characters)"}

_EXPECTED = {
    "int_parsing": "expected an integer, got {value}",
    "int_type": "expected an integer, got {value}",
    "int_from_float": "expected an integer, got {value}",
    "float_parsing": "expected a number, got {value}",
    "float_type": "expected a number, got {value}",
    "bool_parsing": "expected true or false, got {value}",
    "bool_type": "expected true or false, got {value}",
    "string_type": "expected a string, got {value}",
    "list_type": "expected a list, got {value}",
    "dict_type": "expected a mapping (key: value), got {value}",
    "model_type": "expected a mapping (key: value), got {value}",
    "model_attributes_type": "expected a mapping (key: value), got {value}",
    "date_from_datetime_parsing": "expected a date such as 2013-02-01, got {value}",
    "date_parsing": "expected a date such as 2013-02-01, got {value}",
    "date_type": "expected a date such as 2013-02-01, got {value}",
    "date_from_datetime_inexact": "expected a date such as 2013-02-01, got {value}",
    "literal_error": "expected {expected}, got {value}",
    "string_pattern_mismatch": "expected {pattern}, got {value}",
    "string_too_short": "must not be empty",
    "greater_than": "expected a value > {gt}, got {value}",
    "greater_than_equal": "expected a value >= {ge}, got {value}",
    "less_than": "expected a value < {lt}, got {value}",
    "less_than_equal": "expected a value <= {le}, got {value}",
    "value_error": "{error}",
    "union": "{msg}",
}


def _fields_at(path: Path_) -> list[str]:
    """Field names of the spec model found at ``path`` (for "did you mean")."""
    model: Any = PipelineSpec
    for part in path:
        if isinstance(part, int) or not (isinstance(model, type) and issubclass(model, BaseModel)):
            continue
        field = model.model_fields.get(part)
        if field is None:
            return []
        model = _model_in(field.annotation)
    return list(model.model_fields) if isinstance(model, type) and issubclass(model, BaseModel) else []


def _model_in(annotation: Any) -> Any:
    """The first pydantic model inside an annotation such as ``Drift | None`` or ``list[Alert]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def line_of_path(text: str, path: Path_) -> int | None:
    """The line of ``path`` (or of its nearest parent) in spec ``text``."""
    doc = _Document("<spec>")
    _compose(text, doc)
    return _line_of(path, doc)
