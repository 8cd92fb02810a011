"""Same-length folding of look-alike characters, so detectors see ASCII digits and spaces.

Unicode normalisation (NFC, NFKC) is deliberately not used: it changes the length of a
string (NFC composes ``e`` + U+0301 into one code point, NFKC expands ``⑩`` into two), so
offsets found in the normalised text would no longer index the caller's text. Instead
every entry of the table maps ONE code point to ONE code point, and ``str.translate``
leaves everything else alone; a span found in ``fold(text)`` therefore slices ``text``
at exactly the same offsets.
"""

from __future__ import annotations

import functools
import re
import sys
import unicodedata

__all__ = ["fold"]

# Space separators people put inside printed numbers: no-break space (Polish typography
# groups digits with it), thin and narrow no-break spaces, the ideographic space.
_SPACES = (0x00A0, 0x1680, *range(0x2000, 0x200B), 0x202F, 0x205F, 0x3000)
# Hyphens and dashes that word processors substitute for the ASCII hyphen-minus.
_DASHES = (*range(0x2010, 0x2016), 0x2212, 0xFE58, 0xFE63)
# The full-width forms of U+0021..U+007E sit at a fixed offset (U+FF01..U+FF5E).
_FULLWIDTH_OFFSET = 0xFF01 - 0x21


@functools.cache
def _table() -> dict[int, int]:
    # Built on first use rather than at import: walking every code point costs ~60 ms.
    table: dict[int, int] = {}
    for cp in range(0x80, sys.maxunicode + 1):
        char = chr(cp)
        if char.isdecimal():
            table[cp] = ord("0") + unicodedata.decimal(char)
    for cp in range(0x21, 0x7F):
        table[cp + _FULLWIDTH_OFFSET] = cp
    table.update(dict.fromkeys(_SPACES, ord(" ")))
    table.update(dict.fromkeys(_DASHES, ord("-")))
    return table


def _class_item(first: int, last: int) -> str:
    if first == last:
        return re.escape(chr(first))
    return f"{re.escape(chr(first))}-{re.escape(chr(last))}"


@functools.cache
def _foldable() -> re.Pattern[str]:
    # Every key of the table as one class of plain ranges, which the engine compiles to
    # a bitmap: one pass costs about ten milliseconds per megabyte of non-ASCII text and
    # finds the rare runs that need folding. ``str.translate`` over the whole text looks
    # up every character in the dict, several times slower; a class using ``\d`` instead
    # of the ranges is tested item by item and is slower too.
    # Astral keys (mathematical and other-script digits beyond U+FFFF) would each be a
    # range tested one by one; one range over all astral code points costs one test, and
    # astral characters that are not keys come back unchanged from the translation.
    keys = sorted(cp for cp in _table() if cp <= 0xFFFF)
    items: list[str] = []
    first = last = keys[0]
    for cp in keys[1:]:
        if cp != last + 1:
            items.append(_class_item(first, last))
            first = cp
        last = cp
    items.append(_class_item(first, last))
    items.append(_class_item(0x10000, sys.maxunicode))
    return re.compile("[" + "".join(items) + "]+")


def _fold_run(match: re.Match[str]) -> str:
    return match.group().translate(_table())


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
    return _foldable().sub(_fold_run, text)
