"""The financial and date-of-birth detectors' shortcuts agree with what they stand in for.

Each shortcut (a Luhn sum over bytes, a country's own IBAN check called on the BBAN,
a country's own VAT module called directly, IBAN and VAT candidates found in the shapes
of the digit windows, naming words found from one of their parts, one date form searched
for instead of four, the last statement end found backwards) is compared with the stdnum
function or the plain search it replaces, on hand cases and generated inputs (fixed
seeds, so that a failure reproduces, and hypothesis).
"""

from __future__ import annotations

import datetime
import itertools
import random
import re
import string
from collections.abc import Iterator

from _vat_reference import vat_over_the_whole_text
from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum import iban, luhn
from stdnum.es import ccc
from stdnum.eu import vat
from stdnum.no import kontonr

from sovra.classify import finance, personal
from sovra.classify._stdnum import passes
from sovra.classify._words import occurrences
from sovra.model import Finding

# --- payment cards -----------------------------------------------------------------------


def test_luhn_sum_agrees_on_every_single_digit_number() -> None:
    # Both sums add one term per position, so agreeing on each digit at each position
    # of each length means agreeing on every number of that length.
    for length in range(1, 41):
        for position, digit in itertools.product(range(length), string.digits):
            number = "0" * position + digit + "0" * (length - position - 1)
            assert finance._luhn_checksum(number) == luhn.checksum(number), number


def test_luhn_sum_agrees_on_every_short_number() -> None:
    for length in range(1, 5):
        for digits in itertools.product(string.digits, repeat=length):
            number = "".join(digits)
            assert finance._luhn_checksum(number) == luhn.checksum(number), number


@settings(max_examples=2_000, deadline=None)
@given(st.text(alphabet=string.digits, min_size=1, max_size=40))
def test_luhn_sum_agrees_on_random_numbers(number: str) -> None:
    assert finance._luhn_checksum(number) == luhn.checksum(number)


# --- IBAN --------------------------------------------------------------------------------


def _ibans(rng: random.Random, code: str, bban: str) -> Iterator[str]:
    """The IBAN for *bban* and near misses of it: a changed BBAN digit, lower case."""
    number = code + iban.calc_check_digits(code + "00" + bban) + bban
    yield number
    yield number.lower()
    at = rng.randrange(4, len(number))
    changed = number[:at] + str((int(number[at]) + 1) % 10) + number[at + 1 :]
    yield changed
    # The mod-97 check made right again over the changed BBAN, so that only the
    # country's own check can turn it away.
    yield code + iban.calc_check_digits(code + "00" + changed[4:]) + changed[4:]


def test_country_bban_checks_agree_with_stdnum() -> None:
    rng = random.Random(31)
    seen = {True: 0, False: 0}
    for _ in range(1_500):
        spanish = "".join(rng.choice(string.digits) for _ in range(20))
        if rng.random() < 0.5:
            spanish = spanish[:8] + ccc.calc_check_digits(spanish) + spanish[10:]
        norwegian = "".join(rng.choice(string.digits) for _ in range(11))
        if rng.random() < 0.5:
            norwegian = norwegian[:10] + kontonr._calc_check_digit(norwegian)
        if rng.random() < 0.1:
            norwegian = "0000" + norwegian[4:]  # a postgiro number, read as seven digits
        for code, bban in (("ES", spanish), ("NO", norwegian)):
            for number in _ibans(rng, code, bban):
                expected = iban.is_valid(number)
                assert finance._is_iban(number) is expected, number
                if passes(iban.is_valid, number) or rng.random() < 0.5:
                    mod97 = iban.calc_check_digits(number) == number[2:4]
                    assert finance._is_iban(number, mod97_checked=mod97) is expected, number
                seen[expected] += 1
    assert min(seen.values()) > 500


def test_every_country_with_its_own_iban_module_is_checked_as_stdnum_does() -> None:
    rng = random.Random(32)
    for code in ("BE", "ES", "ME", "NO"):
        rules = finance._iban_rules(code)
        assert rules is not None
        _, bban_check, country_check = rules
        assert (bban_check is None) is (country_check is not None), code
        length = finance._bban_lengths()[code]
        assert length is not None
        for _ in range(500):
            bban = "".join(rng.choice(string.digits) for _ in range(length))
            for number in _ibans(rng, code, bban):
                assert finance._is_iban(number) is iban.is_valid(number), number


# --- VAT numbers -------------------------------------------------------------------------

_VAT_ALPHABETS = (string.digits, string.digits + string.ascii_uppercase)
_DOCUMENTED = re.compile(r"(?:validate|compact|is_valid)\('([^']*)'\)")
_NOT_ALNUM = re.compile("[^0-9A-Za-z]")


def _vat_numbers(rng: random.Random, code: str) -> Iterator[str]:
    """Numbers with *code*'s prefix: the examples in its stdnum module's documentation
    with every character changed in turn, and random ones with every last character."""
    for example in _DOCUMENTED.findall(finance._vat_module(code).__doc__ or ""):
        number = _NOT_ALNUM.sub("", example).upper().removeprefix("GB").removeprefix("GR")
        number = number if number.startswith(code) else code + number
        yield number
        for at, char in itertools.product(range(2, len(number)), _VAT_ALPHABETS[1]):
            yield number[:at] + char + number[at + 1 :]
    for length in range(7, 16):
        alphabet = rng.choice(_VAT_ALPHABETS)
        body = "".join(rng.choice(alphabet) for _ in range(length))
        for last in string.digits + string.ascii_uppercase:
            yield code + body[:-1] + last
        if length < 14:
            for first in "0123456789ABKLMNPQSTUVWXYZ":
                yield code + first + body[1:]


def test_each_country_vat_module_answers_as_stdnum_eu_vat() -> None:
    rng = random.Random(33)
    valid: dict[str, int] = {}
    for code in sorted(finance._VAT_COUNTRIES):
        module = finance._vat_module(code)
        for _ in range(2):
            for number in _vat_numbers(rng, code):
                expected = passes(vat.is_valid, number)
                assert passes(module.validate, number) is expected, number
                valid[code] = valid.get(code, 0) + expected
    # Each country's check was met at least once, so the comparison covered both answers.
    assert {code for code, count in valid.items() if count == 0} == set(), valid


@settings(max_examples=1_000, deadline=None)
@given(
    st.sampled_from(sorted(finance._VAT_COUNTRIES)),
    st.text(alphabet=string.digits + string.ascii_uppercase, min_size=8, max_size=15),
)
def test_vat_module_answers_as_stdnum_eu_vat_on_random_numbers(code: str, body: str) -> None:
    number = code + body
    assert passes(finance._vat_module(code).validate, number) is passes(vat.is_valid, number)


def test_vat_numbers_found_from_shapes_next_to_each_other() -> None:
    rng = random.Random(34)
    pieces = ["PL5261040828", "DE136695976", "ES65992844W", "FR40303265045", "EL094259216"]
    pieces += ["UE ", "UE PL ", "PL ", "XX", "FR", "ATU", " ", "x", "-", ".", "1", "Z9", "\n"]
    found = 0
    for _ in range(4_000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randrange(1, 12)))
        expected = vat_over_the_whole_text(text)
        assert list(finance.detect_vat(text)) == expected, text
        found += bool(expected)
    assert found > 800


# --- BIC naming words --------------------------------------------------------------------


def test_bic_words_found_from_their_parts_are_every_occurrence() -> None:
    rng = random.Random(35)
    pieces = [*finance._BIC_WORDS, "ft", "FT", "IC", "ic", "B", "S", "wi", "WI", "a", " "]
    pieces += ["中", "\u0142", "Swif", "SWIF"]
    assert finance._bic_words("") == [[] for _ in finance._BIC_WORDS]
    for _ in range(5_000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randrange(12)))
        assert finance._bic_words(text) == occurrences(text, finance._BIC_WORDS), text


def test_bic_parts_are_parts_of_their_words() -> None:
    assert len(finance._BIC_PARTS) == len(finance._BIC_WORDS)
    for word, part in zip(finance._BIC_WORDS, finance._BIC_PARTS, strict=True):
        assert part in word


# --- dates of birth ----------------------------------------------------------------------

_DATE_PARTS = ["12.03.", "3/4-", "1-2-", "3 marca ", "12. ", "de ", "ngày 2 tháng 3 năm "]
_DATE_PARTS += ["NGÀY 31 THÁNG 12 NĂM ", "March 12, ", "March 12,", "x", " ", "1", ",", "."]


def _date_windows(rng: random.Random, count: int) -> Iterator[str]:
    months = sorted(personal._MONTHS)
    for _ in range(count):
        parts = [*_DATE_PARTS]
        name = rng.choice(months)
        name = rng.choice([name, name.upper(), name.title()])
        parts += [f"{rng.randrange(40)} {name} ", f"{name} {rng.randrange(40)}, ", name]
        parts += [f"{rng.randrange(40)}. {name} de "]
        window = "".join(rng.choice(parts) for _ in range(rng.randrange(6)))
        yield window[-rng.randrange(1, 30) :] + rng.choice(["1980", "2024", "1900", "2099"])


def test_one_form_found_where_all_four_are_searched_for() -> None:
    rng = random.Random(36)
    matched = 0
    for window in _date_windows(rng, 20_000):
        year = len(window) - 4
        reference = personal._YEAR_LAST.search(window, max(0, year - personal._LOOKBACK))
        ending = personal._form_ending_at(window, year)
        found = None
        if ending is not None:
            form, named = ending
            found = form.search(window, max(0, year - personal._LOOKBACK), year)
        if reference is None:
            assert found is None, window
            continue
        matched += 1
        assert found is not None, window
        assert found.start() == reference.start(), window
        assert found["d"] == personal._first(reference, "d1", "d2", "d3", "d4"), window
        month = found["mn" if named else "m"]
        assert month == personal._first(reference, "m1", "m3", "mn2", "mn4"), window
    assert matched > 5_000


def test_no_month_name_ends_as_the_other_forms_do() -> None:
    # ``_form_ending_at`` tells a month name before the year from "năm" and a comma.
    assert not [name for name in personal._MONTHS if name[-1] in "mM,"]


def _reference_birth_dates(text: str) -> Iterator[Finding]:
    """Every four-digit year, the four forms searched for together, no shortcut."""
    words = personal._ANY_WORDS
    for year in re.finditer(r"(?<![0-9A-Za-z])(?:19|20)[0-9]{2}(?![0-9])", text):
        found: tuple[int, int] | None = None
        forward = personal._YEAR_FIRST.match(text, year.start())
        if forward is not None and personal._date(
            forward["y"],
            personal._first(forward, "m1", "m2"),
            personal._first(forward, "d1", "d2"),
            None,
        ):
            found = forward.span()
        else:
            window_start = max(0, year.start() - personal._LOOKBACK)
            back = personal._YEAR_LAST.search(text[window_start : year.end()])
            if back is not None and personal._date(
                back["y"],
                personal._first(back, "m1", "m3"),
                personal._first(back, "d1", "d2", "d3", "d4"),
                personal._first(back, "mn2", "mn4"),
            ):
                found = (window_start + back.start(), year.end())
        own = len("ngày") if found is not None and text.startswith("ngày", found[0]) else 0
        if found is not None and personal._born(text, found[0] + own, words):
            yield Finding("date_of_birth", found[0], found[1], 0.9, validated=False)


def test_birth_dates_agree_with_the_plain_search() -> None:
    rng = random.Random(37)
    words = ["urodzona ", "born on ", "Ngày sinh: ", "sinh ", "Geburtsdatum: ", "née le ", "出生"]
    words += ["nacida el ", "DOB ", "", "invoice ", "; ", "5. ", "\n"]
    later = datetime.datetime.now(datetime.UTC).year + 1
    dates = ["12.03.1980", "1980-03-12", "1980年3月12日", "31/02/1990", f"01.01.{later}"]
    dates += ["ngày 12 tháng 3 năm 1980", "March 12, 1980", "12. März 1980", "x1980"]
    dates += ["12 de marzo de 1980", "3 MARCA 1975", "Juli 4,2001", "1980-3-1", "2020-13-01"]
    dates += ["12 1980", "12,1980", "ngày 12 tháng 3 nam 1980", "1980"]
    found = 0
    for _ in range(5_000):
        text = "".join(
            rng.choice(words) + " " * rng.randrange(3) + rng.choice(dates) + rng.choice(" .;x")
            for _ in range(rng.randrange(1, 4))
        )
        expected = list(_reference_birth_dates(text))
        assert list(personal.detect_birth_dates(text)) == expected, text
        found += bool(expected)
    assert found > 1_000


def _reference_born(text: str, start: int) -> bool:
    """The birth-word test with every statement end listed, the last one cutting."""
    before = text[max(0, start - personal.CONTEXT_WINDOW) : start].lower()
    ends = list(personal._STATEMENT_END.finditer(before))
    if ends:
        before = before[ends[-1].end() :]
    return personal._ANY_WORDS.found_in(before)


def test_last_statement_end_found_backwards_as_forwards() -> None:
    rng = random.Random(38)
    pieces = ["born ", "ur. ", "出生", "5. ", "x. ", ". ", "5.", ";", "\uff1b", "。", "\n"]
    pieces += ["1", "a", " ", "İ", "Σ", "DOB", "geb.", "\ud800"]
    born = 0
    for _ in range(20_000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randrange(20)))
        start = rng.randrange(len(text) + 1)
        expected = _reference_born(text, start)
        assert personal._born(text, start, personal._ANY_WORDS) is expected, (text, start)
        born += expected
    assert born > 2_000


# --- shapes of the digit windows ---------------------------------------------------------

_NOISE = ["a", "Z", "ą", "中", "\ud800", "\U0001f600", " ", "-", ".", "\n", "\0", "?", "7"]
_NUMBERS = ["PL61109010140000071219812874", "pl61 1090 1014 0000 0712 1981 2874", "DE89", "AB12"]
_NUMBERS += ["PL5261040828", "PL 526-104-08-28", "DE136695976", "ES65992844W", "UE PL52610"]


def _noisy_texts(rng: random.Random, count: int) -> Iterator[str]:
    for _ in range(count):
        pieces = []
        for _ in range(rng.randrange(8)):
            pieces.append("".join(rng.choice(_NOISE) for _ in range(rng.randrange(60))))
            pieces.append(rng.choice(_NUMBERS))
        yield "".join(pieces)


def test_check_digits_found_from_shapes_are_every_match() -> None:
    rng = random.Random(39)
    found = 0
    for text in _noisy_texts(rng, 3_000):
        expected = [match.start() - 2 for match in finance._CHECK_DIGITS.finditer(text)]
        assert list(finance._check_digits(text)) == expected, text
        found += len(expected)
    assert found > 3_000


def test_vat_numbers_found_from_shapes_are_those_of_the_whole_text() -> None:
    rng = random.Random(40)
    found = 0
    for text in _noisy_texts(rng, 3_000):
        expected = vat_over_the_whole_text(text)
        assert list(finance.detect_vat(text)) == expected, text
        found += len(expected)
    assert found > 1_000
