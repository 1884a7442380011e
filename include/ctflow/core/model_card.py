"""The model card: a registered version's description in the MLflow registry, written from what
the CT steps recorded (the fetched frame, the training, the gate), so it needs no model."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ctflow.contract import mlflow_tags

if TYPE_CHECKING:
    from ctflow.spec import PipelineSpec

#: Metrics shown beside the champion's, when the task has them.
_SHOWN = {"classification": ["roc_auc", "average_precision", "log_loss", "brier", "precision", "recall", "f1"],
          "regression": ["rmse", "mae", "r2", "mape"]}


def model_card(
    spec: PipelineSpec,
    *,
    fetched: dict[str, Any],
    trained: dict[str, Any],
    gate: dict[str, Any],
    lineage: dict[str, str],
) -> str:
    """Markdown for the version's description: task, data window, features, metrics against the
    champion on the same holdout, slices, the gate's decision and reason, the served output,
    code and spec versions, and known limits. ``lineage``: the training run's tags."""
    task = spec.model.task
    threshold = trained.get("decision_threshold")
    rule = spec.model.decision_threshold
    if threshold is not None and not isinstance(rule, (float, type(None))):  # a ThresholdRule: say how it was chosen
        target = f" {rule.target}" if rule.target is not None else ""
        threshold = f"{threshold:.4f} (chosen on the holdout by rule `{rule.rule}{target}`)"
    lines = [
        f"**{spec.pipeline}**: {spec.description or task} ({task}, `{spec.model.estimator}`)",
        "",
        f"* **Data**: {trained['train_rows']:,} training rows from {fetched['window_start']} to "
        f"{trained['holdout_start']}, {trained['holdout_rows']:,} holdout rows from {trained['holdout_start']} to "
        f"{fetched['window_end']}; entity table `{spec.data.entities}`, features from Feast service "
        f"`{fetched['feature_service']}`; label `{spec.data.label.column}`"
        + (f" {spec.data.label.positive_when}" if spec.data.label.positive_when else "") + ".",
        f"* **Features** ({len(trained['features'])}): {', '.join(f'`{f}`' for f in trained['features'])}.",
        "* **Served output**: " + (
            f"`predict_proba`, two columns, column 1 = P(positive); a row is positive at P >= {threshold} "
            "(`ctflow.decision_threshold`)." if task == "classification" else "`predict`, the predicted value."),
        f"* **Gate**: {gate['decision']}: {gate['reason']}",
        "",
        _metrics_table(task, gate, trained),
    ]
    slices = trained.get("slices") or {}
    if slices:
        metric = spec.evaluation.metric
        cells = [f"{column}={value}: {result.get(metric, float('nan')):.4f} ({result['rows']:,} rows)"
                 for column, groups in slices.items() for value, result in groups.items()]
        lines += ["", f"* **Slices** ({metric}): " + "; ".join(cells) + "."]
    lines += [
        (
            f"* **Versions**: code `{lineage.get(mlflow_tags.CODE_VERSION, 'unknown')}`, "
            f"spec sha256 `{lineage.get(mlflow_tags.SPEC_SHA256, 'not recorded')[:12]}`, "
            f"data sha256 `{lineage.get(mlflow_tags.DATA_SHA256, 'not recorded')[:12]}`, run `{trained['run_id']}`."
        ),
        (
            "* **Known limits**: trained on the window above only; columns missing in training are optional in "
            "the signature and scored as missing values; categories unseen in training are scored as unknown."
        ),
    ]
    return "\n".join(lines)


def _metrics_table(task: str, gate: dict[str, Any], trained: dict[str, Any]) -> str:
    candidate = gate.get("candidate") or trained["metrics"]
    champion = gate.get("champion")
    names = [m for m in _SHOWN[task] if m in candidate]
    header = "| holdout | " + " | ".join(names) + " |"
    rows = [header, "|" + " --- |" * (len(names) + 1),
            "| this version | " + " | ".join(f"{candidate[m]:.4f}" for m in names) + " |"]
    if champion:
        rows.append(f"| champion v{gate.get('champion_version')} (same holdout) | "
                    + " | ".join(f"{champion[m]:.4f}" if m in champion else "" for m in names) + " |")
    else:
        rows.append("| champion | " + " | ".join("none" for _ in names) + " |")
    return "\n".join(rows)
