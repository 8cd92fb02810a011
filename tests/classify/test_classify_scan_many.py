"""``scan_many``: a batch scanned as one joined text gives each text exactly what ``scan``
gives it alone, errors included, whatever stands at the end of the text before it.

The texts are joined with a run of newlines; what makes that safe is that no detector
reads that far around a candidate nor matches a newline. Both halves are held here: the
reach of every detector and its word lists against the separator, and the answers of
the batch against ``scan`` on the test corpora, on texts made to sit at a separator (a
naming word ending one text and its number opening the next, a number cut in two) and on
generated batches.
"""

from __future__ import annotations

import itertools
import random
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sovra.classify import (
    _runs,
    contact,
    finance,
    ids,
    network,
    personal,
    registry,
    scan,
    scan_many,
    scanner,
    special,
)
from sovra.classify._terms import CONTEXT as SPECIAL_CONTEXT
from sovra.classify._terms import TERMS
from sovra.classify.special import LANGUAGES
from sovra.errors import BadRequest, PayloadTooLarge, SovraError
from sovra.model import Finding

SEEDS = Path("/work/shared/seeds")
BENCH = Path(__file__).resolve().parents[2] / "bench"


def _alone(texts: list[object], **limits: object) -> list[object]:
    """What scan() gives each text on its own: findings, or (error class, message)."""
    out: list[object] = []
    for text in texts:
        try:
            out.append(scan(text, **limits))  # type: ignore[arg-type]
        except SovraError as exc:
            out.append((type(exc), str(exc)))
    return out


def _batched(texts: list[object], **limits: object) -> list[object]:
    return [
        (type(r), str(r)) if isinstance(r, SovraError) else r
        for r in scan_many(texts, **limits)  # type: ignore[arg-type]
    ]


# What ends one text and opens the next: naming words and the first part of a value, then
# values and the rest of one. Joined by a single newline, many of these pairs read as one
# finding, or name the value after them (checked below, so the cases do probe the gap).
ENDS = [
    "PESEL",
    "PESEL:",
    "nr ewid.",
    "Steuer-ID",
    "NIP",
    "REGON",
    "số CCCD",
    "身份证号码",
    "NIR",
    "SSN",
    "ITIN",
    "paszport nr",
    "tel.",
    "Telefon:",
    "+48",
    "+48 601",
    "0048",
    "order",
    "ISBN",
    "urodzona",
    "data urodzenia:",
    "ur. 12.03.",
    "born March",
    "sinh ngày",
    "sinh",
    "出生日期",
    "12 marca",
    "IBAN",
    "IBAN PL61 1090 1014",
    "PL61",
    "PL",
    "DE",
    "VAT",
    "card",
    "karta 4111 1111",
    "BIC",
    "SWIFT:",
    "jan.kowalski",
    "jan.kowalski@",
    "He is a devout",
    "She was diagnosed with",
    "Pacjentka choruje na",
    "他患有",
    "version",
    "v",
    "192.168.",
    "2001:db8:",
    "GPS 52.2297,",
    "52°13'47\"N",
    "AB 12",
    "X",
    "T22000",
    "Ausweis",
    "1",
    "12345",
    "Zażółć gęślą jaźń",
    "\u03a3",  # a capital sigma: lower-cased by what follows it
    "\ud800",
    "",
]
STARTS = [
    "44051401359",
    "44051401359 to numer",
    "1401359",
    "36574261809",
    "526-104-08-28",
    "123456785",
    "001085012345",
    "11010519491231002X",
    "295109912611193",
    "536-90-4399",
    "912-71-1234",
    "AB1234567",
    "601 234 567",
    "234 567",
    "+48 601 234 567",
    "978-3-16-148410-0",
    "12.03.1980",
    "1980",
    "12, 1980",
    "12 tháng 3 năm 1980",
    "0000 0712 1981 2874",
    "PL61 1090 1014 0000 0712 1981 2874",
    "61 1090 1014 0000 0712 1981 2874",
    "5261040828",
    "136695976",
    "4111 1111 1111 1111",
    "1111 1111",
    "BPKOPLPW",
    "DEUTDEFF",
    "@example.pl",
    "example.pl",
    "Catholic.",
    "diabetes last year.",
    "cukrzycę od 2015 r.",
    "糖尿病。",
    "1.2.3.4",
    "1.20",
    "8a2e:370:7334",
    "21.0122",
    "21°00'42\"E",
    "34 56 C",
    "2482300W",
    "01293",
    "T220001293",
    ":",
    "\u03c3",
    "\udfff",
    "",
]


def test_the_separator_is_newlines_reaching_further_than_any_detector() -> None:
    separator = scanner._SEPARATOR
    assert set(separator) == {"\n"}
    reaches = {
        "phone naming words": contact._CONTEXT_WINDOW,
        "e-mail local part": contact._MAX_LOCAL + 1,
        "identity naming words": ids.CONTEXT_WINDOW,
        "card naming words, BIC after its word": finance._CONTEXT_WINDOW,
        "birth words before a year": personal.CONTEXT_WINDOW + personal._LOOKBACK,
        "special categories before": special.CONTEXT_BEFORE,
        "special categories after": special.CONTEXT_AFTER,
        "IPv6 text form": network._MAX_IPV6,
        "two digit windows": 2 * _runs.MARGIN + _runs._STEP,
    }
    for what, reach in reaches.items():
        assert len(separator) > reach, what


def _word_lists() -> Iterator[str]:
    yield from contact.PHONE_CONTEXT
    yield from contact._NOT_PHONE_CONTEXT
    for words in ids.CONTEXT.values():
        yield from words
    for words in personal.BIRTH_WORDS.values():
        yield from words
    yield from finance._CARD_CONTEXT
    yield from finance._BIC_WORDS
    yield from network._VERSION_WORDS
    for by_lang in TERMS.values():
        for terms in by_lang.values():
            yield from terms
    for words in SPECIAL_CONTEXT.values():
        yield from words


def test_no_word_a_detector_looks_for_holds_a_newline() -> None:
    words = list(_word_lists())
    assert len(words) > 500
    assert [w for w in words if "\n" in w] == []


class _Values(dict[str, str]):
    """Values for the tables' templates ({pesel}, {iban_printed}, ...)."""

    def __missing__(self, key: str) -> str:
        return {
            "pesel": "44051401359",
            "pesel_bad": "44051401358",
            "pesel10": "4405140135",
            "pesel_split": "44051 401359",
            "pesel_bad_date": "44053201359",
            "iban": "PL61109010140000071219812874",
            "iban_bad": "PL61109010140000071219812875",
            "iban_printed": "PL61 1090 1014 0000 0712 1981 2874",
            "iban_printed_bad": "PL61 1090 1014 0000 0712 1981 2875",
            "iban_truncated": "PL61 1090 1014 0000 0712 1981",
            "de_iban_printed": "DE89 3704 0044 0532 0130 00",
            "gb_iban_printed": "GB29 NWBK 6016 1331 9268 19",
            "short_pl": "PL61 1090 1014",
            "unknown_country": "QQ61 1090 1014 0000 0712 1981 2874",
        }.get(key, "{" + key + "}")


_VALUES = _Values()


def _corpus() -> list[str]:
    """The texts of the classify tests' tables, the scanner's own examples and the news
    seeds: every kind, valid and broken, in seven languages."""
    import test_classify_contact
    import test_classify_detectors
    import test_classify_finance
    import test_classify_ids

    texts: list[str] = []

    def strings(value: object) -> Iterator[str]:
        if isinstance(value, str):
            yield value
        elif isinstance(value, dict):
            for item in value.values():
                yield from strings(item)
        elif isinstance(value, tuple | list):
            for item in value:
                yield from strings(item)

    tables = [
        test_classify_contact.EMAILS,
        test_classify_contact.NOT_EMAILS,
        test_classify_contact.EMAILS_FR_ES,
        test_classify_contact.NOT_EMAILS_FR_ES,
        test_classify_contact.PHONES,
        test_classify_contact.NOT_PHONES,
        test_classify_detectors.SPECIAL,
        test_classify_detectors.IMPERSONAL,
        test_classify_detectors.NOT_PERSONAL,
        test_classify_detectors.SHAPES,
        test_classify_finance.POSITIVE,
        test_classify_finance.NEGATIVE,
        test_classify_ids.POSITIVE,
        test_classify_ids.NEGATIVE,
    ]
    for table in tables:
        texts.extend(t.format_map(_VALUES) for t in strings(table))
    for _, _, frame, word, value in test_classify_detectors.CASES:
        texts.append(frame.format(word=word, value=value))
    texts.extend(path.read_text(encoding="utf-8") for path in sorted(SEEDS.glob("*.txt")))
    return list(dict.fromkeys(t for t in texts if isinstance(t, str)))


def test_the_corpus_in_one_batch_and_shuffled() -> None:
    texts = _corpus()
    assert len(texts) > 300
    expected = _alone(texts)  # type: ignore[arg-type]
    assert sum(len(e) for e in expected if isinstance(e, list)) > 250  # findings to compare
    assert _batched(texts) == expected  # type: ignore[arg-type]
    rng = random.Random(14)
    for _ in range(3):
        order = list(range(len(texts)))
        rng.shuffle(order)
        got = _batched([texts[i] for i in order])
        assert got == [expected[i] for i in order]


def test_every_corpus_text_cut_in_two_at_every_place() -> None:
    # A number, a date, an address or a naming word cut across two texts: each half gets
    # what it gets alone, never the whole's finding.
    texts = [t for t in _corpus() if len(t) <= 200]
    halves = [piece for t in texts for i in range(len(t) + 1) for piece in (t[:i], t[i:])]
    assert len(halves) > 20_000
    assert _batched(halves) == _alone(halves)  # type: ignore[arg-type]


def test_what_ends_one_text_does_not_reach_the_start_of_the_next() -> None:
    pairs = [text for end, start in itertools.product(ENDS, STARTS) for text in (end, start)]
    assert _batched(pairs) == _alone(pairs)  # type: ignore[arg-type]
    for lang in ("pl", "zh"):
        assert _batched(pairs, lang=lang) == _alone(pairs, lang=lang)  # type: ignore[arg-type]


def test_the_crafted_pairs_would_read_across_a_single_newline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The cases above probe the separator: with one newline instead, many pairs answer
    # otherwise (a naming word on the line before names a value; so does a birth word).
    monkeypatch.setattr(scanner, "_SEPARATOR", "\n")
    pairs = [text for end, start in itertools.product(ENDS, STARTS) for text in (end, start)]
    expected = _alone(pairs)  # type: ignore[arg-type]
    got = _batched(pairs)  # type: ignore[arg-type]
    assert sum(g != e for g, e in zip(got, expected, strict=True)) > 10


def test_the_evaluation_corpus_of_scan_eval() -> None:
    pytest.importorskip("faker")  # the bench extra; the corpus is generated with it
    sys.path.insert(0, str(BENCH))
    try:
        from scan_corpus import documents
        from scan_templates import TEMPLATES
    finally:
        sys.path.remove(str(BENCH))
    texts = [d.text for split in ("test", "dev") for d in documents(split, 7, 30, TEMPLATES)]
    assert _batched(texts) == _alone(texts)  # type: ignore[arg-type]


def test_each_text_gets_its_own_error_and_the_others_their_findings() -> None:
    good = "Mój PESEL to 44051401359, tel. +48 601 234 567, jan@example.pl"
    texts: list[object] = [
        good,
        b"bytes, not text",
        "x" * 121,  # over max_chars
        "",
        None,
        "1 " * 51,  # 51 separate numbers, over max_numbers
        "PESEL",
        "44051401359",
        good.upper(),
    ]
    got = scan_many(texts, max_chars=120, max_numbers=50)
    assert isinstance(got[1], BadRequest)
    assert str(got[1]) == "scan takes text, not bytes"
    assert isinstance(got[2], PayloadTooLarge)
    assert got[3] == []
    assert isinstance(got[4], BadRequest)
    assert isinstance(got[5], PayloadTooLarge)
    assert "more than 50 separate numbers" in str(got[5])
    assert [f.kind for f in got[0]] == ["pl_pesel", "phone", "email"]  # type: ignore[union-attr]
    assert _batched(texts, max_chars=120, max_numbers=50) == _alone(
        texts, max_chars=120, max_numbers=50
    )


def test_an_unknown_language_is_each_text_s_error_after_its_type() -> None:
    got = scan_many(["ok", 7, ""], lang="xx")
    assert [type(r) for r in got] == [BadRequest, BadRequest, BadRequest]
    assert "unknown language" in str(got[0])
    assert str(got[1]) == "scan takes text, not int"
    assert scan_many([], lang="xx") == []


def test_batches_larger_than_a_chunk_and_texts_scanned_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Chunks of about 400 characters: a batch of the corpus spans dozens of joined
    # texts, and the longer texts (the news seeds) are scanned on their own.
    monkeypatch.setattr(scanner, "_JOINED_CHARS", 400)
    texts = _corpus()
    assert any(len(t) > 400 for t in texts)
    assert _batched(texts) == _alone(texts)  # type: ignore[arg-type]


def test_a_finding_across_the_separator_has_each_text_scanned_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Were a detector to match across the gap (a family added without the care above),
    # the batch would not answer wrong: its texts are scanned one by one instead.
    def whole(text: str) -> Iterator[Finding]:
        if "@" in text:
            yield Finding("email", text.index("@"), len(text), 0.5, validated=False)

    family = registry.Family("whole", frozenset({"email"}), whole)
    monkeypatch.setattr(scanner, "FAMILIES", (*registry.FAMILIES, family))
    texts = ["a@b", "no at sign", "x@y.pl and more", "tel. 601 234 567"]
    got = _batched(texts)  # type: ignore[arg-type]
    assert got == _alone(texts)  # type: ignore[arg-type]
    assert got[0] == [Finding("email", 1, 3, 0.5, validated=False)]


_PIECES = [*ENDS, *STARTS, " ", ", ", ". ", "\n", "\r\n", ";", "-", "é", "中"]
_DENSE = st.lists(st.sampled_from(_PIECES), max_size=6).map("".join)
_ANY = st.text(st.characters(codec=None, min_codepoint=0, max_codepoint=0x2FFF), max_size=80)
_ITEM = st.one_of(
    _DENSE, _DENSE, _ANY, st.sampled_from([None, 3, b"44051401359", ["PESEL"], "x" * 300])
)


@settings(max_examples=400, deadline=None)
@given(
    texts=st.lists(_ITEM, max_size=10),
    lang=st.sampled_from([None, "auto", *LANGUAGES, "xx"]),
    max_chars=st.sampled_from([scanner.DEFAULT_MAX_CHARS, 60, 0]),
    max_numbers=st.sampled_from([scanner.DEFAULT_MAX_NUMBERS, 20, 3, 0]),
)
def test_a_batch_gives_what_each_text_gets_alone(
    texts: list[object], lang: str | None, max_chars: int, max_numbers: int
) -> None:
    limits = {"lang": lang, "max_chars": max_chars, "max_numbers": max_numbers}
    assert _batched(texts, **limits) == _alone(texts, **limits)
