"""Batch scoring for monitoring: which models serve, which rows each scores, and the window's frame.

* :class:`ServingModel` is a registered version holding an alias, with what it was trained on
  (feature service, feature columns, MLflow run) and the model, loaded on first use;
* :func:`canary_mask` splits rows deterministically by a hash of their entity key;
* :func:`window_frame` builds the rows of a time window with their point-in-time features
  (Feast, through :mod:`ctflow.core.features`), optionally with their labels.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from ctflow.core.registry import ModelRegistry, ModelVersionInfo
    from ctflow.spec import PipelineSpec

log = logging.getLogger(__name__)

_HASH_SPACE = float(2**64)


def canary_mask(keys: list[str], fraction: float, *, salt: str = "") -> np.ndarray:
    """True for the rows whose entity key hashes into the first ``fraction`` of the hash space.

    Deterministic across processes and runs (BLAKE2b, not Python's salted ``hash``): an entity
    always lands on the same side for the same ``salt`` (ctflow uses the model name).
    """
    if not 0 <= fraction <= 1:
        raise ValueError(f"canary fraction must be within [0, 1], got {fraction}")
    prefix = f"{salt}\x1f".encode()
    points = np.fromiter(
        (int.from_bytes(hashlib.blake2b(prefix + key.encode(), digest_size=8).digest(), "big") for key in keys),
        dtype=np.float64,
        count=len(keys),
    )
    return points / _HASH_SPACE < fraction


@dataclass
class ServingModel:
    """A registered version holding ``alias``, and what it needs to score."""

    alias: str
    version: ModelVersionInfo
    feature_service: str
    features: list[str]
    run_id: str | None
    _model: Any = field(default=None, repr=False)

    @classmethod
    def resolve(cls, registry: ModelRegistry, alias: str, spec: PipelineSpec) -> ServingModel | None:
        """The holder of ``alias`` with its training lineage; None if nobody holds it."""
        version = registry.alias_version(alias)
        return None if version is None else cls.of(registry, version, alias, spec)

    @classmethod
    def of(cls, registry: ModelRegistry, version: ModelVersionInfo, alias: str, spec: PipelineSpec) -> ServingModel:
        """``version`` serving as ``alias``, with its training lineage."""
        from ctflow.contract import mlflow_tags

        service, features = spec.data.features, []
        if version.run_id:
            run = registry.client.get_run(version.run_id)
            service = run.data.tags.get(mlflow_tags.FEATURE_SERVICE, service)
            try:
                import json
                import tempfile

                with tempfile.TemporaryDirectory(prefix="ctflow-features-") as folder:
                    local = registry.client.download_artifacts(version.run_id, "features.json", folder)
                    logged = json.loads(Path(local).read_text())
                features = [*logged.get("numeric", []), *logged.get("categorical", [])]
            except Exception as err:  # noqa: BLE001 - an older run without the artifact: score with every column
                log.warning(
                    "version %s has no readable features.json (%s): scoring with all columns", version.version, err
                )
        return cls(alias=alias, version=version, feature_service=service, features=features, run_id=version.run_id)

    @property
    def number(self) -> str:
        return self.version.version

    @cached_property
    def model(self) -> Any:  # the champion's sklearn pipeline
        import mlflow

        return mlflow.sklearn.load_model(f"models:/{self.version.name}/{self.version.version}")

    def score(self, frame: pd.DataFrame, task: str) -> np.ndarray:
        from ctflow.core.training import predict_scores

        missing = [f for f in self.features if f not in frame.columns]
        if missing:
            from ctflow.exceptions import ConfigurationError

            raise ConfigurationError(
                f"{self.alias} v{self.number} was trained on column(s) {', '.join(missing)} that the rows of feature "
                f"service {self.feature_service!r} lack", field="data.columns",
                fix="give the entity table and the service the model's columns, or retrain on the current spec")
        if frame.empty:
            return np.zeros(0, dtype="float64")
        return np.asarray(predict_scores(self.model, frame, task), dtype="float64")

    def describe(self) -> dict[str, Any]:
        return {
            "alias": self.alias, "version": self.number, "run_id": self.run_id, "feature_service": self.feature_service
        }


def window_frame(
    spec: PipelineSpec,
    *,
    start: datetime,
    end: datetime,
    feature_service: str,
    feature_repo: Path,
    labelled: bool = False,
    known_by: datetime | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Entity rows of ``[start, end)`` with their point-in-time features, and facts about them.

    Without ``labelled`` the label source column is dropped (scoring must not see it); with it,
    rows whose label is missing, or not yet known at ``known_by`` (:mod:`ctflow.core.labels`),
    are dropped (and counted) and the derived label is added as :data:`ctflow.core.steps.LABEL`.
    """
    from ctflow.core import features as feast
    from ctflow.core.labels import known_by as label_known_by
    from ctflow.core.steps import derive_label, entity_rows

    rows = entity_rows(spec, feature_repo=feature_repo, feature_service=feature_service, start=start, end=end)
    facts: dict[str, Any] = {"entity_rows": len(rows)}
    if labelled:
        rows, unlabelled = derive_label(rows, spec)
        facts["unlabelled"] = unlabelled
        rows, facts["label_pending"] = label_known_by(rows, known_by) if known_by is not None else (rows, 0)
    else:
        rows = rows.drop(columns=[spec.data.label.column], errors="ignore")
    rows = rows.reset_index(drop=True)
    frame = feast.get_historical_features(feature_repo, feature_service, rows, timestamp=spec.data.timestamp)
    facts["rows"] = len(frame)
    return frame, facts


def join_keys(feature_repo: Path, feature_service: str) -> list[str]:
    """The Feast join keys (entity keys) the service's views are looked up by."""
    from ctflow.core import features as feast

    store, repo = feast._store_for(feature_repo)
    return feast._join_keys(store, feast._service(store, feature_service, repo))
