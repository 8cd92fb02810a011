"""Choosing one finding where several claim overlapping characters."""

from __future__ import annotations

import bisect
from collections.abc import Iterable

from sovra.model import Finding

__all__ = ["resolve_overlaps"]


def _rank(finding: Finding) -> tuple[bool, int, float, int, str]:
    # Ties on every measure fall to the earlier start, then to the kind's name, so the
    # outcome never depends on the order detectors ran in.
    return (
        finding.validated,
        finding.end - finding.start,
        finding.confidence,
        -finding.start,
        finding.kind,
    )


def resolve_overlaps(findings: Iterable[Finding]) -> list[Finding]:
    """Keep a set of pairwise disjoint findings, sorted by start.

    The rule: a validated finding (one that passed a checksum or a numbering-plan check)
    beats one that did not; among equals the longer span wins, then the higher
    confidence. Candidates are taken best-first and each is kept only if it overlaps
    nothing kept before it. Exact duplicates collapse to one.

    Args:
        findings: findings over one text, in any order.

    Returns:
        The kept findings, sorted by start offset.
    """
    starts: list[int] = []
    kept: list[Finding] = []
    for finding in sorted(set(findings), key=_rank, reverse=True):
        i = bisect.bisect_left(starts, finding.start)
        # Kept spans are disjoint and sorted, so only the neighbours can overlap.
        if i > 0 and kept[i - 1].end > finding.start:
            continue
        if i < len(kept) and kept[i].start < finding.end:
            continue
        starts.insert(i, finding.start)
        kept.insert(i, finding)
    return kept
