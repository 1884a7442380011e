"""Replay on data the project has not seen: Seattle's rain 2012-2015, or NannyML's synthetic car loans.

    uv run --frozen python benchmarks/replay_unseen.py [--dataset seattle|car_loan|car_price] [--keep DIR] [--save RESULT.json]

Neither the demo nor the tests use these tables, and nothing is downloaded at run time.

``seattle`` (default): the ``seattle-weather`` table of the ``vega_datasets`` package (one row of
observations per day, 2012-2015). One row per day ``d`` and horizon ``h`` (1 to 5 days: one model
for several horizons, the horizon an entity key, since ``ctflow init --from`` needs one), with
what is known on ``d`` (the day's precipitation, temperatures, wind and weather, yesterday's
precipitation, the month) and the label: does it rain (any precipitation) on ``d + h``, known on
``d + h + 1`` (``label_known_at``). Replayed monthly, 2012-04 to 2015-12.

``car_loan``: NannyML's ``load_synthetic_car_loan_dataset()`` (it ships inside the ``nannyml``
wheel, installed in the venv ``benchmarks/cbpe.py`` compares with; the table is exported from
there to parquet). 100,000 loans, one every 8m43s from 2018-01-01 to 2019-08-29 (reference and
analysis periods joined, the analysis targets joined on ``id``); features ``car_value``,
``salary_range``, ``debt_to_income_ratio``, ``loan_length``, ``repaid_loan_on_prev_car``,
``size_of_downpayment``, ``driver_tenure``; label ``repaid``. NannyML's own predictions
(``y_pred``, ``y_pred_proba``) and the row ``id`` (a counter, not known to a model) are dropped,
so ctflow trains its own model. ``init --from`` picks ``salary_range`` as the entity key (a text
column that repeats); the Feast skeleton's point-in-time join finds each loan's own row (the
timestamps are unique). Replayed weekly (about 1,150 loans a week), 2018-04-01 (the start ``init``
wrote: a 90-day window after the first row) to 2019-08-25 (73 weeks).

``car_price``: NannyML's ``load_synthetic_car_price_dataset()``, exported alike: 120,000 used-car
sales, one every 33 s from 2017-01-24 to 2017-03-11; features ``car_age``, ``km_driven``,
``price_new``, ``accident_count``, ``door_count``, ``fuel``, ``transmission``; label ``y_true``
(the price: regression, ``rmse``). ``init --from`` picks ``fuel`` as the entity key. Replayed
daily (about 2,600 sales a day), 2017-02-08 (the start ``init`` wrote) to 2017-03-11 (32 steps).

Everything else is ctflow's own path, in a temporary project under /tmp: ``ctflow init --from``
writes the spec and the Feast skeleton, ``feast apply`` registers it, ``ctflow validate --deep``
checks it, ``ctflow replay`` replays it with what-ifs (:data:`WHAT_IFS`: raw drift; calibrated
without importance weighting; without the label-free performance estimate; no breach retrains,
only the cron) beside the spec's
defaults (drift of every feature, calibrated, importance-weighted; score drift calibrated; the
estimate on). The spec ``init`` wrote is changed only where the data or the policy under test
requires it (each change checked to be there once), and its drift section stays as written: no
drift setting and no performance floor (one would be tuned on this data), so between cron ticks
only drift and the estimate can retrain.

Seattle (:data:`SEATTLE_CHANGES`): when the label is known; the horizon (the entity key) as a
feature; training quarterly and on breaches (as the shipped examples). ``init`` monitors a month of
rows monthly itself (a week holds 35 rows, fewer than ``monitoring.min_rows``).

Car loans (:data:`CAR_LOAN_CHANGES`): ``salary_range`` (the entity key) as a feature, as NannyML's
model uses it; training quarterly and on breaches, as the shipped examples (``init``'s ``@weekly``
is the replay's step: every step would train, and the policy would not be tested); monitoring
weekly on a week of rows (the replay monitors once per step; ``init``'s ``@daily`` and 1-day
window would calibrate drift for windows of 165 rows while the replay judges 1,150). The label
stays as ``init`` wrote it (known at the loan's time): the data has no time its labels became
known, and an invented delay would be a tuning.

Car prices (:data:`CAR_PRICE_CHANGES`): ``fuel`` (the entity key) as a feature, and ``no_champion``,
as above. The window is ``init``'s: for a table that spans 46 days it writes 15 (a third of the
span) with a 2-day holdout, and the first run after one window (2017-02-08; its default 90 days
would put the first run after the data's end). ``init``'s cadence fits daily steps as it is
(training ``@weekly``, monitoring ``@daily`` a day of rows); the label likewise (no label time).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pandas as pd

HORIZONS = range(1, 6)
QUARTERLY = ('train: "@weekly"', 'train: "0 0 1 */3 *"')  # quarterly, as the flights demo
ON_NO_CHAMPION = ("retrain_on: [drift, performance]", "retrain_on: [drift, performance, no_champion]")


def key_as_feature(column: str) -> tuple[str, str]:
    """The entity key ``init`` took out of the features, back in: the model must see it."""
    return ("columns: []", f"columns: [{column}]")


def monitored_per_step(cron: str, window: str) -> list[tuple[str, str]]:
    """Monitoring once per replay step, on a step of rows (the replay judges one window a step)."""
    return [('monitor: "@daily"', f'monitor: "{cron}"'), ("monitoring:\n", f"monitoring:\n  window: {window}\n")]


#: (as ``ctflow init --from`` writes it, as this benchmark needs it), each must be found once.
SEATTLE_CHANGES = [
    ("label: rain ", "label: {column: rain, available_at: label_known_at} "),
    key_as_feature("horizon"),  # to tell 1 day from 5
    QUARTERLY, ON_NO_CHAMPION,  # init monitors a month of rows monthly: a week holds 35 rows, fewer than min_rows
]
CAR_LOAN_CHANGES = [key_as_feature("salary_range"), QUARTERLY, ON_NO_CHAMPION, *monitored_per_step("@weekly", "7d")]
CAR_PRICE_CHANGES = [key_as_feature("fuel"), ON_NO_CHAMPION]
WHAT_IFS = [
    "{name: 'raw drift', monitoring.drift.calibration: none, monitoring.drift.weighting: none}",
    "{name: 'calibrated', monitoring.drift.weighting: none}",
    "{name: 'no estimate', monitoring.estimated_performance: false}",
    "{name: 'cron only', schedule.retrain_on: [no_champion]}",  # no breach retrains: what monitoring adds
]
#: Runs in NannyML's venv: ``load_<argv[1]>_dataset()``'s reference and analysis (its targets joined
#: on ``id``) as one table, without NannyML's predictions and the row id, to parquet ``argv[2]``.
NANNYML_EXPORT = """
import sys, warnings
warnings.filterwarnings("ignore")
import nannyml as nml, pandas as pd

reference, analysis, targets = getattr(nml, f"load_{sys.argv[1]}_dataset")()
table = pd.concat([reference, analysis.merge(targets, on="id")], ignore_index=True)
table = table.drop(columns=[c for c in ("id", "y_pred", "y_pred_proba") if c in table])
table["timestamp"] = pd.to_datetime(table["timestamp"], utc=True)
table.sort_values("timestamp").to_parquet(sys.argv[2], index=False)
"""


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


def nannyml_table(dataset: str) -> pd.DataFrame:
    """NannyML's ``load_<dataset>_dataset()``, reference and analysis, exported from NannyML's venv."""
    from cbpe import ensure_nannyml  # beside this script

    with tempfile.TemporaryDirectory(prefix="ctflow-unseen-nannyml-") as tmp:
        path = Path(tmp) / f"{dataset}.parquet"
        subprocess.run([str(ensure_nannyml()), "-c", NANNYML_EXPORT, dataset, str(path)], check=True)
        return pd.read_parquet(path)


@dataclass(frozen=True)
class Dataset:
    name: str  # the pipeline's
    label: str
    table: Callable[[], pd.DataFrame]
    changes: list[tuple[str, str]]
    start: str  # the replay's first step
    end: str
    every: str
    start_with_window: str  # with --window: the first step a year after the data

    def edit_spec(self, text: str, window: str | None) -> str:
        changes = self.changes + ([("window: 90d", f"window: {window}")] if window else [])
        for old, new in changes:
            if text.count(old) != 1:
                raise SystemExit(f"`ctflow init --from` no longer writes {old!r} once: update {self.name}'s changes")
            text = text.replace(old, new)
        return text


DATASETS = {
    "seattle": Dataset("seattle_rain", "rain", rain_table, SEATTLE_CHANGES, "2012-04-01", "2016-01-01", "1mo",
                       "2013-01-01"),
    "car_loan": Dataset("car_loan", "repaid", partial(nannyml_table, "synthetic_car_loan"), CAR_LOAN_CHANGES, "2018-04-01", "2019-08-25", "7d",
                        "2019-01-01"),
    "car_price": Dataset("car_price", "y_true", partial(nannyml_table, "synthetic_car_price"), CAR_PRICE_CHANGES,
                         "2017-02-08", "2017-03-12", "1d", "2017-02-08"),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=DATASETS, default="seattle", help="the table to replay (default: seattle)")
    parser.add_argument("--keep", type=Path, help="build the project here and keep it (default: a temporary folder)")
    parser.add_argument("--save", type=Path, help="write the replay's whole result (JSON) here")
    parser.add_argument("--window", help="data.window instead of the 90d init writes, e.g. 365d "
                        "(the replay then starts a year after the data)")
    args = parser.parse_args()
    dataset = DATASETS[args.dataset]
    project = args.keep or Path(tempfile.mkdtemp(prefix="ctflow-unseen-"))
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "CTFLOW_PROJECT": str(project), "CTFLOW_HOME": str(project / ".ctflow"),
           "GIT_PYTHON_REFRESH": "quiet"}
    name, table_path = dataset.name, f"data/{dataset.name}.parquet"
    try:
        (project / "data").mkdir(parents=True, exist_ok=True)
        table = dataset.table()
        table.to_parquet(project / table_path, index=False)
        stamps = table.select_dtypes("datetimetz").iloc[:, 0]
        print(f"table: {len(table)} rows, {stamps.min()} .. {stamps.max()}", flush=True)
        subprocess.run([bin_dir / "ctflow", "init", name, "--from", table_path, "--label", dataset.label,
                        "--repo", "feature_repo", "--dir", "specs", "--force"], cwd=project, env=env, check=True)
        subprocess.run([bin_dir / "feast", "apply"], cwd=project / "feature_repo", env=env, check=True,
                       stdout=subprocess.DEVNULL)
        spec = project / "specs" / f"{name}.yaml"
        spec.write_text(dataset.edit_spec(spec.read_text(), args.window))
        subprocess.run([bin_dir / "ctflow", "validate", "--deep", str(spec)], cwd=project, env=env, check=True)
        replay = [bin_dir / "ctflow", "replay", name, "--spec", str(spec), "--feature-repo", "feature_repo",
                  "--start", dataset.start_with_window if args.window else dataset.start, "--end", dataset.end,
                  "--every", dataset.every]
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
