"""IBAN detection: compact and printed forms, and numbers that only look like IBANs."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from stdnum import iban

from sovra.classify import finance, scan

# name -> (template, placeholder of the one value that must be found)
POSITIVE = {
    "pl_printed": ("Proszę o przelew na konto {iban_printed} do piątku.", "iban_printed"),
    "pl_compact": ("IBAN: {iban}", "iban"),
    "pl_printed_then_word": ("Konto {iban_printed} DATA przelewu: jutro", "iban_printed"),
    "pl_false_start_before": ("AB12 {iban_printed}", "iban_printed"),
    "pl_end_of_sentence": ("Numer rachunku to {iban_printed}.", "iban_printed"),
    "vi_printed_de": (
        "Số tài khoản IBAN của công ty: {de_iban_printed}, ngân hàng Đức.",
        "de_iban_printed",
    ),
    "vi_printed_gb_letters": (
        "Chuyển khoản tới {gb_iban_printed} trước thứ Sáu.",
        "gb_iban_printed",
    ),
    "cjk_before": ("银行账户{iban}", "iban"),
}

# name -> template; nothing here may be reported as an IBAN.
NEGATIVE = {
    "checksum_off_compact": "Konto {iban_bad}",
    "checksum_off_printed": "Konto {iban_printed_bad}",
    "checksum_off_vi": "Số tài khoản: {iban_printed_bad}",
    "truncated": "Konto {iban_truncated}",
    "glued_to_word": "Konto {iban}X",
    "unknown_country": "Konto {unknown_country}",
    "wrong_length_for_country": "Konto {short_pl}",
    "letters_and_digits_only": "Kod PL00 0000 0000 0000 0000 0000 0000",
}


@pytest.fixture
def values(samples: dict[str, str]) -> dict[str, str]:
    i = samples["iban"]
    bban = "12345678901234567890"
    # Right mod-97 check digits for a country code that has no IBAN, and for a Polish
    # BBAN one digit short: only the registry lookup can turn these down.
    unknown = "XX" + iban.calc_check_digits("XX00" + bban) + bban
    short = i[4:-1]
    return {
        **samples,
        "iban_truncated": " ".join(samples["iban_printed"].split()[:-1]),
        "unknown_country": unknown,
        "short_pl": "PL" + iban.calc_check_digits("PL00" + short) + short,
    }


@pytest.mark.parametrize(("template", "key"), POSITIVE.values(), ids=POSITIVE.keys())
def test_iban_found_with_exact_span(template: str, key: str, values: dict[str, str]) -> None:
    text = template.format(**values)
    found = [f for f in scan(text) if f.kind == "iban"]
    assert [text[f.start : f.end] for f in found] == [values[key]]
    assert all(f.validated for f in found)


@pytest.mark.parametrize("template", NEGATIVE.values(), ids=NEGATIVE.keys())
def test_near_miss_not_reported(template: str, values: dict[str, str]) -> None:
    text = template.format(**values)
    assert [f for f in scan(text) if f.kind == "iban"] == []


def test_mod97_only_near_misses_do_pass_mod97(values: dict[str, str]) -> None:
    # Guards two negative cases: they must fail on the registry, not on the checksum.
    for key in ("unknown_country", "short_pl"):
        number = values[key]
        assert int("".join(str(int(c, 36)) for c in number[4:] + number[:4])) % 97 == 1
        assert not iban.is_valid(number)


def test_several_ibans_in_one_text(
    make_pl_iban: Callable[[], str], printed: Callable[[str], str]
) -> None:
    numbers = [printed(make_pl_iban()) for _ in range(4)]
    text = "\n".join(f"{n}; kwota {k}00 zł" for k, n in enumerate(numbers, 1))
    assert [text[f.start : f.end] for f in finance.detect(text)] == numbers


def test_agrees_with_stdnum_on_mutations(
    rng: random.Random, make_pl_iban: Callable[[], str], printed: Callable[[str], str]
) -> None:
    # Independent reference: valid IBANs with random single-character edits are
    # reported exactly when stdnum still accepts them, in compact and printed form.
    seen_valid = seen_invalid = 0
    for _ in range(400):
        number = list(make_pl_iban())
        if rng.random() < 0.7:
            number[rng.randrange(2, len(number))] = rng.choice("0123456789")
        compact = "".join(number)
        expected = iban.is_valid(compact)
        seen_valid += expected
        seen_invalid += not expected
        for form in (compact, printed(compact)):
            text = f"rachunek {form} - koniec"
            reported = [text[f.start : f.end] for f in finance.detect_iban(text)]
            assert reported == ([form] if expected else []), form
    assert seen_valid > 50
    assert seen_invalid > 50
