"""Starting a task must not import what no step uses: every task process loads every plugin."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import PROJECT

_PROBE = """
import json, sys
from airflow.sdk.plugins_manager import integrate_macros_plugins
integrate_macros_plugins()  # what the task runner does before running a task
at_task_start = sorted(m for m in sys.modules if m.split(".")[0] in ("fastapi", "starlette") or m.startswith("ctflow.ui"))
from ctflow.plugin import CtflowPlugin
apps = [(a["name"], a["url_prefix"], type(a["app"]).__name__) for a in CtflowPlugin().fastapi_apps]
views = [v["url_route"] for v in CtflowPlugin().external_views]
print(json.dumps({"loaded": "ctflow.plugin" in sys.modules, "at_task_start": at_task_start, "apps": apps, "views": views}))
"""


def test_a_task_start_does_not_import_the_ui_and_the_api_server_still_gets_it():
    result = subprocess.run([sys.executable, "-c", _PROBE], cwd=PROJECT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["loaded"], "the probe did not load ctflow's plugin"
    assert found["at_task_start"] == []
    assert found["apps"] == [["ctflow pipelines", "/ctflow", "FastAPI"]]
    assert found["views"] == ["ctflow", "ctflow-dag"]


def test_preload_imports_what_is_there_and_names_what_is_not():
    from ctflow.preload import preload

    assert preload(("json", "ctflow_no_such_module")) == ["ctflow_no_such_module"]


_OPEN_STORE_AFTER_PRELOAD = """
import json, sys
from ctflow.preload import preload
assert preload() == []
before = set(sys.modules)
from ctflow.core.features import _cached_store
from ctflow.core.steps import fetch_features  # noqa: F401 - what the fetch_features task imports
store = _cached_store(sys.argv[1])
store.list_feature_services()  # reads the registry
print(json.dumps(sorted(m for m in set(sys.modules) - before if m.split(".")[0] in ("feast", "ibis", "sqlglot", "duckdb"))))
"""


@pytest.mark.integration
def test_a_task_that_opens_the_feast_store_after_preload_imports_none_of_feasts_modules(feature_repo_ready):
    """What a task imports to open the Feast store (its offline store on Feast's DuckDB/ibis store,
    the registry, the online store) is in the preload list: a task forked after preload imports none."""
    result = subprocess.run([sys.executable, "-c", _OPEN_STORE_AFTER_PRELOAD, str(feature_repo_ready)], cwd=PROJECT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
