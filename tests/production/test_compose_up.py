"""``docker compose up`` for real: docker-compose.yml on this Docker engine, with the images of
``make images`` (Debian's packages, no registry), two worker replicas, a generated .env.

* ``ct_flight_delay`` then ``monitor_flight_delay``, triggered through the api-server's REST API
  with a FAB login: a champion in MLflow (its REST API, from the host), predictions in
  PostgreSQL (psql in the postgres container), tasks on both worker replicas;
* a worker container SIGKILLed while it runs ``train``: the task finishes on the other replica,
  and the run registers exactly one model version;
* ``down -v`` leaves no container, volume or network of the project (checked on exit).

The specs are the native test's trigger-only variants (tests/production/test_native_topology.py),
mounted over the image's DAGs folder: no cron run competes with the runs under test.
Skipped, with the reason, where there is no engine or no Compose; under ``CI=true`` a failure.
"""

from __future__ import annotations

import time

import pytest
import requests

from ctflow.contract import mlflow_tags
from tests.conftest import write_dags_folder
from tests.production.test_native_topology import (
    EVALUATE,
    TRAIN,
    assert_consistent_history,
    registry,
    spec_variant,
    versions_of_run,
)

pytestmark = [pytest.mark.containers, pytest.mark.integration, pytest.mark.scheduler]

CT, MONITOR = "ct_flight_delay", "monitor_flight_delay"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    from tests.production.compose_stack import running_compose_stack
    from tests.production.containers import require_engine, stack_images

    compose = require_engine(compose=True)
    images = stack_images()
    tmp = tmp_path_factory.mktemp("compose")
    dags = write_dags_folder(tmp / "dags", {"flight_delay.yaml": spec_variant("flight_delay")})
    for path in [dags, *dags.rglob("*")]:  # the containers run as uid 50000
        path.chmod(0o755 if path.is_dir() else 0o644)
    with running_compose_stack(tmp, compose=compose, images=images, dags_folder=dags) as running:
        for dag_id in (CT, MONITOR):
            running.wait_for_dag(dag_id, timeout=300)
        yield running


def succeed(stack, dag_id: str, logical_date: str, timeout: float = 900) -> str:
    run_id = stack.trigger(dag_id, logical_date)
    run = stack.wait_for_run(dag_id, run_id, timeout=timeout)
    assert run["state"] == "success", f"{dag_id} {run_id}: {run['state']}\n{stack.failed_tasks(dag_id, run_id)}"
    return run_id


def test_ct_and_monitor_through_the_rest_api_on_two_worker_replicas(stack):
    started = time.monotonic()
    ct_run = succeed(stack, CT, "2013-03-01T00:00:00Z")
    monitor_run = succeed(stack, MONITOR, "2013-03-05T06:00:00Z")
    print(f"\nct + monitor runs: {time.monotonic() - started:.0f} s", flush=True)

    # A champion, asked of the MLflow server's REST API from the host.
    response = requests.get(f"{stack.mlflow_url}/api/2.0/mlflow/registered-models/alias",
                            params={"name": "flight_delay", "alias": "champion"}, timeout=30)
    assert response.status_code == 200, response.text
    champion = response.json()["model_version"]
    assert champion["tags"] and {t["key"]: t["value"] for t in champion["tags"]}[mlflow_tags.RUN_KEY] == f"{CT}/{ct_run}"
    assert len(versions_of_run(registry(stack, "flight_delay"), CT, ct_run)) == 1

    # The monitoring run's predictions, in the stack's PostgreSQL.
    count = stack.run("exec", "-T", "postgres", "psql", "-U", "ctflow", "-d", "ctflow", "-tAc",
                      "SELECT count(*) FROM ctflow_predictions WHERE pipeline = 'flight_delay'").stdout.strip()
    assert int(count) > 0, count

    # Tasks ran on both worker replicas (each records its container's host name).
    workers = stack.worker_hostnames()
    hosts: dict[str, int] = {}
    for dag_id, run_id in ((CT, ct_run), (MONITOR, monitor_run)):
        for ti in stack.task_instances(dag_id, run_id):
            if ti["state"] == "success":
                hosts[ti["hostname"]] = hosts.get(ti["hostname"], 0) + 1
    print(f"tasks per worker container: { {workers.get(h, h): n for h, n in hosts.items()} }")
    assert set(hosts) <= set(workers), (hosts, workers)
    assert len(hosts) == 2, hosts


def test_a_worker_killed_during_train_leaves_the_task_to_the_other(stack):
    run_id = stack.trigger(CT, "2013-05-01T00:00:00Z")
    ti = stack.wait_for_task(CT, run_id, TRAIN, lambda t: t["state"] == "running" and t.get("hostname"), timeout=600)
    workers = stack.worker_hostnames()
    victim = ti["hostname"]
    assert victim in workers, (victim, workers)
    stack.kill(workers[victim])

    run = stack.wait_for_run(CT, run_id, timeout=900)
    assert run["state"] == "success", f"{run['state']}\n{stack.failed_tasks(CT, run_id)}"
    tries = stack.tries(CT, run_id, TRAIN)
    print(f"\ntrain tries: {[(t['try_number'], workers.get(t['hostname']), t['state']) for t in tries]}")
    assert tries[0]["hostname"] == victim and tries[0]["state"] == "failed", tries
    assert tries[-1]["state"] == "success" and tries[-1]["hostname"] in set(workers) - {victim}, tries
    assert stack.task_instance(CT, run_id, EVALUATE)["state"] == "success"

    flight_delay = registry(stack, "flight_delay")
    assert len(versions_of_run(flight_delay, CT, run_id)) == 1
    assert_consistent_history(flight_delay)
