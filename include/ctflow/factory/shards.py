"""Split the pipelines of one DAGs folder over several loader files, so no file parses too long.

Airflow stops a DAG file's parse at ``dag_file_processor_timeout`` and parses each file in a
process of its own: with thousands of specs, one ``ctflow_pipelines.py`` building every DAG
would pass it. A loader file named ``ctflow_pipelines_<k>_of_<n>.py`` builds only the specs of
shard ``k`` of ``n`` (:func:`ctflow.factory.discover.in_shard`: a hash of the spec's file
name), and ``ctflow_pipelines.py`` builds all of them. The shard count is the number of
loader files, written by

    python -m ctflow.factory.shards <dags folder> <n>

which replaces the folder's loader files (``n`` = 1 restores the single file). Every spec
is still seen by every loader (the cross-spec rules need them all), but a loader reads only its
own shard's specs: the others' facts come from the spec cache's folder index
(:mod:`ctflow.spec.cache_index`) while their files are unchanged; and ``ctflow_spec_errors.py`` still reports every invalid spec.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

LOADER = "ctflow_pipelines.py"
_SHARD_NAME = re.compile(r"ctflow_pipelines_(\d+)_of_(\d+)\.py")
_TEMPLATE = Path(__file__).resolve().parents[3] / "dags" / LOADER


def shard_of(loader_file: str | Path) -> tuple[int, int] | None:
    """``(k, n)`` for ``ctflow_pipelines_<k>_of_<n>.py``; None (all specs) for any other name."""
    match = _SHARD_NAME.fullmatch(Path(loader_file).name)
    if not match:
        return None
    index, count = int(match.group(1)), int(match.group(2))
    if not 0 <= index < count:
        raise ValueError(f"{Path(loader_file).name}: shard {index} of {count} does not exist (0 to {count - 1})")
    return index, count


def write_loaders(folder: str | Path, count: int, template: str | None = None) -> list[Path]:
    """Replace the loader files of DAGs ``folder`` by ``count`` shard loaders (one plain file for 1)."""
    folder = Path(folder)
    if count < 1:
        raise ValueError("the shard count is at least 1")
    text = template if template is not None else _loader_text(folder)
    for old in [folder / LOADER, *(p for p in folder.glob("ctflow_pipelines_*.py") if shard_of(p))]:
        old.unlink(missing_ok=True)
    names = [LOADER] if count == 1 else [f"ctflow_pipelines_{k}_of_{count}.py" for k in range(count)]
    for name in names:
        (folder / name).write_text(text)
    return [folder / name for name in names]


def _loader_text(folder: Path) -> str:
    for candidate in [folder / LOADER, *sorted(folder.glob("ctflow_pipelines_*.py")), _TEMPLATE]:
        if candidate.is_file():
            return candidate.read_text()
    raise FileNotFoundError(f"no {LOADER} in {folder} to copy")


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not argv[1].isdigit():
        print("usage: python -m ctflow.factory.shards <dags folder> <count>", file=sys.stderr)
        return 2
    for path in write_loaders(argv[0], int(argv[1])):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
