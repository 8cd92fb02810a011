"""The special-category detector's fast paths agree with the forms they replace.

``special`` searches its terms in the text's UTF-8 and maps the offsets back to code
points, finds the last sentence end before a term with a regular expression rewritten
for speed (:data:`special._LAST_END`), searches the text in place instead of in slices,
and skips NFC normalisation for ASCII windows. Each property below compares a fast form
with the plain one it replaces (the automaton over characters, :data:`special._SENTENCE_END`
over slices, and the detector as it was written before) on texts dense in sentence
stops, whitespace of every kind, terms, context words, combining marks and lone
surrogates.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Iterator

import ahocorasick_rs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sovra.classify import special
from sovra.classify._terms import CONTEXT, LANGUAGES, TERMS
from sovra.model import Finding

# Every character the sentence ends look at, whitespace that ``\s`` matches beyond ASCII
# (U+001C, U+0085, no-break space, line separator, ideographic space), and characters
# that are neither.
_STOPS = [*".!?;\n", "\u3002", "\uff01", "\uff1f", "\uff1b"]
_SPACES = [" ", "\t", "\r", "\x0b", "\x1c", "\x85", "\xa0", "\u2028", "\u3000"]
_OTHER = ["a", "Z", "1", "é", "\u0301", "中", "\ud800", "\U0001f600", ",", "-"]
_DENSE = st.text(st.sampled_from(_STOPS + _SPACES + _OTHER), max_size=120)
_ANY = st.text(st.characters(codec=None, min_codepoint=0, max_codepoint=0x10FFFF), max_size=80)


def _terms() -> list[str]:
    forms: set[str] = set()
    for by_lang in TERMS.values():
        for terms in by_lang.values():
            for term in terms[:4]:
                forms |= special._forms(term)
    return sorted(forms)


def _context_words() -> list[str]:
    words = {word for code in LANGUAGES for word in CONTEXT[code][:6]}
    return sorted(words | {word.capitalize() for word in words})


_PIECES = st.one_of(
    st.sampled_from(_terms()),
    st.sampled_from(_context_words()),
    st.sampled_from([*_STOPS, *_SPACES, *_OTHER, ". ", "! ", ".\n", "Me", "x" * 40]),
)
_TEXTS = st.one_of(st.lists(_PIECES, max_size=40).map("".join), _DENSE)


@settings(max_examples=600, deadline=None)
@given(text=st.one_of(_DENSE, _ANY), data=st.data())
def test_last_end_is_where_the_last_sentence_end_ends(text: str, data: st.DataObject) -> None:
    lo = data.draw(st.integers(0, len(text)))
    hi = data.draw(st.integers(lo, len(text)))
    ends = [m.end() for m in special._SENTENCE_END.finditer(text[lo:hi])]
    last = special._LAST_END.match(text, lo, hi)
    assert (None if last is None else last.end() - lo) == (ends[-1] if ends else None)


@settings(max_examples=600, deadline=None)
@given(text=st.one_of(_DENSE, _ANY), data=st.data())
def test_first_end_found_in_place_is_the_one_in_the_slice(text: str, data: st.DataObject) -> None:
    # An end position reads as the end of the string, for ``$`` and ``\s`` alike.
    lo = data.draw(st.integers(0, len(text)))
    hi = data.draw(st.integers(lo, len(text) + 40))
    first = special._SENTENCE_END.search(text[lo:hi])
    stop = special._SENTENCE_END.search(text, lo, hi)
    assert (None if stop is None else stop.start() - lo) == (
        None if first is None else first.start()
    )


def _sentence_as_before(text: str, start: int, end: int) -> str:
    lo = max(0, start - special.CONTEXT_BEFORE)
    hi = min(len(text), end + special.CONTEXT_AFTER)
    before = text[lo:start]
    ends = list(special._SENTENCE_END.finditer(before))
    if ends:
        before = before[ends[-1].end() :]
    after = text[end:hi]
    stop = special._SENTENCE_END.search(after)
    if stop is not None:
        after = after[: stop.start()]
    return unicodedata.normalize("NFC", (before + " " + after).lower())


@functools.cache
def _characters_automaton(lang: str | None) -> ahocorasick_rs.AhoCorasick:
    """The term automaton over characters, as ``ahocorasick_rs`` searches a ``str``."""
    patterns = list(special._matcher(lang).patterns)
    return ahocorasick_rs.AhoCorasick(patterns, matchkind=ahocorasick_rs.MatchKind.LeftmostLongest)


def _detect_as_before(text: str, lang: str | None) -> Iterator[Finding]:
    matcher = special._matcher(lang)
    automaton = _characters_automaton(lang)
    try:
        matches = automaton.find_matches_as_indexes(text)
    except UnicodeEncodeError:
        matches = automaton.find_matches_as_indexes(special._SURROGATE.sub("\ufffd", text))
    for index, start, term_end in matches:
        end = term_end
        if not special._is_han(text[start]) and start > 0 and text[start - 1].isalnum():
            continue
        if not special._is_han(text[end - 1]):
            while end < len(text) and (text[end].isalnum() or unicodedata.combining(text[end])):
                end += 1
        if matcher.context.search(_sentence_as_before(text, start, end)):
            yield Finding(matcher.kinds[index], start, end, 0.8, validated=False)


@settings(max_examples=500, deadline=None)
@given(text=_TEXTS, lang=st.sampled_from([None, *LANGUAGES]))
def test_detect_agrees_with_the_plain_form(text: str, lang: str | None) -> None:
    assert list(special.detect_special(text, lang)) == list(_detect_as_before(text, lang))


def test_sentence_ends_cut_the_window() -> None:
    text = "Report. She was diagnosed with cancer\u3002Unrelated words follow here"
    start = text.index("cancer")
    before, after = special._sentence(text, start, start + len("cancer"))
    assert (before, after) == ("She was diagnosed with ", "")
    assert [f.kind for f in special.detect(text)] == ["health"]


@settings(max_examples=400, deadline=None)
@given(text=st.one_of(_DENSE, _ANY, _TEXTS), data=st.data())
def test_code_point_offsets_map_bytes_back(text: str, data: st.DataObject) -> None:
    text = special._SURROGATE.sub("\ufffd", text)
    encoded = text.encode()
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=12)))
    pairs = list(zip(cuts[::2], cuts[1::2], strict=False))
    if data.draw(st.booleans()):
        pairs.reverse()  # out of order: read again from the start
    matches = [
        (i, len(text[:a].encode()), len(text[:b].encode())) for i, (a, b) in enumerate(pairs)
    ]
    expected = [(i, a, b) for i, (a, b) in enumerate(pairs)]
    assert special._code_point_offsets_in_python(encoded, matches) == expected
    assert special._code_point_offsets(encoded, matches) == expected


@pytest.mark.parametrize("implementation", ["compiled", "python"])
def test_code_point_offsets_refuse_offsets_that_are_not_boundaries(implementation: str) -> None:
    convert = (
        special._code_point_offsets
        if implementation == "compiled"
        else special._code_point_offsets_in_python
    )
    data = "zaż".encode()  # the ż takes two bytes, 2 and 3
    assert convert(data, [(0, 2, 4)]) == [(0, 2, 3)]
    for bad in ([(0, 3, 4)], [(0, 0, 5)], [(0, -1, 2)]):
        with pytest.raises(ValueError, match="outside the data or inside a character"):
            convert(data, bad)
    with pytest.raises(ValueError, match="ends before it starts"):
        convert(data, [(0, 2, 1)])
