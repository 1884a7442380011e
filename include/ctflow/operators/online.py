"""The operator of the online-store step (:data:`ctflow.steps.online.MATERIALIZE`), in both DAGs."""

from __future__ import annotations

from ctflow.operators.base import CtflowOperator
from ctflow.steps.online import MATERIALIZE


class MaterializeOnlineOperator(CtflowOperator):
    """
    Bring the feature service's views up to the run's ``as_of`` in Feast's online store.

    Incremental and idempotent (:func:`ctflow.core.online.materialize`): a re-run, or a run older
    than what the store already holds, writes nothing. The Feast repository comes from the
    ``ctflow_feast`` connection; its ``feature_store.yaml`` names the online store (SQLite
    embedded, Redis in production).
    """

    declaration = MATERIALIZE
    ui_color = "#e8f5e9"
