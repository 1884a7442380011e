"""The JSON results steps leave in a run folder for the steps after them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_result(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` atomically: a killed try never leaves half a file for the next."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    tmp.replace(path)


def read_result(path: Path) -> dict[str, Any]:
    """Read what an earlier step wrote, or say which step did not run."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path.name} is missing in {path.parent}: did the step before this one run?") from None
