"""Counts calls into ctflow's ASOF store, so the report proves the store under test was the one used."""
import collections

from ctflow.core.feast_asof.store import AsofDuckDBOfflineStore

CALLS = collections.Counter()
_original = AsofDuckDBOfflineStore.get_historical_features


def _counted(*args, **kwargs):
    CALLS["get_historical_features"] += 1
    return _original(*args, **kwargs)


AsofDuckDBOfflineStore.get_historical_features = staticmethod(_counted)


def pytest_terminal_summary(terminalreporter):
    terminalreporter.write_line(f"ctflow ASOF store calls: {dict(CALLS)}")
