"""The broken-spec corpus: every file has exactly one problem, reported at the right line and field.

Each file of ``tests/fixtures/broken_specs`` starts with::

    # expect: <line> <field.path> <substring of the message>
    # suggest: <name>              (only when a "did you mean" is expected)

``<line>`` is ``-`` when the problem has no line, ``<field.path>`` is ``<none>`` when it has no
field (YAML syntax errors). Each folder of ``tests/fixtures/broken_folders`` holds specs that are
valid alone but not together, and ``expect.txt`` lists every expected problem, one per line:
``<file> <line> <field.path> <substring>``, optionally followed by ``# suggest: <name>``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from ctflow.factory.discover import load_folder
from ctflow.spec import Problem, SpecError, load_spec
from ctflow.spec.errors import format_path
from tests.conftest import PROJECT, run_cli

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
BROKEN_SPECS = sorted((FIXTURES / "broken_specs").glob("*.yaml"))
BROKEN_FOLDERS = sorted(p for p in (FIXTURES / "broken_folders").iterdir() if p.is_dir())
_ENV_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")


@dataclass(frozen=True)
class Expected:
    file: str
    line: int | None
    path: str
    substring: str
    suggestion: str | None = None

    @classmethod
    def parse(cls, file: str, text: str, suggestion: str | None = None) -> Expected:
        line, path, substring = text.split(" ", 2)
        return cls(file, None if line == "-" else int(line), path, substring.strip(), suggestion)

    def check(self, problem: Problem) -> None:
        where = f"{self.file}: {problem}"
        assert problem.line == self.line, where
        assert (format_path(problem.path) if problem.path else "<none>") == self.path, where
        assert self.substring in problem.message, where
        assert problem.suggestion == self.suggestion, where


def _expected(spec: Path) -> Expected:
    """The ``# expect:`` / ``# suggest:`` header of a corpus file."""
    header = []
    for line in spec.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        header.append(line)
    assert header and header[0].startswith("# expect: "), f"{spec.name}: first line must be '# expect: ...'"
    suggestions = [h.removeprefix("# suggest: ") for h in header if h.startswith("# suggest: ")]
    return Expected.parse(spec.name, header[0].removeprefix("# expect: "), suggestions[0] if suggestions else None)


def _folder_expectations(folder: Path) -> list[Expected]:
    out = []
    for raw in (folder / "expect.txt").read_text(encoding="utf-8").splitlines():
        if not raw.strip() or raw.startswith("#"):
            continue
        text, _, suggestion = raw.partition(" # suggest: ")
        file, rest = text.split(" ", 1)
        out.append(Expected.parse(file, rest, suggestion.strip() or None))
    return out


def _unset_env_vars(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The corpus names variables nobody sets; make sure this environment does not either."""
    for name in _ENV_VAR.findall(text):
        monkeypatch.delenv(name, raising=False)


def test_corpus_is_large():
    assert len(BROKEN_SPECS) >= 30
    assert len(BROKEN_FOLDERS) >= 3


@pytest.mark.parametrize("spec", BROKEN_SPECS, ids=lambda p: p.name)
def test_broken_spec_has_exactly_the_expected_problem(spec: Path, monkeypatch: pytest.MonkeyPatch):
    expected = _expected(spec)
    _unset_env_vars(spec.read_text(encoding="utf-8"), monkeypatch)
    with pytest.raises(SpecError) as caught:
        load_spec(spec, display_name=spec.name)
    problems = caught.value.problems
    assert len(problems) == 1, "\n".join(map(str, problems))
    problem = problems[0]
    expected.check(problem)
    prefix = f"{spec.name}:{expected.line}: " if expected.line else f"{spec.name}: "
    assert str(problem).startswith(prefix + ("" if expected.path == "<none>" else f"{expected.path}: ")), str(problem)
    if expected.suggestion:
        assert str(problem).endswith(f" (did you mean {expected.suggestion!r}?)")
    assert str(caught.value) == str(problem)


@pytest.mark.parametrize("folder", BROKEN_FOLDERS, ids=lambda p: p.name)
def test_broken_folder_has_exactly_the_expected_problems(folder: Path):
    expected = _folder_expectations(folder)
    loaded = load_folder(folder)
    assert len(loaded) == len(list(folder.glob("*.yaml"))) >= 2
    problems = [p for item in loaded if item.error for p in item.error.problems]
    found = {(Path(p.file).name, p.line, format_path(p.path)): p for p in problems}
    wanted = {(e.file, e.line, e.path): e for e in expected}
    assert sorted(found, key=str) == sorted(wanted, key=str), "\n".join(map(str, problems))
    assert len(problems) == len(expected), "\n".join(map(str, problems))
    for key, problem in found.items():
        wanted[key].check(problem)
    # Files with no expected problem load; files with one do not.
    for item in loaded:
        assert (item.spec is None) == (item.path.name in {e.file for e in expected}), item.display_name


def test_validate_cli_reports_every_broken_spec(monkeypatch: pytest.MonkeyPatch):
    for spec in BROKEN_SPECS:
        _unset_env_vars(spec.read_text(encoding="utf-8"), monkeypatch)
    result = run_cli("ctflow", "validate", "tests/fixtures/broken_specs", cwd=PROJECT)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output, output
    lines = result.stdout.splitlines()
    for spec in BROKEN_SPECS:
        expected = _expected(spec)
        prefix = f"broken_specs/{spec.name}:{expected.line}: " if expected.line else f"broken_specs/{spec.name}: "
        named = [line for line in lines if f"broken_specs/{spec.name}" in line]
        assert len(named) == 1 and prefix in named[0], f"{spec.name}: {named}"
    n = len(BROKEN_SPECS)
    assert lines[-1] == f"{n} spec(s) checked, {n} invalid, {n} problem(s)", output
