"""The primary-metric timeline as an inline SVG: no JavaScript, no external library."""

from __future__ import annotations

from html import escape
from typing import Any

WIDTH, HEIGHT = 820, 280
LEFT, RIGHT, TOP, BOTTOM = 64, 24, 24, 58


def metric_timeline_svg(
    points: list[dict[str, Any]], *, metric: str, floor: float | None = None, ceiling: float | None = None
) -> str:
    """One marker per candidate run, oldest first: registered versions filled and labelled, the
    champion ringed, candidates that were not registered hollow, gate failures as red crosses."""
    valued = [p for p in points if isinstance(p.get("value"), (int, float))]
    if not valued:
        return (f'<svg id="metric-chart" class="chart empty" viewBox="0 0 {WIDTH} 80" role="img" '
                f'aria-label="no {escape(metric)} values yet"><text x="{WIDTH / 2}" y="44" text-anchor="middle">'
                f"No candidate has been trained yet.</text></svg>")
    values = [p["value"] for p in valued] + [v for v in (floor, ceiling) if v is not None]
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.15 or max(abs(hi) * 0.05, 0.01)
    lo, hi = lo - pad, hi + pad
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    n = len(valued)

    def x(i: int) -> float:
        return LEFT + (plot_w * (i + 0.5) / n)

    def y(v: float) -> float:
        return TOP + plot_h * (1 - (v - lo) / (hi - lo))

    out = [
        f'<svg id="metric-chart" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(metric)} of each candidate, oldest first" xmlns="http://www.w3.org/2000/svg">',
        f'<rect class="plot" x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}"/>',
    ]
    for k in range(5):  # horizontal grid with labels
        v = lo + (hi - lo) * k / 4
        out.append(f'<line class="grid" x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y(v):.1f}" y2="{y(v):.1f}"/>')
        out.append(f'<text class="tick" x="{LEFT - 8}" y="{y(v) + 4:.1f}" text-anchor="end">{v:.3f}</text>')
    out.append(f'<text class="axis-label" transform="translate(16 {TOP + plot_h / 2}) rotate(-90)" '
               f'text-anchor="middle">{escape(metric)}</text>')
    for bound, name in ((floor, "floor"), (ceiling, "ceiling")):
        if bound is not None:
            out.append(f'<line class="threshold" x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y(bound):.1f}" y2="{y(bound):.1f}"/>')
            out.append(f'<text class="threshold-label" x="{LEFT + plot_w - 4}" y="{y(bound) - 5:.1f}" '
                       f'text-anchor="end">{name} {bound:g}</text>')
    registered = [(i, p) for i, p in enumerate(valued) if p.get("version")]
    if len(registered) > 1:
        path = " ".join(f"{'M' if k == 0 else 'L'}{x(i):.1f},{y(p['value']):.1f}" for k, (i, p) in enumerate(registered))
        out.append(f'<path class="versions-line" d="{path}"/>')
    step = max(1, n // 12)  # at most ~12 date labels
    for i, p in enumerate(valued):
        cx, cy = x(i), y(p["value"])
        when = (p.get("as_of") or p.get("started") or "")[:10]
        label = f"v{p['version']}" if p.get("version") else ""
        tip = f"{metric} {p['value']:.4f}" + (f" · version {p['version']}" if p.get("version") else " · not registered")
        tip += f" · as of {when}" if when else ""
        if p.get("decision"):
            tip += f" · gate: {p['decision']}"
        if p.get("aliases"):
            tip += f" · {', '.join(p['aliases'])}"
        classes = ["point"]
        if p.get("gate") == "failed":
            classes.append("failed")
        elif p.get("version"):
            classes.append("registered")
        else:
            classes.append("candidate")
        classes += [f"alias-{a}" for a in p.get("aliases", [])]
        out.append(f'<g class="{" ".join(classes)}" data-version="{escape(str(p.get("version") or ""))}">'
                   f"<title>{escape(tip)}</title>")
        if "champion" in p.get("aliases", []):
            out.append(f'<circle class="ring" cx="{cx:.1f}" cy="{cy:.1f}" r="11"/>')
        if p.get("gate") == "failed":
            out.append(f'<path class="cross" d="M{cx - 5:.1f},{cy - 5:.1f} L{cx + 5:.1f},{cy + 5:.1f} '
                       f'M{cx - 5:.1f},{cy + 5:.1f} L{cx + 5:.1f},{cy - 5:.1f}"/>')
        else:
            out.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="6"/>')
        if label:
            out.append(f'<text class="point-label" x="{cx:.1f}" y="{cy - 14:.1f}" text-anchor="middle">{escape(label)}</text>')
        out.append("</g>")
        if when and i % step == 0:
            out.append(f'<text class="tick" x="{cx:.1f}" y="{TOP + plot_h + 18}" text-anchor="middle">{escape(when)}</text>')
    legend_y = HEIGHT - 14
    out.append(
        f'<g class="legend" transform="translate({LEFT} {legend_y})">'
        '<g class="point registered"><circle cx="6" cy="-4" r="5"/></g><text x="16" y="0">registered version</text>'
        '<g class="point registered alias-champion"><circle class="ring" cx="160" cy="-4" r="9"/>'
        '<circle cx="160" cy="-4" r="5"/></g><text x="174" y="0">champion</text>'
        '<g class="point candidate"><circle cx="260" cy="-4" r="5"/></g><text x="270" y="0">not registered (gated out / dry run)</text>'
        '<g class="point failed"><path class="cross" d="M511,-8 L519,0 M511,0 L519,-8"/></g>'
        '<text x="526" y="0">below a floor</text>'
        f'<text x="{plot_w}" y="0" text-anchor="end" class="muted">as of (UTC)</text></g>'
    )
    out.append("</svg>")
    return "".join(out)
