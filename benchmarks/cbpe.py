"""Benchmark ctflow's performance estimate (CBPE) on the 2013 flights, against NannyML 0.13.

    uv run python benchmarks/cbpe.py [--train-as-of 2013-02-01] [--end 2013-12-31] [--every 7d]

The demo spec's (``dags/specs/flight_delay.yaml``) champion is trained once as of
``--train-as-of``, as the replay's ``never`` policy does (:class:`ctflow.core.replay.bank.ModelBank`
over one :func:`ctflow.core.replay.frame.load_frame` feature frame: Feast point-in-time joins,
the CT DAG's fit path), and never retrained, so its performance wanders through the year. Its
reference is its 14-day holdout (scores and labels, time-ordered, as training logs them).

Per weekly window ``[t, t + 7d)`` (the replay's steps), on the window's flights:

* realized ``roc_auc`` (every label of the window, as known today);
* ctflow's estimate from the scores alone (:func:`ctflow.core.monitoring.estimate.estimate_window`)
  and its verdict: the spec's floor (``monitoring.performance``) or a drop beyond the band;
* NannyML 0.13's CBPE estimate on the same reference and the same window scores, run in its own
  venv (created on first use, cached: ``$CTFLOW_BENCH_NANNYML_VENV``, default
  ``/tmp/ctflow-bench-nannyml``); data exchanged through parquet files in ``/tmp/ctflow-bench-cbpe``.

Prints one table per window, the error of the estimate against the realized value, the
agreement of their breaches, ctflow vs NannyML (max/mean absolute difference, target < 0.01) and
the time of each (fit on the reference + every window's estimate, in-process timers), as a ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

PROJECT = Path(__file__).resolve().parents[1]
DEMO_SPEC = PROJECT / "dags" / "specs" / "flight_delay.yaml"
WORK = Path(os.environ.get("CTFLOW_BENCH_CBPE_DIR", "/tmp/ctflow-bench-cbpe"))
NANNYML_VENV = Path(os.environ.get("CTFLOW_BENCH_NANNYML_VENV", "/tmp/ctflow-bench-nannyml"))
NANNYML_SPEC = "nannyml==0.13.*"

# Runs in NannyML's venv: fit CBPE on the reference, estimate each window as one chunk; prints JSON.
NANNYML_SCRIPT = """
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import pandas as pd
import nannyml as nml

reference, windows, threshold = pd.read_parquet(sys.argv[1]), pd.read_parquet(sys.argv[2]), float(sys.argv[3])
for frame in (reference, windows):
    frame["pred"] = (frame["score"] >= threshold).astype(int)
started = time.perf_counter()
cbpe = nml.CBPE(problem_type="classification_binary", y_pred_proba="score", y_pred="pred", y_true="label",
                metrics=["roc_auc"], chunk_number=1)
cbpe.fit(reference)
fit_seconds = time.perf_counter() - started
out = []
started = time.perf_counter()
for window, rows in windows.groupby("window", sort=True):
    result = cbpe.estimate(rows[["score", "pred"]]).filter(period="analysis").to_df()  # not the reference's chunk
    out.append({"window": int(window), "value": float(result[("roc_auc", "value")].iloc[0])})
estimate_seconds = time.perf_counter() - started
print(json.dumps({"version": nml.__version__, "needs_calibration": bool(cbpe.needs_calibration),
                  "fit_seconds": fit_seconds, "estimate_seconds": estimate_seconds, "windows": out}))
"""


def ensure_nannyml() -> Path:
    from library_venv import ensure_venv  # beside this script

    # statsmodels: NannyML 0.13.1 imports it (for its plots) without declaring it.
    return ensure_venv(NANNYML_VENV, module="nannyml", version="0.13",
                       packages=[NANNYML_SPEC, "statsmodels", "pandas<3", "pyarrow"])


def champion_and_windows(train_as_of: datetime, end: datetime,
                         every: str) -> tuple[Any, pd.DataFrame, pd.DataFrame, float | None]:
    """The spec, the champion's time-ordered holdout (score, label) and every window's rows
    (window index, start, score, label), from one replay frame."""
    from ctflow.core.fit import LABEL
    from ctflow.core.replay.bank import ModelBank
    from ctflow.core.replay.frame import load_frame
    from ctflow.core.replay.timeline import make_steps
    from ctflow.spec import load_spec
    from ctflow.spec.durations import parse_duration

    subprocess.run([sys.executable, str(PROJECT / "feature_repo" / "bootstrap.py")], check=True, capture_output=True)
    spec = load_spec(DEMO_SPEC)
    data = load_frame(spec, train_as_of, end)
    bank = ModelBank(spec, data)
    champion = bank.train(train_as_of)
    holdout = champion.holdout_rows
    reference = pd.DataFrame({"time": holdout[spec.data.timestamp].to_numpy(),
                              "score": bank.scores(champion, holdout, ("holdout", champion.id)),
                              "label": holdout[LABEL].to_numpy(dtype=float)})
    reference = reference.sort_values("time", kind="stable").reset_index(drop=True)  # as training logs it
    parts = []
    for step in make_steps(train_as_of, end, parse_duration(every)):
        rows = data.between(step.start, step.end)
        if len(rows):
            parts.append(pd.DataFrame({"window": step.index, "start": step.start,
                                       "score": bank.scores(champion, rows, ("step", step.index)),
                                       "label": rows[LABEL].to_numpy(dtype=float)}))
    return spec, reference, pd.concat(parts, ignore_index=True), champion.threshold


def run_ctflow(spec: Any, reference: pd.DataFrame, windows: pd.DataFrame, threshold: float) -> dict[str, Any]:
    from ctflow.core.evaluation import compute_metrics
    from ctflow.core.monitoring.estimate import Reference, estimate_window

    config = spec.monitoring.performance
    started = time.perf_counter()
    fitted = Reference.fit("roc_auc", reference["score"].to_numpy(), reference["label"].to_numpy(), threshold=threshold)
    fit_seconds = time.perf_counter() - started
    rows, estimate_seconds = [], 0.0
    for window, part in windows.groupby("window", sort=True):
        scores = part["score"].to_numpy()
        started = time.perf_counter()
        estimate = estimate_window(fitted, scores, higher_is_better=True)
        estimate_seconds += time.perf_counter() - started
        realized = compute_metrics("classification", part["label"].to_numpy(), scores, threshold=threshold).get("roc_auc")
        rows.append({"window": int(window), "start": part["start"].iloc[0].date().isoformat(), "rows": len(part),
                     "realized": realized, "estimated": estimate.value, "lower": estimate.lower,
                     "estimate_breach": config.breach(estimate.value) or estimate.drop,
                     "realized_breach": config.breach(realized)})
    return {"calibrated": fitted.calibrator is not None, "reference": fitted.own_estimate(),
            "fit_seconds": fit_seconds, "estimate_seconds": estimate_seconds, "windows": rows}


def run_nannyml(reference: pd.DataFrame, windows: pd.DataFrame, threshold: float) -> dict[str, Any]:
    python = ensure_nannyml()
    ref_path, windows_path = WORK / "reference.parquet", WORK / "windows.parquet"
    reference[["score", "label"]].to_parquet(ref_path, index=False)
    windows[["window", "score", "label"]].to_parquet(windows_path, index=False)
    # NannyML posts usage statistics to segment.io unless told not to (offline: retries inside the timers).
    env = {**os.environ, "NML_DISABLE_USAGE_LOGGING": "1"}
    done = subprocess.run([str(python), "-c", NANNYML_SCRIPT, str(ref_path), str(windows_path), str(threshold)],
                          check=True, capture_output=True, text=True, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-as-of", default="2013-02-01")
    parser.add_argument("--end", default="2013-12-31")
    parser.add_argument("--every", default="7d")
    parser.add_argument("--save", type=Path, default=WORK / "cbpe.json")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    train_as_of = datetime.fromisoformat(args.train_as_of).replace(tzinfo=UTC)
    end = datetime.fromisoformat(args.end).replace(tzinfo=UTC)

    spec, reference, windows, threshold = champion_and_windows(train_as_of, end, args.every)
    threshold = 0.5 if threshold is None else threshold
    ours = run_ctflow(spec, reference, windows, threshold)
    theirs = run_nannyml(reference, windows, threshold)
    nanny = {w["window"]: w["value"] for w in theirs["windows"]}
    for row in ours["windows"]:
        row["nannyml"] = nanny.get(row["window"])
    report(spec, reference, ours, theirs)
    args.save.write_text(json.dumps({"ctflow": ours, "nannyml": theirs}, indent=1, default=str))
    print(f"\nsaved to {args.save}")


def report(spec: Any, reference: pd.DataFrame, ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    rows = [r for r in ours["windows"] if r["realized"] is not None and r["estimated"] is not None]

    def f(v: float | None) -> str:
        return "-" if v is None else f"{v:.4f}"

    print(f"reference: {len(reference)} holdout rows, ctflow calibrates: {ours['calibrated']}, "
          f"NannyML calibrates: {theirs['needs_calibration']}; reference estimate {ours['reference']:.4f}")
    print("\n| week | rows | realized | ctflow estimate | band floor | NannyML | estimate breach | realized breach |")
    print("|---|---:|---:|---:|---:|---:|---|---|")
    for r in ours["windows"]:
        print(f"| {r['start']} | {r['rows']} | {f(r['realized'])} | {f(r['estimated'])} | {f(r['lower'])} | "
              f"{f(r['nannyml'])} | {r['estimate_breach'] or ''} | {r['realized_breach'] or ''} |")
    error = np.array([r["estimated"] - r["realized"] for r in rows])
    print(f"\nestimate - realized over {len(rows)} weeks: MAE {np.abs(error).mean():.4f}, mean {error.mean():+.4f}, "
          f"max |.| {np.abs(error).max():.4f}; correlation {np.corrcoef([r['estimated'] for r in rows], [r['realized'] for r in rows])[0, 1]:.3f}")
    est = {r["window"] for r in rows if r["estimate_breach"]}
    real = {r["window"] for r in rows if r["realized_breach"]}
    floor_only = {r["window"] for r in rows if spec.monitoring.performance.breach(r["estimated"])}
    print(f"breaches: realized (floor {spec.monitoring.performance.needs}) {len(real)} weeks; estimate {len(est)} "
          f"(floor {len(floor_only)}, band drop {len(est - floor_only)}); both {len(est & real)}, "
          f"estimate only {len(est - real)}, realized only {len(real - est)}")
    diffs = np.array([abs(r["estimated"] - r["nannyml"]) for r in rows if r["nannyml"] is not None])
    print(f"ctflow vs NannyML {theirs['version']} over {len(diffs)} weeks: max |diff| {diffs.max():.2g}, "
          f"mean {diffs.mean():.2g} (target < 0.01)")
    ours_s = ours["fit_seconds"] + ours["estimate_seconds"]
    theirs_s = theirs["fit_seconds"] + theirs["estimate_seconds"]
    print(f"time: ctflow fit {ours['fit_seconds']:.3f} s + estimates {ours['estimate_seconds']:.3f} s = {ours_s:.3f} s; "
          f"NannyML fit {theirs['fit_seconds']:.3f} s + estimates {theirs['estimate_seconds']:.3f} s = {theirs_s:.3f} s; "
          f"NannyML / ctflow = {theirs_s / ours_s:.1f}x")


if __name__ == "__main__":
    main()
