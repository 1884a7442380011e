"""The limits of spec YAML (ctflow.spec.yaml_safe), at their edges; the hostile corpus
(tests/hostile.py) tries them end to end through the CLI, the DagBag and the api-server."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctflow.spec import SpecError, load_spec, parse_spec
from ctflow.spec.yaml_safe import MAX_BYTES, MAX_DEPTH, MAX_NODES, LimitError, compose, read_text

GOOD = Path(__file__).resolve().parents[1] / "fixtures" / "good_specs"
MINIMAL = (GOOD / "minimal.yaml").read_text()


def _nested(depth: int) -> str:
    return "x: " + "[" * (depth - 1) + "]" * (depth - 1) + "\n"  # the top mapping is the first level


def test_nesting_up_to_the_limit_is_fine_one_more_is_refused():
    assert compose(_nested(MAX_DEPTH)) is not None
    with pytest.raises(LimitError, match=f"at most {MAX_DEPTH} levels"):
        compose(_nested(MAX_DEPTH + 1))


def test_aliases_within_the_budget_are_fine_and_counted_expanded():
    anchor = "[" + ", ".join(["1"] * 99) + "]"  # 100 values with its list
    fits = f"a: &a {anchor}\nb: [{', '.join(['*a'] * ((MAX_NODES - 500) // 100))}]\n"
    assert compose(fits) is not None
    over = f"a: &a {anchor}\nb: [{', '.join(['*a'] * (MAX_NODES // 100 + 1))}]\n"
    with pytest.raises(LimitError, match="aliases expand to more than") as caught:
        compose(over)
    assert caught.value.line == 2


def test_an_anchor_used_after_it_is_complete_is_not_recursive():
    node = compose("a: &a [1, 2]\nb: [*a, *a]\n")
    assert node.value[1][1].value[0] is node.value[0][1]


def test_a_spec_using_an_alias_still_loads():
    text = MINIMAL.replace("owner: data-science", "owner: &team data-science\ntags: [*team]")
    assert parse_spec(text).tags == ["data-science"]


def test_size_limit_is_checked_before_reading(tmp_path: Path):
    path = tmp_path / "big.yaml"
    with path.open("wb") as out:
        out.truncate(MAX_BYTES + 1)  # sparse: nothing to read, and nothing is
    with pytest.raises(LimitError, match="larger than the 1 MB"):
        read_text(path)
    path.write_text("# " + "x" * (MAX_BYTES - 3) + "\n")
    assert len(read_text(path)) == MAX_BYTES


def test_a_byte_order_mark_is_fine_latin1_is_an_error_at_its_line(tmp_path: Path):
    path = tmp_path / "spec.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + MINIMAL.encode())
    assert load_spec(path).pipeline == "minimal"
    path.write_bytes(MINIMAL.replace("data-science", "équipe").encode("latin-1"))
    with pytest.raises(SpecError) as caught:
        load_spec(path, display_name="spec.yaml")
    assert str(caught.value) == ("spec.yaml:3: the file is not UTF-8 text: byte 0xe9 at line 3, column 8 cannot be "
                                 "decoded (save the spec as UTF-8)")


def test_control_characters_in_text_are_errors_at_their_line():
    with pytest.raises(SpecError, match=r"spec.yaml:3: the file contains a NUL character at line 3"):
        parse_spec(MINIMAL.replace("data-science", "data\0science"), "spec.yaml")
    with pytest.raises(SpecError, match=r"spec.yaml:3: invalid character #x0007 on line 3"):
        parse_spec(MINIMAL.replace("data-science", "data\x07science"), "spec.yaml")
