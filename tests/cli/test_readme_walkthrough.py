"""The README's "Your own pipeline", followed step by step on a fresh copy of the project.

Its fenced blocks are the test: a block whose first line is ``# file: PATH`` is written to PATH,
a ``bash`` block is run as written (``uv run`` in the project's environment) from the copy's
root. When the README drifts from what works, this fails. Airflow's metadata DB is the session's
(already migrated); MLflow and ctflow's state are the copy's own.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PROJECT, TEST_ENV

pytestmark = pytest.mark.integration

SECTION = "## Your own pipeline"
FENCE = re.compile(r"^```(\w+)\n(.*?)^```$", re.S | re.M)
FILE_MARK = re.compile(r"^# file: (\S+)\n")
#: ``uv run [options] CMD ARGS...`` in this environment: a fresh copy must not sync a venv of its own.
UV_SHIM = """#!/bin/sh
[ "$1" = run ] || { echo "uv shim: only 'uv run' is used by the walkthrough" >&2; exit 2; }
shift
while [ "${1#-}" != "$1" ]; do shift; done
exec "$@"
"""


def walkthrough_blocks(readme: str) -> list[tuple[str, str]]:
    """``(language, text)`` of every fenced block of the README's walkthrough section, in order."""
    start = readme.index(SECTION)
    end = readme.find("\n## ", start + len(SECTION))
    return FENCE.findall(readme[start:end if end != -1 else None])


def fresh_copy(target: Path) -> Path:
    """The project's files as a clone has them (tracked and new, not ignored: no state, no venv)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=PROJECT,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, listed):
        source = PROJECT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def test_the_readme_walkthrough_validates_trains_twice_promotes_and_monitors(airflow_db, tmp_path):
    project = fresh_copy(tmp_path / "project")
    shims = tmp_path / "bin"
    shims.mkdir()
    (shims / "uv").write_text(UV_SHIM)
    (shims / "uv").chmod(0o755)
    env = {
        **os.environ,
        "PATH": os.pathsep.join([str(shims), str(Path(sys.executable).parent), os.environ["PATH"]]),
        "CTFLOW_PROJECT": str(project),
        "CTFLOW_HOME": str(project / ".ctflow"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{project / '.ctflow' / 'mlflow.db'}",
        "AIRFLOW_HOME": TEST_ENV["AIRFLOW_HOME"],
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": TEST_ENV["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"],
    }
    blocks = walkthrough_blocks((PROJECT / "README.md").read_text())
    assert [lang for lang, _ in blocks].count("bash") >= 4, "the walkthrough lost its commands"
    outputs = []
    for lang, text in blocks:
        marked = FILE_MARK.match(text)
        if marked:
            path = project / marked.group(1)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text[marked.end():])
        elif lang == "bash":
            result = subprocess.run(["bash", "-euo", "pipefail", "-c", text], cwd=project, env=env,
                                    capture_output=True, text=True, timeout=1800)
            assert result.returncode == 0, f"README block failed:\n{text}\n{result.stdout[-4000:]}{result.stderr[-4000:]}"
            outputs.append(result.stdout)
    ran = "\n".join(outputs)
    assert "dags/specs/payroll.yaml: ok (ct_payroll, monitor_payroll)" in ran
    first, second = ran.split("ctflow run ct: payroll (regression)")[1:3]
    assert "gate: promote — no champion yet" in first and "registered: version 1" in first
    assert re.search(r"holdout \(\d+ rows\): mae [\d.]+, rmse [\d.]+, r2 ", second), second
    assert re.search(r"gate: \w+ — .*champion v1 on mae \([\d.]+ vs [\d.]+\)", second), second  # same holdout
    assert "champion: payroll version" in second
    assert "monitoring payroll [2013-01-15" in ran and "performance: mae champion" in ran, ran[-3000:]
