"""``ctflow validate --deep``: each data-contract mistake of ``tests/fixtures/data_contract`` gives one clear error.

Every file there is ``good.yaml`` with one thing wrong, and starts with::

    # data: <variant of the entity table this test writes: good, none, csv, no_key, key_codes, clash>
    # expect: <line> <field.path> <substring of the message>
    # suggest: <the "did you mean" name, or ->

The entity table and the view's table are written here with pandas and the Feast repository
applied here with Feast's own API (only the tables' schemas are read), so each mistake is what a
user would make.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from ctflow.cli import main
from tests.conftest import PROJECT

FIXTURES = PROJECT / "tests" / "fixtures" / "data_contract"
CITIES = ("lyon", "nice", "oslo", "rome")
MISTAKES = sorted(p for p in FIXTURES.glob("*.yaml") if p.name != "good.yaml")

FEATURE_STORE_YAML = """\
project: contract_test
provider: local
registry: data/registry.db
online_store: {type: sqlite, path: data/online_store.db}
offline_store: {type: ctflow.core.feast_asof.store.AsofDuckDBOfflineStore}
entity_key_serialization_version: 3
"""


@pytest.fixture(scope="module")
def feature_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Feast repository declaring feature service ``city_v1`` (view ``city_stats``, join key ``city``),
    with the view's table stored as declared."""
    from feast import Entity, FeatureService, FeatureStore, FeatureView, Field, FileSource, ValueType
    from feast.types import Float64, Int64

    repo = tmp_path_factory.mktemp("feature_repo")
    (repo / "feature_store.yaml").write_text(FEATURE_STORE_YAML)
    city = Entity(name="city", join_keys=["city"], value_type=ValueType.STRING)
    source = FileSource(name="city_stats_source", path=str(repo / "data" / "city_stats.parquet"),
                        timestamp_field="event_timestamp")
    view = FeatureView(name="city_stats", entities=[city], ttl=timedelta(days=62), source=source,
                       schema=[Field(name="median_income", dtype=Float64), Field(name="listings", dtype=Int64)])
    FeatureStore(repo_path=str(repo)).apply([city, source, view, FeatureService(name="city_v1", features=[view])])
    months = pd.date_range("2023-12-01", periods=11, freq="MS", tz="UTC")
    pd.DataFrame([(c, m, 30_000.0 + i, i) for i, (c, m) in enumerate((c, m) for c in CITIES for m in months)],
                 columns=["city", "event_timestamp", "median_income", "listings"]).to_parquet(
        repo / "data" / "city_stats.parquet", index=False)
    return repo


def entity_rows(variant: str) -> pd.DataFrame:
    """40 rows: 4 cities x 10 months, a 0/1 label and columns for every mistake to name."""
    months = pd.date_range("2024-01-01", periods=10, freq="MS", tz="UTC")
    rows = pd.DataFrame([(city, month) for city in CITIES for month in months],
                        columns=["city", "month"])
    n = len(rows)
    rows["month_text"] = rows["month"].dt.strftime("%Y-%m")
    rows["region"] = ["north", "south", "east", "west"] * (n // 4)
    rows["population"] = range(1000, 1000 + n)
    rows["sold"] = [0, 1] * (n // 2)
    rows["tier"] = [1, 2] * (n // 2)
    rows["grade"] = [1, 2, 3, 4] * (n // 4)
    rows["price"] = [100.0 + i for i in range(n)]
    if variant == "no_key":
        rows = rows.drop(columns="city")
    if variant == "key_codes":  # an encoding step's integer codes for the cities
        rows["city"] = pd.factorize(rows["city"])[0]
    if variant == "clash":
        rows["median_income"] = 1.0
    return rows


@pytest.fixture
def project(tmp_path: Path, feature_repo: Path, monkeypatch: pytest.MonkeyPatch):
    """A project folder holding an entity table in the given variant; spec paths resolve inside it."""

    def make(variant: str) -> Path:
        (tmp_path / "data").mkdir(exist_ok=True)
        if variant == "csv":
            entity_rows("good").to_csv(tmp_path / "data" / "rows.csv", index=False)
        elif variant != "none":
            entity_rows(variant).to_parquet(tmp_path / "data" / "rows.parquet", index=False)
        return tmp_path

    monkeypatch.setenv("CTFLOW_PROJECT", str(tmp_path))
    monkeypatch.setenv("CTFLOW_FEATURE_REPO", str(feature_repo))
    return make


def header(path: Path) -> tuple[str, int, str, str, str | None]:
    lines = path.read_text().splitlines()
    variant = lines[0].removeprefix("# data: ")
    line, field, substring = lines[1].removeprefix("# expect: ").split(" ", 2)
    suggestion = lines[2].removeprefix("# suggest: ")
    return variant, int(line), field, substring, None if suggestion == "-" else suggestion


def deep(spec: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    """The real command in-process: an exception would fail the test, so exit 1 means no traceback."""
    code = main(["validate", "--deep", str(spec)])
    captured = capsys.readouterr()
    assert captured.err == ""
    return code, captured.out.splitlines()


def test_the_good_spec_keeps_the_contract(project, capsys):
    project("good")
    code, lines = deep(FIXTURES / "good.yaml", capsys)
    assert (code, lines[-1]) == (0, "1 spec(s) checked, 0 invalid, 0 problem(s)"), lines


def test_there_is_a_mistake_per_item_of_the_contract():
    assert len(MISTAKES) >= 15
    fields = {header(p)[2].split("[")[0] for p in MISTAKES}
    assert {"data.entities", "data.timestamp", "data.label.column", "data.label.positive_when", "data.features",
            "data.columns", "model.categorical", "model.exclude", "quality.ranges.region", "quality.label_balance",
            "monitoring.drift.columns"} <= fields


@pytest.mark.parametrize("spec", MISTAKES, ids=lambda p: p.stem)
def test_each_mistake_gives_one_clear_error(spec: Path, project, capsys):
    variant, line, field, substring, suggestion = header(spec)
    project(variant)
    code, lines = deep(spec, capsys)
    assert code == 1
    assert lines[-1] == "1 spec(s) checked, 1 invalid, 1 problem(s)", lines
    [problem] = lines[:-1]
    assert problem.startswith(f"{spec}:{line}: {field}: "), problem
    assert substring in problem, problem
    assert problem.endswith(f" (did you mean {suggestion!r}?)") == (suggestion is not None), problem


def test_shallow_validate_reads_no_data(project, capsys):
    """Without --deep, a spec whose data breaks the contract still validates: it reads no file."""
    project("none")
    code, lines = validate_shallow(FIXTURES / "label_multiclass.yaml", capsys)
    assert code == 0, lines


def validate_shallow(spec: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    code = main(["validate", str(spec)])
    return code, capsys.readouterr().out.splitlines()


def test_a_broken_feast_repository_is_a_finding_not_a_traceback(project, tmp_path_factory, monkeypatch, capsys):
    project("good")
    repo = tmp_path_factory.mktemp("broken_repo")
    (repo / "feature_store.yaml").write_text("project: [unclosed\nprovider: local\n")
    monkeypatch.setenv("CTFLOW_FEATURE_REPO", str(repo))
    code, lines = deep(FIXTURES / "good.yaml", capsys)
    assert code == 1
    assert len(lines) == 2, lines
    problem = lines[0]
    assert problem.startswith(f"{FIXTURES / 'good.yaml'}:11: data.features: cannot read the registry of Feast repository {repo}")


@pytest.mark.integration
def test_the_demo_spec_keeps_the_contract(feature_repo_ready: Path, capsys):
    """The flights spec against the bootstrapped demo repository (336,776 rows: only a sample is read)."""
    code, lines = deep(PROJECT / "dags" / "specs" / "flight_delay.yaml", capsys)
    assert (code, lines[-1]) == (0, "1 spec(s) checked, 0 invalid, 0 problem(s)"), lines
