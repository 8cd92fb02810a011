"""The searches of ``ids`` that skip work find what the plain searches find.

Numbers: a segment whose only stretch of an identifier's length can be the whole of it
is read without ``_runs.spans``; the property compares with reading every stretch that
``spans`` gives, on texts of digit groups and separators.

Letters and digits: ``ids._alnum_matches`` tries the digit half of ``ids._ALNUM`` only
where the digit segments start a group of 8 or 17 digits, the letter half at capitals,
and merges the two as one walk would. These properties compare it with
``_ALNUM.finditer`` over the same windows, on texts built from pieces of the shapes and
the separators between them, so that shapes overlap and chain (a DNI whose letter opens
an NIE, and so on), with the compiled digit passes and with the Python ones.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sovra.classify import _compiled, _runs, ids
from sovra.model import Finding

_GROUPS = st.lists(
    st.tuples(
        st.text("0123456789", min_size=1, max_size=12),
        st.sampled_from([" ", "-", ".", "/", "  ", " - ", "(", ") ", "+", ", ", "\n", "a", "x "]),
    ),
    max_size=12,
).map(lambda pairs: "".join(digits + separator for digits, separator in pairs))


def _every_stretch(text: str) -> list[Finding]:
    found = []
    for segment in _runs.segments(text):
        for start, end, digits in _runs.spans(text, segment, ids._LENGTHS):
            if text[start] not in "+(":
                finding = ids._read_number(text, start, end, digits, {})
                if finding is not None:
                    found.append(finding)
    return found


@settings(max_examples=800, deadline=None)
@given(text=_GROUPS, word=st.sampled_from(["", "PESEL ", "NIP ", "CCCD ", "SSN ", "MST "]))
def test_numbers_found_as_when_every_stretch_is_read(text: str, word: str) -> None:
    text = word + text
    _runs.forget()
    assert list(ids._numeric(text, {})) == _every_stretch(text)


_PIECES = [
    *"0123456789",
    *" -+(./,\n",
    *"XYZABCDFGHNQx",
    "é",
    "a",
    "1234567",
    "12345678",
    "11010519491231002",
    "12345678901234567",
    "AB",
    "CFGH",
    "ABC",
    " 12",
    "X ",
    "Y-",
    "Z",
]
_TEXT = st.one_of(
    st.lists(st.sampled_from(_PIECES), max_size=60).map("".join),
    st.text(st.sampled_from([*"0123456789 -XYZABCDx("]), max_size=120),
)


def _reference(text: str) -> list[tuple[tuple[int, int], str | None]]:
    return [
        (match.span(), match.lastgroup)
        for lo, hi in _runs.windows(text)
        for match in ids._ALNUM.finditer(text, lo, hi)
    ]


def _split(text: str) -> list[tuple[tuple[int, int], str | None]]:
    return [(match.span(), match.lastgroup) for match in ids._alnum_matches(text)]


@settings(max_examples=1_000, deadline=None)
@given(text=_TEXT)
def test_split_search_finds_what_the_whole_pattern_finds(text: str) -> None:
    _runs.forget()
    assert _split(text) == _reference(text)


@settings(max_examples=300, deadline=None)
@given(text=_TEXT)
def test_split_search_agrees_over_the_python_digit_passes(text: str) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_compiled, "NATIVE", None)
        _runs.forget()
        assert _split(text) == _reference(text)
    _runs.forget()


@pytest.mark.parametrize(
    "text",
    [
        "12345678 X 1234567 Y 1234567Z",  # a DNI, and an NIE chain starting on its letter
        "12345678 X-1234567L",
        "X 1234567 Y 1234567Z 12345678Z",
        "AB 12 34 56 C 11010519491231002X",
        "12345678Z",
        "(12345678Z)",
        "+12345678Z",
        "a12345678Z 12345678Z",
    ],
)
def test_split_search_on_overlapping_shapes(text: str) -> None:
    _runs.forget()
    assert _split(text) == _reference(text)
    assert _reference(text) == [
        (m.span(), m.lastgroup) for m in ids._ALNUM.finditer(text)
    ]  # the windows themselves lose nothing here
