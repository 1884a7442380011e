"""Replay on data the project has not seen: Seattle's daily weather 2012-2015, will it rain in h days?

    uv run --frozen python benchmarks/replay_unseen.py [--keep DIR] [--save RESULT.json]

The table comes from the ``vega_datasets`` package (``seattle-weather``: one row of observations
per day, 2012-2015; nothing is downloaded). Neither the demo nor the tests use it. One row per day
``d`` and horizon ``h`` (1 to 5 days: one model for several horizons, the horizon an entity key,
since ``ctflow init --from`` needs one), with what is known on ``d`` (the day's precipitation,
temperatures, wind and weather, yesterday's precipitation, the month) and the label: does it rain
(any precipitation) on ``d + h``, known on ``d + h + 1`` (``label_known_at``).

Everything else is ctflow's own path, in a temporary project under /tmp: ``ctflow init --from``
writes the spec and the Feast skeleton, ``feast apply`` registers it, ``ctflow validate --deep``
checks it, ``ctflow replay`` replays it monthly with two what-ifs (raw drift; calibrated without
importance weighting) beside the spec's default drift (every feature, calibrated,
importance-weighted). The spec ``init`` wrote is changed only where the data or the policy under
test requires it (:data:`SPEC_CHANGES`, each checked to be there once): when the label is known;
the horizon (the entity key) as a feature;
training quarterly and on breaches (as the shipped examples); monthly monitoring of a month of
rows (a week holds 35 rows, fewer than ``monitoring.min_rows``). Its drift section stays as
written (the defaults) and it sets no performance floor (one would be tuned on this data), so
between quarterly ticks only drift can retrain.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

NAME = "seattle_rain"
HORIZONS = range(1, 6)
#: (as ``ctflow init --from`` writes it, as this benchmark needs it), each must be found once.
SPEC_CHANGES = [
    ("label: rain ", "label: {column: rain, available_at: label_known_at} "),
    ("columns: []", "columns: [horizon]"),  # the entity key, which the model must see to tell 1 day from 5
    ('train: "@weekly"', 'train: "0 0 1 */3 *"'),  # quarterly, as the flights demo
    ('monitor: "@daily"', 'monitor: "@monthly"'),
    ("retrain_on: [drift, performance]", "retrain_on: [drift, performance, no_champion]"),
    ("monitoring:\n", "monitoring:\n  window: 1mo\n"),  # the replay's step
]
WHAT_IFS = [
    "{name: 'raw drift', monitoring.drift.calibration: none, monitoring.drift.weighting: none}",
    "{name: 'calibrated', monitoring.drift.weighting: none}",
]


def rain_table() -> pd.DataFrame:
    """One row per day and horizon: what is known that day, and whether it rains ``horizon`` days later."""
    from vega_datasets import data

    days = data.seattle_weather().set_index("date").sort_index().asfreq("D")
    wet = (days["precipitation"] > 0).astype("int64")
    frames = []
    for h in HORIZONS:
        frames.append(pd.DataFrame({
            "predicted_at": days.index.tz_localize("UTC"),
            "label_known_at": (days.index + pd.Timedelta(days=h + 1)).tz_localize("UTC"),
            "horizon": h,
            "month": days.index.month,
            "weather": days["weather"].to_numpy(),
            "precipitation": days["precipitation"].to_numpy(),
            "precipitation_yesterday": days["precipitation"].shift(1).to_numpy(),
            "temp_max": days["temp_max"].to_numpy(),
            "temp_min": days["temp_min"].to_numpy(),
            "wind": days["wind"].to_numpy(),
            "rain": wet.shift(-h).to_numpy(),
        }))
    table = pd.concat(frames, ignore_index=True).dropna(subset=["rain"])
    return table.astype({"rain": "int64"}).sort_values(["predicted_at", "horizon"], ignore_index=True)


def edit_spec(text: str, window: str | None) -> str:
    changes = SPEC_CHANGES + ([("window: 90d", f"window: {window}")] if window else [])
    for old, new in changes:
        if text.count(old) != 1:
            raise SystemExit(f"`ctflow init --from` no longer writes {old!r} once: update SPEC_CHANGES")
        text = text.replace(old, new)
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="build the project here and keep it (default: a temporary folder)")
    parser.add_argument("--save", type=Path, help="write the replay's whole result (JSON) here")
    parser.add_argument("--window", help="data.window instead of the 90d init writes for daily rows, e.g. 365d "
                        "(the replay then starts a year after the data)")
    args = parser.parse_args()
    project = args.keep or Path(tempfile.mkdtemp(prefix="ctflow-unseen-"))
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "CTFLOW_PROJECT": str(project), "CTFLOW_HOME": str(project / ".ctflow"),
           "GIT_PYTHON_REFRESH": "quiet"}
    try:
        (project / "data").mkdir(parents=True, exist_ok=True)
        table = rain_table()
        table.to_parquet(project / "data" / "rain.parquet", index=False)
        print(f"table: {len(table)} rows, {table['predicted_at'].min()} .. {table['predicted_at'].max()}", flush=True)
        subprocess.run([bin_dir / "ctflow", "init", NAME, "--from", "data/rain.parquet", "--label", "rain", "--repo", "feature_repo", "--dir", "specs", "--force"],
                       cwd=project, env=env, check=True)
        subprocess.run([bin_dir / "feast", "apply"], cwd=project / "feature_repo", env=env, check=True,
                       stdout=subprocess.DEVNULL)
        spec = project / "specs" / f"{NAME}.yaml"
        spec.write_text(edit_spec(spec.read_text(), args.window))
        subprocess.run([bin_dir / "ctflow", "validate", "--deep", str(spec)], cwd=project, env=env, check=True)
        replay = [bin_dir / "ctflow", "replay", NAME, "--spec", str(spec), "--feature-repo", "feature_repo",
                  "--start", "2013-01-01" if args.window else "2012-04-01", "--end", "2016-01-01", "--every", "1mo"]
        replay += [arg for what_if in WHAT_IFS for arg in ("--what-if", what_if)]
        if args.save:
            replay += ["--save", str(args.save.resolve())]
        print(spec.read_text(), flush=True)
        return subprocess.run(replay, cwd=project, env=env).returncode
    finally:
        if args.keep is None:
            shutil.rmtree(project, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
