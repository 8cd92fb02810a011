"""Canonical JSON (record headers, log entries) is byte-for-byte what json.dumps makes."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sovra.model import RecordHeader, canonical_json

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def _reference(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@settings(max_examples=200, deadline=None)
@given(JSON)
def test_canonical_json_matches_json_dumps(value: Any) -> None:
    assert canonical_json(value) == _reference(value)


def test_a_record_header_encodes_as_before() -> None:
    header = RecordHeader("r-1", "ab" * 32, "PL", "eu-central", 1)
    expected = b"sovra-record\n" + _reference(
        {
            "content_type": "text/plain; charset=utf-8",
            "format": 1,
            "jurisdiction": "PL",
            "kek_version": 1,
            "record_id": "r-1",
            "region": "eu-central",
            "subject": "ab" * 32,
        }
    )
    assert header.to_bytes() == expected
    assert RecordHeader.from_bytes(expected) == header
