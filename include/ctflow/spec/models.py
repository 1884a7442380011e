"""The continuous-training spec: typed, strict, with defaults for the common case.

A spec is data. Every model forbids unknown keys; every value is checked here, at parse
time, without importing scikit-learn, Feast or MLflow. Cross-field rules that need the
whole spec live in :mod:`ctflow.spec.checks` so that their errors can point at a field.
"""

from __future__ import annotations

import re
import warnings
from datetime import date, timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, WithJsonSchema, field_validator, model_validator
from pydantic_core import PydanticCustomError

from ctflow.contract import tasks
from ctflow.spec.catalog import ESTIMATORS, METRIC_REGISTRY, METRICS, TaskType
from ctflow.spec.durations import CalendarDuration, CalendarSpan, Duration, format_duration
from ctflow.spec.errors import did_you_mean

IDENTIFIER_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
Identifier = Annotated[
    str,
    Field(pattern=IDENTIFIER_PATTERN, description="lower_snake_case, starts with a letter"),
]
Column = Annotated[str, Field(min_length=1, description="a column name")]
#: A metric's name. The JSON Schema lists every registered metric for editors; whether the spec's
#: task has it is checked in :mod:`ctflow.spec.checks`, whose error points at the file and line.
MetricName = Annotated[str, WithJsonSchema({"type": "string", "enum": list(METRIC_REGISTRY)})]
DriftMethod = Literal["auto", "ks", "chi2", "psi", "wasserstein", "jensenshannon"]
RetrainTrigger = Literal["drift", "performance", "no_champion"]

#: Airflow's cron presets and the expressions they stand for (Airflow's own table).
CRON_PRESETS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@quarterly": "0 0 1 */3 *",
    "@yearly": "0 0 1 1 *",
}
_COMPARISON = re.compile(r"^\s*(>=|<=|==|!=|>|<)\s*(-?\d+(?:\.\d+)?)\s*$")
#: A text label's comparison: ``== yes``, ``!= 'no'``, ``== "Not delayed"`` (equality only).
_TEXT_COMPARISON = re.compile(r"""^\s*(==|!=)\s*(?:'([^']*)'|"([^"]*)"|([^\s'"][^'"]*?))\s*$""")


class SpecDeprecationWarning(FutureWarning):
    """A spec key that still works but has a new spelling; ``path`` is the key (the loader adds file and line)."""

    def __init__(self, path: tuple[str, ...], message: str):
        super().__init__(f"{'.'.join(path)}: {message}")
        self.path = path
        self.message = message


class Strict(BaseModel):
    """Base of every spec model: unknown keys are errors and values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


def _check_cron(value: str | None) -> str | None:
    if value is None or value in CRON_PRESETS:
        return value
    from croniter import croniter  # small and pure Python; Airflow validates with it too

    if not croniter.is_valid(value):
        raise PydanticCustomError(
            "cron",
            f"expected a cron expression such as '0 2 * * *' or a preset "
            f"({', '.join(sorted(CRON_PRESETS))}), got {value!r}",
        )
    return value


def cron_expression(value: str) -> str:
    """The cron expression of ``value``: a preset's expansion, or ``value`` itself."""
    return CRON_PRESETS.get(value, value)


def _retrain_on_default() -> list[RetrainTrigger]:
    return ["drift", "performance"]


class Schedule(Strict):
    """When the DAGs run."""

    train: str | None = Field("@weekly", description="Cron or preset for retraining; null = only on triggers.")
    monitor: str | None = Field("@daily", description="Cron or preset for monitoring; null = no monitoring runs.")
    start_date: date = Field(description="First logical date (YYYY-MM-DD).")
    end_date: date | None = None
    catchup: bool = Field(False, description="Run every missed interval since start_date.")
    timezone: str = "UTC"
    retrain_on: list[RetrainTrigger] = Field(
        default_factory=_retrain_on_default,
        description="Monitoring breaches that also trigger a retraining run. no_champion: a monitoring run "
                    "that finds no champion asks for a training, so a cold start whose first candidates "
                    "failed retries with each monitoring run instead of waiting for the train cron.",
    )
    retrain_cooldown: Duration | None = Field(
        None,
        description="A drift or performance breach retrains only if the newest training is at least this "
                    "much older (in data time: its as_of) than the breaching window's end; a breach within it "
                    "is alerted, not retrained. The train cron and no_champion are never held back. "
                    "null = every breach retrains.",
    )
    after: list[Identifier] = Field(
        default_factory=list,
        description="Other pipelines whose promotions trigger a retraining of this one.",
    )
    assets: list[str] = Field(default_factory=list, description="Extra Airflow Asset URIs that trigger retraining.")

    _validate_cron = field_validator("train", "monitor")(_check_cron)

    @field_validator("end_date")
    @classmethod
    def _end_after_start(cls, value: date | None, info: ValidationInfo) -> date | None:
        # A field validator (start_date is validated first) so that the error points at end_date.
        start = info.data.get("start_date")
        if value and start and value <= start:
            raise ValueError(f"end_date {value} must be after start_date {start}")
        return value


class Label(Strict):
    """The target: a column, optionally turned into a binary label by a comparison."""

    column: Column
    positive_when: str | None = Field(
        None, description="Derive a binary label, e.g. '> 15', or from a text label '== yes' (== and != only, "
                          "quotes optional). Rows with a missing source value are dropped."
    )
    available_after: CalendarSpan | None = Field(
        None,
        description="When the label becomes known: this long after the row's timestamp (e.g. '1d', '1mo'). "
                    "Training and holdout rows are those whose label is known at the run's as-of time; "
                    "monitoring measures performance on the window this long before as-of. "
                    "Default (and without available_at): known at the row's timestamp.",
    )
    available_at: Column | None = Field(
        None,
        description="When the label becomes known: a timestamp column of the entity table (e.g. an arrival "
                    "time); a row whose value is missing never has a known label. Exclusive with available_after.",
    )

    @field_validator("positive_when")
    @classmethod
    def _comparison(cls, value: str | None) -> str | None:
        if value is not None and not (_COMPARISON.match(value) or _TEXT_COMPARISON.match(value)):
            raise PydanticCustomError(
                "comparison", f"expected a comparison such as '> 15', '== 1' or (a text label) '== yes', got {value!r}")
        return value

    @field_validator("available_at")
    @classmethod
    def _one_availability(cls, value: str | None, info: ValidationInfo) -> str | None:
        # A field validator (available_after is validated first) so that the error points at available_at.
        if value is not None and info.data.get("available_after") is not None:
            raise ValueError("give available_after (a delay) or available_at (a column), not both")
        return value

    @property
    def comparison(self) -> tuple[str, float | str] | None:
        """``(">", 15.0)`` for ``positive_when: "> 15"``, ``("==", "yes")`` for ``"== yes"`` (a text label's)."""
        if self.positive_when is None:
            return None
        numeric = _COMPARISON.match(self.positive_when)
        if numeric:
            return numeric.group(1), float(numeric.group(2))
        op, *quoted = _TEXT_COMPARISON.match(self.positive_when).groups()  # type: ignore[union-attr]
        return op, next(value for value in quoted if value is not None)


class Data(Strict):
    """Where the training rows and their features come from."""

    entities: str = Field(
        description="Parquet file of entity rows (timestamp, keys, label), relative to the project; "
                    "it must stay inside the project or $CTFLOW_DATA_ROOTS."
    )
    timestamp: Column = Field(description="Entity-row timestamp: features are joined as of this time.")
    label: Label
    features: str = Field(description="Feast FeatureService that provides the point-in-time features.")
    feature_repo: str | None = Field(
        None,
        description="The pipeline's Feast repository (the folder of feature_store.yaml), relative to the project; "
                    "it must stay inside the project or $CTFLOW_DATA_ROOTS. null: the deployment's (connection "
                    "ctflow_feast, else $CTFLOW_FEATURE_REPO, else feature_repo/).",
    )
    columns: list[Column] = Field(
        default_factory=list, description="Entity-table columns used as features too (known at request time)."
    )
    window: CalendarSpan = Field(
        CalendarDuration(0, timedelta(days=90)),
        description="Training rows: [as_of - window, as_of), less those whose label is not known at as_of "
                    "(see label.available_after / available_at: the newest end is cut). Calendar units "
                    "('1mo', '1y') count months: a 1mo window ending Mar 1 starts Feb 1.",
    )
    holdout: CalendarSpan = Field(
        CalendarDuration(0, timedelta(days=14)), validate_default=True,
        description="The newest part of the window, [as_of - holdout, as_of), held out for evaluation "
                    "(its rows whose label is known at as_of).",
    )

    @field_validator("label", mode="before", json_schema_input_type=str | Label)
    @classmethod
    def _label_shorthand(cls, value: object) -> object:
        return {"column": value} if isinstance(value, str) else value

    @field_validator("holdout")
    @classmethod
    def _holdout_inside_window(cls, value: CalendarDuration, info: ValidationInfo) -> CalendarDuration:
        # A field validator (window is validated first) so that the error points at holdout.
        window = info.data.get("window")
        if window is not None and value.approx() >= window.approx():
            raise ValueError(
                f"holdout ({format_duration(value)}) must be shorter than window ({format_duration(window)}), "
                "or nothing is left to train on"
            )
        return value


class Range(Strict):
    min: float | None = None
    max: float | None = None


class LabelBalance(Strict):
    min_positive_share: float = Field(0.0, ge=0, le=1)
    max_positive_share: float = Field(1.0, ge=0, le=1)


class Quality(Strict):
    """Data checks that fail the run before training when violated."""

    min_rows: int = Field(1000, ge=1)
    max_missing_fraction: float = Field(0.05, ge=0, le=1, description="Per column, unless overridden below.")
    max_missing: dict[Column, Annotated[float, Field(ge=0, le=1)]] = Field(default_factory=dict)
    max_staleness: Duration | None = Field(None, description="The newest row must be at most this old.")
    min_window_coverage: float | None = Field(
        None, gt=0, le=1,
        description="Share of the training window (data.window, or the run's window_days) the rows must "
                    "span, from the oldest row to the as-of time. "
                    "Catches a window that reaches back before the data begins (a cold start), or whose "
                    "first part is missing, which would train on less history than the spec asks for.",
    )
    ranges: dict[Column, Range] = Field(default_factory=dict)
    label_balance: LabelBalance | None = None


class Preprocessing(Strict):
    """How columns are prepared before the estimator; inferred from column types by default."""

    impute: Literal["auto", "median", "mean", "most_frequent", "none"] = "auto"
    scale: Literal["auto", "standard", "none"] = "auto"
    encode: Literal["auto", "onehot", "ordinal", "native"] = "auto"
    max_categories: int = Field(30, ge=2)


class ThresholdRule(Strict):
    """A decision threshold chosen on the holdout after the fit."""

    rule: Literal["max_f1", "precision_at", "recall_at"] = Field(
        description="max_f1: the threshold of the best F1 on the holdout. precision_at: the lowest threshold whose "
                    "holdout precision reaches target (the most recall at that precision). recall_at: the highest "
                    "threshold whose holdout recall reaches target. When no threshold reaches target, 0.5.",
    )
    target: float | None = Field(None, gt=0, lt=1, description="The precision or recall to reach (precision_at, recall_at).")

    @model_validator(mode="after")
    def _target_iff_needed(self) -> ThresholdRule:
        if (self.rule == "max_f1") != (self.target is None):
            raise ValueError(f"rule {self.rule} {'takes no' if self.rule == 'max_f1' else 'needs a'} target")
        return self


class Model(Strict):
    """The scikit-learn estimator and how to prepare its inputs."""

    task: TaskType = Field(
        description="classification: binary (a 0/1 or true/false label, or one derived by data.label.positive_when); "
                    "a label with more classes is an error of `ctflow validate --deep`: multiclass is not supported. "
                    "regression: a numeric label.",
    )
    estimator: str = Field(description="Dotted path of an allowlisted scikit-learn estimator.")
    # Members in the order the README's generated reference lists them (None not last).
    params: dict[str, bool | int | float | str | None | list[int | float | str]] = Field(default_factory=dict)  # noqa: RUF036
    categorical: list[Column] = Field(default_factory=list)
    exclude: list[Column] = Field(default_factory=list, description="Feature columns not to train on.")
    preprocessing: Preprocessing = Field(default_factory=Preprocessing)
    seed: int = 42
    decision_threshold: Annotated[float, Field(gt=0, lt=1)] | ThresholdRule | None = Field(
        None,
        description="Classification: a row is labelled positive when its probability of the positive class is at "
                    "least this (default 0.5), or a rule choosing it on the holdout after the fit "
                    "({rule: max_f1}, {rule: precision_at, target: 0.8}, {rule: recall_at, target: 0.6}; the label "
                    "metrics of that holdout are then optimistic). The label metrics (accuracy, precision, recall, "
                    "f1) use it, and the threshold is logged with the run and tagged on the model version, so that "
                    "a consumer of the served probabilities reproduces ctflow's labels.",
    )

    @field_validator("estimator")
    @classmethod
    def _allowlisted(cls, value: str) -> str:
        if value not in ESTIMATORS:
            allowed = ", ".join(sorted(ESTIMATORS))
            raise PydanticCustomError(
                "estimator",
                f"unknown estimator {value!r}; allowed: {allowed}",
                {"suggestion": did_you_mean(value, ESTIMATORS)},
            )
        return value

    @model_validator(mode="after")
    def _threshold_for_classification(self) -> Model:
        if self.decision_threshold is not None and self.task != "classification":
            raise ValueError(f"decision_threshold applies to classification, not to task {self.task!r}")
        return self

    @property
    def threshold(self) -> float | None:
        """The fixed decision threshold of a classifier (default 0.5, also before a rule has chosen one);
        None for regression. A rule's choice is the trained version's (``ctflow.decision_threshold``)."""
        if self.task != "classification":
            return None
        return self.decision_threshold if isinstance(self.decision_threshold, float) else 0.5


class Bounded:
    """The one bound check of ctflow, for models with ``min``/``max`` a value must stay within
    (a mixin without fields, so each model keeps its own field order)."""

    # The models declare min and max; annotating them here would reorder those models' fields.

    def breach(self, value: float | None) -> str | None:
        """Why ``value`` is outside ``[min, max]``, or None when inside (or unknown: None)."""
        low, high = self.min, self.max  # type: ignore[attr-defined]
        if value is None:
            return None
        if low is not None and value < low:
            return f"{value:.4f} < min {low}"
        if high is not None and value > high:
            return f"{value:.4f} > max {high}"
        return None

    @property
    def needs(self) -> str:
        """What the bound asks, e.g. ``>= 0.65 and <= 0.9``."""
        low, high = self.min, self.max  # type: ignore[attr-defined]
        parts = [f">= {low}" if low is not None else "", f"<= {high}" if high is not None else ""]
        return " and ".join(filter(None, parts))


class Bound(Strict, Bounded):
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> Bound:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        return self


class VersusChampion(Strict):
    enabled: bool = True
    min_improvement: float = Field(
        0.0, description="Candidate must beat the champion by this much on the primary metric."
    )


class Evaluation(Strict):
    """The gate a candidate must pass before it may be promoted."""

    metric: MetricName = Field(description="The primary metric (used against the champion).")
    thresholds: dict[MetricName, Bound] = Field(default_factory=dict, description="Absolute floors/ceilings; all must hold.")
    versus_champion: VersusChampion = Field(default_factory=VersusChampion)
    slices: list[Column] = Field(
        default_factory=list, description="Each value of these columns must meet the slice thresholds."
    )
    slice_thresholds: dict[MetricName, Bound] | None = Field(
        None,
        description="Floors/ceilings for each slice (default: the same as thresholds). A slice's holdout is a "
        "fraction of the whole, so its metric is noisier: a looser floor here catches a broken slice "
        "without rejecting sound candidates for sampling noise.",
    )
    min_slice_rows: int = Field(200, ge=1, description="Smaller slices are reported but not gated.")

    @property
    def slice_bounds(self) -> dict[str, Bound]:
        """The bounds each slice must meet."""
        return self.thresholds if self.slice_thresholds is None else self.slice_thresholds


class Registry(Strict):
    """How a passing candidate reaches production."""

    model: str | None = Field(None, description="Registered model name; default: the pipeline name.")
    strategy: Literal["direct", "shadow", "canary"] = Field(
        "direct",
        description="direct: a passing candidate becomes champion. shadow/canary: it becomes challenger, scored beside "
        "the champion on every row (shadow) or a hashed share of rows (canary) until monitoring promotes or "
        "retires it; the first candidate of a model becomes champion.",
    )
    canary_fraction: float = Field(0.1, gt=0, lt=1)
    challenger_test: Literal["sequential", "streak"] = Field(
        "sequential",
        description="Shadow/canary: how monitoring decides. sequential: an A/B test on the per-row loss difference "
        "(Brier score for classification, squared error for regression; rows scored by both models for shadow, "
        "inverse-propensity weighted for canary), summed over every window of this challenger against this "
        "champion; it promotes when the confidence bound shows the challenger better by more than min_effect and "
        "retires when it shows it is not, and stays valid however many windows are looked at (false promotion "
        "at most alpha/2). streak: promote after promote_after consecutive windows won on the monitoring metric "
        "(retire after as many lost); no error rate: an equal challenger is promoted sooner or later.",
    )
    alpha: float = Field(
        0.05, gt=0, lt=0.5,
        description="challenger_test sequential: the confidence sequence covers the true loss difference at every "
        "window with probability 1 - alpha, so an equal challenger is promoted with probability at most alpha/2.",
    )
    min_effect: float = Field(
        0.0, ge=0,
        description="challenger_test sequential: the mean per-row loss improvement (Brier score or squared error, "
        "champion minus challenger) worth a change. Promote when the lower bound is above it, retire when the "
        "upper bound is below it.",
    )
    promote_after: int = Field(
        3, ge=1,
        description="Shadow/canary, challenger_test streak: consecutive winning (or losing) windows before promotion "
        "(retirement). sequential: the fewest windows with labelled rows before the test may decide.",
    )
    approval: Literal["auto", "manual"] = "auto"


class Drift(Strict):
    method: DriftMethod = "auto"
    threshold: float | None = Field(None, gt=0, description="p-value below / distance above which a column drifts.")
    max_drifted_share: float = Field(0.3, gt=0, le=1)
    columns: list[Column] | None = Field(None, description="Default: every model feature.")
    calibration: Literal["reference", "none"] = Field(
        "reference",
        description="reference: a column drifts when its statistic is unusual for a window of monitoring.window "
                    "compared with such windows within the reference (its empirical null, stored at training); "
                    "none: the raw test against threshold. Prediction drift calibrates alike on the model's scores "
                    "of its training rows.")
    calibration_quantile: float = Field(
        0.95, gt=0, le=1, description="Quantile of the reference's null above which a calibrated column drifts.")
    weighting: Literal["importance", "none"] = Field(
        "importance",
        description="importance: the drifted share counts each column by its permutation importance to the "
                    "champion, so drift in a feature the model ignores does not retrain it; none: each counts once.")


class Performance(Strict, Bounded):
    metric: MetricName
    min: float | None = None
    max: float | None = None


class WebhookAlert(Strict):
    webhook: str = Field(description="Airflow connection id of an HTTP endpoint (never a URL with secrets).")


def _alerts_default() -> list[Literal["log"] | WebhookAlert]:
    return ["log"]


class Monitoring(Strict):
    """What the monitoring DAG watches and what it does about it."""

    reference: Literal["champion_training_data"] = "champion_training_data"
    window: CalendarSpan = Field(CalendarDuration(0, timedelta(days=1)), description="Rows scored per monitoring run.")
    ground_truth_delay: CalendarSpan | None = Field(
        None,
        description="Deprecated: write data.label.available_after, which training and monitoring both read "
                    "(this value is used as it when given).",
    )
    min_rows: int = Field(
        100, ge=1,
        description="A window with fewer rows, or with no drift column holding this many usable (not missing, "
                    "finite) values, is 'insufficient data': never 'no drift'; it is alerted, not retrained on.",
    )
    drift: Drift = Field(default_factory=Drift)
    prediction_drift: Drift = Field(default_factory=lambda: Drift(max_drifted_share=1.0))
    performance: Performance | None = None
    estimated_performance: bool = Field(
        True,
        description="Breach on a significant drop of the champion's metric as estimated on the scoring window "
                    "before its labels arrive (classification: CBPE, calibrated on the holdout; regression: direct "
                    "loss estimation of mae, rmse or mape from the holdout's features, with at least 50 holdout "
                    "rows): outside monitoring.performance's bounds, or worse than the holdout's estimate by more "
                    "than its 3-sigma band. The estimate is logged either way; r2 and small holdouts say why there "
                    "is none.",
    )
    alerts: list[Literal["log"] | WebhookAlert] = Field(default_factory=_alerts_default)

    @field_validator("ground_truth_delay")
    @classmethod
    def _deprecated_delay(cls, value: CalendarDuration | None) -> CalendarDuration | None:
        if value is not None:
            warnings.warn(SpecDeprecationWarning(
                ("monitoring", "ground_truth_delay"),
                f"deprecated: write data.label.available_after: {format_duration(value)} instead "
                "(it now also keeps labels not yet known out of training)",
            ), stacklevel=2)
        return value


class Runner(Strict):
    """Where the heavy steps run."""

    kind: Literal["in_process", "docker"] = "in_process"
    image: str | None = Field(None, description="Container image for kind: docker.")

    @model_validator(mode="after")
    def _image_for_docker(self) -> Runner:
        if self.kind == "docker" and not self.image:
            raise ValueError("runner.kind docker needs runner.image")
        return self


class Defaults(Strict):
    """Task defaults for both DAGs."""

    retries: int = Field(2, ge=0)
    retry_delay: Duration = timedelta(minutes=2)
    task_timeout: Duration = Field(timedelta(hours=1), description="Execution timeout of every task.")


class PipelineSpec(Strict):
    """A continuous-training pipeline: one spec becomes ``ct_<pipeline>`` and ``monitor_<pipeline>``."""

    pipeline: Identifier
    description: str = ""
    owner: str = Field(min_length=1)
    tags: list[str] = Field(default_factory=list)
    schedule: Schedule
    data: Data
    quality: Quality = Field(default_factory=Quality)
    model: Model
    evaluation: Evaluation
    registry: Registry = Field(default_factory=Registry)
    monitoring: Monitoring = Field(default_factory=Monitoring)
    runner: Runner = Field(default_factory=Runner)
    defaults: Defaults = Field(default_factory=Defaults)

    @field_validator("monitoring")
    @classmethod
    def _availability_once(cls, value: Monitoring, info: ValidationInfo) -> Monitoring:
        # A field validator (data is validated first) so that the error points at monitoring.
        data = info.data.get("data")
        label = data.label if data is not None else None
        if value.ground_truth_delay is not None and label and (label.available_after or label.available_at):
            raise ValueError("ground_truth_delay (deprecated) and data.label.available_after/available_at both say "
                             "when labels arrive: keep only data.label's")
        return value

    @property
    def label_available_after(self) -> CalendarDuration | None:
        """How long after its timestamp a row's label is known (``data.label.available_after``, or the
        deprecated ``monitoring.ground_truth_delay``); None when ``available_at`` names a column or
        the label is known at the timestamp. Read through :mod:`ctflow.core.labels`."""
        return self.data.label.available_after or self.monitoring.ground_truth_delay

    @property
    def model_name(self) -> str:
        """The registered model name in MLflow."""
        return self.registry.model or self.pipeline

    @property
    def ct_dag_id(self) -> str:
        return tasks.ct_dag_id(self.pipeline)

    @property
    def monitor_dag_id(self) -> str:
        return tasks.monitor_dag_id(self.pipeline)

    @property
    def metrics(self) -> dict[str, bool]:
        """Metrics available for this spec's task type (name -> higher is better)."""
        return METRICS[self.model.task]
