"""The numbering plans read for printed runs agree with phonenumbers on every input.

``sovra.classify._plans`` restates ``phonenumbers.parse``, ``is_possible_number``,
``is_valid_number`` and ``is_valid_number_for_region`` for runs of the scanner's shape.
Each is compared here with phonenumbers itself: on the example numbers of every region
and type printed in each format, on the same numbers with digits changed, dropped and
added, on random runs, and on hypothesis' strings over the characters a run may hold;
in the scanner's regions, with no region, and in a sample of others.
"""

from __future__ import annotations

import random
import string

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from sovra.classify import _plans, contact

_ALL_REGIONS = sorted(phonenumbers.SUPPORTED_REGIONS)
_READ_IN: tuple[str | None, ...] = (
    *contact.REGIONS,
    None,
    *random.Random(3).sample(_ALL_REGIONS, 10),
    "CA",
    "IT",
    "AR",  # a national prefix rewritten by a transform rule
    "BR",  # carrier codes
)
_CHECKED_IN = ("PL", "US", "CA", "GB", "JE", "001", "CN")


def _reference(raw: str, region: str | None) -> phonenumbers.PhoneNumber | None:
    try:
        return phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None


def _assert_agrees(raw: str, region: str | None) -> bool:
    """Assert both readings of *raw* agree; True when phonenumbers parsed it."""
    number = _reference(raw, region)
    got = _plans.parse(raw, region)
    if number is None:
        assert got is None, (raw, region)
        return False
    code, nsn = number.country_code, phonenumbers.national_significant_number(number)
    assert got == (code, nsn), (raw, region)
    assert _plans.possible(code, nsn) is phonenumbers.is_possible_number(number), raw
    assert _plans.valid(code, nsn) is phonenumbers.is_valid_number(number), raw
    for other in _CHECKED_IN:
        expected = phonenumbers.is_valid_number_for_region(number, other)
        assert _plans.valid_for_region(code, nsn, other) is expected, (raw, other)
    return True


def _examples() -> list[str]:
    printed = []
    for region in _ALL_REGIONS:
        for kind in (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE, PhoneNumberType.TOLL_FREE):
            example = phonenumbers.example_number_for_type(region, kind)
            if example is None:
                continue
            for form in (PhoneNumberFormat.NATIONAL, PhoneNumberFormat.INTERNATIONAL):
                printed.append(phonenumbers.format_number(example, form))
    return printed


def _mutated(rng: random.Random, printed: str) -> str:
    chars = list(printed)
    digits = [i for i, c in enumerate(chars) if c.isdigit()]
    choice = rng.randrange(4)
    if choice == 0:
        chars[rng.choice(digits)] = rng.choice(string.digits)
    elif choice == 1:
        del chars[rng.choice(digits)]
    elif choice == 2:
        chars.insert(rng.randrange(len(chars) + 1), rng.choice(string.digits))
    else:
        chars.insert(rng.randrange(1, len(chars) + 1), rng.choice("-./ ()"))
    return "".join(chars)


def _random_run(rng: random.Random) -> str:
    run = ""
    for digit in rng.choices(string.digits, k=rng.randint(1, 18)):
        if run and rng.random() < 0.25:
            run += rng.choice(["-", ".", "/", " ", "  ", ") ", "(", ")"])
        run += digit
    return rng.choice(["", "", "+", "(", "00", "011", "0", "+0"]) + run


def test_examples_of_every_region_agree() -> None:
    rng = random.Random(11)
    parsed = 0
    for printed in _examples():
        for raw in (printed, _mutated(rng, printed), _mutated(rng, _mutated(rng, printed))):
            for region in rng.sample(_READ_IN, 5):
                parsed += _assert_agrees(raw, region)
    assert parsed > 5_000  # most examples parse; the comparison is not vacuous


def test_random_runs_agree() -> None:
    rng = random.Random(12)
    parsed = 0
    for _ in range(6_000):
        raw = _random_run(rng)
        for region in rng.sample(_READ_IN, 3):
            parsed += _assert_agrees(raw, region)
    assert parsed > 3_000


@settings(max_examples=400, deadline=None)
@given(
    st.text(alphabet="0123456789-./ ()+", min_size=1, max_size=30),
    st.sampled_from(_READ_IN),
)
def test_any_run_of_these_characters_agrees(raw: str, region: str | None) -> None:
    _assert_agrees(raw, region)


@pytest.mark.parametrize(
    ("raw", "region"),
    [
        ("tel:+48-601-234-567", None),  # an RFC 3966 URI
        ("601 234 567 ext. 12", "PL"),  # an extension
        ("\uff16\uff10\uff11 \uff12\uff13\uff14", "PL"),  # full-width digits
        ("1-800-FLOWERS", "US"),  # letters
        ("601 234 567)", "PL"),  # ends in punctuation
        ("12", "PL"),  # two digits
        ("+48 601 234 567", "pl"),  # a region in lower case
        ("601 234 567", "XX"),  # no such region
        ("+800 1234 5678", "001"),  # the non-geographic region
        ("9" * 300, "PL"),  # longer than phonenumbers parses
        ("+48 601+234 567", None),  # a second plus
    ],
)
def test_other_inputs_are_left_to_phonenumbers(raw: str, region: str | None) -> None:
    _assert_agrees(raw, region)


def test_plans_are_compiled_once_and_absent_for_unknown_regions() -> None:
    assert _plans._plan("PL") is _plans._plan("PL")
    assert _plans._plan("XX") is None
    assert _plans._plan("001", 800) is not None
    assert _plans.valid_for_region(48, "601234567", "XX") is False
    assert _plans.valid(999, "601234567") is False
    assert _plans.possible(999, "601234567") is False
