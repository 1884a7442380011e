"""Score one entity with a registered model and the online store: what ``ctflow predict`` runs.

:class:`OnlinePredictor` loads ``models:/<model>@<alias>`` as an MLflow pyfunc (the pipeline in
the model does the preprocessing, exactly as in training), learns from the version's run which
feature service it was trained on, and for each request reads that service's latest values
from Feast's online store. The model's input row is its signature's columns: request-time
columns (the entity table's, e.g. ``dep_hour``) from the request, features from Feast; a
column neither gives is missing, which the pipeline imputes as it did in training.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ctflow.contract import mlflow_tags
from ctflow.core import features as feast
from ctflow.core.online import OnlineFeatures, online_features
from ctflow.exceptions import ConfigurationError


@dataclass
class OnlinePredictor:
    """A loaded model and the feature store it reads; :meth:`predict` per request."""

    model_name: str
    version: str
    feature_service: str
    threshold: float | None
    model: Any
    store: Any

    @classmethod
    def load(cls, model_name: str, *, alias: str = "champion", feature_repo: Path,
             tracking_uri: str | None = None) -> OnlinePredictor:
        import mlflow

        from ctflow.core import tracking

        client = tracking.client(tracking_uri)
        try:
            version = client.get_model_version_by_alias(model_name, alias)
        except mlflow.exceptions.MlflowException as err:
            raise ConfigurationError(f"no {model_name}@{alias} in the MLflow registry ({err.message})",
                                     field="model", fix="name a registered model that has a champion") from None
        run_tags = client.get_run(version.run_id).data.tags if version.run_id else {}
        service = run_tags.get(mlflow_tags.FEATURE_SERVICE)
        if not service:
            raise ConfigurationError(f"{model_name} v{version.version} names no feature service "
                                     f"(run tag {mlflow_tags.FEATURE_SERVICE})", field="model",
                                     fix="retrain it with ctflow, which records the service it read")
        threshold = version.tags.get(mlflow_tags.DECISION_THRESHOLD)
        store, _ = feast._store_for(feature_repo)
        with _tracking(tracking_uri):
            model = mlflow.pyfunc.load_model(f"models:/{model_name}@{alias}")
        return cls(model_name=model_name, version=str(version.version), feature_service=service,
                   threshold=float(threshold) if threshold else None, model=model, store=store)

    def input_columns(self) -> list[tuple[str, str]]:
        """``(name, MLflow type)`` of the model's input signature, in order."""
        schema = self.model.metadata.get_input_schema()
        return [(column.name, column.type.name) for column in schema.inputs] if schema else []

    def input_row(self, request: dict[str, Any]) -> tuple[dict[str, Any], OnlineFeatures]:
        """The model's input row for ``request``: its signature's columns, from the request or the online store."""
        online = online_features(self.store, self.feature_service, request)
        row = {name: _typed(request[name] if name in request else online.values.get(name), kind, name)
               for name, kind in self.input_columns()}
        return row, online

    def predict(self, request: dict[str, Any], *, now: datetime | None = None) -> dict[str, Any]:
        """The score of ``request`` (entity keys and request-time columns), with the features used."""
        import numpy as np
        import pandas as pd

        row, online = self.input_row(request)
        output = np.asarray(self.model.predict(pd.DataFrame([row])), dtype="float64")
        ages = online.ages(now or datetime.now(UTC))
        result: dict[str, Any] = {"model": self.model_name, "version": self.version,
                                  "feature_service": self.feature_service}
        if output.ndim == 2 and output.shape[1] == 2:  # a classifier: predict_proba, column 1 positive
            probability = float(output[0, 1])
            threshold = 0.5 if self.threshold is None else self.threshold
            result.update(probability=probability, threshold=threshold, label=int(probability >= threshold),
                          positive_class=(self.model.metadata.metadata or {}).get(mlflow_tags.POSITIVE_CLASS))
        else:
            result["prediction"] = float(output.reshape(-1)[0])
        result["features"] = {
            name: {"value": _plain(value), "source": "request" if name in request else "online",
                   "event_time": _plain(online.event_times.get(name)), "age_seconds": ages.get(name)}
            for name, value in row.items()
        }
        return result


def parse_entity(pairs: list[str], row_json: str | None = None) -> dict[str, Any]:
    """``key=value`` pairs (and a JSON object) as one request; later pairs win."""
    import json

    request: dict[str, Any] = {}
    if row_json:
        loaded = json.loads(row_json)
        if not isinstance(loaded, dict):
            raise ConfigurationError("--row must be a JSON object", field="--row", fix='e.g. {"dep_hour": 8}')
        request.update(loaded)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigurationError(f"--entity {pair!r} is not key=value", field="--entity", fix="e.g. origin=JFK")
        request[key.strip()] = value
    return request


def _typed(value: Any, kind: str, name: str) -> Any:
    """A value as the signature's type: command-line values are text, Feast's counts are integers, and
    MLflow refuses an int64 column where the signature says double."""
    if value is None or kind == "string":
        return value
    try:
        if kind in ("double", "float"):
            return float(value)
        if kind in ("long", "integer"):
            return int(value)
        if kind == "boolean" and isinstance(value, str):
            return value.strip().lower() in ("1", "true", "yes")
    except (TypeError, ValueError):
        raise ConfigurationError(f"{name}={value!r} is not a {kind}", field="--entity",
                                 fix=f"give {name} as a {kind}") from None
    return value


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


@contextlib.contextmanager
def _tracking(uri: str | None) -> Iterator[None]:
    """``mlflow.pyfunc.load_model`` reads the fluent tracking URI: ``uri`` for the load only."""
    import mlflow

    if not uri:
        yield
        return
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous)
