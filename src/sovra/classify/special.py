"""Special categories of personal data (GDPR article 9), found through term lists.

Kinds: ``health``, ``religion``, ``ethnicity``, ``political_opinion``,
``sexual_orientation``, ``biometric``, ``genetic``.

Each kind has a term list per language of :data:`LANGUAGES` (see ``_terms``). A term
is reported only when a context word of the same language (a pronoun, a person noun,
"diagnosed", "choruje", "mắc", "leidet", ...) stands within :data:`CONTEXT_BEFORE`
characters before it or :data:`CONTEXT_AFTER` after it, in the same sentence: "cancer
research" in a news report names no one, "she was diagnosed with cancer" does. No
checksum exists, so ``validated`` is false.

All terms are matched in one pass of an Aho-Corasick automaton (``ahocorasick_rs``) over
the text's UTF-8, each term listed in its case forms: about ten times faster than
Python's regular expressions, which try every alternative at every position. Vietnamese terms
are listed both precomposed (NFC) and decomposed (NFD), so combining marks are found too.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass

import ahocorasick_rs

from sovra.classify import _compiled
from sovra.classify._terms import CONTEXT, LANGUAGES, TERMS
from sovra.errors import BadRequest
from sovra.model import Finding

__all__ = ["CONTEXT_AFTER", "CONTEXT_BEFORE", "KINDS", "LANGUAGES", "detect", "detect_special"]

KINDS = frozenset(TERMS)

CONTEXT_BEFORE = 60
CONTEXT_AFTER = 30
_CONFIDENCE = 0.8
_SURROGATE = re.compile("[\ud800-\udfff]")
# Western full stops end a sentence before a space; the ideographic ones (U+3002 full
# stop, U+FF01 exclamation, U+FF1F question, U+FF1B semicolon) and newlines always do.
_SENTENCE_END = re.compile("[.!?;](?:\\s|$)|[\u3002\uff01\uff1f\uff1b\n]")
# The last end before a term: the greedy prefix backs off from the right to the rightmost
# position where an end matches, which ends where the last of ``finditer``'s matches
# does (a stop's following space is itself an end only as a newline, ending at the same
# place; the tests hold the two to each other). One match instead of an iterator and a
# match object per stop: 0.39 ms against 1.16 on the benchmark mix.
_LAST_END = re.compile("(?s:.*)(?:[.!?;](?:\\s|$)|[\u3002\uff01\uff1f\uff1b\n])")


def _is_han(char: str) -> bool:
    return "\u2e80" <= char <= "\u9fff" or "\uf900" <= char <= "\ufaff"


class _Context:
    """Context words found in a short window: Han words anywhere, others at a word start.

    One automaton reports every occurrence, overlapping ones included, so a word start
    is never hidden behind an occurrence inside a word ("mme" in "commence", then "mme
    Dupont"). A regular expression over all the words tries each of them at every
    position: about 0.25 ms for a sentence holding none, against under a microsecond here.
    """

    __slots__ = ("_anywhere", "_automaton")

    def __init__(self, words: list[str]) -> None:
        self._anywhere = tuple(_is_han(word[0]) for word in words)
        self._automaton = ahocorasick_rs.AhoCorasick(words)

    def search(self, window: str) -> bool:
        """True when a context word stands in *window* where it may."""
        try:
            hits = self._automaton.find_matches_as_indexes(window, overlapping=True)
        except UnicodeEncodeError:
            hits = self._automaton.find_matches_as_indexes(
                _SURROGATE.sub("\ufffd", window), overlapping=True
            )
        for index, start, _ in hits:
            if self._anywhere[index] or start == 0 or not _is_word(window[start - 1]):
                return True
        return False


def _is_word(char: str) -> bool:
    return char.isalnum() or char == "_"  # what ``\w`` matches


@dataclass(frozen=True, slots=True)
class _Matcher:
    patterns: tuple[str, ...]  # every term form, in the automaton's order
    automaton: ahocorasick_rs.BytesAhoCorasick  # over the forms' UTF-8
    kinds: tuple[str, ...]  # pattern index -> kind
    context: _Context


@functools.cache
def _matcher(lang: str | None) -> _Matcher:
    """The automaton over every term form of *lang* (or all), and its context words."""
    langs = LANGUAGES if lang is None else (lang,)
    forms: dict[str, str] = {}
    for kind, by_lang in TERMS.items():
        for code in langs:
            for term in by_lang.get(code, ()):
                for form in _forms(term):
                    forms.setdefault(form, kind)
    patterns = sorted(forms)
    # Context words start a word ("mme" must not match inside "commence"); Han words
    # stand anywhere.
    words = sorted({word for code in langs for word in CONTEXT[code]})
    return _Matcher(
        tuple(patterns),
        ahocorasick_rs.BytesAhoCorasick(
            [p.encode() for p in patterns], matchkind=ahocorasick_rs.MatchKind.LeftmostLongest
        ),
        tuple(forms[p] for p in patterns),
        _Context(words),
    )


_Match = tuple[int, int, int]  # a pattern's index, its start and its end


def _term_matches(automaton: ahocorasick_rs.BytesAhoCorasick, text: str) -> list[_Match]:
    """The automaton's leftmost-longest matches in *text*, with code-point offsets.

    The automaton reads UTF-8. Handed a ``str``, ``ahocorasick_rs`` makes the string's
    UTF-8 form and maps each offset back itself: 7.3 ms for the benchmark mix's megabyte.
    Encoding here, searching the bytes and mapping the offsets in one walk (``_native``;
    1.7 ms in Python) takes 5.9 ms. UTF-8 starts every pattern on a character's first byte, and of
    two matches at one start the longer in bytes is the longer in characters, so the
    matches are those of the same search over the characters.
    """
    try:
        data = text.encode()
    except UnicodeEncodeError:
        # UTF-8 has no lone surrogates; a stand-in of one code point keeps the offsets.
        data = _SURROGATE.sub("\ufffd", text).encode()
    matches: list[_Match] = automaton.find_matches_as_indexes(data)
    if len(data) == len(text):
        return matches  # ASCII: every byte is a code point
    return _code_point_offsets(data, matches)


def _code_point_offsets(data: bytes, matches: list[_Match]) -> list[_Match]:
    """*matches* of a search over the UTF-8 bytes *data*, with code-point offsets.

    Args:
        data: UTF-8.
        matches: ``(index, start, end)`` with byte offsets, each at a character's start
            or the end of *data*; in order of start, as a search gives them (any order
            is read right, in more time).

    Returns:
        The same triples with the offsets counted in code points.

    Raises:
        ValueError: an offset lies inside a character or past the end.
    """
    if _compiled.NATIVE is not None:
        found: list[_Match] = _compiled.NATIVE.code_point_offsets(data, matches)
        return found
    return _code_point_offsets_in_python(data, matches)


def _code_point_offsets_in_python(data: bytes, matches: list[_Match]) -> list[_Match]:
    out: list[_Match] = []
    position = points = 0  # how far the data has been read, in bytes and code points
    for index, start, end in matches:
        if end < start:
            raise ValueError("a match ends before it starts")
        for offset in (start, end):
            if not 0 <= offset <= len(data) or (
                offset < len(data) and data[offset] & 0xC0 == 0x80  # a continuation byte
            ):
                raise ValueError("offset outside the data or inside a character")
        if start < position:  # out of order: count again from the start
            position = points = 0
        points += len(data[position:start].decode())
        first = points
        points += len(data[start:end].decode())
        position = end
        out.append((index, first, points))
    return out


def _forms(term: str) -> set[str]:
    """The spellings of *term* to match: as listed, lower-case, capitalised, in capitals.

    Listing the case forms lets the automaton read the text as it is, with no lower-cased
    copy; acronyms ("HIV") are matched only as written. Each form also in NFD.
    """
    if term.isupper():
        forms = {term}
    else:
        lower = term.lower()
        forms = {
            term,
            lower,
            lower[0].upper() + lower[1:],
            term[0].upper() + term[1:],
            term.upper(),
        }
    return forms | {unicodedata.normalize("NFD", form) for form in forms}


def _sentence(text: str, start: int, end: int) -> tuple[str, str]:
    """The text before and after the term at *start*:*end*, each cut at a sentence end."""
    # Searched in place (an end position reads as the end of the string, for ``$`` too),
    # so each side is sliced once.
    cut = max(0, start - CONTEXT_BEFORE)
    last = _LAST_END.match(text, cut, start)
    if last is not None:
        cut = last.end()
    stop = _SENTENCE_END.search(text, end, end + CONTEXT_AFTER)
    return text[cut:start], text[end : end + CONTEXT_AFTER if stop is None else stop.start()]


def _window(before: str, after: str) -> str:
    """The text searched for context words: the sentence around a term, without it."""
    # The window is only read, never sliced for spans, so it may be normalised: context
    # words are listed precomposed, and decomposed text must match them too. ASCII is
    # already in NFC.
    window = (before + " " + after).lower()
    return window if window.isascii() else unicodedata.normalize("NFC", window)


def detect_special(text: str, lang: str | None = None) -> Iterator[Finding]:
    """Yield special-category findings: a listed term with a context word nearby.

    Args:
        text: the text to search; spans index it directly.
        lang: one code of :data:`LANGUAGES` to use only that language's terms and
            context words; None uses every language.

    Yields:
        Findings in order of start.

    Raises:
        BadRequest: *lang* is not None and not one of :data:`LANGUAGES`.
    """
    if lang is not None and lang not in LANGUAGES:
        raise BadRequest(f"unknown language {lang!r}; use one of {', '.join(LANGUAGES)}")
    matcher = _matcher(lang)
    matches = _term_matches(matcher.automaton, text)
    kinds = matcher.kinds
    context = matcher.context
    size = len(text)
    for index, start, term_end in matches:
        if start > 0 and text[start - 1].isalnum() and not _is_han(text[start]):
            continue  # inside a word: "gay" in "Megay"
        end = term_end
        if not _is_han(text[end - 1]):
            while end < size and (text[end].isalnum() or unicodedata.combining(text[end])):
                end += 1
        if context.search(_window(*_sentence(text, start, end))):
            yield Finding(kinds[index], start, end, _CONFIDENCE, validated=False)


def detect(text: str) -> Iterator[Finding]:
    """Yield every special-category finding in *text*, in every language.

    Args:
        text: the text to search; spans index it directly.

    Yields:
        Findings of kinds :data:`KINDS`.
    """
    yield from detect_special(text)
