"""The small ``served_model`` champion that the serving and the online-store tests both read.

The demo's estimator on 10 days of flights, trained, gated, registered and promoted by the CT
steps themselves into a folder of its own (MLflow DB, artifacts, ctflow home): once per session
(``tests/integration/conftest.py``, ``served_champion``), since every test that uses it only reads
it. A test module reads it inside :func:`tests.conftest.isolated_home` of that folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from tests.conftest import demo_spec, isolated_home

MODEL = "served_model"
AS_OF = datetime(2013, 3, 1, tzinfo=UTC)
SPEC_TEXT = demo_spec(
    ("pipeline: flight_delay", f"pipeline: {MODEL}"),
    ("window: 60d", "window: 10d"),
    ("holdout: 14d", "holdout: 3d"),
    ("min_rows: 20000", "min_rows: 1000"),
    ("params: {max_iter: 200, learning_rate: 0.1, max_leaf_nodes: 31}", "params: {max_iter: 50}\n  decision_threshold: 0.3"),
    ("roc_auc: {min: 0.65}", "roc_auc: {min: 0.5}"),
    ("roc_auc: {min: 0.60}", "roc_auc: {min: 0.5}"),
)
URI = f"models:/{MODEL}@champion"


@dataclass(frozen=True)
class ServedChampion:
    """Where the champion lives (:func:`isolated_home` of ``folder`` reads it) and its ``train.json``."""

    folder: Path
    train: dict


def build(folder: Path) -> ServedChampion:
    """The CT steps train, gate, register and promote version 1 of ``served_model`` into ``folder``."""
    from ctflow.core import steps
    from ctflow.spec import parse_spec

    spec = parse_spec(SPEC_TEXT)
    with isolated_home(folder):
        run_dir = folder / "ct"
        run_dir.mkdir()
        steps.fetch_features(spec, as_of=AS_OF, run_dir=run_dir)
        steps.train(spec, as_of=AS_OF, run_dir=run_dir, run_key="ct/served", spec_text=SPEC_TEXT)
        steps.evaluate(spec, run_dir=run_dir)
        steps.register(spec, run_dir=run_dir, run_key="ct/served")
        change = steps.promote(spec, run_dir=run_dir, actor="test")
    assert change["moved"] and change["version"] == "1"
    return ServedChampion(folder, json.loads((run_dir / steps.TRAIN).read_text()))
