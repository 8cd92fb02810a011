"""The VAT detector's plain definition: its pattern searched for over the whole text."""

from __future__ import annotations

from sovra.classify import finance
from sovra.model import Finding


def vat_over_the_whole_text(text: str) -> list[Finding]:
    """``_VAT`` searched for over the whole text, from after each number found or one
    past each rejected start."""
    found = []
    match = finance._VAT.search(text)
    while match is not None:
        finding = finance._vat_at(text, match)
        if finding is not None:
            found.append(finding)
        match = finance._VAT.search(text, finding.end if finding else match.start() + 1)
    return found
