"""One check of an object's keys for every parser: missing before unknown, both named."""

from __future__ import annotations

import pytest

from sovra.errors import BadRequest
from sovra.model import field_problem
from sovra.policy.pack import PackBundle


def test_a_missing_key_is_named_before_an_unknown_one() -> None:
    assert field_problem({"b": 1, "z": 2}, {"a", "b"}, {"c"}, "grant") == "grant is missing a"
    assert field_problem({"a": 1, "z": 2, "y": 3}, {"a"}, {"c"}, "grant") == (
        "grant has unknown field(s) y, z"
    )
    assert field_problem({"a": 1, "c": 2}, {"a"}, {"c"}, "grant") is None
    assert field_problem({"q": 1}, frozenset(), {"p"}, "[log]", noun="key") == (
        "[log] has unknown key(s) q"
    )


def test_a_parser_raises_its_own_error_with_those_words() -> None:
    # The configuration's wording ("unknown key(s)", ConfigError) is pinned in test_config.
    with pytest.raises(BadRequest, match=r"^policy pack is missing format, name, .*version$"):
        PackBundle.from_bytes(b'{"colour": "red"}')
