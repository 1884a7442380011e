"""How the view lays out what it shows, without a running Airflow: chart labels that never
overlap however many candidates, and times in Airflow's configured zone, data dates kept apart."""

from __future__ import annotations

import re

import pytest


def _label_boxes(svg: str, css_class: str, char_width: float) -> list[tuple[float, float, float, str]]:
    boxes = []
    for x, y, text in re.findall(rf'<text class="{css_class}" x="([\d.]+)" y="([\d.]+)"[^>]*>([^<]+)</text>', svg):
        half = len(text) * char_width / 2
        boxes.append((float(x) - half, float(x) + half, float(y), text))
    return boxes


def _overlaps(boxes, height: float) -> list[tuple[str, str]]:
    return [(a[3], b[3]) for k, a in enumerate(boxes) for b in boxes[k + 1:]
            if a[0] < b[1] and b[0] < a[1] and abs(a[2] - b[2]) < height]


@pytest.mark.parametrize("n", [3, 40, 200])
def test_chart_labels_never_overlap_and_the_champion_is_always_labelled(n):
    from ctflow.ui.chart import CHAR_WIDTH, LABEL_HEIGHT, metric_timeline_svg

    # n registered versions a week apart with close metric values (the crowded case); the fifth
    # newest is the champion.
    champion = max(0, n - 5)
    points = [{"value": 0.70 + 0.001 * (i % 7), "version": str(i + 1),
               "aliases": ["champion"] if i == champion else [],
               "as_of": f"{2013 + i // 52}-{1 + (i // 4) % 12:02d}-{1 + 7 * (i % 4):02d}T00:00:00+00:00"}
              for i in range(n)]
    svg = metric_timeline_svg(points, metric="roc_auc", floor=0.65)
    versions = _label_boxes(svg, "point-label", CHAR_WIDTH)
    dates = _label_boxes(svg, "tick", 6.2)
    dates = [d for d in dates if re.fullmatch(r"\d{4}-\d\d-\d\d", d[3])]  # the date axis, not value ticks
    assert not _overlaps(versions, LABEL_HEIGHT), _overlaps(versions, LABEL_HEIGHT)[:3]
    assert not _overlaps(dates, 12)
    assert f"v{champion + 1}" in [v[3] for v in versions]  # the champion's label is never dropped
    assert svg.count('data-version="') == n  # every point drawn (its tooltip names it)
    if n == 3:
        assert len(versions) == 3 and len(dates) == 3  # nothing dropped when there is room


def test_times_follow_airflows_zone_and_data_dates_stay_utc(monkeypatch):
    from ctflow.ui import formats

    monkeypatch.setenv("AIRFLOW__CORE__DEFAULT_TIMEZONE", "Europe/Amsterdam")
    assert formats.zone_name() == "Europe/Amsterdam"
    shown = str(formats.clock("2026-11-30T17:50:00+00:00"))
    assert shown == ('<time class="clock" datetime="2026-11-30T17:50:00+00:00" title="wall-clock time">'
                     "2026-11-30 18:50 CET</time>")
    assert str(formats.clock("2026-07-01T12:00:00Z")).endswith(">2026-07-01 14:00 CEST</time>")
    # A data date is the instant the data is cut at: in UTC, whatever the zone.
    assert formats.data_date("2013-04-01T00:00:00+00:00") == "2013-04-01"
    assert formats.data_date("2013-05-06T06:00:00+00:00") == "2013-05-06 06:00 UTC"
    monkeypatch.setenv("AIRFLOW__CORE__DEFAULT_TIMEZONE", "utc")
    assert formats.zone_name() == "UTC" and ">2026-11-30 17:50 UTC</time>" in str(formats.clock("2026-11-30T17:50Z"))
    assert formats.clock(None) == "—" and formats.data_date(None) == "—"
