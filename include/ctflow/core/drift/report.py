"""Human-readable drift reports: a PNG chart and a self-contained HTML page.

matplotlib is imported lazily (and with the Agg backend) so that importing this
module costs nothing for callers that only want HTML.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import TYPE_CHECKING

from ctflow.core.drift.results import P_VALUE_METHODS, ColumnDrift, DriftResult

if TYPE_CHECKING:
    from matplotlib.axes import Axes

# p-values of exactly 0 (underflow) are drawn at this floor on the log axis.
_P_FLOOR = 1e-300


def _fmt(value: float | None, spec: str = ".4g") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


def summary_line(result: DriftResult) -> str:
    """One sentence: how many columns drifted and the dataset verdict."""
    if result.insufficient:
        return f"dataset: INSUFFICIENT DATA, no verdict: {result.insufficient}"
    total = len(result.columns)
    n_drifted = len(result.drifted_columns)
    verdict = "DRIFT" if result.drifted else "no drift"
    return (f"{n_drifted} of {total} columns drifted ({result.drifted_share:.0%}); dataset: {verdict} "
            f"(drift when share >= {result.max_drifted_share:g})")


def plot_drift(result: DriftResult, path: str | Path, title: str = "Drift by column") -> Path:
    """Bar chart of each column's score against its threshold, written as PNG.

    p-value tests and distances live on different scales, so each gets a panel:
    p-values are drawn as evidence, -log10(p), on a log axis; distances as they are.
    In both panels a longer bar means more drift, the black tick is the column's
    threshold, drifted columns are red, and the score is printed at the bar's end.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    groups = [
        (True, [c for c in result.columns if c.method in P_VALUE_METHODS]),
        (False, [c for c in result.columns if c.method not in P_VALUE_METHODS]),
    ]
    groups = [(is_p, cols) for is_p, cols in groups if cols]
    heights = [max(1.2, 0.35 * len(cols) + 0.8) for _, cols in groups] or [1.2]
    fig, axes = plt.subplots(len(heights), 1, figsize=(8, sum(heights) + 0.8),
                             gridspec_kw={"height_ratios": heights}, squeeze=False)
    # No group at all: one empty axis and nothing to zip.
    for ax, (is_p, cols) in zip(axes[:, 0], groups, strict=False):
        _draw_group(ax, is_p, cols)
    fig.suptitle(f"{title}\n{summary_line(result)}", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=110)
    plt.close(fig)
    return path


def _evidence(p: float) -> float:
    """-log10(p), with p = 0 (floating-point underflow) drawn at the 1e-300 floor."""
    return -math.log10(max(p, _P_FLOOR))


def _draw_group(ax: Axes, is_p: bool, cols: list[ColumnDrift]) -> None:
    ys = list(range(len(cols)))
    if is_p:
        bars = [0.0 if math.isnan(c.score) else _evidence(c.score) for c in cols]
        ticks = [_evidence(c.threshold) for c in cols]
        labels = ["-" if c.p_value is None else ("0" if c.p_value == 0 else f"{c.p_value:.2g}") for c in cols]
    else:
        bars = [0.0 if math.isnan(c.score) else c.score for c in cols]
        ticks = [c.threshold for c in cols]
        labels = ["-" if math.isnan(c.score) else f"{c.score:.3g}" for c in cols]
    colors = ["#c0392b" if c.drifted else "#27ae60" for c in cols]
    ax.barh(ys, bars, color=colors, height=0.6)
    for y, tick, bar, label in zip(ys, ticks, bars, labels, strict=True):
        ax.plot([tick, tick], [y - 0.4, y + 0.4], color="black", linewidth=1.5)
        ax.annotate(label, (max(bar, tick), y), xytext=(4, 0), textcoords="offset points",
                    va="center", fontsize=7)
    ax.set_yticks(ys, [f"{c.column} ({c.method})" for c in cols], fontsize=8)
    ax.invert_yaxis()
    if is_p:
        ax.set_xscale("log")
        ax.set_xlim(left=0.01, right=max(max(bars + ticks) * 4, 10))
        ax.set_xlabel("evidence of drift, -log10(p-value); black tick = threshold", fontsize=8)
    else:
        ax.set_xlim(left=0, right=max(bars + ticks) * 1.15)
        ax.set_xlabel("distance; black tick = threshold", fontsize=8)
    ax.tick_params(axis="x", labelsize=8)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#222}
h1{font-size:1.3rem} p.summary{font-size:1rem}
table{border-collapse:collapse;font-size:.9rem} th,td{padding:.35rem .7rem;border-bottom:1px solid #ddd}
th{background:#f4f4f4;text-align:left} td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.drift td{background:#fdecea} .yes{color:#c0392b;font-weight:600} .no{color:#27ae60}
footer{margin-top:1rem;font-size:.8rem;color:#666}
"""


def render_html(result: DriftResult, path: str | Path, title: str = "Drift report") -> Path:
    """Write a self-contained HTML page (inline CSS, no scripts or external assets)."""
    rows = []
    for c in result.columns:
        verdict = '<span class="yes">drift</span>' if c.drifted else '<span class="no">ok</span>'
        rows.append(
            f'<tr class="{"drift" if c.drifted else ""}">'
            f"<td>{html.escape(c.column)}</td><td>{c.kind}</td><td>{c.method}</td>"
            f'<td class="num">{_fmt(c.statistic)}</td><td class="num">{_fmt(c.p_value, ".3g")}</td>'
            f'<td class="num">{_fmt(c.threshold, "g")}</td><td>{verdict}</td>'
            f'<td class="num">{c.n_reference}</td><td class="num">{c.n_current}</td>'
            f'<td class="num">{c.missing_reference}</td><td class="num">{c.missing_current}</td></tr>'
        )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{_CSS}</style></head><body>
<h1>{html.escape(title)}</h1>
<p class="summary">{html.escape(summary_line(result))}</p>
<table><thead><tr><th>column</th><th>kind</th><th>method</th><th>statistic</th><th>p-value</th>
<th>threshold</th><th>verdict</th><th>n ref</th><th>n cur</th><th>missing ref</th><th>missing cur</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table>
<footer>p-value tests (ks, chi2, z) drift when p &lt; threshold; distances (psi, wasserstein,
jensenshannon) drift when the distance &ge; threshold. Missing values are excluded.</footer>
</body></html>
"""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path


__all__ = ["plot_drift", "render_html", "summary_line"]
