"""PESEL detection: positives and near misses in Polish and Vietnamese text."""

from __future__ import annotations

import datetime
import random
from collections.abc import Callable

import pytest
from stdnum.pl import pesel

from sovra.classify import ids, scan

# name -> template; {pesel} is the one value that must be found, exactly.
POSITIVE = {
    "pl_sentence": "Mój PESEL to {pesel}, tel. +48 601 234 567",
    "pl_colon_no_space": "PESEL:{pesel}",
    "pl_start_of_text": "{pesel} to numer klienta",
    "pl_end_of_text": "numer ewidencyjny {pesel}",
    "pl_in_parentheses": "Jan Kowalski (nr ewid. {pesel}) zamieszkały w Łodzi",
    "pl_newline_before": "Dane:\n{pesel}\nkoniec",
    "vi_sentence": "Số PESEL của anh Nguyễn Văn Ánh là {pesel}, sinh tại Kraków.",
    "vi_no_context": "Mã khách hàng: {pesel}.",
    "cjk_before": "波兰身份证号{pesel}号",
}

# name -> template; nothing here may be reported as a PESEL.
NEGATIVE = {
    "checksum_off_pl": "Mój PESEL to {pesel_bad}.",
    "checksum_off_vi": "Số PESEL: {pesel_bad}",
    "ten_digits": "PESEL {pesel10}",
    "twelve_digits": "numer {pesel}7",
    "digit_before": "numer 3{pesel}",
    "split_by_space": "PESEL {pesel_split}",
    "impossible_date": "PESEL {pesel_bad_date}",
    "all_zeros": "PESEL 00000000000",
    "glued_to_letters": "ID{pesel}X",  # part of a reference code, not a PESEL on its own
}


def _impossible_date_pesel() -> str:
    # Month 13 is no century's month, but the check digit is right: only the date test
    # in stdnum can turn this down.
    body = "9913011234"
    return body + pesel.calc_check_digit(body)


@pytest.fixture
def values(samples: dict[str, str]) -> dict[str, str]:
    p = samples["pesel"]
    return {
        **samples,
        "pesel10": p[:10],
        "pesel_split": f"{p[:6]} {p[6:]}",
        "pesel_bad_date": _impossible_date_pesel(),
    }


@pytest.mark.parametrize("template", POSITIVE.values(), ids=POSITIVE.keys())
def test_pesel_found_with_exact_span(template: str, values: dict[str, str]) -> None:
    text = template.format(**values)
    found = [f for f in scan(text) if f.kind == "pl_pesel"]
    assert [text[f.start : f.end] for f in found] == [values["pesel"]]
    assert all(f.validated for f in found)


@pytest.mark.parametrize("template", NEGATIVE.values(), ids=NEGATIVE.keys())
def test_near_miss_not_reported(template: str, values: dict[str, str]) -> None:
    text = template.format(**values)
    assert [f for f in scan(text) if f.kind == "pl_pesel"] == []


def test_impossible_date_has_a_valid_check_digit() -> None:
    # Guards the negative case above: it must fail on the date, not on the checksum.
    number = _impossible_date_pesel()
    assert number[-1] == pesel.calc_check_digit(number[:-1])
    assert not pesel.is_valid(number)


def test_context_word_raises_confidence(make_pesel: Callable[[], str]) -> None:
    p = make_pesel()
    named = next(ids.detect(f"Mój PESEL to {p}"))
    bare = next(ids.detect(f"Mój numer to {p}"))
    assert named.confidence > bare.confidence


def test_context_word_only_counts_nearby(make_pesel: Callable[[], str]) -> None:
    p = make_pesel()
    far = "PESEL" + " " * ids.CONTEXT_WINDOW + p
    near = "PESEL" + " " * (ids.CONTEXT_WINDOW - len("PESEL")) + p
    assert next(ids.detect(far)).confidence < next(ids.detect(near)).confidence


def test_several_pesels_in_one_text(make_pesel: Callable[[], str]) -> None:
    numbers = [make_pesel() for _ in range(5)]
    text = "; ".join(f"osoba {i}: PESEL {n}" for i, n in enumerate(numbers))
    found = list(ids.detect(text))
    assert [text[f.start : f.end] for f in found] == numbers


def test_agrees_with_stdnum_on_random_numbers(
    rng: random.Random, pesel_for: Callable[[datetime.date, int], str]
) -> None:
    # Independent reference: over many random eleven-digit numbers (and PESELs built
    # for random dates) the detector reports exactly the ones stdnum accepts.
    candidates = [f"{rng.randrange(10**11):011d}" for _ in range(3000)]
    for _ in range(300):
        birth = datetime.date(1800, 1, 1) + datetime.timedelta(days=rng.randrange(150_000))
        candidates.append(pesel_for(birth, rng.randrange(10_000)))
    for number in candidates:
        reported = list(ids.detect_pesel(f"nr {number}."))
        assert bool(reported) == pesel.is_valid(number), number
    assert sum(pesel.is_valid(n) for n in candidates) >= 300
