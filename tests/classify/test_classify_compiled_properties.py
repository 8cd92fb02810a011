"""The compiled passes agree with the Python ones on any text at all.

``_native.c`` reads attacker-chosen text, so beyond the generated texts of
``test_classify_fast_paths.py`` (shaped like numbers and identifiers), these properties
draw arbitrary strings: every code point, lone surrogates, all three string widths, and
mixtures dense in the characters each pass cares about.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sovra.classify import _compiled, _fold, _runs, _words

pytestmark = pytest.mark.skipif(
    _compiled.NATIVE is None, reason="test_compiled_passes_are_built reports the missing build"
)

# Any code point, and a mix heavy in digits, separators, openers and the characters that
# fold (full-width and Arabic-Indic digits, no-break spaces, dashes), in the three widths.
_ANY = st.text(st.characters(codec=None, min_codepoint=0, max_codepoint=0x10FFFF))
_DENSE = st.text(
    st.sampled_from(
        [
            *"0123456789+()-./ aZ\n",
            *("\uff11", "\u0661", "\u00a0", "\u2013", "é", "中", "\U0001f600", "\ud800"),
            "\U0001d7ce",
        ]
    ),
    max_size=400,
)
_TEXT = st.one_of(_ANY, _DENSE)


def _python(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_compiled, "NATIVE", None)


@settings(max_examples=400, deadline=None)
@given(text=_TEXT)
def test_fold_agrees(text: str) -> None:
    native = _compiled.NATIVE
    assert native is not None
    compiled = native.fold(text, _fold._dense())
    with pytest.MonkeyPatch.context() as patch:
        _python(patch)
        assert compiled == _fold.fold(text)
    assert len(compiled) == len(text)


@settings(max_examples=400, deadline=None)
@given(text=_TEXT)
def test_digit_runs_agree(text: str) -> None:
    native = _compiled.NATIVE
    assert native is not None
    folded = _fold.fold(text)
    spans = _runs._windows(folded)
    assert native.windows(folded, _runs.MARGIN, _runs._STEP) == spans
    compiled = native.segments(
        folded, spans, _runs.Segment, _runs.Group, _runs._LONG, _runs._MAX_GROUPS
    )
    assert compiled == _runs._segments(folded)


@settings(max_examples=400, deadline=None)
@given(text=_TEXT, words=st.lists(st.text(min_size=1, max_size=4), min_size=1, max_size=6))
def test_word_occurrences_agree(text: str, words: list[str]) -> None:
    native = _compiled.NATIVE
    assert native is not None
    compiled = native.occurrences(text, tuple(words))
    with pytest.MonkeyPatch.context() as patch:
        _python(patch)
        assert compiled == _words.occurrences(text, tuple(words))
