"""The scanner: spans over the caller's string, overlap resolution, limits, odd input."""

from __future__ import annotations

import datetime
import itertools
import random
import re
import signal
import sys
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

import phonenumbers
import pytest

from sovra.classify import KINDS, scan
from sovra.classify._fold import fold
from sovra.classify._overlap import resolve_overlaps
from sovra.classify.registry import FAMILIES
from sovra.classify.scanner import DEFAULT_MAX_NUMBERS
from sovra.errors import BadRequest, PayloadTooLarge
from sovra.model import Finding

SEEDS = Path("/work/shared/seeds")
FULLWIDTH = str.maketrans(
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ+ ",
    "".join(chr(c + 0xFEE0) for c in b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ+") + "\u3000",
)

PREFIXES = {
    "vi_precomposed": "Số CCCD của bà Nguyễn Thị Hương ở Hà Nội: ",
    "vi_decomposed": unicodedata.normalize("NFD", "Số CCCD của bà Nguyễn Thị Hương ở Hà Nội: "),
    "pl_diacritics": "Zażółć gęślą jaźń, dane: ",
    "cjk": "中华人民共和国公民的资料\uff1a",
    "emoji_astral": "📞👍🏽 ",
    "stacked_combining_marks": "e\u0301\u0323\u0302" * 5 + " ",
    "arabic": "رقم الهاتف ",
}


@pytest.fixture
def values(samples: dict[str, str]) -> dict[str, tuple[str, str]]:
    """Name -> (kind, value) of one finding to plant after each prefix."""
    return {
        "pesel": ("pl_pesel", samples["pesel"]),
        "iban": ("iban", samples["iban_printed"]),
        "phone": ("phone", "+48 601 234 567"),
        "email": ("email", "jan.kowalski@firma.pl"),
    }


@pytest.mark.parametrize("prefix", PREFIXES.values(), ids=PREFIXES.keys())
@pytest.mark.parametrize("planted", ["pesel", "iban", "phone", "email"])
def test_span_slices_the_original_after_any_prefix(
    prefix: str, planted: str, values: dict[str, tuple[str, str]]
) -> None:
    kind, value = values[planted]
    text = f"{prefix}{value} — koniec."
    (finding,) = scan(text)
    assert finding.kind == kind
    assert text[finding.start : finding.end] == value
    assert finding.start == len(prefix)


def test_decomposed_prefix_really_is_longer() -> None:
    # Guards the table above: NFD text has more code points, so a scanner that
    # normalised before matching would report shifted spans for it.
    assert len(PREFIXES["vi_decomposed"]) > len(PREFIXES["vi_precomposed"])


@pytest.mark.parametrize("planted", ["pesel", "iban", "phone"])
def test_fullwidth_forms_found_with_original_spans(
    planted: str, values: dict[str, tuple[str, str]]
) -> None:
    kind, value = values[planted]
    wide = value.translate(FULLWIDTH)
    assert wide != value
    text = f"资料\uff1a{wide}。"
    (finding,) = scan(text)
    assert finding.kind == kind
    assert text[finding.start : finding.end] == wide


def test_other_script_digits_and_no_break_spaces(samples: dict[str, str]) -> None:
    arabic_indic = samples["pesel"].translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    nbsp_iban = samples["iban_printed"].replace(" ", "\u00a0")
    text = f"PESEL {arabic_indic}; rachunek {nbsp_iban}."
    found = scan(text)
    assert [(f.kind, text[f.start : f.end]) for f in found] == [
        ("pl_pesel", arabic_indic),
        ("iban", nbsp_iban),
    ]


def test_fold_keeps_every_code_point_one_for_one() -> None:
    everything = "".join(map(chr, range(sys.maxunicode + 1)))
    folded = fold(everything)
    assert len(folded) == len(everything)
    # full-width 1 2, ideographic space, full-width P L hyphen, no-break space, Arabic 3
    assert fold("\uff11\uff12\u3000\uff30\uff2c\uff0d\u00a0\u0663") == "12 PL- 3"


def test_empty_text() -> None:
    assert scan("") == []


def test_over_the_limit_is_refused() -> None:
    text = "PESEL 44051401359 " * 10
    assert scan(text, max_chars=len(text))
    with pytest.raises(PayloadTooLarge):
        scan(text, max_chars=len(text) - 1)


def test_default_limit_is_ten_million_characters() -> None:
    with pytest.raises(PayloadTooLarge):
        scan(" " * 10_000_001)


def test_too_many_numbers_is_refused_whole() -> None:
    text = "tel. +48 601 234 567 i 601 234 568"  # seven digit runs
    assert scan(text, max_numbers=7)
    with pytest.raises(PayloadTooLarge, match="more than 6 separate numbers"):
        scan(text, max_numbers=6)


def test_fullwidth_numbers_count_toward_the_bound() -> None:
    wide = "".join(chr(0xFF10 + d) for d in (6, 0, 1))
    with pytest.raises(PayloadTooLarge):
        scan(f"{wide} {wide} {wide}", max_numbers=2)


@pytest.mark.slow
def test_worst_case_at_the_default_number_bound(
    rng: random.Random, deadline: Callable[[float], None]
) -> None:
    # Nine-digit numbers one space apart: nearly every one is a valid Polish number,
    # the costliest layout for phone matching.
    text = " ".join(str(rng.randrange(10**8, 10**9)) for _ in range(DEFAULT_MAX_NUMBERS))
    deadline(120)  # about half a second on an idle core
    found = scan(text)
    assert len(found) > DEFAULT_MAX_NUMBERS // 2
    with pytest.raises(PayloadTooLarge):
        scan(text + " 1")


def test_bytes_are_refused() -> None:
    with pytest.raises(BadRequest):
        scan(b"PESEL 44051401359")  # type: ignore[arg-type]


def test_findings_sorted_disjoint_and_declared(samples: dict[str, str]) -> None:
    text = (
        f"Mój PESEL to {samples['pesel']}, tel. +48 601 234 567, jan@firma.pl, "
        f"konto {samples['iban_printed']}. Số điện thoại: 0912 345 678, "
        f"email nguyen@congty.vn, 电话 138 0013 8000. PESEL {samples['pesel_bad']}."
    )
    found = scan(text)
    assert [f.kind for f in found] == [
        "pl_pesel",
        "phone",
        "email",
        "iban",
        "phone",
        "email",
        "phone",
    ]
    assert all(a.end <= b.start for a, b in itertools.pairwise(found))
    assert {f.kind for f in found} <= KINDS


def _pesel_that_is_also_a_german_number(
    pesel_for: Callable[[datetime.date, int], str],
) -> str:
    for serial in range(10_000):
        number = pesel_for(datetime.date(1944, 5, 14), serial)
        if phonenumbers.is_valid_number(phonenumbers.parse(number, "DE")):
            return number
    raise AssertionError("no PESEL for that day is a valid German number")


def test_pesel_beats_the_phone_reading_of_the_same_digits(
    pesel_for: Callable[[datetime.date, int], str],
) -> None:
    number = _pesel_that_is_also_a_german_number(pesel_for)
    text = f"numer {number} w aktach"
    (finding,) = scan(text)
    assert finding.kind == "pl_pesel"
    assert text[finding.start : finding.end] == number


def test_email_beats_the_phone_inside_it() -> None:
    text = "SMS przez bramkę: +48601234567@sms.example.pl"
    (finding,) = scan(text)
    assert finding.kind == "email"
    assert text[finding.start : finding.end] == "+48601234567@sms.example.pl"


def _f(kind: str, start: int, end: int, confidence: float, validated: bool) -> Finding:
    return Finding(kind, start, end, confidence, validated)


# name -> (findings, the ones that must survive)
OVERLAPS = {
    "validated_beats_longer": (
        [_f("phone", 0, 20, 0.9, False), _f("pl_pesel", 5, 16, 0.5, True)],
        [_f("pl_pesel", 5, 16, 0.5, True)],
    ),
    "longer_beats_more_confident": (
        [_f("phone", 0, 10, 0.99, True), _f("email", 0, 20, 0.5, True)],
        [_f("email", 0, 20, 0.5, True)],
    ),
    "more_confident_wins_same_length": (
        [_f("phone", 3, 14, 0.75, True), _f("pl_pesel", 3, 14, 0.8, True)],
        [_f("pl_pesel", 3, 14, 0.8, True)],
    ),
    "earlier_wins_full_tie": (
        [_f("phone", 5, 15, 0.7, True), _f("phone", 0, 10, 0.7, True)],
        [_f("phone", 0, 10, 0.7, True)],
    ),
    "touching_spans_both_kept": (
        [_f("phone", 10, 20, 0.7, True), _f("email", 0, 10, 0.9, True)],
        [_f("email", 0, 10, 0.9, True), _f("phone", 10, 20, 0.7, True)],
    ),
    "loser_in_the_middle_frees_both_sides": (
        [
            _f("iban", 0, 10, 0.9, True),
            _f("phone", 8, 22, 0.4, False),
            _f("email", 20, 30, 0.9, True),
        ],
        [_f("iban", 0, 10, 0.9, True), _f("email", 20, 30, 0.9, True)],
    ),
    "duplicates_collapse": (
        [_f("phone", 0, 9, 0.75, True)] * 3,
        [_f("phone", 0, 9, 0.75, True)],
    ),
}


@pytest.mark.parametrize(("given", "kept"), OVERLAPS.values(), ids=OVERLAPS.keys())
def test_overlap_rule(given: list[Finding], kept: list[Finding]) -> None:
    assert resolve_overlaps(given) == kept
    assert resolve_overlaps(reversed(given)) == kept


def test_registry_kinds_are_disjoint_and_make_up_kinds() -> None:
    declared = [family.kinds for family in FAMILIES]
    assert sum(len(k) for k in declared) == len(KINDS)
    assert frozenset().union(*declared) == KINDS
    assert len(KINDS) == 32


def test_each_family_reports_only_its_own_kinds(samples: dict[str, str]) -> None:
    text = (
        f"PESEL {samples['pesel']} +48 601 234 567 a@b.pl {samples['iban_printed']} 0912 345 678"
        " NIP 526-104-08-28, REGON 123456785, dowód ABA300000, paszport AB1234567, "
        "số CCCD 001085012345, MST 0100112437, 身份证 11010519491231002X, Steuer-ID "
        "36574261809, Ausweis T220001293, NIR 295109912611193, DNI 54362315K, NIE "
        "X2482300W, SSN 536-90-4399, ITIN 912-71-1234, NINO AB 12 34 56 C, karta "
        "4111 1111 1111 1111, VAT DE136695976, BIC BPKOPLPW, IP 192.168.1.20, GPS "
        "52.2297, 21.0122, urodzona 12.03.1980. He is gay. She has diabetes. He is Catholic. "
        "She is Kurdish. He is a party member. Her fingerprint. His genetic test."
    )
    seen: set[str] = set()
    for family in FAMILIES:
        for finding in family.detect(text):
            assert finding.kind in family.kinds, family.name
            assert 0 <= finding.start < finding.end <= len(text)
            seen.add(finding.kind)
    assert seen == KINDS


@pytest.mark.parametrize("path", sorted(SEEDS.glob("*.txt")), ids=lambda p: p.name)
def test_news_seeds_hold_no_identifiers(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    found = scan(text)
    for finding in found:  # shown with -s, for a person to judge
        print(path.name, finding, repr(text[finding.start : finding.end]))
    assert not [f for f in found if f.kind in {"pl_pesel", "iban"}]
    # These articles print no address and no run of digits long enough for a phone
    # number (checked here, not assumed), so nothing at all may be reported.
    assert "@" not in text
    assert not re.search(r"\d(?:[\s().-]*\d){4}", text)
    assert found == []


def test_seed_texts_are_present() -> None:
    assert len(list(SEEDS.glob("*.txt"))) == 2


def test_lone_surrogates_do_not_break_scanning(samples: dict[str, str]) -> None:
    text = f"\ud800PESEL {samples['pesel']}\udfff tel. +48 601 234 567 \udc80 a@b.pl\ud83d"
    found = scan(text)
    assert [(f.kind, text[f.start : f.end]) for f in found] == [
        ("pl_pesel", samples["pesel"]),
        ("phone", "+48 601 234 567"),
        ("email", "a@b.pl"),
    ]


class _TooSlow(Exception):
    pass


@pytest.fixture
def deadline() -> Iterator[Callable[[float], None]]:
    """Arm a wall-clock alarm that fails the test instead of letting it run on."""

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        raise _TooSlow

    previous = signal.signal(signal.SIGALRM, on_alarm)

    def arm(seconds: float) -> None:
        signal.setitimer(signal.ITIMER_REAL, seconds)

    yield arm
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


# name -> a long single line built to make a careless matcher go quadratic; each ends
# in a real phone number and PESEL that must still be found after all that junk.
LONG_LINES = {
    "one_long_word_then_at": "a" * 1_000_000 + "@",
    "many_ats": "@" * 500_000,
    "local_parts_at_limit": ("x" * 64 + "@") * 5_000,
    "endless_domain": "a@" + "a." * 250_000,
    "one_digit_run": "1" * 1_000_000,
    "iban_like_starts": "PL12 " * 9_000,
    "spaced_digit_pairs": "12 " * 5_000,
    "prose": "Bộ trưởng Ngoại giao Trung Quốc, zażółć gęślą jaźń, 中国数据 2020 r. " * 5_000,
}


@pytest.mark.parametrize("junk", LONG_LINES.values(), ids=LONG_LINES.keys())
def test_long_single_line_in_bounded_time(
    junk: str, samples: dict[str, str], deadline: Callable[[float], None]
) -> None:
    tail = f" PESEL {samples['pesel']}, tel. +48 601 234 567"
    text = junk + tail
    assert "\n" not in text
    deadline(60)  # typically a few seconds; a quadratic path would take hours
    found = scan(text)
    reported = {(f.kind, text[f.start : f.end]) for f in found if f.start >= len(junk)}
    assert reported == {("pl_pesel", samples["pesel"]), ("phone", "+48 601 234 567")}
