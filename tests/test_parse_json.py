"""``model.parse_json``'s short ways give the answers of its full checks, word for word.

The parser skips its walk of the nesting when the text has no more brackets than the
budget, and its search for lone surrogates when bytes (strict UTF-8) hold no escape of a
surrogate (``\\uD800`` to ``\\uDFFF``). Here every input goes through it and through the
full checks, always run (the parser as it was before the short ways): the same value, or
the same refusal.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sovra.errors import BadRequest
from sovra.model import (
    _JSON_TOKENS,
    _finite,
    _no_constant,
    _no_duplicates,
    check_unicode,
    parse_json,
)

DEPTH = 4  # a small budget, so nesting over it is easy to generate


def _full(data: bytes | str, limit: int, max_depth: int) -> Any:
    """Every check on every input: the parser without its short ways."""
    if len(data) > limit:
        raise BadRequest(f"x is {len(data)} bytes, over the {limit}-byte limit")
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError as exc:
        raise BadRequest(f"x is not valid UTF-8 (byte {exc.start})") from None
    depth = 0
    for token in _JSON_TOKENS.finditer(text):
        bracket = token.group()
        if bracket in "[{":
            depth += 1
            if depth > max_depth:
                raise BadRequest(f"x nests deeper than {max_depth} levels")
        elif bracket in "]}":
            depth -= 1
    try:
        value = json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_constant=_no_constant,
            parse_float=_finite,
        )
    except ValueError as exc:
        raise BadRequest(f"x is not valid JSON: {exc}") from None
    check_unicode(value, "x")
    return value


def _outcome(parse: Any, data: bytes | str) -> tuple[str, Any]:
    try:
        return "value", parse(data)
    except BadRequest as exc:
        return "refused", exc.message


VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=12,
)
PIECES = st.sampled_from(
    ['"\\ud800"', '"\\udfff x"', '"\\u00e9"', "[", "]", "{", "}", '"[[[["', "NaN", ",", ":"]
)


@st.composite
def texts(draw: st.DrawFn) -> bytes | str:
    """JSON as a client would send it, then perhaps cut, spliced or made a str."""
    value = draw(VALUES)
    text = json.dumps(value, ensure_ascii=draw(st.booleans()))
    if draw(st.booleans()):
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(PIECES) + text[at:]
    if draw(st.booleans()):
        return text  # a str may carry a raw lone surrogate
    return text.encode("utf-8", "surrogatepass")


@settings(max_examples=1500, deadline=None)
@given(texts())
def test_the_short_ways_answer_as_the_full_checks(data: bytes | str) -> None:
    short = _outcome(lambda d: parse_json(d, limit=10_000, what="x", max_depth=DEPTH), data)
    full = _outcome(lambda d: _full(d, 10_000, DEPTH), data)
    assert short == full


def test_the_cases_each_short_way_skips_are_still_refused() -> None:
    for data, message in [
        (b'{"a": "\\ud800"}', "x holds a lone surrogate, which is not valid Unicode"),
        ('{"a": "\ud800"}', "x holds a lone surrogate, which is not valid Unicode"),
        (b'{"\\udc00": 1}', "x holds a lone surrogate, which is not valid Unicode"),
        (b"[[[[[1]]]]]", "x nests deeper than 4 levels"),
        (b'[[[["]]]]]]]]"]]]]', ""),  # brackets in a string: four levels, accepted
    ]:
        outcome = _outcome(lambda d: parse_json(d, limit=100, what="x", max_depth=DEPTH), data)
        assert outcome == (("value", [[[["]]]]]]]]"]]]]) if not message else ("refused", message))


def test_only_an_escaped_surrogate_costs_the_search_and_every_one_is_found() -> None:
    def parsed(data: bytes) -> tuple[str, Any]:
        return _outcome(lambda d: parse_json(d, limit=100, what="x", max_depth=DEPTH), data)

    lone = ("refused", "x holds a lone surrogate, which is not valid Unicode")
    assert parsed(b'["\\uDBFF"]') == lone  # upper case
    assert parsed(b'["\\u0142\\uDc00"]') == lone  # after another escape, mixed case
    assert parsed(b'["\\ud83d\\ude00"]') == ("value", ["\U0001f600"])  # a pair
    assert parsed(b'["\\u0142"]') == ("value", ["\u0142"])  # no surrogate
    # An escaped backslash then "ud800": no surrogate, though it looks like one.
    assert parsed(b'["\\\\ud800"]') == ("value", ["\\ud800"])
