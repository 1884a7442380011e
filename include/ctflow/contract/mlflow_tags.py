"""MLflow tag names ctflow writes and reads: on runs, model versions and experiments.

One name per fact. ``ctflow.gate`` is written on both the candidate run and its model version;
``ctflow.run_key`` names the Airflow run (``dag_id/run_id``) that made a run or a version and makes
registration idempotent.
"""

from __future__ import annotations

PIPELINE = "ctflow.pipeline"
#: The Airflow run (``dag_id/run_id``) that made this run or registered this version.
RUN_KEY = "ctflow.run_key"
#: What the run is: ``candidate``, ``monitoring``, ``replay`` (see :data:`STAGES`).
STAGE = "ctflow.stage"
STAGES = ("candidate", "monitoring", "replay")
#: The gate outcome: ``passed`` / ``failed`` on a run; ``passed`` / ``forced`` on a version.
#: A version whose gate failed never holds an alias.
GATE = "ctflow.gate"
#: The gate's decision (``promote``, ``keep_champion``, ``reject``) and its reason, on the run and version.
GATE_DECISION = "ctflow.gate_decision"
GATE_REASON = "ctflow.gate_reason"
#: The Feast feature service a run's features came from (a run tag and a dataset input tag).
FEATURE_SERVICE = "ctflow.feature_service"
#: The data time a candidate was trained as of (ISO 8601, UTC): text order is time order.
AS_OF = "ctflow.as_of"
#: A classifier's decision threshold on the served probability of the positive class: a run tag,
#: a model version tag and a key of the logged model's metadata (MLmodel).
DECISION_THRESHOLD = "ctflow.decision_threshold"
#: What the served model returns (a key of the logged model's metadata): ``predict_proba`` or ``predict``.
OUTPUT = "ctflow.output"
#: A classifier's positive class, the one its served probability column 1 is of (a key of the logged
#: model's metadata): the label as the spec derives it, e.g. ``arr_delay > 15`` or ``rain == 'yes'``.
POSITIVE_CLASS = "ctflow.positive_class"
#: Which rows the candidate's permutation importances were measured on: ``holdout``, or ``training``
#: when the holdout is too small to permute (drift weighting needs what the model relies on).
IMPORTANCE_ROWS = "ctflow.importance_rows"
#: The code that trained the run (git commit or package version).
CODE_VERSION = "ctflow.code_version"
#: sha256 of the spec text and of the training frame a candidate run was trained from (lineage).
SPEC_SHA256 = "ctflow.spec_sha256"
DATA_SHA256 = "ctflow.data_sha256"
#: Set on a run a later try of the same task took over (it is never read as a result).
ABANDONED = "ctflow.abandoned"

#: Written on the model version (and the candidate run) when someone approves or rejects it.
APPROVAL = "ctflow.approval"
APPROVAL_BY = "ctflow.approval_by"
APPROVAL_AT = "ctflow.approval_at"
APPROVAL_NOTE = "ctflow.approval_note"

#: Prefix of the registered model's alias-history tags (one per move, written ahead of it).
HISTORY_PREFIX = "ctflow.history."
