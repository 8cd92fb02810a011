"""The detector families the scanner runs, and the kinds each one reports.

Adding a family means writing one module with ``KINDS`` and ``detect`` and adding one
line to :data:`FAMILIES`; the scanner, :data:`KINDS` and the tests pick it up from here.
The tuple is fixed at import on purpose: what a deployment detects is part of its code,
not something a caller can change at run time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from sovra.classify import contact, finance, ids, location, network, personal, special
from sovra.errors import ConfigError
from sovra.model import Finding

__all__ = ["FAMILIES", "KINDS", "Detector", "Family", "LanguageDetector"]

Detector = Callable[[str], Iterator[Finding]]
"""A detector yields findings whose spans index the very string it was given.

It MUST NOT yield a kind its family does not declare, MUST yield only spans with
``0 <= start < end <= len(text)``, and MUST run in time linear in the text.
"""


LanguageDetector = Callable[[str, str | None], Iterator[Finding]]
"""A detector whose word lists depend on the language: ``(text, lang)``, where ``lang``
is a code of ``special.LANGUAGES`` or None for every language. Same contract as
:data:`Detector`."""


@dataclass(frozen=True, slots=True)
class Family:
    """One detector family: a name, the kinds it reports and its detector.

    ``detect_in`` is set for families whose word lists are per language; the scanner
    calls it instead of ``detect`` when the caller names a language.

    ``requires`` says what a text MUST hold for the family to find anything in it: an
    ASCII digit (after folding) or one of its characters; None when any text may hold a
    finding (a term, a BIC). The scanner does not run a family on a text that holds
    neither, which spares short texts most of the passes (a test checks that a skipped
    family finds nothing).
    """

    name: str
    kinds: frozenset[str]
    detect: Detector
    detect_in: LanguageDetector | None = None
    requires: str | None = None


FAMILIES: tuple[Family, ...] = (
    Family("contact", contact.KINDS, contact.detect, requires="@"),  # phones have digits
    Family("ids", ids.KINDS, ids.detect, requires=""),  # every shape holds a digit
    Family("finance", finance.KINDS, finance.detect),  # a BIC may have none
    Family("network", network.KINDS, network.detect, requires=":"),  # IPv6 may have none
    Family("location", location.KINDS, location.detect, requires=""),
    Family(
        "personal", personal.KINDS, personal.detect, personal.detect_birth_dates, requires=""
    ),  # anchored on a year
    Family("special", special.KINDS, special.detect, special.detect_special),
)


def _all_kinds(families: tuple[Family, ...]) -> frozenset[str]:
    kinds: set[str] = set()
    for family in families:
        if kinds & family.kinds:
            # Two families claiming one kind would make counts and rules ambiguous.
            raise ConfigError(f"kinds {sorted(kinds & family.kinds)} declared twice")
        kinds |= family.kinds
    return frozenset(kinds)


KINDS: frozenset[str] = _all_kinds(FAMILIES)
