"""Shortcuts of the scanner's per-call work that change no answer, each held to the plain
way it replaces: a national number's regions read valid-first, a text too short to hold
too many numbers not counted, findings that overlap nothing kept without ranking.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_classify_fast_paths import _national_runs

from sovra.classify import _overlap, _plans, contact, scan
from sovra.classify._fold import fold
from sovra.classify._runs import forget, segments
from sovra.errors import PayloadTooLarge
from sovra.model import Finding


def _national_in_region_order(raw: str, digits: str, named: bool) -> int:
    """Each region whose shape fits, in order, parsed; the first valid one decides."""
    possible = False
    for region in contact.REGIONS:
        if not contact._NATIONAL_SHAPE[region](digits):
            continue
        number = _plans.parse(raw, region)
        if number is None:
            continue
        if _plans.valid(*number):
            return contact._VALID
        possible = possible or (named and _plans.possible(*number))
    return contact._POSSIBLE if possible else contact._INVALID


def test_national_numbers_read_valid_first_give_the_same_outcome() -> None:
    rng = random.Random(31)
    outcomes = {contact._VALID: 0, contact._POSSIBLE: 0, contact._INVALID: 0}
    for raw in _national_runs(rng):
        digits = "".join(c for c in raw if c.isdigit())
        for named in (True, False):
            outcome = contact._national(raw, digits, named)
            assert outcome == _national_in_region_order(raw, digits, named), (raw, named)
            outcomes[outcome] += 1
    assert min(outcomes.values()) > 100, outcomes  # every outcome is exercised


@settings(max_examples=1000, deadline=None)
@given(digits=st.text("0123456789", min_size=1, max_size=16))
def test_the_regions_a_national_number_fits_are_read_from_its_length_and_first_digit(
    digits: str,
) -> None:
    fits = tuple(r for r in contact.REGIONS if contact._NATIONAL_SHAPE[r](digits))
    assert contact._SHAPED.get((len(digits), digits[0]), fits) == fits
    assert contact._regions_shaped(digits) == fits


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(st.sampled_from("0123456789 .-x\uff11"), max_size=60),
    limit=st.integers(-1, 30),
)
def test_the_number_bound_counts_every_text_it_could_refuse(text: str, limit: int) -> None:
    # The count the scanner made for every text before: the groups of its digit segments.
    groups = sum(len(segment.groups) for segment in segments(fold(text)))
    forget()
    if groups > limit and text:
        with pytest.raises(PayloadTooLarge):
            scan(text, max_numbers=limit)
    else:
        scan(text, max_numbers=limit)


_FINDING = st.builds(
    lambda kind, start, length, confidence, validated: Finding(
        kind, start, start + length, confidence, validated
    ),
    st.sampled_from(["phone", "email", "pl_pesel"]),
    st.integers(0, 40),
    st.integers(1, 12),
    st.sampled_from([0.4, 0.9]),
    st.booleans(),
)


@settings(max_examples=500, deadline=None)
@given(findings=st.lists(_FINDING, max_size=8))
def test_findings_that_overlap_nothing_are_kept_as_ranking_them_keeps_them(
    findings: list[Finding],
) -> None:
    ranked = sorted(_overlap._best_first(list(set(findings))), key=lambda f: f.start)
    assert _overlap.resolve_overlaps(findings) == ranked
