"""The primary-metric timeline as an inline SVG: no JavaScript, no external library."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

WIDTH, HEIGHT = 820, 280
LEFT, RIGHT, TOP, BOTTOM = 64, 24, 24, 58
#: Room a label takes, in SVG units (12 px bold version labels, 11 px ``YYYY-MM-DD`` dates).
CHAR_WIDTH, LABEL_HEIGHT, DATE_LABEL_WIDTH = 7.5, 14, 70


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
    frame = PlotFrame.around([p["value"] for p in valued] + [v for v in (floor, ceiling) if v is not None], len(valued))
    out = [
        (
            f'<svg id="metric-chart" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
            f'aria-label="{escape(metric)} of each candidate, oldest first" xmlns="http://www.w3.org/2000/svg">'
        ),
        f'<rect class="plot" x="{LEFT}" y="{TOP}" width="{frame.plot_w}" height="{frame.plot_h}"/>',
        *_axes(frame, metric, floor=floor, ceiling=ceiling),
        *_versions_line(frame, valued),
    ]
    spacing = frame.plot_w / len(valued)
    step = max(1, math.ceil(DATE_LABEL_WIDTH / spacing))  # date labels never overlap
    labelled = _version_labels(frame, valued)
    for i, p in enumerate(valued):
        out += _point(frame, i, p, metric, date_label=i % step == 0, version_label=i in labelled)
    out += [_legend(frame), "</svg>"]
    return "".join(out)


def _version_labels(frame: PlotFrame, valued: list[dict[str, Any]]) -> set[int]:
    """Which registered points get their ``vN`` label: the champion always, then the others, newest
    first, only where the label's box does not overlap one already placed (the tooltip has them all)."""
    placed: list[tuple[float, float, float]] = []  # (left, right, y) of each label
    chosen = set()
    registered = [i for i, p in enumerate(valued) if p.get("version")]
    order = sorted(registered, key=lambda i: ("champion" not in valued[i].get("aliases", []), -i))
    for i in order:
        p = valued[i]
        half = (len(f"v{p['version']}") * CHAR_WIDTH) / 2 + 2
        x, y = frame.x(i), frame.y(p["value"]) - 14
        if any(x - half < right and left < x + half and abs(y - ly) < LABEL_HEIGHT for left, right, ly in placed):
            continue
        placed.append((x - half, x + half, y))
        chosen.add(i)
    return chosen


@dataclass(frozen=True)
class PlotFrame:
    """The plot area and the value range it shows: where a candidate's point goes."""

    lo: float
    hi: float
    n: int
    plot_w: int = WIDTH - LEFT - RIGHT
    plot_h: int = HEIGHT - TOP - BOTTOM
    top: int = TOP  # where the plot area starts (a chart of stacked panels has several)

    @classmethod
    def around(cls, values: list[float], n: int, **layout: int) -> PlotFrame:
        lo, hi = min(values), max(values)
        pad = (hi - lo) * 0.15 or max(abs(hi) * 0.05, 0.01)
        return cls(lo - pad, hi + pad, n, **layout)

    def x(self, i: int) -> float:
        return LEFT + (self.plot_w * (i + 0.5) / self.n)

    def y(self, v: float) -> float:
        return self.top + self.plot_h * (1 - (v - self.lo) / (self.hi - self.lo))


def _axes(frame: PlotFrame, metric: str, *, floor: float | None, ceiling: float | None) -> list[str]:
    """The horizontal grid with its labels, the axis title and the gate's bounds."""
    bounds = [(bound, f"{name} {bound:g}") for bound, name in ((floor, "floor"), (ceiling, "ceiling"))
              if bound is not None]
    return axes(frame, metric, bounds=bounds)


def axes(frame: PlotFrame, title: str, *, bounds: Sequence[tuple[float, str]] = (), tick: str = "{:.3f}") -> list[str]:
    """A plot area's horizontal grid with its labels (``tick``: their format), its title, and a
    dashed line with its label at each of ``bounds`` (value, label)."""
    out = []
    for k in range(5):
        v = frame.lo + (frame.hi - frame.lo) * k / 4
        out.append(f'<line class="grid" x1="{LEFT}" x2="{LEFT + frame.plot_w}" y1="{frame.y(v):.1f}" y2="{frame.y(v):.1f}"/>')
        out.append(f'<text class="tick" x="{LEFT - 8}" y="{frame.y(v) + 4:.1f}" text-anchor="end">{tick.format(v)}</text>')
    out.append(f'<text class="axis-label" transform="translate(16 {frame.top + frame.plot_h / 2}) rotate(-90)" '
               f'text-anchor="middle">{escape(title)}</text>')
    for bound, label in bounds:
        y = frame.y(bound)
        out.append(f'<line class="threshold" x1="{LEFT}" x2="{LEFT + frame.plot_w}" y1="{y:.1f}" y2="{y:.1f}"/>')
        out.append(f'<text class="threshold-label" x="{LEFT + frame.plot_w - 4}" y="{y - 5:.1f}" '
                   f'text-anchor="end">{escape(label)}</text>')
    return out


def _versions_line(frame: PlotFrame, valued: list[dict[str, Any]]) -> list[str]:
    registered = [(i, p) for i, p in enumerate(valued) if p.get("version")]
    if len(registered) < 2:
        return []
    path = " ".join(f"{'M' if k == 0 else 'L'}{frame.x(i):.1f},{frame.y(p['value']):.1f}"
                    for k, (i, p) in enumerate(registered))
    return [f'<path class="versions-line" d="{path}"/>']


def _tip(p: dict[str, Any], metric: str, when: str) -> str:
    tip = f"{metric} {p['value']:.4f}" + (f" · version {p['version']}" if p.get("version") else " · not registered")
    tip += f" · as of {when}" if when else ""
    if p.get("decision"):
        tip += f" · gate: {p['decision']}"
    if p.get("aliases"):
        tip += f" · {', '.join(p['aliases'])}"
    return tip


def _classes(p: dict[str, Any]) -> list[str]:
    kind = "failed" if p.get("gate") == "failed" else "registered" if p.get("version") else "candidate"
    return ["point", kind, *(f"alias-{a}" for a in p.get("aliases", []))]


def _point(frame: PlotFrame, i: int, p: dict[str, Any], metric: str, *, date_label: bool,
           version_label: bool) -> list[str]:
    """One candidate's marker with its tooltip, version label and (every few points) its date."""
    cx, cy = frame.x(i), frame.y(p["value"])
    when = (p.get("as_of") or p.get("started") or "")[:10]
    version = escape(str(p.get("version") or ""))
    out = [f'<g class="{" ".join(_classes(p))}" data-version="{version}"><title>{escape(_tip(p, metric, when))}</title>']
    if "champion" in p.get("aliases", []):
        out.append(f'<circle class="ring" cx="{cx:.1f}" cy="{cy:.1f}" r="11"/>')
    if p.get("gate") == "failed":
        out.append(f'<path class="cross" d="M{cx - 5:.1f},{cy - 5:.1f} L{cx + 5:.1f},{cy + 5:.1f} '
                   f'M{cx - 5:.1f},{cy + 5:.1f} L{cx + 5:.1f},{cy - 5:.1f}"/>')
    else:
        out.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="6"/>')
    if p.get("version") and version_label:
        label = escape(f"v{p['version']}")
        out.append(f'<text class="point-label" x="{cx:.1f}" y="{cy - 14:.1f}" text-anchor="middle">{label}</text>')
    out.append("</g>")
    if when and date_label:
        out.append(f'<text class="tick" x="{cx:.1f}" y="{TOP + frame.plot_h + 18}" text-anchor="middle">{escape(when)}</text>')
    return out


def _legend(frame: PlotFrame) -> str:
    return (
        f'<g class="legend" transform="translate({LEFT} {HEIGHT - 14})">'
        '<g class="point registered"><circle cx="6" cy="-4" r="5"/></g><text x="16" y="0">registered version</text>'
        '<g class="point registered alias-champion"><circle class="ring" cx="160" cy="-4" r="9"/>'
        '<circle cx="160" cy="-4" r="5"/></g><text x="174" y="0">champion</text>'
        '<g class="point candidate"><circle cx="260" cy="-4" r="5"/></g><text x="270" y="0">not registered (gated out / dry run)</text>'
        '<g class="point failed"><path class="cross" d="M511,-8 L519,0 M511,0 L519,-8"/></g>'
        '<text x="526" y="0">below a floor</text>'
        f'<text x="{frame.plot_w}" y="0" text-anchor="end" class="muted">data as of (UTC)</text></g>'
    )
