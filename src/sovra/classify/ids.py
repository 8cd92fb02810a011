"""National identity numbers.

Kinds:
    ``pl_pesel``: the Polish PESEL, eleven digits standing alone (no digit directly
    before or after), accepted only when ``stdnum.pl.pesel`` accepts both its check
    digit and the birth date it encodes. A candidate that fails is not reported.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from stdnum.exceptions import ValidationError
from stdnum.pl import pesel

from sovra.model import Finding

__all__ = ["CONTEXT_WINDOW", "KINDS", "detect", "detect_pesel"]

KINDS = frozenset({"pl_pesel"})

# How many characters before a number are searched for a word that names it.
CONTEXT_WINDOW = 30

_PESEL = re.compile(r"(?<![0-9])[0-9]{11}(?![0-9])")
# Lower-case words that, written just before a number, say it is a PESEL.
_PESEL_CONTEXT = ("pesel", "numer ewidencyjny", "nr ewid")

# About one random eleven-digit number in fifty passes the check digit and the date
# test, so a bare match is likely but not certain; a naming word makes it near certain.
_PESEL_BARE = 0.8
_PESEL_NAMED = 0.97


def _is_pesel(candidate: str) -> bool:
    try:
        pesel.validate(candidate)
    except ValidationError:
        return False
    return True


def detect_pesel(text: str) -> Iterator[Finding]:
    """Yield a ``pl_pesel`` finding for each checksum- and date-valid PESEL in *text*.

    Args:
        text: the text to search, with ASCII digits (the scanner folds others first);
            spans index it directly.

    Yields:
        Non-overlapping findings in order of start.
    """
    for match in _PESEL.finditer(text):
        if not _is_pesel(match.group()):
            continue
        before = text[max(0, match.start() - CONTEXT_WINDOW) : match.start()].lower()
        named = any(word in before for word in _PESEL_CONTEXT)
        confidence = _PESEL_NAMED if named else _PESEL_BARE
        yield Finding("pl_pesel", match.start(), match.end(), confidence, validated=True)


def detect(text: str) -> Iterator[Finding]:
    """Yield every national-identity-number finding in *text*.

    Args:
        text: the text to search; spans index it directly.

    Yields:
        Findings of kinds :data:`KINDS`.
    """
    yield from detect_pesel(text)
