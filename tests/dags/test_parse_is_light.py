"""Parsing dags/ must not import the heavy ML stack (each costs 2-9 s per parse here)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import DAGS_FOLDER, PROJECT

HEAVY = ("pandas", "numpy", "sklearn", "scipy", "mlflow", "feast", "pyarrow", "matplotlib", "duckdb")

_PROBE = """
import glob, json, runpy, sys
for path in sorted(glob.glob(sys.argv[1] + "/*.py")):
    runpy.run_path(path, run_name="__airflow_dag_file__")
print(json.dumps(sorted(m for m in sys.modules)))
"""


def test_parsing_dags_imports_no_heavy_module():
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, str(DAGS_FOLDER)], cwd=PROJECT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    loaded = set(json.loads(result.stdout.strip().splitlines()[-1]))
    assert "ctflow.factory" in loaded and "airflow.sdk" in loaded  # the probe really built the DAGs
    imported_heavy = sorted(m for m in loaded if m.split(".")[0] in HEAVY)
    assert not imported_heavy, f"DAG parsing imported: {imported_heavy[:10]}"
