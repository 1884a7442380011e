"""The spec rendered for the Airflow UI's DAG docs panel."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ctflow.spec.durations import format_duration

if TYPE_CHECKING:
    from ctflow.spec import PipelineSpec


def render_doc_md(spec: PipelineSpec, *, source_text: str | None = None, source_name: str | None = None) -> str:
    """A short summary table of ``spec`` followed by the spec file itself."""
    data, model, evaluation, registry = spec.data, spec.model, spec.evaluation, spec.registry
    floors = ", ".join(
        f"{name} {'≥ ' + str(b.min) if b.min is not None else ''}{' ≤ ' + str(b.max) if b.max is not None else ''}"
        for name, b in evaluation.thresholds.items()
    ) or "none"
    rows = [
        ("Pipeline", f"`{spec.pipeline}` — {spec.description}" if spec.description else f"`{spec.pipeline}`"),
        ("Owner", spec.owner),
        ("Schedule", f"train `{spec.schedule.train}`, monitor `{spec.schedule.monitor}`"),
        ("Features", f"Feast service `{data.features}` + entity columns {', '.join(data.columns) or '—'}"),
        ("Label", f"`{data.label.column}` {data.label.positive_when or ''}".strip() + _known(spec)),
        ("Window", f"{format_duration(data.window)} (newest {format_duration(data.holdout)} held out)"),
        ("Model", f"{model.task}: `{model.estimator}` {model.params or ''}"),
        ("Gate", (
            f"primary `{evaluation.metric}`; floors: {floors}; versus champion: "
            f"{'+' + str(evaluation.versus_champion.min_improvement) if evaluation.versus_champion.enabled else 'off'}"
        )),
        ("Registry", f"model `{spec.model_name}`, strategy `{registry.strategy}`, approval `{registry.approval}`"),
    ]
    table = "| | |\n|---|---|\n" + "\n".join(f"| **{k}** | {v} |" for k, v in rows)
    text = f"### ctflow pipeline `{spec.pipeline}`\n\n{table}\n"
    if source_text:
        text += f"\n#### Spec `{source_name or spec.pipeline}`\n\n```yaml\n{source_text.rstrip()}\n```\n"
    return text


def _known(spec: PipelineSpec) -> str:
    """When the label is known (training uses only labels known at the run's as-of time)."""
    if spec.data.label.available_at:
        return f"; known at `{spec.data.label.available_at}`"
    after = spec.label_available_after
    return f"; known {format_duration(after)} after the timestamp" if after else ""
