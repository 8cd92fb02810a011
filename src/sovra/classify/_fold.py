"""Same-length folding of look-alike characters, so detectors see ASCII digits and spaces.

Unicode normalisation (NFC, NFKC) is deliberately not used: it changes the length of a
string (NFC composes ``e`` + U+0301 into one code point, NFKC expands ``⑩`` into two), so
offsets found in the normalised text would no longer index the caller's text. Instead
every entry of the table maps ONE code point to ONE code point, and everything else is
left alone; a span found in ``fold(text)`` therefore slices ``text`` at exactly the same
offsets.
"""

from __future__ import annotations

import functools
import re
import unicodedata

import ahocorasick_rs

from sovra.classify import _compiled

__all__ = ["fold"]

# Space separators people put inside printed numbers: no-break space (Polish typography
# groups digits with it), thin and narrow no-break spaces, the ideographic space.
_SPACES = (0x00A0, 0x1680, *range(0x2000, 0x200B), 0x202F, 0x205F, 0x3000)
# Hyphens and dashes that word processors substitute for the ASCII hyphen-minus.
_DASHES = (*range(0x2010, 0x2016), 0x2212, 0xFE58, 0xFE63)
# The full-width forms of U+0021..U+007E sit at a fixed offset (U+FF01..U+FF5E).
_FULLWIDTH_OFFSET = 0xFF01 - 0x21
# Decimal digits (Nd) exist only in the Basic and Supplementary Multilingual Planes, and
# Unicode's stability policy assigns them only as runs of ten code points valued 0..9;
# so a walk over those two planes in steps of ten meets every run. A test compares the
# result with a walk over every code point of the running Python's Unicode version.
_DIGIT_PLANES_END = 0x20000
_RUN = 10
_SURROGATE = re.compile("[\ud800-\udfff]")


@functools.cache
def _table() -> dict[int, int]:
    # Built on first use; the stepped walk costs about 2 ms, a walk over every code
    # point about 60.
    table: dict[int, int] = {}
    for cp in range(0x80, _DIGIT_PLANES_END, _RUN):
        char = chr(cp)
        if char.isdecimal():
            zero = cp - unicodedata.decimal(char)
            for value in range(_RUN):
                table[zero + value] = ord("0") + value
    for cp in range(0x21, 0x7F):
        table[cp + _FULLWIDTH_OFFSET] = cp
    table.update(dict.fromkeys(_SPACES, ord(" ")))
    table.update(dict.fromkeys(_DASHES, ord("-")))
    return table


@functools.cache
def _finder() -> tuple[ahocorasick_rs.AhoCorasick, tuple[str, ...]]:
    # One Aho-Corasick automaton over every key, each a one-character pattern: it finds
    # the rare characters to fold in about 3.5 ms per megabyte of non-ASCII text, where
    # a regular-expression class over the same keys takes 7 to 12 ms and
    # ``str.translate`` over the whole text about 65.
    table = _table()
    keys = sorted(table)
    automaton = ahocorasick_rs.AhoCorasick(
        [chr(cp) for cp in keys], implementation=ahocorasick_rs.Implementation.ContiguousNFA
    )
    return automaton, tuple(chr(table[cp]) for cp in keys)


@functools.cache
def _dense() -> bytes:
    """The table as the compiled fold reads it: byte ``c`` is what code point ``c``
    folds to, 0 where it stays (every key is below U+20000, every value ASCII)."""
    table = _table()
    dense = bytearray(max(table) + 1)
    for cp, ascii_cp in table.items():
        dense[cp] = ascii_cp
    return bytes(dense)


def fold(text: str) -> str:
    """Map full-width and other-script digits, letters, spaces and dashes to ASCII.

    Args:
        text: any string, including one with lone surrogates.

    Returns:
        A string of the same length as *text* where ``fold(text)[i]`` is the ASCII
        counterpart of ``text[i]`` when it has one, and ``text[i]`` otherwise.
    """
    if text.isascii():
        return text
    if _compiled.NATIVE is not None:
        folded: str = _compiled.NATIVE.fold(text, _dense())
        return folded
    automaton, replacements = _finder()
    try:
        hits = automaton.find_matches_as_indexes(text)
    except UnicodeEncodeError:
        # The automaton reads UTF-8, which has no lone surrogates; U+FFFD (not a key)
        # stands in one code point for one, so offsets are kept.
        hits = automaton.find_matches_as_indexes(_SURROGATE.sub("\ufffd", text))
    if not hits:
        return text
    pieces: list[str] = []
    last = 0
    for index, start, end in hits:
        if start != last:
            pieces.append(text[last:start])
        pieces.append(replacements[index])
        last = end
    pieces.append(text[last:])
    return "".join(pieces)
