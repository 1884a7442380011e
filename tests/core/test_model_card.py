"""The model card written into each registered version's description: from recorded facts only."""

from __future__ import annotations

from ctflow.contract import mlflow_tags
from ctflow.core.model_card import model_card
from ctflow.spec import parse_spec
from tests.conftest import demo_spec

SPEC = parse_spec(demo_spec())
FETCHED = {"window_start": "2012-12-31T00:00:00+00:00", "window_end": "2013-03-01T00:00:00+00:00",
           "feature_service": "flight_delay_v1"}
TRAINED = {"train_rows": 52000, "holdout_rows": 12500, "holdout_start": "2013-02-15T00:00:00+00:00",
           "features": ["distance", "carrier"], "run_id": "abc123", "decision_threshold": 0.5,
           "metrics": {"roc_auc": 0.71, "recall": 0.3},
           "slices": {"origin": {"EWR": {"rows": 4000, "roc_auc": 0.7}, "JFK": {"rows": 4100, "roc_auc": 0.72}}}}
LINEAGE = {mlflow_tags.CODE_VERSION: "0123abc", "ctflow.spec_sha256": "f" * 64, "ctflow.data_sha256": "e" * 64}


def test_the_card_puts_the_candidate_beside_the_champion_on_the_same_holdout():
    gate = {"decision": "promote", "reason": "beats champion v2: roc_auc 0.7100 vs 0.7000", "candidate": TRAINED["metrics"],
            "champion": {"roc_auc": 0.70, "recall": 0.35}, "champion_version": "2"}
    card = model_card(SPEC, fetched=FETCHED, trained=TRAINED, gate=gate, lineage=LINEAGE)
    assert "52,000 training rows from 2012-12-31T00:00:00+00:00 to 2013-02-15T00:00:00+00:00" in card
    assert "12,500 holdout rows from 2013-02-15T00:00:00+00:00 to 2013-03-01T00:00:00+00:00" in card
    assert "label `arr_delay` > 15" in card and "Feast service `flight_delay_v1`" in card
    assert "| holdout | roc_auc | recall |" in card
    assert "| this version | 0.7100 | 0.3000 |" in card
    assert "| champion v2 (same holdout) | 0.7000 | 0.3500 |" in card
    assert "**Gate**: promote: beats champion v2" in card
    assert "origin=EWR: 0.7000 (4,000 rows); origin=JFK: 0.7200 (4,100 rows)" in card
    assert "column 1 = P(positive); a row is positive at P >= 0.5" in card
    assert "code `0123abc`, spec sha256 `ffffffffffff`, data sha256 `eeeeeeeeeeee`, run `abc123`" in card


def test_a_first_version_has_no_champion_to_compare_with():
    gate = {"decision": "promote", "reason": "no champion yet: absolute thresholds only", "candidate": TRAINED["metrics"],
            "champion": None, "champion_version": None}
    card = model_card(SPEC, fetched=FETCHED, trained={**TRAINED, "slices": {}}, gate=gate, lineage={})
    assert "| champion | none | none |" in card and "Slices" not in card
    assert "code `unknown`, spec sha256 `not recorded`" in card


def test_a_threshold_chosen_by_a_rule_says_which():
    spec = parse_spec(demo_spec(("categorical: [carrier, origin, dest]",
                                 "categorical: [carrier, origin, dest]\n  decision_threshold: {rule: precision_at, target: 0.6}")))
    gate = {"decision": "promote", "reason": "no champion yet", "candidate": TRAINED["metrics"], "champion": None,
            "champion_version": None}
    card = model_card(spec, fetched=FETCHED, trained={**TRAINED, "decision_threshold": 0.41234567}, gate=gate, lineage={})
    assert "a row is positive at P >= 0.4123 (chosen on the holdout by rule `precision_at 0.6`)" in card
