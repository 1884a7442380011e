"""Errors the view returns, as a person reads them: the request models' own validation errors
(pydantic, as FastAPI raises them) turned into one sentence per field."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ctflow.ui.actions import RetrainRequest, RollbackRequest
from ctflow.ui.errors import readable, unknown_pipeline


def _errors(model, body: dict) -> list[dict]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(body)
    return caught.value.errors()


def test_a_bad_as_of_date_says_which_field_what_it_got_and_what_it_takes():
    text = readable(_errors(RetrainRequest, {"dry_run": True, "force_promotion": False, "as_of": "2013-13-45"}))
    assert text == ("as_of: not a valid date: expected an ISO 8601 date or date-time such as 2013-10-01 or "
                    "2013-10-01T00:00:00Z (got '2013-13-45')")


def test_missing_unknown_and_out_of_range_fields_each_get_a_sentence():
    text = readable(_errors(RetrainRequest, {"force_promotion": "yes", "window_days": 0, "colour": "red"}))
    parts = text.split("; ")
    assert "dry_run: required" in parts and "colour: unknown field" in parts
    assert "force_promotion: Input should be a valid boolean (got 'yes')" in parts
    assert "window_days: Input should be greater than or equal to 1 (got 0)" in parts
    assert "{" not in text and "loc" not in text  # no raw error objects
    assert readable(_errors(RollbackRequest, {"reason": "  "})) == "reason: a rollback needs a reason (got '  ')"


def test_an_unknown_pipeline_suggests_the_closest_name():
    assert unknown_pipeline("flight_dely", ["flight_delay", "churn"]) == (
        "no valid ctflow spec defines pipeline 'flight_dely'; did you mean 'flight_delay'?")
    assert unknown_pipeline("zzz", ["flight_delay"]) == "no valid ctflow spec defines pipeline 'zzz'"
