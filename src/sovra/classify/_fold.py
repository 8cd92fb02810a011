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
    return text.translate(_table())
