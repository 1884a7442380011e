"""Spec paths (data.entities) stay inside the project or a configured data root."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctflow.spec import SpecError, parse_spec
from ctflow.spec.errors import format_path

GOOD = Path(__file__).resolve().parents[1] / "fixtures" / "good_specs"
MINIMAL = (GOOD / "minimal.yaml").read_text()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "project"
    (root / "data").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "shared").mkdir()
    monkeypatch.setenv("CTFLOW_PROJECT", str(root))
    monkeypatch.delenv("CTFLOW_DATA_ROOTS", raising=False)
    return root


def _entities(value: str):
    return parse_spec(MINIMAL.replace("entities: data/minimal.parquet", f"entities: {value}"), "spec.yaml")


def _problem(value: str) -> tuple[int | None, str, str]:
    with pytest.raises(SpecError) as caught:
        _entities(value)
    (problem,) = caught.value.problems
    return problem.line, format_path(problem.path), problem.message


def test_a_relative_path_inside_the_project_is_fine(project: Path):
    assert _entities("data/x.parquet").data.entities == "data/x.parquet"
    assert _entities("data/../data/x.parquet").data.entities == "data/../data/x.parquet"
    assert _entities(f"{project}/data/x.parquet").data.entities == f"{project}/data/x.parquet"


@pytest.mark.parametrize("value,how", [
    ("../../../../../../../../etc/passwd", "'..' leads to /etc/passwd"),
    ("data/../../elsewhere/x.parquet", "'..' leads to"),
    ("/etc/passwd", "an absolute path elsewhere"),
])
def test_a_path_leaving_the_project_is_an_error_at_its_line(project: Path, value: str, how: str):
    line, path, message = _problem(value)
    assert (line, path) == (7, "data.entities")
    assert "is outside the project and the data roots" in message and how in message
    assert "CTFLOW_DATA_ROOTS" in message


def test_a_symlink_leaving_the_project_is_an_error(project: Path):
    (project / "data" / "out").symlink_to(project.parent / "elsewhere")
    line, path, message = _problem("data/out/x.parquet")
    assert (line, path) == (7, "data.entities")
    assert "a symbolic link on the way leads to" in message and str(project.parent / "elsewhere") in message


def test_a_configured_data_root_may_hold_the_data(project: Path, monkeypatch: pytest.MonkeyPatch):
    shared = project.parent / "shared"
    monkeypatch.setenv("CTFLOW_DATA_ROOTS", f"/nonexistent:{shared}")
    assert _entities(f"{shared}/x.parquet").data.entities == f"{shared}/x.parquet"
    assert _entities("../shared/x.parquet").data.entities == "../shared/x.parquet"
    assert "outside" in _problem("../elsewhere/x.parquet")[2]


def test_a_link_swapped_in_after_validation_is_refused_when_the_step_opens_the_file(project: Path, tmp_path: Path):
    """Validation passed on a real file; then it became a link out. The core resolves the path again."""
    from ctflow.core.steps import resolve_path
    from ctflow.exceptions import ConfigurationError

    target = project / "data" / "x.parquet"
    target.write_bytes(b"PAR1")
    spec = _entities("data/x.parquet")
    assert resolve_path(spec.data.entities) == target.resolve()
    target.unlink()
    (tmp_path / "elsewhere" / "secret.parquet").write_bytes(b"PAR1")
    target.symlink_to(tmp_path / "elsewhere" / "secret.parquet")
    with pytest.raises(ConfigurationError, match="symbolic link") as caught:
        resolve_path(spec.data.entities)
    assert caught.value.field == "data.entities"
