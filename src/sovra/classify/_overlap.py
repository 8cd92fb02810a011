"""Choosing one finding where several claim overlapping characters."""

from __future__ import annotations

import bisect
import operator
from collections.abc import Iterable

from sovra.model import Finding

__all__ = ["resolve_overlaps"]

_BY_START = operator.attrgetter("start")


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
    # Most texts: no two findings overlap (an exact duplicate overlaps its twin), and
    # they are kept as they are, sorted, without hashing each to drop duplicates.
    ordered = sorted(findings, key=_BY_START)
    reach = -1
    for finding in ordered:
        if finding.start < reach:
            break
        reach = finding.end
    else:
        return ordered
    # A finding can only be blocked by one it overlaps, so the rule is applied to each
    # cluster of overlapping findings on its own, and the many findings that overlap
    # nothing are kept without ranking (a test compares this with ranking them all).
    kept: list[Finding] = []
    cluster: list[Finding] = []
    reach = -1  # the furthest end in the current cluster
    for finding in sorted(set(ordered), key=_BY_START):
        if finding.start >= reach and cluster:
            if len(cluster) == 1:
                kept.append(cluster[0])
            else:
                kept.extend(_best_first(cluster))
            cluster = []
        cluster.append(finding)
        reach = max(reach, finding.end)
    if len(cluster) == 1:
        kept.append(cluster[0])
    elif cluster:
        kept.extend(_best_first(cluster))
    return kept


def _best_first(findings: list[Finding]) -> list[Finding]:
    """The rule applied to *findings*: the best kept first, then each that fits."""
    starts: list[int] = []
    kept: list[Finding] = []
    for finding in sorted(findings, key=_rank, reverse=True):
        i = bisect.bisect_left(starts, finding.start)
        # Kept spans are disjoint and sorted, so only the neighbours can overlap.
        if i > 0 and kept[i - 1].end > finding.start:
            continue
        if i < len(kept) and kept[i].start < finding.end:
            continue
        starts.insert(i, finding.start)
        kept.insert(i, finding)
    return kept
