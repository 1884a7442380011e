"""Feast declarations of the us_employment example: monthly US payroll employment per industry.

Declarations only: ``bootstrap.py`` beside this file builds the parquet files from the
``vega_datasets`` package and applies these objects (``feast apply`` in this folder does the
same apply).

The Bureau of Labor Statistics publishes month M's figures on the first Friday of month M+1,
at the latest on its 7th day. So a month's values are stamped as *known* at 00:00 UTC on the
8th of the next month, and a prediction for month M is made on the 10th of M: the point-in-time
join then hands it month M-1's figures and never month M's.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.types import Float64

# Absolute, so that the offline store finds the files whatever the working directory.
DATA = Path(__file__).resolve().parent / "data"

#: Entity and label table, one row per industry and month (read by ctflow, not a Feast source).
ENTITIES_PATH = DATA / "industry_months.parquet"
EMPLOYMENT_PATH = DATA / "industry_employment_monthly.parquet"

industry = Entity(
    name="industry",
    join_keys=["industry"],
    value_type=ValueType.STRING,
    description="A BLS Current Employment Statistics series, e.g. construction, retail_trade.",
)

industry_employment_monthly_source = FileSource(
    name="industry_employment_monthly_source",
    path=str(EMPLOYMENT_PATH),
    timestamp_field="event_timestamp",
    description="Seasonally adjusted payroll employment per industry, stamped when published.",
)

industry_employment_monthly = FeatureView(
    name="industry_employment_monthly",
    entities=[industry],
    # One row per month, published about 5 weeks after the month began: 45 days covers one release.
    ttl=timedelta(days=45),
    schema=[
        Field(name="employment_k", dtype=Float64, description="Employees, thousands (last published month)."),
        Field(name="change_1m_pct", dtype=Float64, description="Change over 1 month, %."),
        Field(name="change_3m_pct", dtype=Float64, description="Change over 3 months, %."),
        Field(name="change_12m_pct", dtype=Float64, description="Change over 12 months, %."),
        Field(name="nonfarm_change_1m_pct", dtype=Float64, description="All nonfarm employment, change over 1 month, %."),
    ],
    source=industry_employment_monthly_source,
    online=True,
    tags={"team": "labour-market", "granularity": "monthly"},
)

employment_change_v1 = FeatureService(
    name="employment_change_v1",
    features=[industry_employment_monthly],
    description="Last published month's level and momentum of the industry and of all nonfarm employment.",
)
