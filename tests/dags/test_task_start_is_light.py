"""Starting a task must not import what no step uses: every task process loads every plugin."""

from __future__ import annotations

import json
import subprocess
import sys

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


def test_the_preloading_executor_imports_what_is_there_and_names_what_is_not():
    from ctflow.executors import PRELOAD, preload

    assert preload(("json", "ctflow_no_such_module")) == ["ctflow_no_such_module"]
    assert "ctflow.core.steps" in PRELOAD and "sklearn.pipeline" in PRELOAD
