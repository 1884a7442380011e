"""Online features (issue #14): the materialize step fills Feast's online store, ``ctflow predict``
scores the champion from it, with SQLite (the embedded store) and with this machine's Redis.

The champion is the session's ``served_champion`` (:mod:`tests.served_champion`, 10 days of flights),
which ``test_served_model`` reads too.
Each test reads the project's Feast registry through its own copy of the repository's
configuration, so its online store and materialization intervals are its own.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd
import pytest

from ctflow.spec import parse_spec
from tests.conftest import isolated_home
from tests.online_store import fresh_repo
from tests.served_champion import AS_OF, MODEL, SPEC_TEXT, ServedChampion

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def champion(served_champion: ServedChampion):
    """The served champion's MLflow store and ctflow home, for this module's tests (they only read them)."""
    with isolated_home(served_champion.folder):
        yield served_champion.train


def _flight() -> dict:
    """A real flight of the day before AS_OF whose aircraft is in the registry data."""
    flights = pd.read_parquet(Path(__file__).resolve().parents[2] / "feature_repo" / "data" / "flights.parquet")
    day = flights[(flights.scheduled_departure >= AS_OF - pd.Timedelta(days=1)) & (flights.scheduled_departure < AS_OF)]
    return day[day.tailnum.str.startswith("N") & (day.carrier == "UA")].iloc[0].to_dict()


def _predict(repo: Path, flight: dict, *extra: str) -> tuple[int, str]:
    from ctflow.cli import main

    keys = [f"--entity={k}={flight[k]}" for k in ("origin", "carrier", "route", "tailnum", "dest")]
    row = json.dumps({k: flight[k] for k in ("distance", "dep_hour", "day_of_week")})
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["predict", MODEL, *keys, "--row", row, "--feature-repo", str(repo), *extra])
    return code, out.getvalue()


def _expected(repo: Path, flight: dict) -> float:
    """The champion's probability for the flight with point-in-time features as of AS_OF (the offline path)."""
    import mlflow

    from ctflow.core import features

    rows = pd.DataFrame([{**flight, "scheduled_departure": AS_OF}]).drop(columns=["arr_delay", "arrived_at"])
    frame = features.get_historical_features(repo, "flight_delay_v1", rows, timestamp="scheduled_departure")
    model = mlflow.pyfunc.load_model(f"models:/{MODEL}@champion")
    inputs = model.metadata.get_input_schema().inputs
    doubles = {c.name: "float64" for c in inputs if c.type.name == "double"}
    return float(model.predict(frame[[c.name for c in inputs]].astype(doubles))[0, 1])


def _materialize_and_predict(repo: Path) -> dict:
    from ctflow.core import online

    spec = parse_spec(SPEC_TEXT)
    first = online.materialize(spec, as_of=AS_OF, feature_repo=repo)
    assert {facts["action"] for facts in first["views"].values()} == {"initial"}
    # The aircraft view starts at its own rows, stamped before any window, not at as_of - ttl.
    assert first["views"]["aircraft"]["start"] == "2012-12-01T00:00:00+00:00"
    again = online.materialize(spec, as_of=AS_OF, feature_repo=repo)
    assert {facts["action"] for facts in again["views"].values()} == {"current"}  # idempotent

    flight = _flight()
    code, out = _predict(repo, flight, "--json", "--as-of", AS_OF.isoformat())
    assert code == 0, out
    result = json.loads(out)
    assert result["probability"] == pytest.approx(_expected(repo, flight), abs=1e-9)
    assert result["label"] == int(result["probability"] >= 0.3)  # the spec's decision_threshold, logged
    assert result["positive_class"] == "arr_delay > 15"  # what label 1 means, from the model's metadata
    used = result["features"]
    assert used["dep_hour"]["source"] == "request" and used["dep_hour"]["value"] == flight["dep_hour"]
    assert used["plane_seats"]["source"] == "online" and used["plane_seats"]["value"] is not None
    # The weather is the report known at AS_OF (stamped at the end of its hour): no age.
    assert used["temp"]["age_seconds"] == 0.0 and used["carrier_arr_delay_mean_7d"]["age_seconds"] > 0
    return result


def test_materialize_then_predict_with_the_sqlite_online_store(champion, tmp_path: Path, feature_repo_ready):
    repo = fresh_repo(tmp_path / "repo", {"type": "sqlite", "path": str(tmp_path / "online.db")}, feature_repo_ready)
    _materialize_and_predict(repo)

    code, out = _predict(repo, _flight(), "--as-of", AS_OF.isoformat())
    assert code == 0 and f"{MODEL} v1 (flight_delay_v1): probability" in out and "plane_seats" in out, out
    assert "at threshold 0.3; label 1 is arr_delay > 15)" in out, out
    # An --as-of before the materialized values: the store has only the latest, from its future.
    code, out = _predict(repo, _flight(), "--as-of", (AS_OF - pd.Timedelta(days=30)).isoformat())
    assert code == 0 and "after --as-of: the online store keeps the latest value only" in out, out
    assert "(age -" not in out, out
    code, out = _predict(repo, {**_flight(), "tailnum": ""})
    assert code == 2 and "tailnum not given" in out, out


@pytest.mark.redis
def test_materialize_then_predict_with_redis(champion, tmp_path: Path, feature_repo_ready):
    """The production profile's online store: Redis (this machine's, a throw-away database)."""
    from ctflow.deploy import topology
    from tests.production.native import REDIS_URL, require, throwaway_redis_dbs

    require("redis")
    redis = urlparse(REDIS_URL)
    with throwaway_redis_dbs(1) as (db,):
        connection = topology.feast_redis_connection_string(
            host=redis.hostname or "127.0.0.1", port=redis.port or 6379, db=db, password=redis.password)
        repo = fresh_repo(tmp_path / "repo", {"type": "redis", "connection_string": connection}, feature_repo_ready)
        _materialize_and_predict(repo)
        import redis as client

        assert client.Redis.from_url(REDIS_URL, db=db).dbsize() > 1  # features, beside the claim key
