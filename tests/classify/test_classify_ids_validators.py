"""The identity-number checks written out in ``ids`` agree with stdnum's ``is_valid``.

Each scheme's check runs on compact candidates only (ASCII digits of one of the scheme's
lengths, or the Spanish letter-and-digit shapes), so that is what is drawn here: random
digits, numbers completed with stdnum's own check-digit functions, and those numbers with
one digit changed. stdnum stays the authority: every case compares with its validator.
"""

from __future__ import annotations

import datetime
import itertools
from collections.abc import Callable

import pytest
from _stdnum_validators import VALIDATORS
from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum.cn import ric
from stdnum.es import dni, nie
from stdnum.fr import nir
from stdnum.iso7064 import mod_11_10
from stdnum.pl import nip, pesel, regon
from stdnum.us import itin, ssn
from stdnum.vn import mst

from sovra.classify import ids
from sovra.classify._stdnum import passes

_SPECS = {spec.kind: spec for spec in ids._NUMERIC}


def _idnr_complete(d: str) -> str:
    return d[:10] + mod_11_10.calc_check_digit(d[:10])


def _regon_complete(d: str) -> str:
    if len(d) == 14:
        d = d[:8] + regon.calc_check_digit(d[:8]) + d[9:]
    return d[:-1] + regon.calc_check_digit(d[:-1])


def _nip_complete(d: str) -> str:
    # The check digit that brings the weighted sum to 0 modulo 11 (none when that is 10:
    # the number is then left wrong, a case of its own).
    rest = nip.checksum(d[:9] + "0")
    return d[:9] + str(rest % 10)


# kind -> how a number of that kind is completed with stdnum's check-digit functions (a
# Vietnamese remainder that asks for "10" leaves the number wrong, as its own case)
_COMPLETE: dict[str, Callable[[str], str]] = {
    "pl_pesel": lambda d: d[:10] + pesel.calc_check_digit(d[:10]),
    "de_tax_id": _idnr_complete,
    "pl_nip": _nip_complete,
    "pl_regon": _regon_complete,
    "vn_tax_code": lambda d: (d[:9] + mst.calc_check_digit(d[:9]))[:10] + d[10:],
    "cn_resident_id": lambda d: d[:17] + ric.calc_check_digit(d[:17] + "0"),
    "fr_nir": lambda d: d[:13] + nir.calc_check_digits(d[:13] + "00"),
}


@st.composite
def _candidates(draw: st.DrawFn, kind: str) -> str:
    """Digits of one of *kind*'s lengths: random, completed, or completed then changed."""
    length = draw(st.sampled_from(sorted(_SPECS[kind].lengths)))
    digits = draw(st.text("0123456789", min_size=length, max_size=length))
    if kind == "pl_pesel" and draw(st.booleans()):  # a real birth date, any century
        birth = draw(st.dates(datetime.date(1800, 1, 1), datetime.date(2299, 12, 31)))
        month = birth.month + {18: 80, 19: 0, 20: 20, 21: 40, 22: 60}[birth.year // 100]
        digits = f"{birth.year % 100:02d}{month:02d}{birth.day:02d}" + digits[6:]
    if kind == "cn_resident_id" and draw(st.booleans()):  # a real region and birth date
        birth = draw(st.sampled_from(["19491231", "20000229", "19830101"]))
        digits = "110105" + birth + digits[14:]
    if kind == "de_tax_id" and draw(st.booleans()):  # ten digits, one of them repeated
        head = draw(st.permutations("0123456789"))
        repeat = draw(st.integers(1, 2))
        digits = "".join(head[: 10 - repeat]) + head[1] * repeat + digits[10]
    if kind == "us_itin" and draw(st.booleans()):
        digits = "9" + digits[1:]
    complete = _COMPLETE.get(kind)
    if complete is not None and draw(st.booleans()):
        digits = complete(digits)
        if draw(st.booleans()):
            at = draw(st.integers(0, length - 1))
            digits = digits[:at] + draw(st.sampled_from("0123456789")) + digits[at + 1 :]
    return digits


def test_completed_numbers_are_valid() -> None:
    # So that the properties below see valid numbers of every kind, not only invalid ones.
    for kind, complete in _COMPLETE.items():
        digits = "1201051949123100023"[: min(_SPECS[kind].lengths)]
        if kind == "de_tax_id":
            digits = "12345678911"
        assert passes(VALIDATORS[kind], complete(digits)), kind
        assert _SPECS[kind].check(complete(digits)), kind


def _agrees(kind: str, digits: str) -> None:
    assert _SPECS[kind].check(digits) is passes(VALIDATORS[kind], digits), (kind, digits)


# kind -> how many generated numbers its property draws; the two with encoded dates and
# digit counts (PESEL, Steuer-ID) get more.
_EXAMPLES = dict.fromkeys(VALIDATORS, 300) | {"pl_pesel": 600, "de_tax_id": 600}


@pytest.mark.parametrize("kind", sorted(VALIDATORS))
def test_check_agrees_with_stdnum(kind: str) -> None:
    @settings(max_examples=_EXAMPLES[kind], deadline=None)
    @given(digits=_candidates(kind))
    def agrees(digits: str) -> None:
        _agrees(kind, digits)

    agrees()


def test_every_pesel_month_and_day_agrees_with_stdnum() -> None:
    # Every month field (the century in it) and day, the check digit right and wrong.
    for month, day in itertools.product(range(100), range(100)):
        body = f"{day % 100:02d}{month:02d}{day:02d}3141"
        for check in {pesel.calc_check_digit(body), str(day % 10)}:
            _agrees("pl_pesel", body + check)


def test_us_areas_and_groups_agree_with_stdnum() -> None:
    # Every area and group, with a serial that is allowed and one that is not.
    for area, group in itertools.product(range(1000), range(0, 100, 7)):
        for serial in ("0000", "4321"):
            digits = f"{area:03d}{group:02d}{serial}"
            _agrees("us_ssn", digits)
    for group in range(100):
        for area in ("900", "999", "899"):
            _agrees("us_itin", f"{area}{group:02d}1234")


def test_tables_copied_from_stdnum_are_stdnum_s() -> None:
    # The SSNs stdnum turns down and the ITIN groups it allows, read from its own
    # module, so that an update of stdnum that changes them fails here first.
    assert ssn._ssn_blacklist == ids._SSN_BLOCKED  # type: ignore[attr-defined]
    assert itin._allowed_groups == ids._ITIN_GROUPS  # type: ignore[attr-defined]
    for blocked in ids._SSN_BLOCKED:
        assert not ids._ssn_valid(blocked.replace("-", ""))


@settings(max_examples=600, deadline=None)
@given(digits=st.text("0123456789", max_size=20))
def test_mod_11_10_table_agrees_with_stdnum(digits: str) -> None:
    assert ids._mod_11_10(digits) == mod_11_10.checksum(digits)


@settings(max_examples=600, deadline=None)
@given(
    digits=st.text("0123456789", min_size=7, max_size=7),
    first=st.sampled_from("0123456789XYZ"),
    letter=st.sampled_from("ABCDEFGHJKLMNPQRSTVWXYZ"),
    complete=st.booleans(),
)
def test_spanish_checks_agree_with_stdnum(
    digits: str, first: str, letter: str, complete: bool
) -> None:
    # The compact shapes the letter-and-digit pattern leaves: eight digits, or X, Y or Z
    # and seven, then a capital.
    if first.isdigit():
        kind, number, validator = "es_dni", first + digits, dni
    else:
        kind, number, validator = "es_nie", first + digits, nie
    if complete:
        letter = validator.calc_check_digit(number)
    check, validated = ids._ALNUM_CHECKS[kind]
    assert validated
    assert check(number + letter) is passes(validator.is_valid, number + letter)
