"""The detector families the scanner runs, and the kinds each one reports.

Adding a family means writing one module with ``KINDS`` and ``detect`` and adding one
line to :data:`FAMILIES`; the scanner, :data:`KINDS` and the tests pick it up from here.
The tuple is fixed at import on purpose: what a deployment detects is part of its code,
not something a caller can change at run time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from sovra.classify import contact, finance, ids
from sovra.errors import ConfigError
from sovra.model import Finding

__all__ = ["FAMILIES", "KINDS", "Detector", "Family"]

Detector = Callable[[str], Iterator[Finding]]
"""A detector yields findings whose spans index the very string it was given.

It MUST NOT yield a kind its family does not declare, MUST yield only spans with
``0 <= start < end <= len(text)``, and MUST run in time linear in the text.
"""


@dataclass(frozen=True, slots=True)
class Family:
    """One detector family: a name, the kinds it reports and its detector."""

    name: str
    kinds: frozenset[str]
    detect: Detector


FAMILIES: tuple[Family, ...] = (
    Family("contact", contact.KINDS, contact.detect),
    Family("ids", ids.KINDS, ids.detect),
    Family("finance", finance.KINDS, finance.detect),
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
