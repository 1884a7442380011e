"""The assets a pipeline announces: a breach (monitoring asks for a retrain) and a new champion.

URIs are plain strings here (the UI and tests read them); the builders import ``airflow.sdk``
only when called, at DAG parse.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow.sdk import Asset

GROUP = "ctflow"


def breach_uri(pipeline: str) -> str:
    return f"ctflow://{pipeline}/breach"


def promoted_uri(pipeline: str) -> str:
    return f"ctflow://{pipeline}/promoted"


def breach_asset(pipeline: str) -> Asset:
    """Emitted by ``monitor_<pipeline>`` when drift or performance crosses its threshold."""
    from airflow.sdk import Asset

    return Asset(uri=breach_uri(pipeline), name=f"{pipeline}_breach", group=GROUP)


def promoted_asset(pipeline: str) -> Asset:
    """Emitted by ``ct_<pipeline>`` (or by monitoring, for shadow/canary) when a new champion is promoted."""
    from airflow.sdk import Asset

    return Asset(uri=promoted_uri(pipeline), name=f"{pipeline}_promoted", group=GROUP)


def monitor_promotion_alias_name(pipeline: str) -> str:
    """The asset alias through which monitoring announces a promotion it made."""
    return f"{pipeline}_monitor_promotion"


def ct_promotion_alias_name(pipeline: str) -> str:
    """The asset alias through which ``ct_<pipeline>``'s promote task announces a champion it moved."""
    return f"{pipeline}_ct_promotion"
