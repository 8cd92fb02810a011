"""Canonical JSON (record headers, log entries) is byte-for-byte what json.dumps makes, and
the short way of reading a canonical log entry agrees with the full parser."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sovra.errors import BadRequest
from sovra.model import (
    MAX_ENTRY_BYTES,
    MAX_JSON_DEPTH,
    LogEntry,
    RecordHeader,
    _canonical_object,
    canonical_json,
    parse_json,
)

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


# Floats, integers past 64 bits, str subclasses as keys: what orjson writes otherwise or
# refuses, so canonical_json must hand them to the stdlib encoder and keep its bytes.
class _Key(str):
    pass


ODD_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([1e-7, 1e16, -0.0, 5e-324, 1.7976931348623157e308])
    | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text() | st.text().map(_Key), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.text(), ODD_JSON, max_size=4))
def test_canonical_json_keeps_the_stdlib_bytes_for_floats_and_big_integers(
    value: dict[str, Any],
) -> None:
    assert canonical_json(value) == _reference(value)


def test_every_character_and_key_order_encodes_as_the_stdlib_does() -> None:
    text = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000)
    value = {text[i : i + 7]: text[i : i + 3] for i in range(0, len(text), 997)}
    value["all"] = text
    assert canonical_json(value) == _reference(value)
    with pytest.raises(UnicodeEncodeError):  # a lone surrogate: refused, as it always was
        canonical_json({"a": "\ud800"})


def test_an_ingest_entry_keeps_its_bytes() -> None:
    """The bytes of a log entry are what the Merkle leaf and every receipt cover: pinned
    here as written by the stdlib encoder, so no change of encoder may move them."""
    entry = LogEntry(
        kind="ingest",
        time_ms=1765000000123,
        principal="svc-pl",
        fields={
            "record": "r-0123456789abcdef0123456789abcdef",
            "subject": "ab" * 32,
            "jurisdiction": "PL",
            "region": "eu-central",
            "blob_sha256": "cd" * 32,
            "kinds": {"pl_pesel": 1, "phone": 1, "email": 1},
            "actions": {"pl_pesel": "tokenize", "phone": "redact", "email": "keep"},
            "purpose": 'za\u017c\u00f3\u0142\u0107\n"\u00fc"\u0007',
        },
    )
    assert entry.to_bytes() == (
        b'{"actions":{"email":"keep","phone":"redact","pl_pesel":"tokenize"},'
        b'"blob_sha256":"' + b"cd" * 32 + b'","jurisdiction":"PL","kind":"ingest",'
        b'"kinds":{"email":1,"phone":1,"pl_pesel":1},"principal":"svc-pl",'
        b'"purpose":"za\xc5\xbc\xc3\xb3\xc5\x82\xc4\x87\\n\\"\xc3\xbc\\"\\u0007",'
        b'"record":"r-0123456789abcdef0123456789abcdef","region":"eu-central",'
        b'"subject":"' + b"ab" * 32 + b'","time_ms":1765000000123,"v":1}'
    )
    assert LogEntry.from_bytes(entry.to_bytes()) == entry


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


_ID = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}", fullmatch=True)


@settings(max_examples=300, deadline=None)
@given(
    record_id=_ID,
    region=_ID,
    jurisdiction=st.from_regex(r"[A-Z]{2}", fullmatch=True),
    subject=st.from_regex(r"[0-9a-f]{64}", fullmatch=True),
    kek_version=st.integers(min_value=1, max_value=2**70),
    content_type=st.text(),
    form=st.integers(min_value=-(2**70), max_value=2**70),
)
def test_a_record_header_is_its_canonical_json_whatever_it_holds(
    record_id: str,
    region: str,
    jurisdiction: str,
    subject: str,
    kek_version: int,
    content_type: str,
    form: int,
) -> None:
    """to_bytes spells the canonical JSON out by hand; it must stay the same bytes, escapes,
    non-ASCII, huge numbers and lone surrogates (refused by both) included."""
    header = RecordHeader(record_id, subject, jurisdiction, region, kek_version, content_type, form)
    fields = {
        "content_type": content_type,
        "format": form,
        "jurisdiction": jurisdiction,
        "kek_version": kek_version,
        "record_id": record_id,
        "region": region,
        "subject": subject,
    }
    try:
        expected = b"sovra-record\n" + _reference(fields)
    except UnicodeEncodeError:
        with pytest.raises(UnicodeEncodeError):
            header.to_bytes()
        return
    assert header.to_bytes() == expected
    assert RecordHeader.from_bytes(expected) == header


def test_a_header_parsed_with_odd_types_still_encodes_canonically() -> None:
    # from_bytes takes what the JSON holds; a boolean version or a non-string content type
    # encodes as the canonical encoder would (and opens nothing sealed under the real one).
    for fields in ({"kek_version": True}, {"content_type": ["a", 1]}, {"format": 1.5}):
        base = {
            "content_type": "text/plain",
            "format": 1,
            "jurisdiction": "PL",
            "kek_version": 2,
            "record_id": "r-1",
            "region": "eu",
            "subject": "ab" * 32,
            **fields,
        }
        data = b"sovra-record\n" + _reference(base)
        assert RecordHeader.from_bytes(data).to_bytes() == data


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(), JSON, max_size=6), st.booleans())
def test_the_short_way_to_read_an_entry_accepts_only_what_the_full_parser_reads_alike(
    value: dict[str, Any], canonical: bool
) -> None:
    """LogEntry.from_bytes tries _canonical_object first: whatever it accepts, parse_json
    must accept as the same object; it must take every canonical encoding it can."""
    text = _reference(value) if canonical else json.dumps(value, ensure_ascii=True).encode()
    short = _canonical_object(text, MAX_ENTRY_BYTES)
    try:
        full = parse_json(text, limit=MAX_ENTRY_BYTES, what="entry")
    except BadRequest:
        assert short is None
        return
    if short is not None:
        assert short == full
    elif canonical:
        # Only nesting beyond the bracket budget sends a canonical object the long way.
        assert text.count(b"{") + text.count(b"[") > MAX_JSON_DEPTH


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'{"kind":"decision","kind":"decision","principal":"p","time_ms":1,"v":1}', "duplicate"),
        (b'{"kind":"decision","principal":"p","time_ms":NaN,"v":1}', "not a JSON number"),
        (b'{"kind":"decision","principal":"p","time_ms":1e999,"v":1}', "out of range"),
        (b'{"kind":"decision","principal":"\\ud800","time_ms":1,"v":1}', "surrogate"),
        (
            b'{"a":' + b"[" * 40 + b"]" * 40 + b',"kind":"x","principal":"p","time_ms":1,"v":1}',
            "deeper",
        ),
        (b"\xef\xbb\xbf" + b'{"kind":"decision","principal":"p","time_ms":1,"v":1}', "JSON"),
    ],
    ids=["duplicate", "nan", "huge-float", "lone-surrogate", "deep", "bom"],
)
def test_hostile_entries_still_get_the_full_parsers_refusal(data: bytes, message: str) -> None:
    assert _canonical_object(data, MAX_ENTRY_BYTES) is None
    with pytest.raises(BadRequest, match=message):
        LogEntry.from_bytes(data)


def test_a_header_with_a_field_named_twice_is_refused_though_it_looks_canonical() -> None:
    good = RecordHeader("r-1", "ab" * 32, "PL", "eu", 1).to_bytes()
    twice = good.replace(b'"format":1,', b'"format":1,"format":1,')
    with pytest.raises(BadRequest, match="duplicate field 'format'"):
        RecordHeader.from_bytes(twice)
