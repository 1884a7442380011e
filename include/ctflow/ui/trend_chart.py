"""The last monitoring windows as an inline SVG, in the metric chart's style (:mod:`ctflow.ui.chart`).

Two panels over the same windows, oldest first: the drifted share of the checked features against
the spec's breach share, and the champion's realized performance against its bounds. A window that
breached has its column shaded and its reasons in the tooltip; every window names the champion
version it watched, and the windows of the current champion have their label ringed in its colour.
"""

from __future__ import annotations

from html import escape
from typing import Any

from ctflow.ui.chart import HEIGHT, LEFT, TOP, WIDTH, PlotFrame, axes

PANEL_H, GAP = 78, 40
DRIFT_TOP, PERF_TOP = TOP, TOP + PANEL_H + GAP


def monitoring_trend_svg(windows: list[dict[str, Any]], *, max_drifted_share: float, champion: str | None) -> str:
    """``windows``: what :func:`ctflow.ui.monitoring.recent_windows` returns; ``champion``: the
    current champion version."""
    if not windows:
        return (f'<svg id="trend-chart" class="chart empty" viewBox="0 0 {WIDTH} 80" role="img" '
                f'aria-label="no monitoring windows yet"><text x="{WIDTH / 2}" y="44" text-anchor="middle">'
                "No monitoring window has been logged yet.</text></svg>")
    n = len(windows)
    shares = [w["drift_share"] for w in windows if isinstance(w.get("drift_share"), (int, float))]
    drift = PlotFrame(0.0, max([max_drifted_share, *shares]) * 1.15, n, plot_h=PANEL_H, top=DRIFT_TOP)
    perf_spec = next((w["performance"] for w in windows if w.get("performance")), None)
    perf = _perf_frame(windows, perf_spec, n)
    out = [
        (f'<svg id="trend-chart" class="chart trend" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="drift share and realized performance of the last {n} monitoring windows, oldest first" '
        'xmlns="http://www.w3.org/2000/svg">'),
        f'<rect class="plot" x="{LEFT}" y="{DRIFT_TOP}" width="{drift.plot_w}" height="{PANEL_H}"/>',
        f'<rect class="plot" x="{LEFT}" y="{PERF_TOP}" width="{drift.plot_w}" height="{PANEL_H}"/>',
        *_bands(drift, windows),
        # Each window's hover target and labels, under the series so their markers stay on top.
        *[part for i, w in enumerate(windows) for part in _window(drift, perf, i, w, champion)],
        *axes(drift, "drift share", bounds=[(max_drifted_share, f"breach at {max_drifted_share:.0%}")], tick="{:.0%}"),
        *_series(drift, [w.get("drift_share") for w in windows], "drift-share",
                 [w.get("data_state") == "drift" for w in windows]),  # the data-drift step's verdict
    ]
    if perf is not None and perf_spec is not None:
        bounds = [(b, f"{name} {b:g}") for b, name in ((perf_spec.get("min"), "min"), (perf_spec.get("max"), "max"))
                  if b is not None]
        out += [*axes(perf, perf_spec["metric"], bounds=bounds),
                *_series(perf, [(w.get("performance") or {}).get("value") for w in windows], "performance",
                         [bool((w.get("performance") or {}).get("breach")) for w in windows])]
    out += [_legend(), "</svg>"]
    return "".join(out)


def _perf_frame(windows: list[dict[str, Any]], perf_spec: dict[str, Any] | None, n: int) -> PlotFrame | None:
    if perf_spec is None:
        return None
    values = [(w.get("performance") or {}).get("value") for w in windows]
    values = [v for v in values if isinstance(v, (int, float))]
    bounds = [b for b in (perf_spec.get("min"), perf_spec.get("max")) if b is not None]
    if not values and not bounds:
        return None
    return PlotFrame.around(values + bounds, n, plot_h=PANEL_H, top=PERF_TOP)


def _bands(frame: PlotFrame, windows: list[dict[str, Any]]) -> list[str]:
    """A shaded column behind each window that breached, in both panels."""
    width = frame.plot_w / frame.n
    return [f'<rect class="breach-band" x="{frame.x(i) - width / 2:.1f}" y="{top}" width="{width:.1f}" '
            f'height="{PANEL_H}"/>'
            for i, w in enumerate(windows) if w.get("status") == "breach" for top in (DRIFT_TOP, PERF_TOP)]


def _series(frame: PlotFrame, values: list[Any], name: str, breached: list[bool]) -> list[str]:
    """A line through the windows that have a value, a marker on each (red where it breached)."""
    known = [(i, v) for i, v in enumerate(values) if isinstance(v, (int, float))]
    out = []
    if len(known) > 1:
        path = " ".join(f"{'M' if k == 0 else 'L'}{frame.x(i):.1f},{frame.y(v):.1f}" for k, (i, v) in enumerate(known))
        out.append(f'<path class="versions-line {name}-line" d="{path}"/>')
    for i, v in known:
        out.append(f'<circle class="trend-point {name}{" breach" if breached[i] else ""}" data-window="{i}" '
                   f'data-value="{v!r}" cx="{frame.x(i):.1f}" cy="{frame.y(v):.1f}" r="5"/>')
    return out


def _window(drift: PlotFrame, perf: PlotFrame | None, i: int, w: dict[str, Any], champion: str | None) -> list[str]:
    """The window's hover target (its full reading in the tooltip), its date and champion label."""
    x = drift.x(i)
    version = str(w.get("champion_version") or "")
    current = bool(version) and version == champion
    width = drift.plot_w / drift.n
    bottom = (perf.top + perf.plot_h) if perf is not None else drift.top + drift.plot_h
    classes = ["window", f"status-{w.get('status')}", *(["current-champion"] if current else [])]
    out = [(f'<g class="{" ".join(classes)}" data-run-id="{escape(str(w.get("run_id") or ""))}" '
           f'data-champion="{escape(version)}" data-window-end="{escape(str(w.get("window_end") or ""))}">'
           f"<title>{escape(_tip(w))}</title>"
           f'<rect class="hover" x="{x - width / 2:.1f}" y="{drift.top}" width="{width:.1f}" height="{bottom - drift.top}"/>')]
    when = str(w.get("window_end") or "")[:10]
    out.append(f'<text class="tick" x="{x:.1f}" y="{bottom + 16}" text-anchor="middle">{escape(when)}</text>')
    if version:  # the current champion's label ringed in its colour, as in the metric chart
        label = f"v{version}"
        if current:
            half = len(label) * 3.8 + 5
            out.append(f'<rect class="champion-badge" x="{x - half:.1f}" y="{bottom + 21}" width="{2 * half:.1f}" '
                       'height="15" rx="7"/>')
        out.append(f'<text class="champion-label{" current" if current else ""}" x="{x:.1f}" y="{bottom + 32}" '
                   f'text-anchor="middle">{escape(label)}</text>')
    out.append("</g>")
    return out


def _tip(w: dict[str, Any]) -> str:
    share = w.get("drift_share")
    perf = w.get("performance") or {}
    parts = [f"window {str(w.get('window_start') or '')[:16]} → {str(w.get('window_end') or '')[:16]}",
             f"champion v{w.get('champion_version') or '?'}",
             f"drift share {share:.1%}" if isinstance(share, (int, float)) else "drift share —"]
    if perf:
        value = perf.get("value")
        parts.append(f"{perf.get('metric')} {value:.4f}" if isinstance(value, (int, float)) else f"{perf.get('metric')} —")
    kinds = w.get("breach_kinds") or []
    parts.append(f"breach: {', '.join(kinds)}" if w.get("status") == "breach" else str(w.get("status") or ""))
    return " · ".join(parts)


def _legend() -> str:
    y = HEIGHT - 8
    return (
        f'<g class="legend" transform="translate({LEFT} {y})">'
        '<circle class="trend-point" cx="6" cy="-4" r="5"/><text x="16" y="0">window</text>'
        '<circle class="trend-point breach" cx="86" cy="-4" r="5"/><text x="96" y="0">over its bound</text>'
        '<rect class="breach-band" x="196" y="-12" width="14" height="14"/><text x="216" y="0">window breached</text>'
        '<rect class="champion-badge" x="334" y="-12" width="24" height="15" rx="7"/>'
        '<text class="champion-label current" x="346" y="0" text-anchor="middle">vN</text>'
        '<text x="366" y="0">champion watched (current: ringed)</text>'
        f'<text x="{WIDTH - LEFT - 24}" y="0" text-anchor="end" class="muted">window end (UTC)</text></g>'
    )
