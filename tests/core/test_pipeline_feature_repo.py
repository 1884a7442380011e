"""A pipeline's own Feast repository (``data.feature_repo``), and a registry shared with the demo.

The demo's bootstrap used to replace the registry file and re-apply only its own definitions: a
team's views applied beside the demo's were lost at the next ``ctflow demo``.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from ctflow.spec import SpecError, parse_spec
from tests.conftest import PROJECT, demo_spec

pytestmark = pytest.mark.integration

EXAMPLE_REPO = "feature_repo/us_employment"


def _demo_repo_copy(source: Path, target: Path) -> Path:
    """The demo repository's declarations and parquet files (linked), without its registry."""
    target.mkdir()
    for name in ("feature_definitions.py", "feature_store.yaml", "bootstrap.py"):
        shutil.copy(source / name, target / name)
    (target / "data").mkdir()
    for parquet in (source / "data").glob("*.parquet"):
        (target / "data" / parquet.name).symlink_to(parquet)
    return target


def _module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_teams_views_survive_the_demo_bootstrap_and_only_its_own_stale_objects_go(feature_repo_ready, tmp_path):
    from feast import Entity, FeatureService, FeatureStore, FeatureView, Field, FileSource, ValueType
    from feast.types import Float64

    repo = _demo_repo_copy(feature_repo_ready, tmp_path / "feature_repo")
    bootstrap = _module(repo / "bootstrap.py", "bootstrap_copy")
    definitions = _module(repo / "feature_definitions.py", "definitions_copy")
    bootstrap.apply_definitions(repo, definitions)

    # A team applies its own view and service to the same registry, as `feast apply` would.
    dest = Entity(name="dest", join_keys=["dest"], value_type=ValueType.STRING)
    source = FileSource(name="dest_stats_source", path=str(repo / "data" / "route_delay_stats_daily.parquet"),
                        timestamp_field="event_timestamp")
    view = FeatureView(name="dest_stats", entities=[dest], ttl=timedelta(days=2), source=source,
                       schema=[Field(name="route_arr_delay_mean_28d", dtype=Float64)])
    FeatureStore(repo_path=str(repo)).apply([dest, source, view, FeatureService(name="team_service", features=[view])])

    # The demo's bootstrap applies again (a changed stamp, --force): the team's objects stay.
    assert "team_service" in bootstrap.apply_definitions(repo, definitions)
    # The demo drops one of its services: that one goes, and only that one.
    del definitions.flight_delay_v0
    services = bootstrap.apply_definitions(repo, definitions)
    assert services == ["flight_delay_v1", "team_service"]
    store = FeatureStore(repo_path=str(repo))
    assert {v.name for v in store.list_feature_views()} >= {"dest_stats", "origin_weather_hourly"}


def test_a_spec_names_its_repository_and_every_reader_uses_it(feature_repo_ready, monkeypatch):
    from ctflow.core import features
    from ctflow.hooks.feast import FeastHook

    spec = parse_spec(demo_spec(("features: flight_delay_v1", f"features: employment_change_v1\n  feature_repo: {EXAMPLE_REPO}")))
    # A deployment-wide connection points elsewhere: the spec's repository still wins.
    monkeypatch.setenv("AIRFLOW_CONN_CTFLOW_FEAST",
                       json.dumps({"conn_type": "ctflow_feast", "extra": {"repo_path": str(feature_repo_ready)}}))
    expected = (PROJECT / EXAMPLE_REPO).resolve()
    assert features.pipeline_repo(spec, feature_repo_ready) == expected
    assert FeastHook().repo_path(spec) == expected
    assert FeastHook().repo_path(parse_spec(demo_spec())) == feature_repo_ready  # no data.feature_repo: as today
    assert features.pipeline_repo(parse_spec(demo_spec())) == (PROJECT / "feature_repo").resolve()


def test_a_feast_config_selected_for_another_repository_is_not_applied_to_a_pipelines_own(monkeypatch):
    from ctflow.core.features import store_config

    demo, example = PROJECT / "feature_repo", PROJECT / EXAMPLE_REPO
    monkeypatch.setenv("FEAST_FS_YAML_FILE_PATH", str(demo / "feature_store.production.yaml"))
    assert store_config(demo) == (demo / "feature_store.production.yaml").resolve()
    assert store_config(example) == example / "feature_store.yaml"


def test_a_repository_outside_the_project_is_a_spec_error():
    text = demo_spec(("features: flight_delay_v1", "features: flight_delay_v1\n  feature_repo: ../elsewhere"))
    with pytest.raises(SpecError) as err:
        parse_spec(text, "x.yaml")
    (problem,) = err.value.problems
    assert "data.feature_repo" in str(problem) and "outside the project" in str(problem)
