"""How the view writes numbers and times (Jinja filters).

Two kinds of time, never mixed without saying which:

* **data dates** (``as_of``, monitoring windows, logical dates): the instant the data is cut at,
  written in UTC as the specs and ``params.as_of`` state it (``2013-04-01``, ``2013-05-06 06:00 UTC``);
* **wall-clock times** (when a run started, when an alias moved, the next run): written in Airflow's
  ``[core] default_timezone`` with the zone's name, inside ``<time class="clock" datetime=...>``,
  which the page's script rewrites in the zone the user picked in Airflow's UI, if any.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from markupsafe import Markup, escape


def _parse(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def data_date(value: Any) -> str:
    """A data date in UTC: the day alone at midnight, else the minute with ``UTC``."""
    moment = _parse(value)
    if moment is None:
        return str(value) if value else "—"
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d") if not (moment.hour or moment.minute) else moment.strftime("%Y-%m-%d %H:%M UTC")


def airflow_timezone() -> tzinfo:
    """``[core] default_timezone`` (``utc``, ``system`` or an IANA name), read at each call."""
    try:
        from airflow.configuration import conf

        name = (conf.get("core", "default_timezone", fallback="utc") or "utc").strip()
    except Exception:  # no Airflow configuration
        name = "utc"
    if name.lower() == "utc":
        return UTC
    if name.lower() == "system":
        return datetime.now().astimezone().tzinfo or UTC
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError):
        return UTC


def zone_name() -> str:
    zone = airflow_timezone()
    return "UTC" if zone is UTC else str(getattr(zone, "key", None) or zone)


def clock(value: Any) -> Markup:
    """A wall-clock time in Airflow's time zone, as ``<time>`` the script may localize."""
    moment = _parse(value)
    if moment is None:
        return Markup(escape(str(value))) if value else Markup("—")
    local = moment.astimezone(airflow_timezone())
    shown = local.strftime("%Y-%m-%d %H:%M ") + (local.tzname() or "")
    return Markup('<time class="clock" datetime="{}" title="wall-clock time">{}</time>').format(
        moment.astimezone(UTC).isoformat(timespec="seconds"), shown.strip())


def num(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "—"


def pct(value: Any) -> str:
    return f"{value:.0%}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "—"


_DECISIONS = {"promote": "passed", "reject_champion": "lost to champion", "reject_floor": "below a floor"}


def decision(value: str | None) -> str:
    return _DECISIONS.get(value or "", value or "—")


_VERDICTS = {"breach": "BREACH", "insufficient_data": "NO VERDICT"}


def verdict(status: str | None) -> str:
    """A monitoring window's status as its badge says it."""
    return _VERDICTS.get(status or "", "OK")


FILTERS = {"when": data_date, "clock": clock, "num": num, "pct": pct, "decision": decision, "verdict": verdict}
