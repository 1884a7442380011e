"""The model-registry core against a real MLflow registry on SQLite, with a real sklearn model.

One MLflow database per module (creating one costs seconds), one registered model per test.
The concurrency tests use spawned processes, kept in one pool so MLflow is imported once.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ctflow.contract import mlflow_tags
from ctflow.core.registry import (
    AliasMove,
    GateFailedError,
    ModelRegistry,
    ModelVersionInfo,
    NothingToRollBackError,
    RegistryError,
)
from ctflow.core.registry_history import HISTORY_PREFIX, MAX_EVENT_CHARS, parse_events, rollback_target
from ctflow.core.registry_lock import FileRegistryLock, RegistryLock, RegistryLockTimeout
from tests.conftest import isolated_home

WORKERS = 3


@dataclass(frozen=True)
class Env:
    tracking_uri: str
    model_uri: str
    run_id: str
    lock_dir: Path


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory):
    """This module's directory, and the environment pointing MLflow and ctflow into it."""
    with isolated_home(tmp_path_factory.mktemp("registry")) as path:
        yield path


@pytest.fixture(scope="module")
def pool(root: Path):
    """Spawned workers that start each task together, after a barrier.

    Started before the database is built, so their MLflow imports overlap with that work.
    """
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(WORKERS, timeout=120)
    workers = ctx.Pool(WORKERS, initializer=_init_worker, initargs=(barrier,))
    yield workers
    workers.terminate()  # idle by now; close() would wait for MLflow's exit handlers
    workers.join()


@pytest.fixture(scope="module")
def env(root: Path, pool) -> Env:
    """One MLflow database with one logged sklearn model for the whole module."""
    import mlflow
    from mlflow import MlflowClient
    from sklearn.linear_model import LogisticRegression

    uri = os.environ["MLFLOW_TRACKING_URI"]
    # MLflow's fluent API keeps the URI an earlier module set in-process (set_tracking_uri): reset it.
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("ctflow-registry-tests", artifact_location=(root / "artifacts").as_uri())
    model = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    with mlflow.start_run(experiment_id=experiment) as run:
        # Fixed requirements and cloudpickle: skip requirement inference and skops (seconds each).
        info = mlflow.sklearn.log_model(model, name="model", pip_requirements=["scikit-learn"], serialization_format="cloudpickle")
    assert client.get_run(run.info.run_id).info.experiment_id == experiment  # logged where we think
    return Env(uri, info.model_uri, run.info.run_id, root / "locks")


def _registry(env: Env, name: str) -> ModelRegistry:
    return ModelRegistry(name, tracking_uri=env.tracking_uri, lock=FileRegistryLock(env.lock_dir))


def _register(env: Env, registry: ModelRegistry, run: str, **tags: str) -> str:
    return registry.register(env.model_uri, run_key=f"ct_test/{run}", run_id=env.run_id, tags=tags).version


def _promote(registry: ModelRegistry, version: str, expected: str | None = None) -> AliasMove:
    return registry.promote(version, reason=f"gate passed for {version}", actor="pytest", expected_current=expected, still_wins=lambda _: True)


# -- worker processes ------------------------------------------------------------------------

_BARRIER = None


def _init_worker(barrier) -> None:
    global _BARRIER
    _BARRIER = barrier
    # Pay the imports now, while the parent builds the database, rather than inside a test.
    import mlflow.store.model_registry.sqlalchemy_store
    import mlflow.tracking  # noqa: F401


def _worker_register(args: tuple[Env, str, str]) -> str:
    env, name, run_key = args
    registry = _registry(env, name)
    registry.history()  # connect before the barrier, so that the registrations themselves race
    _BARRIER.wait()
    return registry.register(env.model_uri, run_key=run_key, run_id=env.run_id).version


def _worker_promote(args: tuple[Env, str, str, str]) -> dict:
    env, name, version, gated_against = args
    registry = _registry(env, name)
    mine = float(registry.get_version(version).tags["metric.roc_auc"])

    def still_wins(holder: ModelVersionInfo | None) -> bool:
        return holder is None or mine > float(holder.tags["metric.roc_auc"])

    _BARRIER.wait()
    change = registry.promote(version, reason=f"roc_auc {mine}", actor=f"worker:{os.getpid()}", expected_current=gated_against, still_wins=still_wins)
    return change.to_dict()


# -- registration ----------------------------------------------------------------------------


@pytest.mark.integration
def test_register_is_idempotent_per_run_key(env: Env) -> None:
    registry = _registry(env, "idempotent")
    first = registry.register(env.model_uri, run_key="ct_test/manual__2026-01-01T00:00:00+00:00", run_id=env.run_id, tags={mlflow_tags.GATE: "passed"})
    again = registry.register(env.model_uri, run_key="ct_test/manual__2026-01-01T00:00:00+00:00", run_id=env.run_id, tags={mlflow_tags.GATE: "other"})
    assert again == first
    assert first.tags == {mlflow_tags.GATE: "passed", mlflow_tags.RUN_KEY: "ct_test/manual__2026-01-01T00:00:00+00:00"}
    assert first.run_id == env.run_id and first.source.startswith("file://")  # the logged model's files
    assert len(registry.client.search_model_versions("name='idempotent'")) == 1

    # Run keys with quotes still match exactly (MLflow filter literals have no escapes).
    assert _register(env, registry, "it's") == _register(env, registry, "it's") == "2"
    assert _register(env, registry, "both'\"quotes") == _register(env, registry, "both'\"quotes") == "3"
    assert ModelVersionInfo.from_dict(json.loads(json.dumps(first.to_dict()))) == first


@pytest.mark.integration
def test_concurrent_registrations_of_one_run_create_one_version(env: Env, pool) -> None:
    results = pool.map(_worker_register, [(env, "racing-register", "ct_test/retried")] * WORKERS, chunksize=1)
    assert results == ["1"] * WORKERS
    assert len(_registry(env, "racing-register").client.search_model_versions("name='racing-register'")) == 1


# -- promotion -------------------------------------------------------------------------------


@pytest.mark.integration
def test_promote_is_compare_and_set(env: Env) -> None:
    registry = _registry(env, "cas")
    v1, v2, v3 = (_register(env, registry, f"run{i}") for i in (1, 2, 3))
    assert registry.champion() is None

    first = registry.promote(v1, reason="first", actor="pytest", expected_current=None)
    assert (first.moved, first.version, first.previous, first.action) == (True, "1", None, "promote")
    retry = registry.promote(v1, reason="first", actor="pytest", expected_current=None)
    assert (retry.moved, retry.reason) == (False, "already holds")

    # v2 was gated against "no champion", but v1 arrived meanwhile.
    stale = registry.promote(v2, reason="r", actor="pytest", expected_current=None)
    assert not stale.moved and "re-gate" in stale.reason and stale.previous == "1"
    loses = registry.promote(v2, reason="r", actor="pytest", expected_current=None, still_wins=lambda holder: holder.version != "1")
    assert not loses.moved and "does not beat" in loses.reason
    assert registry.champion().version == "1"

    wins = registry.promote(v2, reason="better", actor="pytest", expected_current=None, still_wins=lambda holder: True)
    assert (wins.moved, wins.version, wins.previous) == (True, "2", "1")
    assert registry.promote(v3, reason="gated vs 2", actor="pytest", expected_current=v2).moved
    assert registry.champion().aliases == ["champion"]
    assert [c.version for c in registry.history()] == ["1", "2", "3"]  # refusals are not history

    with pytest.raises(RegistryError, match="has no version 99"):
        registry.promote("99", reason="r", actor="pytest", expected_current=v3)


@pytest.mark.integration
def test_gate_failed_version_cannot_hold_an_alias(env: Env) -> None:
    registry = _registry(env, "gate")
    failed = _register(env, registry, "bad", **{mlflow_tags.GATE: "failed"})
    with pytest.raises(GateFailedError, match="failed its gate"):
        registry.promote(failed, reason="forced", actor="pytest", expected_current=None, still_wins=lambda _: True)
    with pytest.raises(GateFailedError):
        registry.set_challenger(failed, reason="shadow", actor="pytest")
    assert registry.champion() is None and registry.history() == []


@pytest.mark.integration
def test_concurrent_promotions_end_with_the_best_and_a_consistent_history(env: Env, pool) -> None:
    registry = _registry(env, "racing-promote")
    baseline = _register(env, registry, "baseline", **{"metric.roc_auc": "0.50"})
    _promote(registry, baseline)
    scores = ["0.61", "0.74", "0.66"]
    candidates = [_register(env, registry, f"cand{i}", **{"metric.roc_auc": s}) for i, s in enumerate(scores)]

    results = [AliasMove.from_dict(r) for r in pool.map(_worker_promote, [(env, "racing-promote", v, baseline) for v in candidates], chunksize=1)]

    best = candidates[scores.index("0.74")]
    assert registry.champion().version == best
    history = registry.history("champion")
    assert history[0].version == baseline
    # A chain: each move starts where the previous one ended, and only ever improves.
    assert all(later.previous == earlier.version for earlier, later in zip(history, history[1:]))
    metrics = [float(registry.get_version(c.version).tags["metric.roc_auc"]) for c in history]
    assert metrics == sorted(metrics) and len(set(metrics)) == len(metrics)
    assert sorted(c.version for c in results if c.moved) == sorted(c.version for c in history[1:])
    assert all(not c.moved and "does not beat" in c.reason for c in results if c.version not in {h.version for h in history})


# -- rollback and history --------------------------------------------------------------------


@pytest.mark.integration
def test_rollback_walks_back_along_earlier_holders(env: Env) -> None:
    registry = _registry(env, "rollback")
    v1, v2, v3, v4 = (_register(env, registry, f"run{i}") for i in (1, 2, 3, 4))
    for previous, version in ((None, v1), (v1, v2), (v2, v3)):
        _promote(registry, version, previous)

    back = registry.rollback(reason="v3 misbehaves", actor="oncall")
    assert (back.moved, back.version, back.previous, back.action) == (True, "2", "3", "rollback")
    assert registry.champion().version == "2"
    _promote(registry, v4, v2)
    assert registry.rollback(reason="v4 too", actor="oncall").version == "2"
    assert registry.rollback(reason="and v2", actor="oncall").version == "1"  # not 3: rolled back from
    with pytest.raises(NothingToRollBackError, match="promote a version explicitly"):
        registry.rollback(reason="again", actor="oncall")
    assert [(c.action, c.version) for c in registry.history()] == [
        ("promote", "1"), ("promote", "2"), ("promote", "3"), ("rollback", "2"), ("promote", "4"), ("rollback", "2"), ("rollback", "1"),
    ]  # fmt: skip


@pytest.mark.integration
def test_rollback_does_not_bounce_between_two_versions(env: Env) -> None:
    registry = _registry(env, "bounce")
    v1, v2 = _register(env, registry, "a"), _register(env, registry, "b")
    _promote(registry, v1), _promote(registry, v2, v1)
    assert registry.rollback(reason="bad", actor="oncall").version == v1
    with pytest.raises(NothingToRollBackError):
        registry.rollback(reason="bad", actor="oncall")
    assert registry.champion().version == v1


@pytest.mark.integration
def test_rollback_with_nothing_to_roll_back_to(env: Env) -> None:
    registry = _registry(env, "no-history")
    with pytest.raises(NothingToRollBackError, match="no earlier holder"):
        registry.rollback(reason="panic", actor="oncall")
    _promote(registry, _register(env, registry, "only"))
    with pytest.raises(NothingToRollBackError, match=r"now 1\) has no earlier holder"):
        registry.rollback(reason="panic", actor="oncall")


@pytest.mark.integration
def test_retried_rollback_of_one_run_happens_once(env: Env) -> None:
    registry = _registry(env, "rollback-retry")
    v1, v2, v3 = (_register(env, registry, f"run{i}") for i in (1, 2, 3))
    _promote(registry, v1), _promote(registry, v2, v1), _promote(registry, v3, v2)
    first = registry.rollback(reason="r", actor="oncall", run_key="ct_test/rollback1")
    retry = registry.rollback(reason="r", actor="oncall", run_key="ct_test/rollback1")
    assert (first.moved, retry.moved, retry.version, retry.reason) == (True, False, "2", "already rolled back by this run")
    assert registry.champion().version == "2"


@pytest.mark.integration
def test_history_records_every_move(env: Env) -> None:
    registry = _registry(env, "history")
    v1, v2 = _register(env, registry, "a"), _register(env, registry, "b")
    _promote(registry, v1)
    registry.set_challenger(v2, reason="shadow " + "x" * 2 * MAX_EVENT_CHARS, actor="airflow:ct_history/run1")
    assert registry.set_challenger(v2, reason="retry", actor="a").reason == "already holds"
    registry.retire("challenger", reason="lost the shadow test", actor="airflow:ct_history/run2")
    assert registry.retire("challenger", reason="retry", actor="a").reason == "no holder"

    tags = registry.client.get_registered_model("history").tags
    keys = sorted(k for k in tags if k.startswith(HISTORY_PREFIX))
    assert keys == ["ctflow.history.000001", "ctflow.history.000002", "ctflow.history.000003"]
    assert all(len(tags[k]) <= MAX_EVENT_CHARS for k in keys)

    promoted, challenger, retired = registry.history()
    assert promoted == AliasMove("champion", "1", None, promoted.at, "pytest", "gate passed for 1", True, "promote")
    assert datetime.fromisoformat(promoted.at).tzinfo == UTC
    assert challenger.reason.startswith("shadow xxx") and challenger.reason.endswith("...")
    assert (retired.alias, retired.version, retired.previous, retired.action) == ("challenger", None, "2", "retire")
    assert registry.history("challenger") == [challenger, retired]
    assert registry.alias_version("challenger") is None
    assert AliasMove.from_dict(json.loads(json.dumps(retired.to_dict()))) == retired


@pytest.mark.integration
def test_changes_outside_ctflow_and_interrupted_moves_are_reconciled(env: Env) -> None:
    registry = _registry(env, "reconcile")
    v1, v2, v3 = (_register(env, registry, f"run{i}") for i in (1, 2, 3))
    _promote(registry, v1)
    registry.client.set_registered_model_alias("reconcile", "champion", v2)  # e.g. in the MLflow UI
    # A move that crashed after writing its event but before moving the alias...
    event = {"alias": "champion", "version": v3, "previous": v2, "at": "2026-01-01T00:00:00+00:00", "actor": "a", "reason": "r", "action": "promote", "run_key": None, "state": "pending"}
    registry.client.set_registered_model_tag("reconcile", f"{HISTORY_PREFIX}000099", json.dumps(event))

    assert registry.promote(v2, reason="r", actor="pytest", expected_current=v1).reason == "already holds"
    history = registry.history()
    # ...is dropped (it did not happen); the UI change is recorded, so rollback knows it.
    assert [(c.action, c.version, c.previous) for c in history] == [("promote", "1", None), ("external", "2", "1")]
    assert registry.rollback(reason="r", actor="pytest").version == "1"

    # A move that crashed after moving the alias, before marking its event done, is kept.
    registry.client.set_registered_model_tag("reconcile", f"{HISTORY_PREFIX}000200", json.dumps(event | {"previous": "1"}))
    registry.client.set_registered_model_alias("reconcile", "champion", v3)
    assert registry.retire("challenger", reason="r", actor="pytest").reason == "no holder"  # any locked operation settles
    assert [(c.action, c.version, c.previous) for c in registry.history()][-2:] == [("rollback", "1", "2"), ("promote", "3", "1")]


@pytest.mark.integration
def test_reads_before_the_model_exists(env: Env) -> None:
    registry = _registry(env, "never-created")
    assert registry.champion() is None and registry.history() == [] and registry.alias_version("challenger") is None


# -- pure parts ------------------------------------------------------------------------------


def _moves(*spec: str) -> list[AliasMove]:
    """``"p1"`` promotes 1, ``"r2"`` rolls back to 2, ``"x"`` retires; previous is tracked."""
    changes, holder = [], None
    for item in spec:
        action = {"p": "promote", "r": "rollback", "x": "retire"}[item[0]]
        changes.append(AliasMove("champion", item[1:] or None, holder, "t", "a", "r", True, action))
        holder = item[1:] or None
    return changes


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ((), None),
        (("p1",), None),
        (("p1", "p2"), "1"),
        (("p1", "p2", "r1"), None),  # no bouncing back to 2
        (("p1", "p2", "p1", "p2", "r1"), None),  # 2 was rolled back from wherever it appears
        (("p1", "p2", "r1", "p2", "p3"), "2"),  # promoted again explicitly: eligible again
        (("p1", "p2", "p3", "r2", "p4"), "2"),
        (("p1", "p2", "x"), "2"),  # rolling back a retirement restores the retired holder
        (("r5",), None),  # history that starts with a rollback (its target is then the holder)
    ],
)
def test_rollback_target(spec: tuple[str, ...], expected: str | None) -> None:
    events = _moves(*spec)
    assert rollback_target(events, events[-1].version if events else None) == expected


def test_rollback_target_skips_unusable_versions() -> None:
    assert rollback_target(_moves("p1", "p2", "p3"), "3", usable=lambda v: v != "2") == "1"


def test_unreadable_history_tags_are_ignored() -> None:
    good = {"alias": "champion", "version": "1", "previous": None, "at": "t", "actor": "a", "reason": "r", "action": "promote", "state": "done"}
    tags = {f"{HISTORY_PREFIX}000002": json.dumps(good), f"{HISTORY_PREFIX}000001": "{not json", f"{HISTORY_PREFIX}x": "{}", f"{HISTORY_PREFIX}000003": "[]", "owner": "team"}
    assert parse_events(tags) == [(2, good)]


def test_file_lock_excludes_other_holders_and_times_out(tmp_path: Path) -> None:
    lock = FileRegistryLock(tmp_path, timeout=0.2)
    assert isinstance(lock, RegistryLock)
    assert lock.path_for("a/b") != lock.path_for("a_b") and lock.path_for("a/b").name.startswith("a_b-")
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with lock.hold("m"):
            held.set()
            release.wait(5)

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait(5)
    try:
        with pytest.raises(RegistryLockTimeout, match="could not lock registered model 'm'"), lock.hold("m"):
            pass
        with lock.hold("other-model"):  # locks are per model
            pass
    finally:
        release.set()
        thread.join()
    with lock.hold("m"):
        pass


@pytest.mark.integration
def test_default_lock_lives_in_ctflow_home(env: Env) -> None:
    assert ModelRegistry("default-lock", tracking_uri=env.tracking_uri).lock.directory == Path(os.environ["CTFLOW_HOME"]).resolve() / "locks"


@pytest.mark.integration
def test_rollback_and_history_commands_as_a_user_runs_them(env: Env) -> None:
    """`ctflow history` and `ctflow rollback` (the README's commands), in their own process, on this
    module's real registry: the output an on-call engineer reads, and the exit codes a script checks."""
    import getpass
    import subprocess
    import sys

    registry = _registry(env, "cli-rollback")
    v1, v2 = _register(env, registry, "a"), _register(env, registry, "b")
    _promote(registry, v1), _promote(registry, v2, v1)

    def ctflow(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "ctflow.cli", *args, "--tracking-uri", env.tracking_uri],
                              capture_output=True, text=True, timeout=300)

    rolled = ctflow("rollback", "cli-rollback", "--reason", "v2 misroutes EWR")
    assert rolled.returncode == 0, rolled.stderr
    assert f"cli-rollback@champion: v{v2} -> v{v1} (" in rolled.stdout and "v2 misroutes EWR" in rolled.stdout, rolled.stdout
    assert registry.champion().version == v1

    again = ctflow("rollback", "cli-rollback", "--reason", "once more")
    assert again.returncode == 1 and "cannot roll back cli-rollback" in again.stdout, again.stdout
    assert registry.champion().version == v1

    no_reason = ctflow("rollback", "cli-rollback")
    assert no_reason.returncode == 2 and "--reason" in no_reason.stderr

    history = ctflow("history", "cli-rollback")
    assert history.returncode == 0, history.stderr
    lines = history.stdout.strip().splitlines()
    assert len(lines) == 3, history.stdout
    assert "v- -> v1  by pytest: gate passed for 1" in lines[0]
    assert "v1 -> v2  by pytest: gate passed for 2" in lines[1]
    assert f"v2 -> v1  by cli:{getpass.getuser()}" in lines[2] and "v2 misroutes EWR" in lines[2]
    assert [(c.action, c.version, c.actor) for c in registry.history()][-1] == ("rollback", v1, f"cli:{getpass.getuser()}")

    empty = ctflow("history", "never-registered")
    assert (empty.returncode, empty.stdout.strip()) == (0, "no alias history for never-registered")
