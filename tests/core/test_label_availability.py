"""A label that arrives after ``as_of`` is never trained on nor held out: the DAG's steps and the replay.

The entity table is the demo's own 2013 flights, read with ctflow's reader, with the arrival time
(``data.label.available_at``) of some flights moved to after ``as_of``, as a late-landing or
late-reported flight would have it; their labels are in the table, as in any backfill.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from ctflow.core import features, labels, replay, steps
from ctflow.core.fit import split_window
from ctflow.spec import SpecError, parse_spec
from tests.conftest import demo_spec

AS_OF = datetime(2013, 3, 15, tzinfo=UTC)
LATE_AT = AS_OF + timedelta(days=1)


def _panel_spec(*changes: tuple[str, str]):
    return parse_spec(demo_spec(("window: 60d", "window: 3mo"), ("holdout: 14d", "holdout: 1mo"), *changes))


def test_a_monthly_label_known_a_month_later_stays_out_until_then():
    """The issue's panel: as of 2012-01-01T02:00 the rows of 2012-01-01 (labels on Feb 1) are out."""
    spec = _panel_spec(("available_at: arrived_at", "available_after: 1mo"), ("  window: 7d\n", "  window: 1mo\n"))
    months = pd.date_range("2011-09-01", "2012-01-01", freq="MS", tz="UTC")
    rows = pd.DataFrame({"scheduled_departure": months.repeat(2), "arr_delay": range(10)})
    rows, unlabelled = steps.derive_label(rows, spec)
    as_of = datetime(2012, 1, 1, 2, tzinfo=UTC)
    start, end = labels.ground_truth_window(spec, as_of)
    assert (start, end) == (datetime(2011, 11, 1, 2, tzinfo=UTC), datetime(2011, 12, 1, 2, tzinfo=UTC))
    window = rows[rows["scheduled_departure"] >= spec.data.window.before(as_of)]  # [2011-10-01T02, as_of)
    known, pending = labels.known_by(window, as_of)
    assert (unlabelled, pending) == (0, 2)
    assert known["scheduled_departure"].max() == pd.Timestamp("2011-12-01", tz="UTC")
    split = split_window(spec, known, as_of=as_of)  # holdout [2011-12-01T02, as_of): the Dec rows are older
    assert split.holdout_start == datetime(2011, 12, 1, 2, tzinfo=UTC)
    assert split.holdout_rows.empty and len(split.train_rows) == 4


def test_the_deprecated_ground_truth_delay_is_the_label_delay_and_not_both():
    with pytest.warns(FutureWarning, match=r"<spec>:\d+: monitoring.ground_truth_delay: deprecated: write "
                                           "data.label.available_after: 2d instead"):
        spec = parse_spec(demo_spec(("    available_at: arrived_at", ""),
                                    ("  window: 7d\n", "  window: 7d\n  ground_truth_delay: 2d\n")))
    assert spec.label_available_after == timedelta(days=2)
    rows = pd.DataFrame({"scheduled_departure": [pd.Timestamp("2013-03-01", tz="UTC")], "arr_delay": [20.0]})
    assert labels.known_at(rows, spec).iloc[0] == pd.Timestamp("2013-03-03", tz="UTC")
    with pytest.raises(SpecError, match="monitoring: ground_truth_delay .* keep only data.label's"):
        parse_spec(demo_spec(("  window: 7d\n", "  window: 7d\n  ground_truth_delay: 2d\n")))
    with pytest.raises(SpecError, match="data.label.available_at: .*available_after .* or available_at .*, not both"):
        parse_spec(demo_spec(("available_at: arrived_at", "available_after: 1d\n    available_at: arrived_at")))


@pytest.fixture(scope="module")
def late_table(feature_repo_ready, tmp_path_factory) -> tuple[str, set[int], int]:
    """The flights of [Mar 8, Mar 22) with the labels of every 7th flight arriving after AS_OF; their
    ids before AS_OF, and how many labels of [Mar 8, AS_OF) are unknown at AS_OF (those and the
    flights still in the air)."""
    rows = features.load_entity_rows(feature_repo_ready / "data" / "flights.parquet", timestamp="scheduled_departure",
                                     start=AS_OF - timedelta(days=7), end=AS_OF + timedelta(days=7))
    rows = rows[rows["arr_delay"].notna()].reset_index(drop=True)
    late = rows.index % 7 == 0
    rows.loc[late, "arrived_at"] = pd.Timestamp(LATE_AT)
    path = tmp_path_factory.mktemp("late") / "flights.parquet"
    rows.to_parquet(path, index=False)
    before = rows["scheduled_departure"] < pd.Timestamp(AS_OF)
    return str(path), set(rows.loc[late & before, "flight_id"]), int((before & (rows["arrived_at"] > AS_OF)).sum())


@pytest.fixture
def late_spec(late_table, monkeypatch):
    path = late_table[0]
    monkeypatch.setenv("CTFLOW_DATA_ROOTS", str(pd.io.common.stringify_path(path)).rsplit("/", 1)[0])
    return parse_spec(demo_spec(("feature_repo/data/flights.parquet", path), ("window: 60d", "window: 7d"),
                                ("holdout: 14d", "holdout: 2d"), ("min_rows: 20000", "min_rows: 500"),
                                ("params: {max_iter: 200, learning_rate: 0.1, max_leaf_nodes: 31}",
                                 "params: {max_iter: 20}")))


@pytest.mark.integration
def test_fetch_and_train_never_use_a_label_that_arrives_after_as_of(late_spec, late_table, tmp_path,
                                                                     feature_repo_ready):
    from ctflow.core.fit import fit_candidate

    _, late, pending = late_table
    assert len(late) > 500 and pending > len(late)  # and a few flights in the air at AS_OF
    fetched = steps.fetch_features(late_spec, as_of=AS_OF, run_dir=tmp_path, feature_repo=feature_repo_ready)
    frame = pd.read_parquet(tmp_path / steps.FRAME)
    assert fetched["dropped_label_pending"] == pending and fetched["rows"] == len(frame)
    assert not late & set(frame["flight_id"]) and (frame[labels.KNOWN_AT] <= pd.Timestamp(AS_OF)).all()
    fitted = fit_candidate(late_spec, split_window(late_spec, frame, as_of=AS_OF).checked(),
                           candidates=fetched["features"])
    assert len(fitted.holdout_rows) > 1000 and len(fitted.train_rows) > 3000
    for side in (fitted.train_rows, fitted.holdout_rows):
        assert not late & set(side["flight_id"])

    # The replay's one frame holds every label the table has; each step sees the known ones only.
    data = replay.load_frame(late_spec, AS_OF, AS_OF + timedelta(days=2), feature_repo=feature_repo_ready)
    assert late <= set(data.frame["flight_id"])
    bank = replay.ModelBank(late_spec, data)
    candidate = bank.train(replay.as_utc(AS_OF))
    for side in (candidate.train_rows, candidate.holdout_rows):
        assert not late & set(side["flight_id"])
    assert features.fingerprint(bank.window(AS_OF), timestamp="scheduled_departure")["sha256"] == fetched["sha256"]
    # Once they have arrived, a later as_of trains on them: it is time that kept them out.
    later = LATE_AT + timedelta(hours=1)
    departs = data.frame.set_index("flight_id")["scheduled_departure"]
    arrived = {i for i in late if departs[i] >= pd.Timestamp(later - late_spec.data.window.delta)}
    assert len(arrived) > 100 and arrived <= set(bank.window(later)["flight_id"])


@pytest.mark.integration
def test_monitoring_performance_counts_only_labels_known_at_as_of(late_spec, late_table, feature_repo_ready):
    from ctflow.core.scoring import window_frame

    _, late, pending = late_table
    start, end = labels.ground_truth_window(late_spec, AS_OF)  # available_at: no shift
    assert (start, end) == (AS_OF - timedelta(days=7), AS_OF)
    frame, facts = window_frame(late_spec, start=start, end=end, feature_service=late_spec.data.features,
                                feature_repo=feature_repo_ready, labelled=True, known_by=AS_OF)
    assert facts["label_pending"] == pending and len(frame) > 3000
    assert not late & set(frame["flight_id"])
