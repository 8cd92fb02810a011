"""The special-category detector's fast paths agree with the forms they replace.

``special`` finds the last sentence end before a term with a regular expression
rewritten for speed (:data:`special._LAST_END`), searches the text in place instead of
in slices, and skips NFC normalisation for ASCII windows. Each property below compares
a fast form with the plain one it replaces (:data:`special._SENTENCE_END` over slices,
and the detector as it was written before) on texts dense in sentence stops, whitespace
of every kind, terms, context words, combining marks and lone surrogates.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator

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


def _detect_as_before(text: str, lang: str | None) -> Iterator[Finding]:
    matcher = special._matcher(lang)
    try:
        matches = matcher.automaton.find_matches_as_indexes(text)
    except UnicodeEncodeError:
        matches = matcher.automaton.find_matches_as_indexes(special._SURROGATE.sub("\ufffd", text))
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
