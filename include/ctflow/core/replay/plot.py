"""The replay's timeline plot: the metric per step, and when each policy trained and deployed."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from ctflow.core.replay.format import fmt as _fmt
from ctflow.core.replay.results import CTFLOW, EVERY, NEVER, POLICIES, ReplayResult
from ctflow.spec.durations import CalendarDuration

_COLOURS = {NEVER: "#9e9e9e", CTFLOW: "#1f77b4", EVERY: "#ff7f0e"}
_WHAT_IF_COLOURS = ["#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#d62728", "#7f7f7f",
                    "#aec7e8", "#98df8a"]


def plot_timeline(result: ReplayResult, path: str | Path, *, title: str | None = None) -> Path:
    """The metric of never / ctflow / every per step, and below it when each policy (what-ifs
    included) trained a model and whether it was deployed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    colours = dict(_COLOURS)
    extra = iter(_WHAT_IF_COLOURS)
    for p in result.policies:
        if p.policy not in colours:
            colours[p.policy] = next(extra, "#333333")
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(13.5, 6.2 + 0.25 * len(result.policies)), sharex=True,
        gridspec_kw={"height_ratios": [3, 0.45 + 0.3 * len(result.policies)]},
    )
    for p in result.policies:
        if p.policy not in POLICIES:
            continue  # what-ifs: in the trainings strip and the table, not as more lines here
        xs = [s.start + (s.end - s.start) / 2 for s in p.steps if s.metric is not None]
        ys = [s.metric for s in p.steps if s.metric is not None]
        scored = "" if len(ys) == len(p.steps) else f" ({len(ys)}/{len(p.steps)} steps scored)"
        label = (f"{p.policy}: mean {_fmt(p.mean_metric)}{scored}\nworst {_fmt(p.worst_metric)}, "
                 f"{p.trainings} trainings, {p.promotions} promotions")
        top.plot(xs, ys, color=colours[p.policy], lw=2.2 if p.policy == CTFLOW else 1.4,
                 marker="o", ms=3, label=label, zorder=3 if p.policy == CTFLOW else 2)
    if any(p.policy == CTFLOW for p in result.policies):
        ct = result.policy(CTFLOW)
        labelled = False
        for s in ct.steps:
            if s.model is None:
                top.axvspan(s.start, s.end, color=_COLOURS[CTFLOW], alpha=0.08, lw=0,
                            label=None if labelled else "ctflow: no champion yet")
                labelled = True
        xs = [s.start + (s.end - s.start) / 2 for s in ct.steps if s.promoted and s.metric is not None]
        ys = [s.metric for s in ct.steps if s.promoted and s.metric is not None]
        top.scatter(xs, ys, marker="^", s=70, color=_COLOURS[CTFLOW], edgecolor="black", zorder=4,
                    label="ctflow: new champion deployed")
    top.set_ylabel(f"weekly {result.metric}" if result.every == CalendarDuration(0, timedelta(days=7)) else f"{result.metric} per step")
    top.grid(alpha=0.3)
    top.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8.5, frameon=False, labelspacing=1.0)
    top.set_title(title or f"Replay of {result.pipeline}: {result.start:%Y-%m-%d} to {result.end:%Y-%m-%d}, "
                           f"model {result.metric} on each step's rows")

    names = [p.policy for p in result.policies]
    for row, p in enumerate(result.policies):
        y = len(names) - 1 - row
        trained = [s.start for s in p.steps if s.trained and not s.promoted]
        promoted = [s.start for s in p.steps if s.promoted]
        bottom.scatter(trained, [y] * len(trained), marker="o", s=28, facecolor="white",
                       edgecolor=colours[p.policy], linewidth=1.3, zorder=3)
        bottom.scatter(promoted, [y] * len(promoted), marker="^", s=45, color=colours[p.policy],
                       edgecolor="black", linewidth=0.5, zorder=3)
        refused = [s.start for s in p.steps if s.decision == "quality_failed"]
        bottom.scatter(refused, [y] * len(refused), marker="x", s=22, color=colours[p.policy], linewidth=1.1, zorder=3)
    bottom.set_yticks(range(len(names)), labels=list(reversed(names)), fontsize=9)
    bottom.set_ylim(-0.6, len(names) - 0.4)
    bottom.grid(axis="x", alpha=0.3)
    bottom.legend(handles=[
        Line2D([], [], marker="o", ls="", markerfacecolor="white", markeredgecolor="black", label="trained, not deployed"),
        Line2D([], [], marker="^", ls="", color="grey", markeredgecolor="black", label="trained and deployed"),
        Line2D([], [], marker="x", ls="", color="black", label="refused by data quality (no fit)"),
    ], loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8.5, frameon=False)
    bottom.set_title("trainings", fontsize=9, loc="left")
    bottom.xaxis.set_major_formatter(mdates.DateFormatter("%b %d"))
    bottom.xaxis.set_major_locator(mdates.MonthLocator())
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
