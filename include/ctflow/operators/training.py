"""Operators of the continuous-training DAG: features, data checks, training, the gate."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ctflow.links import MlflowRunLink
from ctflow.operators.base import CtflowOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class FetchFeaturesOperator(CtflowOperator):
    """
    Build the point-in-time-correct training frame for ``[as_of - window, as_of)`` from Feast.

    Stores the frame as parquet in the run folder and returns its fingerprint (rows, time
    range, content hash). Accepts ``params.window_days`` to override the spec's window.
    """

    ui_color = "#e3f6e8"

    def execute(self, context: Context) -> dict[str, Any]:
        from ctflow.core import steps

        window_days = (context.get("params") or {}).get("window_days")
        return steps.fetch_features(
            self.spec,
            as_of=self.as_of(context),
            run_dir=self.run_dir(),
            window_days=window_days,
            feature_repo=self.feast_hook.repo_path(),
        )


class DataQualityOperator(CtflowOperator):
    """Check the training frame against the spec's quality rules; fail with a readable report.

    A failure is final (no retries): a retry would check the same fetched frame again.
    """

    ui_color = "#fff4d6"

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from ctflow.core import steps
        from ctflow.core.quality import DataQualityError

        try:
            return steps.check_quality(self.spec, as_of=self.as_of(context), run_dir=self.run_dir())
        except DataQualityError as err:
            raise AirflowFailException(str(err)) from err


class TrainModelOperator(CtflowOperator):
    """Train the spec's scikit-learn pipeline on the frame and log the run to MLflow."""

    ui_color = "#f3e5fb"
    operator_extra_links = (MlflowRunLink(),)

    def execute(self, context: Context) -> dict[str, Any]:
        from ctflow.core import steps

        return steps.train(
            self.spec,
            as_of=self.as_of(context),
            run_dir=self.run_dir(),
            run_key=self.run_key,
            lineage=_lineage(context),
            tracking_uri=self.tracking_uri,
            spec_text=self.spec_text(),
        )


class EvaluateGateOperator(CtflowOperator):
    """
    Gate the candidate: absolute thresholds (and slices), then the champion on the same holdout.

    A losing candidate is not an error: the decision is returned (XCom), logged and recorded
    in MLflow, and the promotion tasks skip with the reason.
    """

    ui_color = "#fde8e4"

    def execute(self, context: Context) -> dict[str, Any]:
        from ctflow.core import steps

        return steps.evaluate(self.spec, run_dir=self.run_dir(), tracking_uri=self.tracking_uri)


def _lineage(context: Context) -> dict[str, str]:
    ti = context["ti"]
    return {
        "airflow.dag_id": ti.dag_id,
        "airflow.run_id": ti.run_id,
        "airflow.task_id": ti.task_id,
        "airflow.try_number": str(ti.try_number),
    }
