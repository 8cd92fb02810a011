"""The shortcuts that cut the scanner's cost per call change no answer.

A short record pays for every pass the scanner could run, so the scanner skips the
families a text cannot feed (no digit and none of the characters a family needs), finds
no BIC words without comparing them, steps over an e-mail address's ASCII local part in
one string operation and tries a number's likely types first. Each is held here to the
plain way it replaces, on generated texts dense in what each one looks at.
"""

from __future__ import annotations

import phonenumbers
from hypothesis import given, settings
from hypothesis import strategies as st

from sovra.classify import _fold, _overlap, _plans, contact, finance, scan
from sovra.classify._words import occurrences
from sovra.classify.registry import FAMILIES
from sovra.classify.special import LANGUAGES
from sovra.model import Finding

# Pieces of every kind the families look for, and the characters their triggers test:
# digits (ASCII, full-width, other scripts), "@", ":", hex letters, BIC words, terms.
_PIECES = [
    *"0123456789@:.-+() /\n",
    *"aAbBcCdDeEfF",
    "\uff11",  # full-width one: folds to a digit
    "\u0663",  # Arabic-Indic three
    "\uff20",  # full-width commercial at: folds to "@"
    "é",
    "中",
    "\ud800",
    "BIC ",
    "swift ",
    "Swift",
    "DEUTDEFF",
    "PESEL ",
    "44051401359",
    "+48 601 234 567",
    "tel. ",
    "jan.kowalski@example.pl",
    "fe80::1",
    "ab::cd",
    "192.168.0.7",
    "urodzony 12.03.1984",
    "52.2297, 21.0122",
    "cukrzyca",
    "katolik",
    "PL61 1090 1014 0000 0712 1981 2874",
    "4111 1111 1111 1111",
    "DE136695976",
]
_DENSE = st.lists(st.sampled_from(_PIECES), max_size=40).map("".join)
_ANY = st.text(st.characters(codec=None, min_codepoint=0, max_codepoint=0x2FFF), max_size=200)
_TEXT = st.one_of(_DENSE, _ANY)


def _every_family(text: str, lang: str | None = None) -> list[Finding]:
    """The scan as it was: every family run on the folded text, whatever it holds."""
    if not text:
        return []
    folded = _fold.fold(text)
    found: list[Finding] = []
    for family in FAMILIES:
        if lang is not None and family.detect_in is not None:
            found.extend(family.detect_in(folded, lang))
        else:
            found.extend(family.detect(folded))
    return _overlap.resolve_overlaps(found)


@settings(max_examples=600, deadline=None)
@given(text=_TEXT, lang=st.sampled_from([None, *LANGUAGES]))
def test_skipping_families_changes_no_finding(text: str, lang: str | None) -> None:
    assert scan(text, lang=lang) == _every_family(text, lang)


@settings(max_examples=300, deadline=None)
@given(
    text=st.lists(st.sampled_from([*_PIECES[20:], "x", " ", ".", "1"]), max_size=12).map("".join)
)
def test_a_skipped_family_finds_nothing(text: str) -> None:
    # The property the skip relies on, family by family: with no digit and none of its
    # characters, a family finds nothing.
    folded = _fold.fold(text)
    for family in FAMILIES:
        needs = family.requires
        if needs is None or any(c.isdigit() and c.isascii() for c in folded):
            continue
        if not any(c in folded for c in needs):
            assert list(family.detect(folded)) == [], family.name


def test_families_that_need_nothing_run_on_text_without_digits() -> None:
    # A BIC, an IPv6 address and an e-mail address without a digit are still found.
    kinds = {f.kind for f in scan("BIC DEUTDEFF, ab::cd, ann@example.pl")}
    assert kinds == {"bic", "ip_address", "email"}


def _local_part_start_by_walk(text: str, at: int) -> int | None:
    """``contact._local_part_start`` as first written: one character at a time."""
    start = at
    limit = max(0, at - contact._MAX_LOCAL - 1)
    while start > limit and contact._LOCAL_CHAR.match(text[start - 1]) is not None:
        start -= 1
    if at - start > contact._MAX_LOCAL:
        return None
    while start < at and text[start] in ".'":
        start += 1
    local = text[start:at]
    if not local or ".." in local or local.endswith("."):
        return None
    return start


_LOCAL_TEXT = st.lists(
    st.sampled_from([*"aZ09._%+'-@ ,;\u00e9\u4e2d\u0416\u00a0\ud800", "x" * 70, "ó"]),
    max_size=60,
).map("".join)


@settings(max_examples=1000, deadline=None)
@given(text=_LOCAL_TEXT)
def test_local_part_found_as_by_the_walk(text: str) -> None:
    for at, char in enumerate(text):
        if char == "@":
            assert contact._local_part_start(text, at) == _local_part_start_by_walk(text, at)


def _typed_in_phonenumbers_order(plan: _plans._Plan, nsn: str) -> bool:
    """``_Plan.typed`` with the types tried in phonenumbers' own order."""
    if plan.general is None or not plan.general.matches(nsn):
        return False
    for desc in plan.types:
        if desc.matches(nsn):
            return True
    if plan.fixed_line is not None and plan.fixed_line.matches(nsn):
        return True
    if plan.same_fixed_and_mobile or plan.mobile is None:
        return False
    return plan.mobile.matches(nsn)


_REGIONS = sorted(r for r in phonenumbers.SUPPORTED_REGIONS if _plans._plan(r) is not None)


@settings(max_examples=1500, deadline=None)
@given(
    region=st.sampled_from(_REGIONS),
    nsn=st.text(st.sampled_from("0123456789"), min_size=2, max_size=17),
)
def test_number_types_in_any_order_give_the_same_answer(region: str, nsn: str) -> None:
    plan = _plans._plan(region)
    assert plan is not None
    assert plan.typed(nsn) is _typed_in_phonenumbers_order(plan, nsn)


def test_number_types_of_every_example_number() -> None:
    # Every region's own example of every type: each is typed, as phonenumbers types it.
    for region in _REGIONS:
        plan = _plans._plan(region)
        assert plan is not None
        for kind in phonenumbers.PhoneNumberType.values():
            example = phonenumbers.example_number_for_type(region, kind)
            if example is None:
                continue
            nsn = phonenumbers.national_significant_number(example)
            assert plan.typed(nsn) is _typed_in_phonenumbers_order(plan, nsn), (region, nsn)


@settings(max_examples=600, deadline=None)
@given(
    text=st.lists(st.sampled_from([*"bBiIcCfFtTsSwW x", "BIC", "Swift"]), max_size=30).map("".join)
)
def test_bic_words_are_every_occurrence(text: str) -> None:
    assert finance._bic_words(text) == occurrences(text, finance._BIC_WORDS)


def _country_code_by_number(digits: str) -> tuple[int, str]:
    """``_plans._country_code`` as first written: each prefix parsed as a number."""
    if not digits or digits[0] == "0":
        return 0, digits
    for size in range(1, min(len(digits), 3) + 1):
        code = int(digits[:size])
        if code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            return code, digits[size:]
    return 0, digits


@settings(max_examples=2000, deadline=None)
@given(digits=st.text(st.sampled_from("0123456789"), max_size=8))
def test_country_code_read_as_printed(digits: str) -> None:
    assert _plans._country_code(digits) == _country_code_by_number(digits)


def test_every_country_code_read_as_printed() -> None:
    for code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
        digits = f"{code}123456"
        assert (
            _plans._country_code(digits)
            == _country_code_by_number(digits)
            == (code, digits[len(str(code)) :])
        )
