"""Split the pipelines of one DAGs folder over several loader files, so no file parses too long.

Airflow stops a DAG file's parse at ``dag_file_processor_timeout`` and parses each file in a
process of its own: with thousands of specs, one ``ctflow_pipelines.py`` building every DAG
would pass it. A loader file named ``ctflow_pipelines_<k>_of_<n>.py`` builds only the specs of
shard ``k`` of ``n`` (:func:`ctflow.factory.discover.in_shard`: a hash of the spec's file
name, which needs no parsing), and ``ctflow_spec_errors_<k>_of_<n>.py`` reports the invalid
specs of that shard; ``ctflow_pipelines.py`` and ``ctflow_spec_errors.py`` do so for all of
them. The shard count is the number of loader files, written by

    python -m ctflow.factory.shards <dags folder> <n>

which replaces the folder's loader and error-reporter files (``n`` = 1 restores the single
ones). A shard's files validate only the shard's specs, and of the others only those its
cross-spec rules (unique names, ``schedule.after``) depend on: the others are known from the
spec cache's folder index (:mod:`ctflow.spec.cache_index`), asked only about the names the
shard's specs hold or name, or, when it does not know them yet (a cold cache), from the words of
their text (:mod:`ctflow.factory.mentions`). So a file validates and builds its shard only, and,
once the index knows the folder, touches the other specs only to compare the folder's listing
with the index (an ``lstat`` and a row each, a few microseconds).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

LOADER = "ctflow_pipelines.py"
REPORTER = "ctflow_spec_errors.py"
_SHARD_NAME = re.compile(r"(?:ctflow_pipelines|ctflow_spec_errors)_(\d+)_of_(\d+)\.py")
_TEMPLATES = Path(__file__).resolve().parents[3] / "dags"


def shard_of(loader_file: str | Path) -> tuple[int, int] | None:
    """``(k, n)`` for ``ctflow_pipelines_<k>_of_<n>.py`` or ``ctflow_spec_errors_<k>_of_<n>.py``;
    None (all specs) for any other name.

    :param loader_file: the DAG file's path or name.
    """
    match = _SHARD_NAME.fullmatch(Path(loader_file).name)
    if not match:
        return None
    index, count = int(match.group(1)), int(match.group(2))
    if not 0 <= index < count:
        raise ValueError(f"{Path(loader_file).name}: shard {index} of {count} does not exist (0 to {count - 1})")
    return index, count


def has_loaders(folder: str | Path) -> bool:
    """Whether DAGs ``folder`` holds a loader file (``ctflow_pipelines.py`` or one of its shards)."""
    folder = Path(folder)
    return (folder / LOADER).is_file() or any(shard_of(p) for p in folder.glob(f"{LOADER.removesuffix('.py')}_*.py"))


def write_loaders(folder: str | Path, count: int, template: str | None = None) -> list[Path]:
    """Replace the loader and error-reporter files of DAGs ``folder`` by ``count`` shards of each
    (the plain files for 1); returns the loader files.

    :param folder: the DAGs folder.
    :param count: the number of shards.
    :param template: the loader's text (default: the folder's own loader file, else ctflow's).
    """
    folder = Path(folder)
    if count < 1:
        raise ValueError("the shard count is at least 1")
    loaders = _write(folder, LOADER, count, template)
    _write(folder, REPORTER, count, None)
    return loaders


def _write(folder: Path, plain: str, count: int, template: str | None) -> list[Path]:
    """Write ``count`` shards of DAG file ``plain`` (``x.py`` becomes ``x_<k>_of_<n>.py``), removing the old ones."""
    stem = plain.removesuffix(".py")
    text = template if template is not None else _text_of(folder, plain)
    for old in [folder / plain, *(p for p in folder.glob(f"{stem}_*.py") if shard_of(p))]:
        old.unlink(missing_ok=True)
    names = [plain] if count == 1 else [f"{stem}_{k}_of_{count}.py" for k in range(count)]
    for name in names:
        (folder / name).write_text(text)
    return [folder / name for name in names]


def _text_of(folder: Path, plain: str) -> str:
    stem = plain.removesuffix(".py")
    for candidate in [folder / plain, *sorted(p for p in folder.glob(f"{stem}_*.py") if shard_of(p)),
                      _TEMPLATES / plain]:
        if candidate.is_file():
            return candidate.read_text()
    raise FileNotFoundError(f"no {plain} in {folder} to copy")


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not argv[1].isdigit():
        print("usage: python -m ctflow.factory.shards <dags folder> <count>", file=sys.stderr)
        return 2
    for path in write_loaders(argv[0], int(argv[1])):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
