"""Valid and near-miss identifiers, computed with stdnum rather than copied from anywhere."""

from __future__ import annotations

import datetime
import random
from collections.abc import Callable

import pytest
from stdnum import iban
from stdnum.pl import pesel


def pesel_for(birth: datetime.date, serial: int) -> str:
    """A PESEL for *birth* with the check digit computed by stdnum."""
    # The month carries the century: +0 for the 1900s, +20 for the 2000s, +80 for the 1800s.
    offset = {18: 80, 19: 0, 20: 20, 21: 40, 22: 60}[birth.year // 100]
    body = f"{birth.year % 100:02d}{birth.month + offset:02d}{birth.day:02d}{serial:04d}"
    number = body + pesel.calc_check_digit(body)
    assert pesel.is_valid(number)
    return number


def iban_for(country: str, bban: str) -> str:
    """A compact IBAN for *country* and *bban* with check digits computed by stdnum."""
    number = country + iban.calc_check_digits(country + "00" + bban) + bban
    assert iban.is_valid(number), number
    return number


def printed(number: str) -> str:
    """The paper form: groups of four separated by single spaces."""
    return " ".join(number[i : i + 4] for i in range(0, len(number), 4))


def break_last_digit(number: str) -> str:
    """The same number with its last digit changed, which every check here detects."""
    return number[:-1] + str((int(number[-1]) + 1) % 10)


@pytest.fixture(name="pesel_for")
def pesel_for_fixture() -> Callable[[datetime.date, int], str]:
    return pesel_for


@pytest.fixture(name="iban_for")
def iban_for_fixture() -> Callable[[str, str], str]:
    return iban_for


@pytest.fixture(name="printed")
def printed_fixture() -> Callable[[str], str]:
    return printed


@pytest.fixture(name="break_last_digit")
def break_last_digit_fixture() -> Callable[[str], str]:
    return break_last_digit


@pytest.fixture
def rng() -> random.Random:
    return random.Random(20200908)  # fixed: failures must reproduce


@pytest.fixture
def make_pesel(rng: random.Random) -> Callable[[], str]:
    def make() -> str:
        birth = datetime.date(1900, 1, 1) + datetime.timedelta(days=rng.randrange(40_000))
        return pesel_for(birth, rng.randrange(10_000))

    return make


@pytest.fixture
def make_pl_iban(rng: random.Random) -> Callable[[], str]:
    def make() -> str:
        return iban_for("PL", "".join(rng.choice("0123456789") for _ in range(24)))

    return make


@pytest.fixture
def samples(make_pesel: Callable[[], str], make_pl_iban: Callable[[], str]) -> dict[str, str]:
    """Placeholder -> value, for filling the case tables' templates."""
    p, i = make_pesel(), make_pl_iban()
    de = iban_for("DE", "370400440532013000")
    gb = iban_for("GB", "WEST12345698765432")
    return {
        "pesel": p,
        "pesel_bad": break_last_digit(p),
        "iban": i,
        "iban_printed": printed(i),
        "iban_bad": break_last_digit(i),
        "iban_printed_bad": printed(break_last_digit(i)),
        "de_iban_printed": printed(de),
        "gb_iban_printed": printed(gb),
    }
