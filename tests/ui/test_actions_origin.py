"""What the view's actions take for "the same origin" (no Airflow needed)."""

from __future__ import annotations

import pytest

from ctflow.ui.actions import RetrainRequest, RollbackRequest, normalized_origin


@pytest.mark.parametrize("url,origin", [
    ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
    ("http://127.0.0.1:8080/ctflow/pipelines/x?y=1", "http://127.0.0.1:8080"),
    ("HTTP://Airflow.Example.COM:80/", "http://airflow.example.com"),
    ("https://airflow.example.com:443/sub/path", "https://airflow.example.com"),
    ("https://airflow.example.com:8443", "https://airflow.example.com:8443"),
    ("http://[::1]:8080/", "http://[::1]:8080"),
    ("null", None), ("", None), ("file:///etc/passwd", None), ("javascript:alert(1)", None),
    ("http://host:99999", None),
])
def test_normalized_origin(url, origin):
    assert normalized_origin(url) == origin


def test_bodies_need_their_fields_and_nothing_else():
    from pydantic import ValidationError

    for model, body in ((RetrainRequest, {}), (RetrainRequest, {"dry_run": False}),
                        (RetrainRequest, {"dry_run": "false", "force_promotion": False}),
                        (RetrainRequest, {"dry_run": False, "force_promotion": False, "dryrun": True}),
                        (RollbackRequest, {}), (RollbackRequest, {"reason": "  "})):
        with pytest.raises(ValidationError):
            model.model_validate(body)
    assert RetrainRequest.model_validate({"dry_run": True, "force_promotion": False}).dry_run is True
