"""A venv of its own for a library a benchmark compares ctflow with (its pins clash with ctflow's).

Created on first use with this interpreter's ``venv`` and ``pip``, then reused while the library's
version still matches. Data goes to and from it through files; timings are taken inside it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def ensure_venv(venv: Path, *, module: str, version: str, packages: list[str]) -> Path:
    """The Python of ``venv`` with ``packages`` installed, whose ``module`` is at ``version``.*."""
    python = venv / "bin" / "python"
    check = [str(python), "-c", f"import {module}, sys; sys.exit(not {module}.__version__.startswith({version!r}))"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    print(f"creating the {module} venv at {venv} (cached for later runs) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *packages], check=True)
    subprocess.run(check, check=True)
    return python
