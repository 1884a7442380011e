"""The production topology, natively (tests/production/native.py), under faults and contention.

One stack for the module (CeleryExecutor with two workers, PostgreSQL, Redis, an MLflow server,
FAB login; every command and variable from ``ctflow.deploy.topology``), and one pipeline per
scenario, so that each starts from an empty registered model. The scenarios run at the same
time, as they would in production (and so that the module fits its time budget):

* ``fd_faults``: the worker running ``train`` is SIGKILLed (a replacement worker is started);
  later the MLflow server is killed as ``register`` starts, and restarted once it has failed;
* ``flight_delay``: ``ct_`` and then ``monitor_`` triggered through the REST API;
* ``fd_race``: three runs (three logical dates) gate and promote at the same time.

The faults hit whatever else runs at that moment too; every pipeline has retries, and every
assertion below must hold regardless.

The specs are the demo spec with a smaller training window, fewer boosting iterations and
quick retries, and trigger-only (no cron, no retraining on breaches), so that only the runs
under test run.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
import yaml

from ctflow.contract import mlflow_tags
from tests.conftest import demo_spec, write_dags_folder

pytestmark = [pytest.mark.integration, pytest.mark.scheduler, pytest.mark.postgres, pytest.mark.redis]

DEMO_SPEC = demo_spec()
PIPELINES = ("flight_delay", "fd_faults", "fd_race")
TRAIN = "training.train"
EVALUATE = "training.evaluate"
REGISTER = "promotion.register"
PROMOTE = "promotion.promote"
FAULTS = "ct_fd_faults"
RACE = "ct_fd_race"
RACE_AS_OF = "2013-06-01T00:00:00Z"
#: logical date -> training window (days); all three are gated on the holdout before RACE_AS_OF.
RACE_RUNS = {"2013-06-01T00:00:00Z": 10, "2013-06-02T00:00:00Z": 14, "2013-06-03T00:00:00Z": 21}


def spec_variant(pipeline: str) -> str:
    """The demo spec as ``pipeline``: trigger-only, a smaller window, fewer iterations, quick retries."""
    spec = yaml.safe_load(DEMO_SPEC)
    spec["pipeline"] = pipeline
    spec["schedule"].update({"train": None, "monitor": None, "retrain_on": [], "after": [], "assets": []})
    spec["data"].update({"window": "14d", "holdout": "5d"})
    spec["quality"]["min_rows"] = 5000
    spec["model"]["params"]["max_iter"] = 40
    evaluation = spec["evaluation"]
    evaluation.update({"thresholds": {"roc_auc": {"min": 0.55}}, "slices": []})
    evaluation.pop("slice_thresholds", None)
    spec["registry"].update({"strategy": "direct", "approval": "auto"})
    spec["monitoring"]["window"] = "1d"
    spec["defaults"] = {"retries": 10, "retry_delay": "5s", "task_timeout": "20m"}
    return yaml.safe_dump(spec, sort_keys=False)


@pytest.fixture(scope="module")
def stack(tmp_path_factory, feature_repo_ready):
    from tests.production.native import require, running_stack

    require("postgres", "redis")
    tmp = tmp_path_factory.mktemp("native")
    folder = write_dags_folder(tmp / "dags", {f"{pipeline}.yaml": spec_variant(pipeline) for pipeline in PIPELINES})
    environ_before = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "CTFLOW_LOCK_URL")}
    started = time.monotonic()
    with running_stack(tmp, dags_folder=folder) as running:
        for pipeline in PIPELINES:
            running.wait_for_dag(f"ct_{pipeline}", timeout=300)
            running.wait_for_dag(f"monitor_{pipeline}", timeout=60)
        print(f"\nnative stack ready in {time.monotonic() - started:.0f} s", flush=True)
        yield running
        print(f"native stack: scenarios done {time.monotonic() - started:.0f} s after the start", flush=True)
    # Nothing of the stack leaked into this process's environment.
    assert {k: os.environ.get(k) for k in environ_before} == environ_before


@pytest.fixture(scope="module")
def fault_run(stack) -> str:
    """Triggered first: its tasks are queued ahead of the others' (the fault story is the longest)."""
    return stack.trigger(FAULTS, "2013-05-01T00:00:00Z")


@pytest.fixture(scope="module")
def background_runs(stack, fault_run) -> dict:
    """The runs that proceed while the fault story runs: the demo pipeline's, and the race."""
    return {
        "ct_flight_delay": stack.trigger("ct_flight_delay", "2013-03-01T00:00:00Z"),
        "race": {stack.trigger(RACE, logical_date, {"as_of": RACE_AS_OF, "window_days": window}): window
                 for logical_date, window in RACE_RUNS.items()},
    }


@pytest.fixture(scope="module")
def fault_story(stack, fault_run, background_runs) -> dict:
    """One ct_fd_faults run: SIGKILL the worker running ``train``; kill MLflow when ``register`` starts."""
    run_id = fault_run
    story: dict = {"run_id": run_id}
    started = time.monotonic()

    def mark(event: str) -> None:
        story.setdefault("timeline", []).append((round(time.monotonic() - started), event))

    ti = stack.wait_for_task(FAULTS, run_id, TRAIN, lambda t: t["state"] == "running" and t.get("hostname"),
                             timeout=300)
    story["victim"] = victim = ti["hostname"]
    assert victim in stack.workers(), ti
    time.sleep(2)  # into the training itself
    stack.kill(victim)  # SIGKILL to its process group: the worker, its pool, the task process; no goodbye
    mark(f"killed {victim} running train")
    story["killed_worker_at"] = time.monotonic()
    stack.add_worker("worker-3")  # a replacement, as a restart policy would start

    # Registration starts right after the gate: MLflow dies then, and comes back once it failed.
    stack.wait_for_task(FAULTS, run_id, EVALUATE, lambda t: t["state"] == "success", timeout=420, interval=0.3)
    mark("evaluate done")
    stack.kill("mlflow")
    register = stack.wait_for_task(FAULTS, run_id, REGISTER, lambda t: t["state"] in ("up_for_retry", "failed"),
                                   timeout=180)
    story["register_after_kill"] = register["state"]
    mark(f"register {register['state']}; restarting MLflow")
    stack.start("mlflow")
    stack.wait_for_mlflow()
    mark("MLflow answers again")
    story["run"] = stack.wait_for_run(FAULTS, run_id, timeout=420)
    mark(f"run {story['run']['state']}")
    print(f"\nfault story (s since the trigger): {story['timeline']}", flush=True)
    return story


def registry(stack, pipeline: str):
    from ctflow.core.registry import ModelRegistry
    from ctflow.core.registry_lock import FileRegistryLock

    # Reads only; a lock the test never takes.
    return ModelRegistry(pipeline, tracking_uri=stack.mlflow_url, lock=FileRegistryLock(stack.home / "unused-locks"))


def run_and_wait(stack, dag_id: str, logical_date: str, conf: dict | None = None, timeout: float = 600) -> str:
    run_id = stack.trigger(dag_id, logical_date, conf)
    run = stack.wait_for_run(dag_id, run_id, timeout=timeout)
    assert run["state"] == "success", f"{dag_id} {run_id}: {run['state']}\n{stack.failed_tasks(dag_id, run_id)}"
    return run_id


def versions_of_run(registry_, dag_id: str, run_id: str) -> list:
    return [v for v in registry_.versions() if v.tags.get(mlflow_tags.RUN_KEY) == f"{dag_id}/{run_id}"]


def assert_consistent_history(registry_) -> list:
    """Every champion move recorded, none pending, chained, and ending where the alias points."""
    from ctflow.core.registry_history import parse_events

    model = registry_.client.get_registered_model(registry_.model_name)
    states = [event.get("state") for _, event in parse_events(model.tags)]
    assert "pending" not in states, f"an alias move was left pending: {states}"
    history = registry_.history(alias="champion")
    assert history, "no champion move recorded"
    assert history[0].previous is None
    for before, after in zip(history, history[1:]):
        assert after.previous == before.version, f"broken chain: {before} then {after}"
    assert all(event.moved for event in history)
    champion = registry_.champion()
    assert champion is not None and champion.version == history[-1].version
    return history


# --- the scenarios ----------------------------------------------------------------------------


def test_killed_worker_task_is_retried_on_another_worker(stack, fault_story):
    run_id, victim = fault_story["run_id"], fault_story["victim"]
    assert fault_story["run"]["state"] == "success", stack.logs_tail(80)

    tries = stack.tries(FAULTS, run_id, TRAIN)
    print(f"train tries: {[(t['try_number'], t['hostname'], t['state']) for t in tries]}")
    assert tries[0]["hostname"] == victim and tries[0]["state"] == "failed", tries
    assert tries[-1]["state"] == "success" and tries[-1]["hostname"] not in (victim, None), tries
    assert tries[-1]["hostname"].startswith("worker-")

    faults = registry(stack, "fd_faults")
    versions = versions_of_run(faults, FAULTS, run_id)
    assert len(versions) == 1, versions
    assert [v.version for v in faults.versions()] == [versions[0].version]
    history = assert_consistent_history(faults)
    assert [(e.version, e.run_key) for e in history] == [(versions[0].version, f"{FAULTS}/{run_id}")]
    # The registered model is the one of the try that finished; the killed try's MLflow run never did.
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=stack.mlflow_url)
    runs = client.search_runs([client.get_experiment_by_name("ctflow/fd_faults").experiment_id],
                              filter_string=f"tags.`ctflow.run_key` = '{FAULTS}/{run_id}'")
    print(f"MLflow runs of the run key: {sorted(r.info.status for r in runs)}")
    assert [r.info.run_id for r in runs if r.info.status == "FINISHED"] == [versions[0].run_id]


def test_mlflow_down_during_registration_then_back(stack, fault_story):
    run_id = fault_story["run_id"]
    assert fault_story["run"]["state"] == "success", stack.logs_tail(80)

    tries = stack.tries(FAULTS, run_id, REGISTER)
    print(f"register tries: {[(t['try_number'], t['hostname'], t['state']) for t in tries]}")
    assert len(tries) >= 2, f"register was not hit by the outage (it ran before MLflow was killed?): {tries}"
    assert tries[0]["state"] == "failed" and tries[-1]["state"] == "success", tries
    faults = registry(stack, "fd_faults")
    versions = versions_of_run(faults, FAULTS, run_id)
    assert len(versions) == 1, versions  # nothing duplicated by the retries
    assert faults.champion().version == versions[0].version
    # Nothing lost: the model's files are there, served by the restarted server.
    import mlflow.artifacts
    from mlflow import MlflowClient

    uri = MlflowClient(tracking_uri=stack.mlflow_url).get_model_version_download_uri("fd_faults", versions[0].version)
    names = {Path(a.path).name for a in mlflow.artifacts.list_artifacts(artifact_uri=uri, tracking_uri=stack.mlflow_url)}
    assert {"MLmodel", "model.pkl"} <= names, names


def test_ct_and_monitor_run_through_the_rest_api_on_several_workers(stack, background_runs):
    ct_run = background_runs["ct_flight_delay"]
    run = stack.wait_for_run("ct_flight_delay", ct_run, timeout=420)
    assert run["state"] == "success", stack.logs_tail(80)
    monitor_run = stack.trigger("monitor_flight_delay", "2013-03-05T06:00:00Z")
    run = stack.wait_for_run("monitor_flight_delay", monitor_run, timeout=300)
    assert run["state"] == "success", stack.logs_tail(80)

    hosts: dict[str, list[str]] = {}
    for dag_id, run_id in (("ct_flight_delay", ct_run), ("monitor_flight_delay", monitor_run)):
        for ti in stack.task_instances(dag_id, run_id):
            if ti["state"] == "success":
                hosts.setdefault(ti["hostname"], []).append(f"{dag_id}.{ti['task_id']}")
    print("tasks per worker:", {host: len(tasks) for host, tasks in hosts.items()})
    assert len(hosts) >= 2 and all(host.startswith("worker-") for host in hosts), hosts

    flight_delay = registry(stack, "flight_delay")
    assert len(versions_of_run(flight_delay, "ct_flight_delay", ct_run)) == 1
    assert_consistent_history(flight_delay)
    # The monitoring run scored into the PostgreSQL predictions store (CTFLOW_PREDICTIONS_URL).
    import sqlalchemy

    engine = sqlalchemy.create_engine(stack.env["CTFLOW_PREDICTIONS_URL"])
    try:
        with engine.connect() as conn:
            rows = conn.execute(sqlalchemy.text(
                "SELECT count(*) FROM ctflow_predictions WHERE pipeline = 'flight_delay'")).scalar()
    finally:
        engine.dispose()
    assert rows > 0


def test_concurrent_promotions_leave_the_best_candidate_champion(stack, background_runs):
    """Three runs (three logical dates) train on different windows and are gated on the same
    holdout (the same ``as_of``), so "best" is well defined: whatever order their gates and
    promotions interleave in, the champion must end on the highest roc_auc, and every move must
    be in the alias history."""
    runs = background_runs["race"]
    for run_id in runs:
        run = stack.wait_for_run(RACE, run_id, timeout=420)
        assert run["state"] == "success", stack.logs_tail(80)

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=stack.mlflow_url)
    experiment = client.get_experiment_by_name("ctflow/fd_race").experiment_id
    scores = {}
    for run_id in runs:
        found = client.search_runs([experiment], filter_string=f"tags.`ctflow.run_key` = '{RACE}/{run_id}' "
                                                               "and attributes.status = 'FINISHED'")
        assert len(found) == 1, found
        scores[run_id] = found[0].data.metrics["roc_auc"]
    best = max(scores, key=scores.get)
    assert list(scores.values()).count(scores[best]) == 1, f"a tie makes 'best' ambiguous: {scores}"

    race = registry(stack, "fd_race")
    for run_id in runs:
        assert len(versions_of_run(race, RACE, run_id)) <= 1
    champion = race.champion()
    assert champion.tags[mlflow_tags.RUN_KEY] == f"{RACE}/{best}", (champion, scores)
    assert champion.gate == "passed"

    history = assert_consistent_history(race)
    moved, spans = [], []
    for run_id in runs:
        final = stack.tries(RACE, run_id, PROMOTE)[-1]
        spans.append((final["start_date"], final["end_date"], final["state"]))
        if final["state"] == "success" and (result := stack.xcom(RACE, run_id, PROMOTE)).get("moved"):
            moved.append((result["version"], f"{RACE}/{run_id}"))
    assert sorted(moved) == sorted((e.version, e.run_key) for e in history), (moved, history)
    # Serialized by PostgreSQL's advisory lock: the file lock's folder was never made.
    assert re.match(r"postgresql\+psycopg2://", stack.env["CTFLOW_LOCK_URL"])
    assert not (Path(stack.env["CTFLOW_HOME"]) / "locks").exists()
    print(f"race: roc_auc per run {scores}; champion v{champion.version}; promote tries {sorted(spans)}; "
          f"history {[(e.previous, e.version) for e in history]}")
