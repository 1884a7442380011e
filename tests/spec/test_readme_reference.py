"""The README's spec reference is generated from the models and must not fall behind them."""

from __future__ import annotations

from ctflow.spec.readme import with_reference
from tests.conftest import PROJECT


def test_readme_spec_reference_is_up_to_date():
    readme = (PROJECT / "README.md").read_text()
    assert with_reference(readme) == readme, "README's spec reference is out of date: run `make schema`"


def test_readme_quick_start_commands_are_the_ones_ci_runs():
    readme = (PROJECT / "README.md").read_text()
    quick_start = readme.split("## Quick start", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in quick_start.strip().splitlines()]
    assert commands == ["make demo", "make test"]
    assert "make test" in (PROJECT / ".ci" / "run").read_text()
