"""Build and fit the spec's scikit-learn pipeline: preprocessing inferred from column types."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from ctflow.spec.catalog import ESTIMATORS

if TYPE_CHECKING:
    from mlflow.models import ModelSignature
    from sklearn.base import BaseEstimator
    from sklearn.preprocessing import FunctionTransformer

    from ctflow.spec.models import Model


@dataclass(frozen=True)
class FeatureSet:
    """Which frame columns the model uses, split by how they are prepared."""

    numeric: list[str]
    categorical: list[str]

    @property
    def all(self) -> list[str]:
        return [*self.numeric, *self.categorical]


def infer_features(frame: pd.DataFrame, candidates: list[str], model: Model) -> FeatureSet:
    """Numeric vs categorical from dtypes plus the spec's ``categorical`` list.

    Timestamps are not features (they only say *when*), nor is anything in ``model.exclude``.
    """
    numeric, categorical = [], []
    for column in candidates:
        if column in model.exclude or column not in frame.columns:
            continue
        dtype = frame[column].dtype
        if column in model.categorical or isinstance(dtype, pd.CategoricalDtype) or dtype == np.dtype(object) or pd.api.types.is_string_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
            categorical.append(column)
        elif pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
            continue
        elif pd.api.types.is_numeric_dtype(dtype):
            numeric.append(column)
    return FeatureSet(numeric=numeric, categorical=categorical)


def build_pipeline(model: Model, features: FeatureSet) -> Pipeline:
    """Preprocessing + the allowlisted estimator, with the spec's params and seed."""
    entry = ESTIMATORS[model.estimator]
    prep = model.preprocessing
    native = prep.encode in ("auto", "native") and entry.handles_missing and "HistGradientBoosting" in entry.path
    impute = prep.impute if prep.impute != "auto" else ("none" if entry.handles_missing else "median")
    scale = prep.scale == "standard" or (prep.scale == "auto" and entry.wants_scaling)

    numeric_steps = []
    if impute != "none":
        numeric_steps.append(("impute", SimpleImputer(strategy=impute)))
    if scale:
        numeric_steps.append(("scale", StandardScaler()))
    numeric = Pipeline(numeric_steps) if numeric_steps else "passthrough"

    if native or prep.encode == "ordinal":
        # Ordinal codes + the estimator's native categorical support: no column explosion.
        categorical = Pipeline([
            ("as_text", _as_text()),
            ("encode", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1,
                                      encoded_missing_value=-1, max_categories=prep.max_categories)),
        ])
    else:
        categorical = Pipeline([
            ("as_text", _as_text()),
            ("encode", OneHotEncoder(handle_unknown="infrequent_if_exist", max_categories=prep.max_categories,
                                     sparse_output=False)),
        ])
    columns = ColumnTransformer(
        [("numeric", numeric, features.numeric), ("categorical", categorical, features.categorical)],
        verbose_feature_names_out=False,
    )
    params = dict(model.params)
    if native and features.categorical:
        params["categorical_features"] = [len(features.numeric) + i for i in range(len(features.categorical))]
    estimator = _estimator_class(model.estimator)(**params)
    if "random_state" in estimator.get_params():
        estimator.set_params(random_state=model.seed)
    return Pipeline([("columns", _select(features.all)), ("prepare", columns), ("estimator", estimator)])


# The fitted pipeline is pickled into the MLflow model, and pickle stores functions by
# reference: a function of ctflow's own would make the model unloadable wherever ctflow is not
# installed (issue #14). So the steps below are functions of pandas, which the model's
# requirements pin (as ``pandas.core.generic.NDFrame.astype`` etc.); tests check the pickle
# (``test_the_fitted_pipeline_pickles_no_ctflow_code``, ``test_the_pickled_model_references_no_ctflow_code``).


def _select(columns: list[str]) -> FunctionTransformer:
    """The model's columns in training order; a column the request lacks comes in as missing (NaN)
    and is imputed like any missing value, extra columns are dropped. MLflow lets a request omit
    the signature's optional columns, and the ColumnTransformer would refuse such a frame."""
    from sklearn.preprocessing import FunctionTransformer

    return FunctionTransformer(pd.DataFrame.reindex, kw_args={"columns": list(columns)}, feature_names_out="one-to-one")


def _as_text() -> Pipeline:
    """Categories as strings, missing as a category of its own (``__missing__``): stable across
    pandas dtypes (object, string, category, bool) and mixed values."""
    from sklearn.preprocessing import FunctionTransformer

    def step(method: Callable[..., Any], **kw_args: Any) -> FunctionTransformer:
        return FunctionTransformer(method, kw_args=kw_args, feature_names_out="one-to-one")

    return Pipeline([
        ("as_string", step(pd.DataFrame.astype, dtype="string")),
        ("fill_missing", step(pd.DataFrame.fillna, value=MISSING_CATEGORY)),
        ("as_object", step(pd.DataFrame.astype, dtype=object)),
    ])


#: The category that stands for a missing categorical value.
MISSING_CATEGORY = "__missing__"


def _to_text(frame: Any) -> Any:
    """What :func:`_as_text` was before issue #14, a function of ctflow's own: no longer used by
    new pipelines, kept so that models logged earlier, which reference it, still load here."""
    return pd.DataFrame(frame).astype("string").fillna(MISSING_CATEGORY).astype(object)


def _estimator_class(path: str) -> type[BaseEstimator]:
    module, name = path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


def split_by_time(frame: pd.DataFrame, *, timestamp: str, holdout_start: datetime) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows before ``holdout_start`` train; rows at or after it are the holdout."""
    is_holdout = frame[timestamp] >= pd.Timestamp(holdout_start)
    return frame.loc[~is_holdout], frame.loc[is_holdout]


def predict_scores(model: Pipeline, frame: pd.DataFrame, task: str) -> np.ndarray:
    """Positive-class probability for classification, the prediction for regression."""
    if task == "classification":
        return model.predict_proba(frame)[:, 1]
    return model.predict(frame)


def serving_signature(rows: pd.DataFrame, features: FeatureSet, classes: int | None) -> ModelSignature:
    """The MLflow signature of the model as it is served, honest about what the pipeline accepts.

    * numeric features are ``double``: every one may be null, which the pipeline imputes (or the
      estimator handles natively), so integer columns are not declared ``long``, which MLflow would
      refuse a null for;
    * categorical features are ``string`` (``boolean``/``long`` for such columns): the pipeline
      compares them as text, and a null is the ``__missing__`` category;
    * a feature that was missing in some training ``rows`` is optional (``required=False``): a
      request may leave it out, and the pipeline takes it as missing;
    * output: the classifier's ``predict_proba``, one column per class (``classes``; for a 0/1 label
      column 1 is the positive class), or the regressor's prediction.
    """
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, DataType, Schema, TensorSpec

    def kind(column: str) -> DataType:
        if column in features.numeric:
            return DataType.double
        dtype = rows[column].dtype
        if pd.api.types.is_bool_dtype(dtype):
            return DataType.boolean
        if pd.api.types.is_integer_dtype(dtype):
            return DataType.long
        return DataType.string

    inputs = Schema([ColSpec(kind(c), c, required=not bool(rows[c].isna().any())) for c in features.all])
    if classes is None:
        outputs = Schema([ColSpec(DataType.double)])
    else:
        outputs = Schema([TensorSpec(np.dtype("float64"), (-1, classes))])
    return ModelSignature(inputs=inputs, outputs=outputs)
