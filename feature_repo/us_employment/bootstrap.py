"""Build the us_employment example's data from the ``vega_datasets`` package and apply it to Feast.

Run ``python feature_repo/us_employment/bootstrap.py [--force]`` from anywhere, or call
:func:`bootstrap`. Idempotent: when the stamp (this code, the declarations, the store config,
the repo location) is current and the registry exists, nothing is done. It writes, under
``data/``:

* ``industry_months.parquet``: the entity and label table, one row per industry and month M,
  timestamped the 10th of M (when the prediction is made), labelled with the industry's
  employment change in M, %;
* ``industry_employment_monthly.parquet``: the Feast source, month M's level and lagged
  changes per industry, stamped the 8th of M+1 (when the BLS has published them);

then applies ``feature_definitions.py`` in place (only its own objects: ctflow.core.feast_apply).
Nothing is downloaded: the data (US payroll employment, 2006-2015, seasonally adjusted,
thousands) ships inside the vega_datasets wheel.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd

REPO = Path(__file__).resolve().parent
#: When a prediction for month M is made, and when month M's figures are published (day of the next month).
PREDICTED_ON_DAY = 10
PUBLISHED_ON_DAY = 8
#: The dataset's columns that are not an industry's employment series.
NOT_SERIES = ("month", "nonfarm_change")
OWNER = "ctflow-example:us_employment"


def bootstrap(repo_path: str | Path = REPO, force: bool = False) -> dict[str, Any]:
    """Write both parquet files and apply the definitions unless the stamp says they are current."""
    started = time.perf_counter()
    repo = Path(repo_path).resolve()
    (repo / "data").mkdir(exist_ok=True)
    from ctflow.concurrent_files import exclusive

    # Two processes bootstrapping at once (parallel tests, two tasks) take turns.
    with exclusive(repo / "data" / ".bootstrap.lock"):
        return _bootstrap(repo, force, started)


def _bootstrap(repo: Path, force: bool, started: float) -> dict[str, Any]:
    definitions = _load_definitions(repo)
    stamp = _stamp(repo)
    stamp_path = repo / "data" / "bootstrap.stamp.json"
    outputs = {"entities": Path(definitions.ENTITIES_PATH), "employment": Path(definitions.EMPLOYMENT_PATH)}
    current = stamp_path.exists() and json.loads(stamp_path.read_text()).get("stamp") == stamp
    if not force and current and (repo / "data" / "registry.db").exists() and all(p.exists() for p in outputs.values()):
        _say(f"feature repo {repo} is up to date (stamp {stamp[:12]}): nothing to do")
        return {"status": "up-to-date", "repo": str(repo)}
    stamp_path.unlink(missing_ok=True)
    monthly = read_employment()
    entities, employment = build_entities(monthly), build_employment(monthly)
    entities.to_parquet(outputs["entities"], index=False)
    employment.to_parquet(outputs["employment"], index=False, coerce_timestamps="us")
    from ctflow.core.feast_apply import declared_objects, timed_apply

    applied = timed_apply(repo, declared_objects(definitions), owner=OWNER)
    stamp_path.write_text(json.dumps({"stamp": stamp}) + "\n")
    _say(f"feature repo {repo} ready: {len(entities):,} entity rows, {len(employment):,} feature rows, "
         f"feature services {', '.join(applied['services'])} ({time.perf_counter() - started:.1f} s)")
    return {"status": "built", "repo": str(repo), "rows": len(entities)}


def read_employment() -> pd.DataFrame:
    """The package's table, long: one row per (industry, month) with ``employment_k``."""
    spec = importlib.util.find_spec("vega_datasets")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the vega_datasets package is not installed in this environment")
    # Read the bundled file directly: the package's loader fetches its non-local datasets over HTTP.
    path = Path(next(iter(spec.submodule_search_locations))) / "_data" / "us-employment.csv"
    wide = pd.read_csv(path, parse_dates=["month"])
    series = [c for c in wide.columns if c not in NOT_SERIES]
    long = wide.melt(id_vars="month", value_vars=series, var_name="industry", value_name="employment_k")
    return long.sort_values(["industry", "month"], ignore_index=True)


def build_employment(monthly: pd.DataFrame) -> pd.DataFrame:
    """Month M's level and its changes over 1, 3 and 12 months, stamped when published (the 8th of M+1)."""
    by = monthly.groupby("industry")["employment_k"]
    frame = monthly[["industry"]].copy()
    frame["event_timestamp"] = _day_of_next_month(monthly["month"], PUBLISHED_ON_DAY)
    frame["employment_k"] = monthly["employment_k"].astype("float64")
    for months in (1, 3, 12):
        frame[f"change_{months}m_pct"] = 100 * (monthly["employment_k"] / by.shift(months) - 1)
    nonfarm = frame.loc[monthly["industry"] == "nonfarm", ["event_timestamp", "change_1m_pct"]]
    frame = frame.merge(nonfarm.rename(columns={"change_1m_pct": "nonfarm_change_1m_pct"}), on="event_timestamp")
    return frame.sort_values(["industry", "event_timestamp"], ignore_index=True)


def build_entities(monthly: pd.DataFrame) -> pd.DataFrame:
    """One row per industry and month M (the first month has no change): predicted on the 10th of M,
    labelled with M's change over M-1, %, which is known from the 8th of M+1."""
    previous = monthly.groupby("industry")["employment_k"].shift(1)
    frame = pd.DataFrame({
        "industry": monthly["industry"].astype(object),
        "predicted_at": (monthly["month"] + pd.Timedelta(days=PREDICTED_ON_DAY - 1)).dt.tz_localize("UTC"),
        "month_of_year": monthly["month"].dt.month.astype("int64"),
        "change_pct": 100 * (monthly["employment_k"] / previous - 1),
        "label_known_at": _day_of_next_month(monthly["month"], PUBLISHED_ON_DAY),
    })
    frame = frame[previous.notna()]
    return frame.sort_values(["predicted_at", "industry"], ignore_index=True)


def _day_of_next_month(month: pd.Series, day: int) -> pd.Series:
    return (month + pd.offsets.MonthBegin(1) + pd.Timedelta(days=day - 1)).dt.tz_localize("UTC")


def _load_definitions(repo: Path) -> ModuleType:
    path = repo / "feature_definitions.py"
    spec = importlib.util.spec_from_file_location(f"_us_employment_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}",
                                                  path)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"no feature_definitions.py in {repo}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _stamp(repo: Path) -> str:
    digest = hashlib.sha256()
    for name in (Path(__file__).name, "feature_definitions.py", "feature_store.yaml"):
        digest.update((repo / name).read_bytes() if (repo / name).exists() else b"")
    digest.update(str(repo).encode())  # sources are registered with absolute paths
    return digest.hexdigest()


def _say(line: str) -> None:
    print(f"bootstrap: {line}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="rebuild even if the outputs are current")
    bootstrap(REPO, force=parser.parse_args(argv).force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
