"""The scanner's fast paths agree with the plain definitions they stand in for.

Each shortcut taken for speed (one automaton instead of a table walk, searching only the
stretches around digits, stdnum's check-digit functions before its full validation,
fewer phonenumbers calls, a prefilter before the date patterns) is checked here against
a straightforward reference written in this file, on hand cases and on many generated
texts (fixed seeds, so that a failure reproduces).
"""

from __future__ import annotations

import itertools
import os
import random
import re
import shutil
import string
import sys
import unicodedata
from collections.abc import Callable, Iterator
from types import ModuleType

import phonenumbers
import pytest
from _stdnum_validators import VALIDATORS
from _vat_reference import vat_over_the_whole_text
from phonenumbers import PhoneNumberFormat, PhoneNumberType
from stdnum import iban, numdb
from stdnum.cn import ric
from stdnum.fr import nir
from stdnum.iso7064 import mod_97_10
from stdnum.pl import pesel, regon
from stdnum.vn import mst

from sovra.classify import (
    _compiled,
    _fold,
    _overlap,
    _runs,
    contact,
    finance,
    ids,
    personal,
    scan,
    special,
)
from sovra.classify._stdnum import passes
from sovra.classify._terms import CONTEXT, LANGUAGES
from sovra.classify._words import WordLists, Words, occurrences
from sovra.model import Finding

# --- folding -----------------------------------------------------------------------------


def _reference_table() -> dict[int, int]:
    """The fold table from a walk over every code point, as it was first written."""
    table: dict[int, int] = {}
    for cp in range(0x80, sys.maxunicode + 1):
        char = chr(cp)
        if char.isdecimal():
            table[cp] = ord("0") + unicodedata.decimal(char)
    for cp in range(0x21, 0x7F):
        table[cp + 0xFF01 - 0x21] = cp
    table.update(dict.fromkeys(_fold._SPACES, ord(" ")))
    table.update(dict.fromkeys(_fold._DASHES, ord("-")))
    return table


def test_stepped_walk_finds_every_decimal_digit() -> None:
    # Pins the assumption of the fast table build: decimal digits come in runs of ten,
    # only in the first two planes, in this Python's Unicode version.
    assert _fold._table() == _reference_table()


_NOT_BUILT = "the compiled passes are not built (test_compiled_passes_are_built says why)"


@pytest.fixture(params=["compiled", "python"])
def implementation(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs a test with the compiled passes (fold, digit runs), then with the Python ones."""
    if request.param == "python":
        monkeypatch.setattr(_compiled, "NATIVE", None)
    elif _compiled.NATIVE is None:
        pytest.skip(_NOT_BUILT)
    return str(request.param)


@pytest.fixture
def native() -> ModuleType:
    """The compiled module, for the tests that call it directly."""
    if _compiled.NATIVE is None:
        pytest.skip(_NOT_BUILT)
    return _compiled.NATIVE


def test_compiled_passes_are_built() -> None:
    # Without them the scanner is correct but slower; an install with a C compiler has
    # them. Only a machine without one, outside CI, may run the Python passes alone.
    if _compiled.NATIVE is None and shutil.which("cc") is None and not os.environ.get("CI"):
        pytest.skip("no C compiler (cc) here: the scanner's compiled passes are not built")
    assert _compiled.NATIVE is not None, "sovra.classify._native is not built: pip install -e ."


def test_fold_is_translate_with_the_table(implementation: str) -> None:
    everything = "".join(map(chr, range(sys.maxunicode + 1)))
    assert _fold.fold(everything) == everything.translate(_reference_table())


def test_fold_around_lone_surrogates_and_in_pure_ascii(implementation: str) -> None:
    assert _fold.fold("\ud800\uff11\udfff\u00a0") == "\ud8001\udfff "
    text = "plain ASCII 123"
    assert _fold.fold(text) is text
    untouched = "số điện thoại 😀"  # nothing to fold: the same string back
    assert _fold.fold(untouched) is untouched
    # A result is made in the narrowest form that holds it, so it equals the literal.
    assert _fold.fold("\uff11\uff12\uff13") == "123"
    assert _fold.fold("\U0001f600\uff11\u0661") == "\U0001f6001" + "1"
    assert _fold.fold("é\u00a0\u2013") == "é -"


# --- digit windows -----------------------------------------------------------------------


def test_compiled_and_python_digit_passes_agree(native: ModuleType) -> None:
    rng = random.Random(31)
    # One-, two- and four-byte strings (Latin-1, CJK, an emoji), dense and sparse digits.
    alphabets = [_NOISY, _NOISY + "\U0001f600", "+()-./ 0123456789", "x" * 80 + "1 (2)-3"]
    for _ in range(6_000):
        alphabet = rng.choice(alphabets)
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(400)))
        spans = _runs._windows(text)
        assert native.windows(text, _runs.MARGIN, _runs._STEP) == spans, text
        compiled = native.segments(
            text, spans, _runs.Segment, _runs.Group, _runs._LONG, _runs._MAX_GROUPS
        )
        assert compiled == _runs._segments(text), text
        assert all(type(s) is _runs.Segment for s in compiled)
        assert all(type(g) is _runs.Group for s in compiled for g in s.groups)


def test_compiled_digit_pass_refuses_bad_arguments(native: ModuleType) -> None:
    with pytest.raises(ValueError, match="window outside the text"):
        native.segments("12", ((0, 5),), _runs.Segment, _runs.Group, 5, 8)
    with pytest.raises(TypeError):
        native.segments("12", ((0, 2),), dict, _runs.Group, 5, 8)
    with pytest.raises(TypeError):
        native.windows(b"12", 24, 48)


def test_compiled_and_python_stretches_agree(native: ModuleType) -> None:
    rng = random.Random(41)
    # Groups of every length near the identifiers' and cards', joined by every separator.
    pieces = ["+", "(", ")", "-", ".", "/", " ", "  ", "x", "é", "\U0001f600"]
    length_sets = [None, ids._LENGTHS, finance._CARD_LENGTHS, frozenset({1}), frozenset({40})]
    checked = 0
    for _ in range(3_000):
        text = "".join(
            rng.choice(pieces)
            if rng.random() < 0.3
            else str(rng.randrange(10 ** rng.randrange(1, 12)))
            for _ in range(rng.randrange(1, 30))
        )
        for segment in _runs._segments(text):
            for lengths in length_sets:
                expected = _runs._spans(text, segment, lengths)
                assert native.spans(text, segment, lengths) == expected, (text, segment)
                checked += len(expected) > 1
    assert checked > 1_000  # the ordering of several stretches is exercised


def test_compiled_stretches_refuse_bad_arguments(native: ModuleType) -> None:
    segment = _runs.Segment((_runs.Group(0, 2), _runs.Group(3, 5)), 0, 5, "1234")
    with pytest.raises(ValueError, match="empty"):
        native.spans("12 34", segment, frozenset())
    with pytest.raises(TypeError, match="set of ints"):
        native.spans("12 34", segment, [9])
    with pytest.raises(ValueError, match="outside the text"):
        native.spans("12", segment, None)
    with pytest.raises(ValueError, match="more digits"):
        native.spans("12 34", segment._replace(digits="12"), None)
    with pytest.raises(TypeError):
        native.spans("12 34", ("not", "a", "segment"), None)


def _finds(text: str, word: str) -> list[int]:
    """Every offset of *word* in *text*: ``str.find`` from one past the last, repeated."""
    found, at = [], text.find(word)
    while at != -1:
        found.append(at)
        at = text.find(word, at + 1)
    return found


def test_word_occurrences_are_every_find(implementation: str) -> None:
    rng = random.Random(37)
    words = ("BIC", "bic", "aa", "a", "é中", "\U0001f600x", "SWIFT")
    alphabet = "aBICbicxé中\U0001f600SWIFT "
    for _ in range(3_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(80)))
        got = occurrences(text, words)
        assert got == [_finds(text, word) for word in words], text
    assert occurrences("aaaa", ("aa",)) == [[0, 1, 2]]
    assert occurrences("", ("a",)) == [[]]


def test_compiled_word_search_refuses_bad_arguments(native: ModuleType) -> None:
    with pytest.raises(TypeError, match="non-empty"):
        native.occurrences("abc", ("",))
    with pytest.raises(TypeError, match="non-empty"):
        native.occurrences("abc", (b"a",))
    with pytest.raises(ValueError, match="too many"):
        native.occurrences("abc", tuple("x" * 65))


def _texts(rng: random.Random, alphabet: str, count: int, longest: int) -> Iterator[str]:
    for _ in range(count):
        yield "".join(rng.choice(alphabet) for _ in range(rng.randrange(longest)))


# Digits, capitals, separators and letters around them, with long digit-free stretches
# so that a text has several windows.
_NOISY = string.digits * 2 + "ABCDEFGHJKLMNPXYZ" + "+()-./ " + "ab é中" + " " * 20 + "q" * 30


def test_windows_hold_every_digit_with_its_margin(implementation: str) -> None:
    rng = random.Random(1)
    for text in _texts(rng, _NOISY, 3_000, 300):
        spans = _runs.windows.__wrapped__(text)
        assert all(a[1] < b[0] for a, b in itertools.pairwise(spans))
        for i, char in enumerate(text):
            if char in string.digits:
                assert any(
                    lo <= max(0, i - _runs.MARGIN) and min(len(text), i + _runs.MARGIN) <= hi
                    for lo, hi in spans
                ), (text, i)


_DIGIT_AND_STEP = re.compile(r"[0-9][\s\S]{0,48}")


def _reference_windows(text: str) -> tuple[tuple[int, int], ...]:
    """The windows as first written: one regular-expression pass over the whole text."""
    found: list[tuple[int, int]] = []
    lo = hi = -1
    for match in _DIGIT_AND_STEP.finditer(text):
        start, end = match.start() - _runs.MARGIN, match.end() + _runs.MARGIN
        if start > hi:
            if hi >= 0:
                found.append((max(lo, 0), min(hi, len(text))))
            lo = start
        hi = end
    if hi >= 0:
        found.append((max(lo, 0), min(hi, len(text))))
    return tuple(found)


def test_windows_agree_with_one_pass_over_the_whole_text(implementation: str) -> None:
    # Dense stretches (found by the short search ahead), sparse ones (found by str.find)
    # and the switches between them.
    rng = random.Random(14)
    alphabets = ["ab ", "ab 1", "a" * 40 + "5", string.digits + "x" * 30, "q" * 100 + "7"]
    for _ in range(4_000):
        alphabet = rng.choice(alphabets)
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(600)))
        assert _runs.windows.__wrapped__(text) == _reference_windows(text), text


def _whole_and_windowed(pattern: re.Pattern[str], text: str) -> tuple[list[str], list[str]]:
    whole = [f"{m.span()}{m.lastgroup}" for m in pattern.finditer(text)]
    windowed = [
        f"{m.span()}{m.lastgroup}"
        for lo, hi in _runs.windows.__wrapped__(text)
        for m in pattern.finditer(text, lo, hi)
    ]
    return whole, windowed


# Shapes that reach furthest from their digits: nine capitals before the one digit of an
# ID card number, a VAT candidate running on into capitals, spaced groups.
_FAR_REACHING = [
    "LMNPRTVWX1",
    "CFGHJKLMN0",
    "T220001293",
    "AB 12 34 56 C",
    "X-2482300-W",
    "11010519491231002X",
    "PL5 ABCD EFGH IJKLMN",
    "DE136695976 ABCDEFGHIJ",
    "PL61 1090 1014 0000 0712 1981 2874",
    "+48 (22) 123-45-67",
]


def _shaped_texts(rng: random.Random, count: int) -> Iterator[str]:
    for noise in _texts(rng, _NOISY, count, 200):
        cut = rng.randrange(len(noise) + 1)
        far = rng.choice(_FAR_REACHING)
        yield noise[:cut] + rng.choice([" ", "", "q" * 30]) + far + " " + noise[cut:]


@pytest.mark.parametrize(
    "pattern",
    [_runs._RUN, ids._ALNUM, finance._CHECK_DIGITS, finance._VAT],
    ids=["digit_runs", "letter_and_digit_ids", "iban_check_digits", "vat_candidates"],
)
def test_windowed_search_finds_what_a_whole_text_search_finds(
    pattern: re.Pattern[str], implementation: str
) -> None:
    rng = random.Random(2)
    for text in _shaped_texts(rng, 5_000):
        whole, windowed = _whole_and_windowed(pattern, text)
        assert whole == windowed, text


def test_vat_numbers_found_in_windows_as_in_the_whole_text() -> None:
    rng = random.Random(3)
    pieces = ["PL5261040828", "DE136695976", "ES65992844W", "UE ", "PL ", "FR", " ", "x"]
    for shaped in _shaped_texts(rng, 2_000):
        text = shaped + rng.choice(pieces) + shaped[::-1] + rng.choice(pieces)
        assert list(finance.detect_vat(text)) == vat_over_the_whole_text(text), text


# --- digit segments ----------------------------------------------------------------------

_REFERENCE_RUN = re.compile(r"(?<![0-9A-Za-z])[+(]?[0-9](?:\)?[-./ ]{0,2}\(?[0-9])*")


def _reference_segments(text: str) -> list[tuple[tuple[tuple[int, int], ...], int, str]]:
    """Runs split where a gap exceeds two characters, two long groups meet, or at eight."""
    found = []
    for run in _REFERENCE_RUN.finditer(text):
        groups = [
            (run.start() + m.start(), run.start() + m.end()) for m in _DIGITS.finditer(run[0])
        ]
        current: list[tuple[int, int]] = []
        for group in [*groups, None]:
            if current and (
                group is None
                or group[0] - current[-1][1] > 2
                or (group[1] - group[0] > 5 and current[-1][1] - current[-1][0] > 5)
                or len(current) >= 8
            ):
                first = current[0][0]
                lead = first - 1 if first > 0 and text[first - 1] in "+(" else first
                digits = "".join(text[a:b] for a, b in current)
                found.append((tuple(current), lead, digits))
                current = []
            if group is not None:
                current.append(group)
    return found


_DIGITS = re.compile("[0-9]+")


def test_segments_follow_the_splitting_rules(implementation: str) -> None:
    rng = random.Random(4)
    alphabet = string.digits * 4 + "+()-./ a"
    cases = [*_texts(rng, alphabet, 20_000, 40), "+48 601 234 567", "(030) 1234-5678"]
    cases += ["123456 789012 3", "1 2 3 4 5 6 7 8 9 10", "x+1", "a(12) 34", "12)  (34"]
    for text in cases:
        got = [
            (tuple((g.start, g.end) for g in s.groups), s.lead, s.digits)
            for s in _runs.segments.__wrapped__(text)
        ]
        assert got == _reference_segments(text), text
        assert all(s.end == s.groups[-1].end for s in _runs.segments.__wrapped__(text))


# --- phone numbers -----------------------------------------------------------------------


def _reference_phones(text: str) -> list[Finding]:
    """The plain path: every shaped region parsed, ``is_valid_number`` asked each time."""

    def words_before(start: int, width: int, words: tuple[str, ...]) -> bool:
        before = text[max(0, start - 30) : start].lower()[-width:]
        return any(word in before for word in words)

    found = []
    for segment in _runs.segments.__wrapped__(text):
        start, end = segment.lead, segment.end
        raw, digits = text[start:end], segment.digits
        if not 7 <= len(digits) <= 15 or contact._dated_or_priced(raw):
            continue
        named = words_before(start, 30, contact.PHONE_CONTEXT)
        if not named and words_before(start, 14, contact._NOT_PHONE_CONTEXT):
            continue
        if raw.startswith("+") or (raw.startswith("00") and len(digits) > 9):
            if not 8 <= len(digits) <= 15:
                continue
            spelled = "+" + (raw[2:] if raw.startswith("00") else raw[1:])
            try:
                number = phonenumbers.parse(spelled, None)
            except phonenumbers.NumberParseException:
                continue
            if phonenumbers.is_possible_number(number):
                valid = phonenumbers.is_valid_number(number)
                found.append(Finding("phone", start, end, 0.95 if valid else 0.4, valid))
            continue
        if not 7 <= len(digits) <= 12:
            continue
        possible, valid = False, False
        for region in contact.REGIONS:
            if not contact._NATIONAL_SHAPE[region](digits):
                continue
            try:
                number = phonenumbers.parse(raw, region)
            except phonenumbers.NumberParseException:
                continue
            valid = valid or phonenumbers.is_valid_number(number)
            possible = possible or phonenumbers.is_possible_number(number)
        if valid:
            found.append(Finding("phone", start, end, 0.9 if named else 0.75, True))
        elif possible and named:
            found.append(Finding("phone", start, end, 0.4, False))
    return found


_PHONE_REGIONS = (*contact.REGIONS, "IT", "NL", "JP", "BR", "IN", "CA", "AU", "RU", "CH")
_PHONE_TYPES = (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE, PhoneNumberType.TOLL_FREE)
_PHONE_FORMATS = (
    PhoneNumberFormat.NATIONAL,
    PhoneNumberFormat.INTERNATIONAL,
    PhoneNumberFormat.E164,
)
_BEFORE = ("", "tel. ", "Telefon: ", "số điện thoại ", "PESEL ", "order ", "ISBN ", "电话")


def _printed_numbers(rng: random.Random) -> Iterator[str]:
    for region, kind, form in itertools.product(_PHONE_REGIONS, _PHONE_TYPES, _PHONE_FORMATS):
        example = phonenumbers.example_number_for_type(region, kind)
        if example is None:
            continue
        printed = phonenumbers.format_number(example, form)
        yield printed
        yield "00" + printed[1:] if printed.startswith("+") else printed.replace(" ", ".")
        for _ in range(12):  # the same layout with other digits: valid or not
            yield "".join(rng.choice(string.digits) if c.isdigit() else c for c in printed)


def test_phones_agree_with_the_plain_path() -> None:
    rng = random.Random(5)
    texts = [
        f"{rng.choice(_BEFORE)}{number}{rng.choice(['', '.', ' i ', ', tel. 601 234 567'])}"
        for number in _printed_numbers(rng)
    ]
    texts += [" ".join(str(rng.randrange(10**6, 10**12)) for _ in range(8)) for _ in range(300)]
    found_some = 0
    for text in texts:
        expected = _reference_phones(text)
        assert list(contact.detect_phones(text)) == expected, text
        found_some += bool(expected)
    assert found_some > len(texts) // 3  # the cases exercise both outcomes


def test_one_number_twice_keeps_each_ones_own_words() -> None:
    # Outcomes are reused within a call for runs printed alike; the words before each
    # are still read for each.
    text = "Zadzwoń: 601 234 567. W aktach klienta zapisano też numer 601 234 567."
    first, second = contact.detect_phones(text)
    assert (first.confidence, second.confidence) == (0.9, 0.75)


def test_national_shapes_written_out_agree_with_the_table() -> None:
    for length in range(1, 17):
        for head in string.digits:
            digits = head + "5" * (length - 1)
            table = 7 <= length <= 12 and any(
                shape(digits) for shape in contact._NATIONAL_SHAPE.values()
            )
            assert contact._shaped(digits) is table, digits


def _national_runs(rng: random.Random) -> Iterator[str]:
    """Numbers printed without a country code: national forms of real example numbers
    of many regions, the same with other digits, and random runs of 7 to 12 digits
    (some starting with an international call prefix)."""
    for printed in _printed_numbers(rng):
        if not printed.startswith(("+", "00")):
            yield printed
    for _ in range(4_000):
        length = rng.randrange(7, 13)
        run = "".join(rng.choice(string.digits) for _ in range(length))
        yield rng.choice(["", "", "", "00", "011", "0", "1", "12300"]) + run[: length - 2]


def test_regions_skipped_without_a_parse_are_never_valid() -> None:
    rng = random.Random(23)
    skipped = valid = 0
    for raw in _national_runs(rng):
        digits = "".join(c for c in raw if c.isdigit())
        for region in contact.REGIONS:
            try:
                number = phonenumbers.parse(raw, region)
            except phonenumbers.NumberParseException:
                continue
            if phonenumbers.is_valid_number(number):
                valid += 1
                assert contact._may_be_valid(region, digits), (raw, region)
            elif not contact._may_be_valid(region, digits):
                skipped += 1
    assert valid > 300 and skipped > 5_000  # both outcomes are exercised


def test_national_outcome_without_a_word_only_drops_possible() -> None:
    # Unnamed, a run that is only possible gives no finding, so it may read as invalid.
    rng = random.Random(29)
    for raw in _national_runs(rng):
        digits = "".join(c for c in raw if c.isdigit())
        named = contact._national(raw, digits, True)
        unnamed = contact._national(raw, digits, False)
        assert unnamed == (contact._VALID if named == contact._VALID else contact._INVALID), raw


# --- identity numbers --------------------------------------------------------------------

# kind -> how stdnum completes a number with its check digit(s), to make valid ones
_COMPLETE: dict[str, Callable[[str], str]] = {
    "pl_pesel": lambda d: d[:10] + pesel.calc_check_digit(d[:10]),
    "pl_nip": lambda d: d,
    "pl_regon": lambda d: d[:-1] + regon.calc_check_digit(d[:-1]),
    "vn_tax_code": lambda d: d[:9] + mst.calc_check_digit(d[:9]) + d[10:],
    "cn_resident_id": lambda d: d[:17] + ric.calc_check_digit(d[:17] + "0"),
    "fr_nir": lambda d: d[:13] + nir.calc_check_digits(d[:13] + "00"),
}


def test_quick_checks_agree_with_stdnum() -> None:
    rng = random.Random(7)
    for spec in ids._NUMERIC:
        if spec.kind not in VALIDATORS:
            continue
        valid = 0
        for length in sorted(spec.lengths):
            for _ in range(3_000):
                digits = "".join(rng.choice(string.digits) for _ in range(length))
                if spec.kind == "cn_resident_id":  # a real region and birth date
                    digits = "110105" + "19491231" + digits[14:]
                if spec.kind in _COMPLETE and rng.random() < 0.5:
                    digits = _COMPLETE[spec.kind](digits)
                expected = passes(VALIDATORS[spec.kind], digits)
                assert spec.check(digits) is expected, (spec.kind, digits)
                valid += expected
        assert valid > 0, spec.kind


def test_resident_id_table_agrees_with_stdnum_for_every_region() -> None:
    # Every region code of stdnum's database and others, in years around the dates at
    # which counties were created and dissolved, with right and wrong check digits.
    counties = ids._cn_counties()
    assert counties is not None and len(counties) > 3_000
    rng = random.Random(16)
    codes = [*counties, *(f"{rng.randrange(10**6):06d}" for _ in range(2_000))]
    valid = 0
    for code in codes:
        for year in (1900, 1983, 1993, 2015, rng.randrange(1900, 2030)):
            body = f"{code}{year:04d}{rng.randrange(1, 14):02d}{rng.randrange(32):02d}"
            body += f"{rng.randrange(1000):03d}"
            check = ric.calc_check_digit(body + "0") if rng.random() < 0.8 else "7"
            expected = passes(ric.is_valid, body + check)
            assert ids._ric_valid(body + check) is expected, body + check
            valid += expected
    assert valid > len(counties)
    for odd in ("", "1" * 17, "11010519491231002", "1101051949123100X2", "11010519491231002x"):
        assert ids._ric_valid(odd) is passes(ric.is_valid, odd), odd


# --- IBAN --------------------------------------------------------------------------------


def _registry_countries() -> list[str]:
    registry = numdb.get("iban")
    codes = (a + b for a in string.ascii_uppercase for b in string.ascii_uppercase)
    return [code for code in codes if registry.info(code)[0][1]]


def test_iban_check_agrees_with_stdnum_for_every_country() -> None:
    rng = random.Random(8)
    countries = _registry_countries()
    valid = 0
    for code in [*countries, "XX", "QQ"] * 150:
        length = (finance._bban_lengths().get(code) or 20) + rng.choice([0, 0, 0, -1, 1])
        alphabet = rng.choice([string.digits, string.digits + string.ascii_uppercase])
        bban = "".join(rng.choice(alphabet) for _ in range(length))
        try:
            number = code + iban.calc_check_digits(code + "00" + bban) + bban
        except ValueError:
            number = code + "00" + bban
        if rng.random() < 0.1:
            number = number.lower()
        assert finance._is_iban(number) is iban.is_valid(number), number
        if passes(mod_97_10.is_valid, number[4:] + number[:4]):
            assert finance._is_iban(number, mod97_checked=True) is iban.is_valid(number)
        valid += iban.is_valid(number)
    assert valid > len(countries)


def _reference_mod97_ends(candidate: str, bban_length: int | None) -> list[int]:
    """Character by character, as ISO 7064 is usually written."""
    ends, count = [], 0
    for i in range(4, len(candidate)):
        if candidate[i] == " ":
            continue
        count += 1
        if bban_length is not None and count > bban_length:
            break
        if i + 1 < len(candidate) and candidate[i + 1] != " ":
            continue
        if (count >= 11 if bban_length is None else count == bban_length) and (
            int("".join(str(int(c, 36)) for c in candidate[4 : i + 1] + candidate[:4] if c != " "))
            % 97
            == 1
        ):
            ends.append(i + 1)
    return ends


def test_mod97_chunk_ends_agree_with_the_plain_walk() -> None:
    rng = random.Random(9)
    for _ in range(5_000):
        bban = "".join(rng.choice(string.digits + "ab") for _ in range(rng.randrange(11, 31)))
        candidate = "PL" + iban.calc_check_digits("PL00" + bban) + bban
        spaced = candidate[:4]
        for char in candidate[4:]:
            spaced += (" " if rng.random() < 0.25 else "") + char
        for length in (None, 24, len(bban), len(bban) - 3):
            assert finance._mod97_ends(spaced, length) == _reference_mod97_ends(spaced, length)


# --- words in context --------------------------------------------------------------------


@pytest.mark.parametrize("lang", [None, *LANGUAGES])
def test_context_words_agree_with_the_regular_expression(lang: str | None) -> None:
    langs = LANGUAGES if lang is None else (lang,)
    words = sorted({w for code in langs for w in CONTEXT[code]})
    reference = re.compile(
        "|".join(
            re.escape(w) if special._is_han(w[0]) else r"(?<!\w)" + re.escape(w) for w in words
        )
    )
    context = special._matcher(lang).context
    rng = random.Random(10)
    pieces = [*words, "a", "_", " ", "é", "1", "\u0301", "中", ".", "\ud800", "mme", "com"]
    for _ in range(5_000):
        window = "".join(
            rng.choice(pieces) if rng.random() < 0.5 else rng.choice(words)[1:]
            for _ in range(rng.randrange(7))
        )
        assert context.search(window) is (reference.search(window) is not None), window


_WORD_LISTS = {
    "phone": contact.PHONE_CONTEXT,
    "not_phone": contact._NOT_PHONE_CONTEXT,
    "card": finance._CARD_CONTEXT,
    "birth": personal._ALL_WORDS,
    **{f"id_{kind}": words for kind, words in ids.CONTEXT.items()},
}


@pytest.mark.parametrize("words", _WORD_LISTS.values(), ids=_WORD_LISTS.keys())
def test_word_lists_agree_with_substring_tests(words: tuple[str, ...]) -> None:
    found = Words(words)
    rng = random.Random(13)
    pieces = [*words, "a", " ", "é", "\ud800", ".", "中", "1"]
    for _ in range(2_000):
        window = "".join(
            rng.choice(pieces) if rng.random() < 0.7 else rng.choice(words)[:-1]
            for _ in range(rng.randrange(5))
        )
        assert found.found_in(window) is any(word in window for word in words), window


def test_one_automaton_over_every_list_agrees_with_each_list() -> None:
    lists = WordLists(ids.CONTEXT)
    every = sorted({word for words in ids.CONTEXT.values() for word in words})
    rng = random.Random(15)
    pieces = [*every, "a", " ", "é", "\ud800", "-", "1"]
    for _ in range(5_000):
        window = "".join(
            rng.choice(pieces) if rng.random() < 0.6 else rng.choice(every)[1:]
            for _ in range(rng.randrange(6))
        )
        expected = {k for k, words in ids.CONTEXT.items() if any(w in window for w in words)}
        assert lists.names_in(window) == expected, window


def test_email_local_part_table_agrees_with_the_pattern() -> None:
    for char in map(chr, range(0x3000)):
        assert contact._is_local(char) is (contact._LOCAL_CHAR.match(char) is not None)


# --- dates of birth ----------------------------------------------------------------------


def test_year_last_search_is_the_first_start_that_matches() -> None:
    rng = random.Random(11)
    parts = ["12.03.", "3 marca ", "ngày 2 tháng 3 năm ", "March 12, ", "de ", "x", " ", "1"]
    for _ in range(5_000):
        window = "".join(rng.choice(parts) for _ in range(rng.randrange(5))) + "1980"
        window = window[-28:]
        first = next(
            (m for i in range(len(window)) if (m := personal._YEAR_LAST.match(window, i))), None
        )
        found = personal._YEAR_LAST.search(window)
        assert (found and found.span()) == (first and first.span()), window


def test_birth_word_prefilter_changes_no_result(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(12)
    dates = ["12.03.1980", "1980-03-12", "12 marca 1980", "ngày 12 tháng 3 năm 1980"]
    dates += ["March 12, 1980", "12. März 1980", "12 de marzo de 1980", "1980年3月12日"]
    words = ["urodzona ", "born on ", "sinh ", "geboren am ", "née le ", "nacida el ", "出生于"]
    texts = []
    for _ in range(3_000):
        gap = " " * rng.randrange(70) + rng.choice(["", ". ", "; ", "x"])
        texts.append(rng.choice(words) + gap + rng.choice(dates) + " " + rng.choice(dates))
    with_prefilter = [list(personal.detect_birth_dates(t)) for t in texts]
    monkeypatch.setattr(personal, "_birth_word_within_reach", lambda *_: True)
    without = [list(personal.detect_birth_dates(t)) for t in texts]
    assert with_prefilter == without
    assert sum(map(bool, without)) > len(texts) // 4


# --- the scanner -------------------------------------------------------------------------


def _reference_overlaps(findings: list[Finding]) -> list[Finding]:
    """Every finding ranked at once, best first, each kept if it overlaps nothing kept."""
    kept: list[Finding] = []
    ranked = sorted(
        set(findings),
        key=lambda f: (f.validated, f.end - f.start, f.confidence, -f.start, f.kind),
        reverse=True,
    )
    for finding in ranked:
        if all(finding.end <= k.start or k.end <= finding.start for k in kept):
            kept.append(finding)
    return sorted(kept, key=lambda f: f.start)


def test_overlaps_resolved_per_cluster_as_all_at_once() -> None:
    rng = random.Random(18)
    for _ in range(5_000):
        findings = []
        for _ in range(rng.randrange(14)):
            start = rng.randrange(60)
            findings.append(
                Finding(
                    rng.choice(["email", "phone", "iban"]),
                    start,
                    start + rng.randrange(1, 9),
                    rng.choice([0.4, 0.8, 0.9]),
                    rng.random() < 0.5,
                )
            )
        findings += findings[: rng.randrange(3)]  # exact duplicates
        rng.shuffle(findings)
        assert _overlap.resolve_overlaps(findings) == _reference_overlaps(findings), findings


def test_scan_keeps_no_copy_of_the_text() -> None:
    scan("PESEL 44051401359, tel. +48 601 234 567, IBAN PL61109010140000071219812874")
    assert _runs.segments.cache_info().currsize == 0
    assert _runs.windows.cache_info().currsize == 0
    assert _runs.windows_ascii.cache_info().currsize == 0
