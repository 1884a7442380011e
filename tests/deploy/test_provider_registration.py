"""Installing ctflow is enough for Airflow: with an empty plugins folder, the real Airflow CLI
finds ctflow's plugin (entry point ``airflow.plugins``) and its provider (entry point
``apache_airflow_provider``): connection types, hooks, connection-form fields, extra links.

Each Airflow process here runs with its own ``AIRFLOW_HOME`` and an empty plugins folder, so
nothing in ``plugins/`` can be what registers ctflow.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ctflow.provider_info import get_provider_info
from tests.conftest import PROJECT, json_output

CTFLOW_TYPES = {
    "ctflow_mlflow": ("ctflow.hooks.mlflow.MlflowHook", "mlflow_conn_id"),
    "ctflow_feast": ("ctflow.hooks.feast.FeastHook", "feast_conn_id"),
    "ctflow_predictions": ("ctflow.hooks.predictions.PredictionsStoreHook", "predictions_conn_id"),
    "ctflow_webhook": ("ctflow.hooks.webhook.WebhookHook", "webhook_conn_id"),
}
AIRFLOW_PACKAGE = Path(sys.executable).parents[1] / "lib" / "python3.11" / "site-packages" / "airflow"


@pytest.fixture(scope="module")
def bare_airflow(tmp_path_factory) -> dict[str, str]:
    """The environment of an Airflow with its own home and an empty plugins folder."""
    root = tmp_path_factory.mktemp("bare-airflow")
    (root / "plugins").mkdir()
    return {
        "AIRFLOW_HOME": str(root / "home"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(root / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{root / 'airflow.db'}",
    }


#: Airflow's own command line (``airflow.__main__.main``, what the ``airflow`` script runs), once per
#: command, in one process: the answers are the CLI's, without paying Airflow's start-up per command.
#: Then what the api-server's ``/ui/connections/hook_meta`` answers, i.e. what the connection form shows.
AIRFLOW_COMMANDS = """
import contextlib, io, json, sys
from airflow.__main__ import main
answers = {}
for command in json.loads(sys.argv[1]):
    sys.argv = ["airflow", *command, "-o", "json"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main()
    answers[" ".join(command)] = out.getvalue()
from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService
answers["hook_meta"] = json.dumps([m.model_dump() for m in HookMetaService.hook_meta_data()
                                   if (m.connection_type or "").startswith("ctflow_")])
print(json.dumps(answers))
"""
COMMANDS = (("plugins",), ("providers", "list"), ("providers", "hooks"), ("providers", "widgets"),
            ("providers", "links"))


@pytest.fixture(scope="module")
def cli_answers(bare_airflow) -> dict[str, object]:
    """The JSON each of :data:`COMMANDS` prints, keyed by the command (``"providers list"``), and
    the connection forms' ``hook_meta``."""
    result = subprocess.run([sys.executable, "-c", AIRFLOW_COMMANDS, json.dumps(COMMANDS)],
                            env={**os.environ, **bare_airflow}, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    answers = json.loads(result.stdout.strip().splitlines()[-1])
    return {command: json_output(text) for command, text in answers.items()}


def test_the_plugin_is_found_through_its_entry_point(cli_answers):
    [ctflow] = [p for p in cli_answers["plugins"] if p["name"] == "ctflow"]
    assert "group='airflow.plugins'" in ctflow["source"] and "ctflow.plugin:CtflowPlugin" in ctflow["source"]
    assert [app["url_prefix"] for app in ctflow["fastapi_apps"]] == ["/ctflow"]
    assert {view["url_route"] for view in ctflow["external_views"]} == {"ctflow", "ctflow-dag"}
    assert len(ctflow["operator_extra_links"]) == 3


def test_the_provider_and_its_connection_types_are_registered(cli_answers):
    [ctflow] = [p for p in cli_answers["providers list"] if p["package_name"] == "ctflow"]
    assert ctflow["version"] == "0.1.0"

    hooks = {h["connection_type"]: h for h in cli_answers["providers hooks"]}
    for conn_type, (hook_class, conn_id_attribute) in CTFLOW_TYPES.items():
        assert hooks[conn_type]["class"] == hook_class
        assert hooks[conn_type]["conn_id_attribute_name"] == conn_id_attribute
        assert hooks[conn_type]["package_name"] == "ctflow"

    widgets = {w["connection_parameter_name"]: w for w in cli_answers["providers widgets"]}
    assert {name for name in widgets if name.startswith("extra__ctflow_")} == {
        "extra__ctflow_mlflow__tracking_uri", "extra__ctflow_mlflow__ui_url", "extra__ctflow_feast__repo_path",
        "extra__ctflow_predictions__sqlalchemy_url", "extra__ctflow_webhook__path", "extra__ctflow_webhook__headers",
    }

    links = cli_answers["providers links"]
    assert {"ctflow.links.MlflowRunLink", "ctflow.links.ModelVersionLink",
            "ctflow.links.MonitoringReportLink"} <= {link["extra_link_class_name"] for link in links}


def test_the_connection_form_shows_ctflows_fields(cli_answers):
    forms = {m["connection_type"]: m for m in cli_answers["hook_meta"]}
    assert {t: forms[t]["hook_name"] for t in forms} == {
        "ctflow_mlflow": "ctflow MLflow", "ctflow_feast": "ctflow Feast",
        "ctflow_predictions": "ctflow predictions store", "ctflow_webhook": "ctflow alert webhook"}
    assert set(forms["ctflow_feast"]["extra_fields"]) == {"repo_path"}
    assert all(forms["ctflow_feast"]["standard_fields"][f]["hidden"] for f in ("host", "port", "login", "password"))
    assert forms["ctflow_predictions"]["standard_fields"]["url_schema"]["title"] == "Database"
    assert set(forms["ctflow_webhook"]["extra_fields"]) == {"path", "headers"}
    assert forms["ctflow_mlflow"]["extra_fields"]["tracking_uri"]["schema"]["title"] == "Tracking URI"


#: The plugins Airflow loads, and its plugin import errors, with a given plugins folder; and
#: whether loading them imported the view (only the api-server, which mounts it, should pay for it).
LOADED_PLUGINS = """
import json, sys
from airflow import plugins_manager
plugins, errors = plugins_manager._get_plugins()
plugins_manager.get_operator_extra_links()
print(json.dumps({"names": [p.name for p in plugins], "errors": errors,
                  "view_imported": [m for m in ("ctflow.ui.app", "fastapi") if m in sys.modules]}))
"""


def test_the_projects_plugins_folder_does_not_load_ctflow_twice_nor_import_the_view(bare_airflow):
    # deploy/, docker-compose.yml and the UI tests point the plugins folder at the project's plugins/.
    env = {**os.environ, **bare_airflow, "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT / "plugins")}
    result = subprocess.run([sys.executable, "-c", LOADED_PLUGINS], env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["names"].count("ctflow") == 1 and loaded["errors"] == {}
    assert "ctflow.ui.app" not in loaded["view_imported"], loaded


def test_provider_info_passes_airflows_schemas_and_matches_the_hooks():
    import jsonschema

    info = get_provider_info()
    jsonschema.validate(info, json.loads((AIRFLOW_PACKAGE / "provider_info.schema.json").read_text()))
    # The stricter development schema of a connection type (conn-fields, ui-field-behaviour).
    development = json.loads((AIRFLOW_PACKAGE / "provider.yaml.schema.json").read_text())
    for entry in info["connection-types"]:
        jsonschema.validate(entry, development["properties"]["connection-types"]["items"])
    assert "plugins" not in info  # the airflow.plugins entry point registers it; twice is an import error

    assert {e["connection-type"]: e["hook-class-name"] for e in info["connection-types"]} == {
        t: c for t, (c, _) in CTFLOW_TYPES.items()}
    for entry in info["connection-types"]:
        module, _, name = entry["hook-class-name"].rpartition(".")
        hook = getattr(importlib.import_module(module), name)
        assert hook.conn_type == entry["connection-type"] and hook.hook_name == entry["hook-name"]
        # The constructor takes the connection id under conn_name_attr, defaulting to default_conn_name.
        assert inspect.signature(hook).parameters[hook.conn_name_attr].default == hook.default_conn_name
        assert getattr(hook(), hook.conn_name_attr) == hook.default_conn_name
    modules = {m for h in info["hooks"] for m in h["python-modules"]}
    assert modules == {c.rsplit(".", 1)[0] for c, _ in CTFLOW_TYPES.values()}
