"""IPv4 candidates come from the segments of four or more digit groups only.

``network._ipv4_candidates`` filters the shared digit segments before walking them;
this holds it to the walk over every segment that it replaces, on texts dense in digits
and dots.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from hypothesis import given, settings
from hypothesis import strategies as st

from sovra.classify import _runs, network

_TEXTS = st.lists(st.sampled_from([*"0123456789.. :aV", "1.2", "255.", "v10."]), max_size=120).map(
    "".join
)


def _every_segment(text: str) -> Iterator[re.Match[str]]:
    for segment in _runs.segments(text):
        groups = segment.groups
        resume = 0
        for i in range(len(groups) - 3):
            if groups[i].start < resume or text[groups[i].end] != ".":
                continue
            match = network._IPV4.match(text, groups[i].start)
            if match is not None:
                resume = match.end()
                yield match


@settings(max_examples=400, deadline=None)
@given(text=_TEXTS)
def test_ipv4_candidates_agree_with_the_walk_over_every_segment(text: str) -> None:
    try:
        expected = [m.span() for m in _every_segment(text)]
        assert [m.span() for m in network._ipv4_candidates(text)] == expected
    finally:
        _runs.forget()
