"""The monitoring report's HTML page and plots."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ctflow.core.monitoring.files import CHALLENGER_SCORE, CHAMPION_SCORE, WINDOW_FRAME

if TYPE_CHECKING:
    from ctflow.core.drift import DriftResult
    from ctflow.core.predictions import PerformanceRecord
    from ctflow.spec import PipelineSpec


def plot_metric_over_time(spec: PipelineSpec, history: list[PerformanceRecord], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.6))
    if history:
        # matplotlib's stubs type axis values as floats only; at run time its unit converters take
        # datetimes (a date axis) and None (a gap in the line), hence the two ignores below.
        ends = [r.window_end for r in history]
        ax.plot(ends, [r.champion_value for r in history], marker="o", label="champion")  # type: ignore[arg-type]
        challenger = [(r.window_end, r.challenger_value) for r in history if r.challenger_value is not None]
        if challenger:
            ax.plot(*zip(*challenger, strict=True), marker="s", linestyle="--", label="challenger")
        config = spec.monitoring.performance
        for bound, label in ((config.min if config else None, "min"), (config.max if config else None, "max")):
            if bound is not None:
                ax.axhline(bound, color="#c0392b", linestyle=":", label=f"{label} {bound}")
        if len(history) == 1:  # one point: a few days around it, not matplotlib's default of years
            ax.set_xlim(ends[0] - timedelta(days=3), ends[0] + timedelta(days=3))  # type: ignore[arg-type]
        ax.legend(fontsize=8)
        fig.autofmt_xdate()
        metric = history[-1].metric
    else:
        metric = (spec.monitoring.performance.metric if spec.monitoring.performance else spec.evaluation.metric)
        ax.text(0.5, 0.5, "no ground-truth window evaluated yet", ha="center", va="center", transform=ax.transAxes)
    ax.set(title=f"{spec.pipeline}: {metric} per ground-truth window", ylabel=metric, xlabel="window end (UTC)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_scores(spec: PipelineSpec, run_dir: Path, scored: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import numpy as np
    import pandas as pd

    frame = pd.read_parquet(run_dir / WINDOW_FRAME, columns=[CHAMPION_SCORE, CHALLENGER_SCORE])
    fig, ax = plt.subplots(figsize=(7, 3.6))
    series = []
    reference = run_dir / "reference" / "champion" / "scores.npy"  # prediction_drift downloaded it
    if reference.exists():
        series.append((f"champion v{scored['champion']['version']}, training holdout", np.load(reference)))
    series.append((f"champion v{scored['champion']['version']}, this window", frame[CHAMPION_SCORE].dropna().to_numpy()))
    if scored.get("challenger"):
        series.append((f"challenger v{scored['challenger']['version']}, this window",
                       frame[CHALLENGER_SCORE].dropna().to_numpy()))
    values = [v for _, v in series if len(v)]
    if values:
        low = min(float(v.min()) for v in values)
        high = max(float(v.max()) for v in values)
        # As a list: matplotlib takes any sequence of edges, and its stubs name no ndarray for them.
        bins = np.linspace(low, high if high > low else low + 1, 41).tolist()
        for label, v in series:
            if len(v):
                ax.hist(v, bins=bins, density=True, histtype="step", linewidth=1.5, label=f"{label} ({len(v)})")
        ax.legend(fontsize=7)
    ax.set(title=f"{spec.pipeline}: score distributions", xlabel="score", ylabel="density")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def render_report(
    spec: PipelineSpec,
    summary: dict[str, Any],
    scored: dict[str, Any],
    data: dict[str, Any],
    preds: dict[str, Any],
    perf: dict[str, Any],
    drift_result: DriftResult | None,
    plots: list[Path],
    path: Path,
    render_html: Callable[..., Path],
    *,
    estimated: dict[str, Any] | None = None,
) -> Path:
    """The monitoring page: the drift report's page (:func:`ctflow.core.drift.report.render_html`,
    passed in) or a stub when data drift is unavailable, with the window's other results and plots.

    :param estimated: the scoring window's performance estimate (``estimated_performance.json``)."""
    import html as h

    title = f"ctflow monitoring: {spec.pipeline}, [{scored['window_start']}, {scored['window_end']})"
    if drift_result is not None:
        render_html(drift_result, path, title=title)
        page = path.read_text(encoding="utf-8")
    else:
        page = (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{h.escape(title)}</title></head>"
                f"<body><h1>{h.escape(title)}</h1><p>Data drift not available: {h.escape(str(data.get('reason')))}</p>"
                "</body></html>")

    def row(*cells: Any) -> str:
        return "<tr>" + "".join(f"<td>{h.escape('-' if c is None else str(c))}</td>" for c in cells) + "</tr>"

    breaches = "".join(f"<li><b>{h.escape(b['kind'])}</b>: {h.escape(b['reason'])}</li>" for b in summary["breaches"])
    champion = perf.get("champion") or {}
    perf_rows = [row("champion", champion.get("version"), _rounded(champion.get("value")),
                     _rounded(champion.get("estimated")))]
    if perf.get("challenger"):
        perf_rows.append(row("challenger", perf["challenger"]["version"], _rounded(perf["challenger"]["value"]), None))
    decision = perf.get("decision") or {}
    preds_rows = [row(who, m.get("version"), m.get("method"), _rounded(m.get("statistic")), _rounded(m.get("p_value")),
                      m.get("threshold"), "drift" if m.get("drifted") else "ok")
                  for who, m in (preds.get("models") or {}).items() if m.get("available")]
    images = "".join(
        f"<h3>{h.escape(p.stem.replace('_', ' '))}</h3><img alt=\"{h.escape(p.stem)}\" "
        f"src=\"data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}\">" for p in plots
    )
    extra = f"""
<h2>Breaches</h2><ul>{breaches or '<li>none</li>'}</ul>
<h2>Performance</h2>
<p>{h.escape(perf['metric'])} on the ground-truth window [{h.escape(perf['window_start'])}, {h.escape(perf['window_end'])})
({perf.get('rows', 0)} labelled rows{'' if perf.get('available') else ': ' + h.escape(str(perf.get('reason')))}).
{h.escape('Breach: ' + perf['breach']) if perf.get('breach') else ''}</p>
<table><thead><tr><th>model</th><th>version</th><th>{h.escape(perf['metric'])}</th><th>estimated before the labels</th></tr></thead>
<tbody>{''.join(perf_rows)}</tbody></table>
{_estimated_paragraph(estimated or {})}
<p>{h.escape(decision.get('reason', '')) + (' &rarr; ' + h.escape(decision['action']) if decision else '')}</p>
<h2>Prediction drift</h2>
<table><thead><tr><th>model</th><th>version</th><th>method</th><th>statistic</th><th>p-value</th><th>threshold</th>
<th>verdict</th></tr></thead><tbody>{''.join(preds_rows) or row('not available')}</tbody></table>
<h2>Computation</h2>
<table><tbody>{row('rows scored', scored['rows'])}{row('scoring seconds per 1,000 rows', scored['scoring_seconds_per_1000_rows'])}
{row('feature retrieval seconds', scored['feature_seconds'])}{''.join(row(f'{k} seconds', v) for k, v in summary['seconds'].items())}</tbody></table>
<h2>Plots</h2>{images}
"""
    page = page.replace("</body>", extra + "</body>", 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path


#: How each estimate is made, as the report names it (an estimate written before ``method`` was CBPE).
_METHODS = {"CBPE": "CBPE", "DLE": "direct loss estimation"}


def _estimated_paragraph(estimated: dict[str, Any]) -> str:
    """The scoring window's estimated metric with its band, or why there is none."""
    import html as h

    if not estimated.get("available"):
        return f"<p>Estimated performance of this window: not available ({h.escape(str(estimated.get('reason')))}).</p>"
    band = (f", reference {_rounded(estimated['reference'])}, band [{_rounded(estimated['lower'])}, "
            f"{_rounded(estimated['upper'])}]" if estimated.get("lower") is not None else "")
    calibrated = ", calibrated on the holdout" if estimated.get("calibrated") else ""
    verdict = f" Breach: {estimated['breach']}" if estimated.get("breach") else ""
    if verdict and not estimated.get("enabled"):
        verdict += " (not acted on: monitoring.estimated_performance is off)"
    return (f"<p>Estimated {h.escape(estimated['metric'])} of this window's {estimated.get('rows')} scored rows, before "
            f"their labels ({h.escape(_METHODS.get(str(estimated.get('method', 'CBPE')), 'CBPE'))}{calibrated}): <b>{_rounded(estimated['value'])}</b>{h.escape(band)}."
            f"{h.escape(verdict)}</p>")


def _rounded(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value
