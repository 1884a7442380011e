"""``ctflow validate`` on the hostile corpus (tests/hostile.py): the real CLI in a subprocess
answers each file quickly, in bounded memory, with one clear error and no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.conftest import PROJECT
from tests.hostile import SECRET_ENV, write_corpus

CTFLOW = Path(sys.executable).parent / "ctflow"
TIME = "/usr/bin/time"
MAX_SECONDS = 5
MAX_RSS_MB = 300


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("hostile")
    return root / "specs", write_corpus(root / "specs", outside=root / "outside")


def measured(*args: str) -> tuple[int, str, float, float]:
    """Exit code, output, CPU seconds (user + system) and peak RSS (MB) of ``ctflow *args``.

    Both come from GNU time, whose own small process starts the CLI: a child forked from this
    (large) test process would report this process's pages as its peak. CPU time, not wall-clock
    time: on a shared machine the wall clock measures the neighbours, the CPU time the work done.
    """
    with tempfile.TemporaryDirectory() as tmp:
        usage_file = Path(tmp) / "usage"
        result = subprocess.run([TIME, "-f", "%M %U %S", "-o", str(usage_file), str(CTFLOW), *args],
                                capture_output=True, text=True, cwd=PROJECT, env={**os.environ, **SECRET_ENV},
                                timeout=600)
        rss_kb, user, system = usage_file.read_text().split()[-3:]
    return result.returncode, result.stdout + result.stderr, float(user) + float(system), int(rss_kb) / 1024


NAMES = [
    "alias_bomb_7_levels.yaml", "alias_bomb_9_levels.yaml", "alias_bomb_wide.yaml", "recursive_alias.yaml",
    "recursive_alias_mapping.yaml", "nested_500.yaml", "nested_10000.yaml", "nested_100000.yaml",
    "nested_mappings_1000.yaml", "random_bytes.yaml", "latin1.yaml", "nul_bytes.yaml", "huge_50mb.yaml",
    "secret_refs.yaml", "path_traversal.yaml", "absolute_path.yaml", "symlink_out.yaml",
]


def test_every_file_of_the_corpus_is_tried(corpus):
    _, expected = corpus
    assert sorted(expected) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_validate_answers_each_hostile_file_quickly_with_one_clear_error(corpus, name: str):
    folder, expected = corpus
    code, output, seconds, rss = measured("validate", str(folder / name))
    assert code == 1, output
    assert seconds < MAX_SECONDS and rss < MAX_RSS_MB, f"{name}: {seconds:.1f} s CPU, {rss:.0f} MB"
    assert "Traceback" not in output and "Error:" not in output, output
    problems = [line for line in output.splitlines() if line.startswith(str(folder / name))]
    assert len(problems) == 1 or name == "secret_refs.yaml", output
    assert expected[name] in problems[0], output
    assert not any(secret in output for secret in SECRET_ENV.values()), output


def test_validate_over_the_folder_reports_every_file(corpus):
    folder, expected = corpus
    code, output, seconds, rss = measured("validate", str(folder))
    assert code == 1
    assert seconds < 3 * MAX_SECONDS and rss < MAX_RSS_MB, f"{seconds:.1f} s CPU, {rss:.0f} MB"
    assert "Traceback" not in output
    for name, fragment in expected.items():
        assert any(name in line and fragment in line for line in output.splitlines()), f"{name}:\n{output}"
    assert f"{len(expected)} spec(s) checked, {len(expected)} invalid" in output


def test_render_never_shows_a_secret(corpus):
    folder, _ = corpus
    code, output, _, _ = measured("render", str(folder / "secret_refs.yaml"))
    assert code == 1 and "${AIRFLOW__API_AUTH__JWT_SECRET} is not allowed" in output
    assert not any(secret in output for secret in SECRET_ENV.values()), output


def test_a_fifo_among_the_specs_does_not_hang_validate(tmp_path: Path):
    """Kept out of the corpus: Airflow's own DAG-folder scan opens every file (zipfile check)."""
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "pipe.yaml").symlink_to("pipe")
    code, output, seconds, _ = measured("validate", str(tmp_path))
    assert code == 1 and seconds < MAX_SECONDS
    assert "pipe.yaml: not a regular file" in output, output
