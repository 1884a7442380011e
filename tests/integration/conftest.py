"""Session-wide state of the integration tests that several modules only read."""

from __future__ import annotations

import pytest

from tests import served_champion as served


@pytest.fixture(scope="session")
def served_champion(tmp_path_factory: pytest.TempPathFactory, feature_repo_ready) -> served.ServedChampion:
    """``served_model`` version 1, champion, made once by the CT steps (:mod:`tests.served_champion`);
    read by ``test_served_model`` and ``test_online_predict``, whose tests change nothing of its MLflow state."""
    return served.build(tmp_path_factory.mktemp("served"))
