"""The files a monitoring run leaves in its run folder, and how the steps read them.

Each step writes its full result to ``run_dir`` as JSON (:func:`write_result`); later steps,
the operators and the UI read them back (:func:`read_result`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ctflow.contract import monitoring as names
from ctflow.core.run_files import read_result, write_result

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

WINDOW_FRAME = "window.parquet"
SCORE = "score.json"
DATA_DRIFT = names.DATA_DRIFT_FILE
PREDICTION_DRIFT = "prediction_drift.json"
ESTIMATED_PERFORMANCE = "estimated_performance.json"
PERFORMANCE = "performance.json"
REPORT = "report.json"
NO_CHAMPION = "no_champion.json"
DATA_STATE_TAG = names.DATA_STATE_TAG

CHAMPION_SCORE = "ctflow_score_champion"
CHALLENGER_SCORE = "ctflow_score_challenger"
ARM = "ctflow_arm"
MONITORING_STAGE = names.STAGE

#: Earlier private names of :func:`read_result` / :func:`write_result` (callers outside this
#: package are moving to the public names).
_read = read_result
_write = write_result


def read_frame(run_dir: Path) -> pd.DataFrame:
    """The scored window (entity rows, features, scores) a run left behind."""
    import pandas as pd

    return pd.read_parquet(run_dir / WINDOW_FRAME)


def _reference(run_dir: Path, run_id: str | None, name: str, *, tracking_uri: str | None, who: str) -> Path | None:
    """``reference/<name>`` of a model's training run, downloaded once per DAG run; None if absent."""
    if not run_id:
        return None
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    from ctflow import settings

    folder = run_dir / "reference" / who
    local = folder / name  # where MLflow puts a single downloaded file
    if local.exists():
        return local
    folder.mkdir(parents=True, exist_ok=True)
    try:
        return Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=f"reference/{name}", dst_path=str(folder),
                                                        tracking_uri=tracking_uri or settings.mlflow_tracking_uri()))
    except (MlflowException, OSError) as err:
        log.warning("run %s has no reference/%s: %s", run_id, name, err)
        return None


def _small(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k != "path"}


__all__ = ["ARM", "CHALLENGER_SCORE", "CHAMPION_SCORE", "DATA_DRIFT", "DATA_STATE_TAG", "ESTIMATED_PERFORMANCE", "MONITORING_STAGE", "NO_CHAMPION",
           "PERFORMANCE", "PREDICTION_DRIFT", "REPORT", "SCORE", "WINDOW_FRAME", "read_frame", "read_result",
           "write_result"]
