"""A champion works outside ctflow (issue #14): it loads and serves from a clean environment
built only from the model's own ``requirements.txt``, where ctflow cannot be imported.

One small champion (the demo's estimator on 10 days of flights) is trained, gated, registered
and promoted by the CT steps themselves, in an MLflow DB and ctflow home of its own, once per
session (:mod:`tests.served_champion`; ``test_online_predict`` reads the same champion). The
clean environment is a ``uv`` virtualenv (about half a minute with a warm cache); the server is
``mlflow models serve --env-manager local`` run from it, on a free loopback port.

The load and serve times are printed (``pytest -s``) for the record.
"""

from __future__ import annotations

import json
import os
import pickletools
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests

from ctflow.contract import mlflow_tags
from ctflow.spec import parse_spec
from tests.conftest import isolated_home
from tests.harness import free_port
from tests.served_champion import MODEL, SPEC_TEXT, URI, ServedChampion

pytestmark = pytest.mark.integration

TIMES: dict[str, float] = {}


@pytest.fixture(scope="module")
def home(served_champion: ServedChampion):
    with isolated_home(served_champion.folder) as path:
        yield path
        if TIMES:
            print("\nclean environment (seconds):", json.dumps({k: round(v, 2) for k, v in TIMES.items()}))


@pytest.fixture(scope="module")
def champion(home: Path, served_champion: ServedChampion) -> dict:
    """Version 1, champion (trained, gated, registered and promoted by the CT steps); its train.json."""
    return served_champion.train


@pytest.fixture(scope="module")
def model_files(champion, home: Path) -> Path:
    import mlflow

    return Path(mlflow.artifacts.download_artifacts(URI, dst_path=str(home / "model")))


@pytest.fixture(scope="module")
def clean_env(model_files: Path, home: Path) -> dict:
    """A virtualenv with only the model's ``requirements.txt``: its python and a subprocess env."""
    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    if not Path(uv).exists():
        pytest.fail("uv is needed to build the clean environment (it is the project's installer)")
    venv = home / "clean-venv"
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    started = time.perf_counter()
    made = subprocess.run([uv, "venv", "--quiet", "--python", f"{sys.version_info.major}.{sys.version_info.minor}",
                           str(venv)], env=env, capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr
    installed = subprocess.run([uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"),
                                "-r", str(model_files / "requirements.txt")],
                               env=env, capture_output=True, text=True, timeout=900)
    assert installed.returncode == 0, installed.stderr[-3000:]
    TIMES["venv_build"] = time.perf_counter() - started
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"  # `mlflow models serve` execs uvicorn
    return {"python": str(venv / "bin" / "python"), "bin": venv / "bin", "env": env}


def _example(model_files: Path) -> dict:
    return json.loads((model_files / "serving_input_example.json").read_text())


def _optional(model_files: Path) -> list[str]:
    from mlflow.models import Model

    return [c.name for c in Model.load(str(model_files)).get_input_schema().inputs if not c.required]


def test_the_pickled_model_references_no_ctflow_code(model_files: Path):
    names = [arg for _, arg, _ in pickletools.genops((model_files / "model.pkl").read_bytes()) if isinstance(arg, str)]
    assert any(name.startswith("sklearn") for name in names)  # the scan reads the pickle's globals
    assert [name for name in names if "ctflow" in name] == []
    assert "ctflow" not in (model_files / "requirements.txt").read_text()


def test_the_model_serves_probabilities_and_documents_its_threshold(model_files: Path, champion: dict):
    from mlflow import MlflowClient
    from mlflow.models import Model


    logged = Model.load(str(model_files))
    assert logged.flavors["python_function"]["predict_fn"] == "predict_proba"
    assert logged.metadata == {mlflow_tags.OUTPUT: "predict_proba", mlflow_tags.DECISION_THRESHOLD: 0.3,
                               mlflow_tags.POSITIVE_CLASS: "arr_delay > 15"}
    output = logged.get_output_schema().inputs[0]
    assert output.shape == (-1, 2) and output.type == np.dtype("float64")
    schema = {c.name: c for c in logged.get_input_schema().inputs}
    assert schema["dep_hour"].type.name == "double"  # an integer column that may be null
    assert schema["carrier"].type.name == "string" and schema["carrier"].required
    assert not schema["wind_gust"].required  # missing in training rows: a request may leave it out

    client = MlflowClient()
    version = client.get_model_version_by_alias(MODEL, "champion")
    assert version.tags[mlflow_tags.DECISION_THRESHOLD] == "0.3"
    run = client.get_run(champion["run_id"])
    assert run.data.params["decision_threshold"] == "0.3" and run.data.tags[mlflow_tags.DECISION_THRESHOLD] == "0.3"
    assert champion["decision_threshold"] == 0.3


def test_a_clean_environment_without_ctflow_loads_the_champion(clean_env: dict, model_files: Path, home: Path):
    imported = subprocess.run([clean_env["python"], "-c", "import ctflow"], env=clean_env["env"], cwd=home,
                              capture_output=True, text=True, timeout=60)
    assert imported.returncode != 0 and "No module named 'ctflow'" in imported.stderr

    script = """
import json, sys, time
started = time.perf_counter()
import mlflow, pandas as pd
imported = time.perf_counter() - started
model = mlflow.pyfunc.load_model(sys.argv[1])
loaded = time.perf_counter() - started - imported
split = json.load(open(sys.argv[2]))["dataframe_split"]
frame = pd.DataFrame(split["data"], columns=split["columns"])
started = time.perf_counter()
scores = model.predict(frame)
print(json.dumps({"scores": scores.tolist(), "import_seconds": imported, "load_seconds": loaded,
                  "predict_seconds": time.perf_counter() - started}))
"""
    for attempt in ("first", "again"):  # the first import in a new environment also compiles its bytecode
        result = subprocess.run([clean_env["python"], "-c", script, URI, str(model_files / "serving_input_example.json")],
                                env=clean_env["env"], cwd=home, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        out = json.loads(result.stdout.strip().splitlines()[-1])
        for step in ("import", "load", "predict"):  # import mlflow + pandas; load_model (registry, download, unpickle)
            TIMES[f"{step}_{attempt}"] = out[f"{step}_seconds"]
    scores = np.asarray(out["scores"])
    assert scores.shape == (5, 2)
    assert ((scores >= 0) & (scores <= 1)).all() and np.allclose(scores.sum(axis=1), 1)


@pytest.fixture(scope="module")
def server(clean_env: dict, home: Path):
    """``mlflow models serve`` of the champion from the clean environment; its base URL."""
    port = free_port()
    log = (home / "serve.log").open("w")
    started = time.perf_counter()
    process = subprocess.Popen(
        [str(clean_env["bin"] / "mlflow"), "models", "serve", "-m", URI, "--env-manager", "local",
         "-h", "127.0.0.1", "-p", str(port), "-w", "1"],
        env=clean_env["env"], cwd=home, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            if process.poll() is not None:
                pytest.fail(f"mlflow models serve exited with {process.returncode}:\n{(home / 'serve.log').read_text()[-3000:]}")
            try:
                if requests.get(f"{url}/ping", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"mlflow models serve did not answer /ping in 300 s:\n{(home / 'serve.log').read_text()[-3000:]}")
            time.sleep(0.25)  # polling interval, not a wait for something to happen
        TIMES["serve_until_ping"] = time.perf_counter() - started
        yield url
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)
        log.close()


def _invoke(url: str, payload: dict | bytes) -> requests.Response:
    """POST to ``/invocations``: a dict as JSON (NaN as null), bytes as they are (the example file)."""
    started = time.perf_counter()
    if isinstance(payload, bytes):
        response = requests.post(f"{url}/invocations", data=payload, headers={"Content-Type": "application/json"}, timeout=60)
    else:
        response = requests.post(f"{url}/invocations", json=payload, timeout=60)
    TIMES.setdefault("invocation_max", 0.0)
    TIMES["invocation_max"] = max(TIMES["invocation_max"], time.perf_counter() - started)
    return response


def _probabilities(response: requests.Response, rows: int) -> np.ndarray:
    assert response.status_code == 200, response.text
    scores = np.asarray(response.json()["predictions"], dtype=float)
    assert scores.shape == (rows, 2) and ((scores >= 0) & (scores <= 1)).all()
    return scores


def test_the_server_answers_the_input_example_as_ctflow_scores_it(server: str, model_files: Path, champion: dict):
    import mlflow

    example = _example(model_files)
    # The file as MLflow wrote it (`curl -d @serving_input_example.json`): it writes NaN for missing values.
    served = _probabilities(_invoke(server, (model_files / "serving_input_example.json").read_bytes()), 5)
    split = example["dataframe_split"]
    pipeline = mlflow.sklearn.load_model(URI)  # what ctflow's gate and monitoring score with
    frame = pd.DataFrame(split["data"], columns=split["columns"])
    np.testing.assert_allclose(served[:, 1], pipeline.predict_proba(frame)[:, 1], rtol=1e-9)
    # The consumer's labels: positive-class probability at or above the logged threshold.
    assert ((served[:, 1] >= champion["decision_threshold"]) == (pipeline.predict_proba(frame)[:, 1] >= 0.3)).all()


def test_the_server_scores_what_the_signature_allows(server: str, model_files: Path):
    split = _example(model_files)["dataframe_split"]
    frame = pd.DataFrame(split["data"], columns=split["columns"])
    optional = _optional(model_files)
    assert "wind_gust" in optional

    without = frame.drop(columns=optional)
    _probabilities(_invoke(server, {"dataframe_split": json.loads(without.to_json(orient="split", index=False))}), 5)

    records = json.loads(frame.head(2).to_json(orient="records"))
    records[0]["dep_hour"] = None  # an integer feature, null: imputed like any missing value
    records[0]["carrier"] = None  # a category, null: the missing category
    records[1]["not_a_feature"] = 1  # extra columns are ignored
    _probabilities(_invoke(server, {"dataframe_records": records}), 2)

    required = next(c for c in frame.columns if c not in optional)
    refused = _invoke(server, {"dataframe_split": json.loads(frame.drop(columns=[required]).to_json(orient="split", index=False))})
    assert refused.status_code == 400 and required in refused.text  # a required column cannot be left out


def test_the_run_logs_its_rows_as_datasets_and_the_version_carries_a_model_card(champion: dict, home: Path):
    from mlflow import MlflowClient

    from ctflow.core.features import fingerprint
    from ctflow.core.steps import resolve_path

    spec = parse_spec(SPEC_TEXT)
    client = MlflowClient()
    inputs = {next(t.value for t in i.tags if t.key == "mlflow.data.context"): i.dataset
              for i in client.get_run(champion["run_id"]).inputs.dataset_inputs}
    assert set(inputs) == {"training", "holdout"}
    holdout = pd.read_parquet(home / "ct" / "holdout.parquet")
    assert inputs["holdout"].digest == fingerprint(holdout, timestamp=spec.data.timestamp)["sha256"][:32]
    assert json.loads(inputs["training"].source)["uri"] == str(resolve_path(spec.data.entities))
    assert inputs["training"].name == "flight_delay_v1 training rows"
    assert json.loads(inputs["training"].profile)["num_rows"] == champion["train_rows"]

    card = client.get_model_version_by_alias(MODEL, "champion").description
    for part in ("**served_model**", "classification", f"{champion['train_rows']:,} training rows", "`wind_gust`",
                 "P >= 0.3", "**Gate**: promote: no champion yet", "| this version |", "origin=JFK",
                 champion["run_id"], "**Known limits**"):
        assert part in card, part
