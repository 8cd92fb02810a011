"""The compiled identity-number checks, Luhn sum and account shapes agree with Python.

``_native.id_checks`` answers, for a digit stretch, which numeric schemes of ``ids``
accept it (one bit each); ``_native.luhn`` is ``finance._luhn_checksum``;
``_native.account_shapes`` says whether the searches of ``finance._shapes`` for where an
IBAN or a VAT number can start would find one. The Python
checks stay the reference (``test_classify_ids_validators.py`` holds them to stdnum), so
each property here compares the two on generated numbers, valid and not, and on input no
detector would pass: other lengths, other characters, very long strings, other types.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum import luhn
from test_classify_ids_validators import _candidates

from sovra.classify import _compiled, finance, ids
from sovra.classify._fold import fold
from sovra.classify._runs import forget, windows, windows_ascii

_FUNCTIONS = ("id_checks", "luhn", "account_shapes", "letter_shapes")
pytestmark = pytest.mark.skipif(
    _compiled.NATIVE is None, reason="test_compiled_passes_are_built reports the missing build"
)


def test_the_build_is_current() -> None:
    # A module built from an older _native.c lacks these; the scanner then uses the
    # Python checks (correct, slower). Rebuild it: scripts/bootstrap, or pip install -e .
    missing = [name for name in _FUNCTIONS if _compiled.native(name) is None]
    assert not missing, f"sovra.classify._native is out of date (no {missing}): rebuild it"


_SPECS = {spec.kind: spec for spec in ids._NUMERIC}
_CHECKED = sorted(ids._NATIVE_BITS)


def _native_passes(kind: str, digits: str) -> bool:
    native = _compiled.NATIVE
    assert native is not None
    return bool(native.id_checks(digits) & ids._NATIVE_BITS[kind])


def _agrees(digits: str) -> None:
    """Every scheme of the digits' length answers as its Python check; others are 0."""
    native = _compiled.NATIVE
    assert native is not None
    answer = native.id_checks(digits)
    expected = 0
    for kind in _CHECKED:
        spec = _SPECS[kind]
        if len(digits) in spec.lengths and spec.check(digits):
            expected |= ids._NATIVE_BITS[kind]
    assert answer == expected, digits


def test_every_bit_is_one_scheme_and_the_scanner_reads_them() -> None:
    bits = list(ids._NATIVE_BITS.values())
    assert len(set(bits)) == len(bits) and all(b & (b - 1) == 0 for b in bits)
    # Every scheme with a compiled check is read from it; the others are called.
    for specs in ids._BY_LENGTH.values():
        for spec in specs:
            assert spec.bit == ids._NATIVE_BITS.get(spec.kind, 0), spec.kind


@pytest.mark.parametrize("kind", _CHECKED)
def test_id_checks_agree_with_the_python_checks(kind: str) -> None:
    @settings(max_examples=400, deadline=None)
    @given(digits=_candidates(kind))
    def agrees(digits: str) -> None:
        assert _native_passes(kind, digits) is _SPECS[kind].check(digits), digits
        _agrees(digits)

    agrees()


@settings(max_examples=500, deadline=None)
@given(digits=st.text("0123456789", max_size=20))
def test_id_checks_agree_on_random_digits(digits: str) -> None:
    _agrees(digits)


def test_every_pesel_date_field_and_us_area_agrees() -> None:
    for month, day in itertools.product(range(100), range(100)):
        body = f"{day:02d}{month:02d}{day:02d}3141"
        for check in "0123456789":
            _agrees(body + check)
    for area, group in itertools.product(range(1000), range(0, 100, 3)):
        for serial in ("0000", "4321", "1120", "5462", "9999"):
            _agrees(f"{area:03d}{group:02d}{serial}")
    for blocked in ("078051120", "457555462", "219099999"):
        assert not _native_passes("us_ssn", blocked)


_NOT_DIGITS = st.text(
    st.sampled_from(["0", "5", "9", "a", " ", "-", "\uff11", "\u0661", "\U0001d7ce", "\ud800"]),
    max_size=30,
)


@settings(max_examples=400, deadline=None)
@given(text=st.one_of(_NOT_DIGITS, st.text(max_size=30)))
def test_anything_but_digits_passes_nothing(text: str) -> None:
    native = _compiled.NATIVE
    assert native is not None
    if text.isascii() and (text.isdigit() or not text):
        _agrees(text)
        assert native.luhn(text) == finance._luhn_checksum(text)
        return
    assert native.id_checks(text) == 0
    assert native.luhn(text) == -1


def test_long_and_wrong_input_is_refused_without_reading_past_it() -> None:
    native = _compiled.NATIVE
    assert native is not None
    for length in (16, 17, 18, 64, 65, 10_000, 1_000_000):
        assert native.id_checks("1" * length) == 0
    assert native.luhn("0" * 64) == 0
    for length in (65, 1_000_000):
        assert native.luhn("0" * length) == -1
    for wrong in (b"44051401359", 44051401359, None, ["4"]):
        with pytest.raises(TypeError):
            native.id_checks(wrong)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            native.luhn(wrong)  # type: ignore[arg-type]


@settings(max_examples=500, deadline=None)
@given(digits=st.text("0123456789", max_size=64))
def test_luhn_agrees_with_the_python_sum_and_stdnum(digits: str) -> None:
    native = _compiled.NATIVE
    assert native is not None
    assert native.luhn(digits) == finance._luhn_checksum(digits)
    if digits:
        assert native.luhn(digits) == luhn.checksum(digits)


# Letters, capitals, digits, spaces and word ends, so that both shapes and their near
# misses are common, with characters outside ASCII and a lone surrogate among them.
_ACCOUNT_TEXT = st.one_of(
    st.text(st.sampled_from([*"PLDEFRa0123456789  -.", "\u00e9", "\u4e2d", "\ud800"]), max_size=80),
    st.text(max_size=80),
)


@settings(max_examples=1500, deadline=None)
@given(text=_ACCOUNT_TEXT, padding=st.integers(0, 60))
def test_account_shapes_agree_with_the_window_searches(text: str, padding: int) -> None:
    native = _compiled.NATIVE
    assert native is not None
    # Prose around the candidate, so that windows start and end inside the text too.
    text = "x" * padding + text + " y" * (padding // 2)
    folded = fold(text)
    try:
        shapes = windows_ascii(folded)
        iban = finance._IBAN_SHAPE.search(shapes.translate(finance._IBAN_SHAPES)) is not None
        vat = finance._VAT_SHAPE.search(shapes.translate(finance._VAT_SHAPES)) is not None
        answer = native.account_shapes(folded, windows(folded))
    finally:
        forget()
    assert answer == iban * finance._IBAN_START + vat * finance._VAT_START


def _in_windows(shapes: Callable[[str, tuple[tuple[int, int], ...]], int], text: str) -> int:
    try:
        return shapes(text, windows(text))
    finally:
        forget()


def test_account_shapes_find_each_shape_and_only_at_a_word_start() -> None:
    native = _compiled.NATIVE
    assert native is not None
    iban, vat = finance._IBAN_START, finance._VAT_START

    def account_shapes(text: str) -> int:
        return _in_windows(native.account_shapes, text)

    assert account_shapes("PL61 1090 1014") == iban | vat
    assert account_shapes("iban pl61 1090") == iban
    assert account_shapes("VAT DE 136695976") == vat
    assert account_shapes("NIP PLX1") == vat
    assert account_shapes("klient17 PESEL 44051401359") == 0
    assert account_shapes("") == account_shapes("PL") == 0
    assert account_shapes("PL 6") == vat and account_shapes("PL6") == vat
    assert account_shapes("\u00e9PL61") == iban | vat  # a letter outside ASCII
    assert account_shapes("x" * 100 + " PL61") == iban | vat
    assert account_shapes("PL61" * 250_000) == iban | vat
    # No digit, no window: nothing is read; windows that do not fit the text are refused.
    assert native.account_shapes("PL61", ()) == 0
    with pytest.raises(ValueError, match="window outside"):
        native.account_shapes("PL61", ((0, 5),))
    for wrong in ((b"PL61", ((0, 4),)), ("PL61", ((0,),)), ("PL61", [(0, 4)])):
        with pytest.raises(TypeError):
            native.account_shapes(*wrong)  # type: ignore[arg-type]


_LETTER_TEXT = st.one_of(
    st.text(st.sampled_from([*"XYZABCTPLa0123456789  --.", "\u00e9", "\u4e2d"]), max_size=60),
    st.text(max_size=60),
)


@settings(max_examples=1500, deadline=None)
@given(text=_LETTER_TEXT)
def test_letter_shapes_never_miss_a_letter_first_identifier(text: str) -> None:
    native = _compiled.NATIVE
    assert native is not None
    text = fold(text)
    if ids._ALNUM_LETTER.search(text) is not None:
        assert _in_windows(native.letter_shapes, text)
    for match in ids._ALNUM_LETTER.finditer(text):  # each match alone is found too
        assert _in_windows(native.letter_shapes, text[match.start() : match.end()])


def test_letter_shapes_of_each_identifier_and_of_prose() -> None:
    native = _compiled.NATIVE
    assert native is not None

    def letter_shapes(text: str) -> int:
        return _in_windows(native.letter_shapes, text)

    for shape in ("X-1234567-L", "Y1234567X", "AB 12 34 56 C", "ABC 123456", "AB1234567"):
        assert letter_shapes(f"nr {shape}."), shape
    assert letter_shapes("T22000129")  # a German ID card: capitals and digits
    for prose in ("PESEL 44051401359", "Uwagi: 5", "ABCD 1234", "aX1", "", "A", "AB-", "XY 1"[:3]):
        assert not letter_shapes(prose), prose
    assert letter_shapes("A" * 9 + "1") and not letter_shapes("A" * 10 + "1")
    assert not letter_shapes("ABCDEFGHIJ" * 100_000 + "1")
    assert letter_shapes("x" * 100 + " AB1") and not native.letter_shapes("AB1", ())
    with pytest.raises(ValueError, match="window outside"):
        native.letter_shapes("AB1", ((-1, 2),))
    with pytest.raises(TypeError):
        native.letter_shapes(None, ())  # type: ignore[arg-type]
