"""Contact details: e-mail addresses and telephone numbers.

Kinds:
    ``email``: a mailbox ``local@domain`` within RFC 5321's length limits whose domain
    ends in an alphabetic (or ``xn--``) top-level label. Only well-formed addresses are
    reported, so every e-mail finding is ``validated``.

    ``phone``: digit runs parsed with ``phonenumbers``. Numbers written in national
    form are reported only when they are valid for one of :data:`REGIONS`; numbers in
    international form (leading ``+`` or ``00``, any country) are reported when they
    are possible, and ``validated`` says whether ``phonenumbers.is_valid_number``
    accepts them. Runs are parsed and checked through ``_plans``, which reads
    phonenumbers' metadata directly and gives phonenumbers' own answers, in a sixth of
    the time.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import phonenumbers
from phonenumbers import PhoneMetadata

from sovra.classify import _plans
from sovra.classify._runs import segments
from sovra.classify._words import Words
from sovra.model import Finding

# phonenumbers compiles its metadata's patterns through ``re.compile`` on every check;
# numbers of many countries need more patterns than the 512 ``re`` keeps, and each one
# recompiled costs as much as checking a few numbers. Keep every compiled pattern (a few
# thousand at most: the metadata's own).
phonenumbers.enable_pattern_cache()

__all__ = ["KINDS", "PHONE_CONTEXT", "REGIONS", "detect", "detect_emails", "detect_phones"]

KINDS = frozenset({"email", "phone"})

# Regions whose national numbering plans are tried, in order, for numbers written
# without a country code; numbers with one ("+CC ...", "00CC ...") are read for every
# country.
REGIONS = ("PL", "VN", "DE", "US", "CN", "FR", "ES", "GB")

_MAX_LOCAL = 64  # RFC 5321 section 4.5.3.1.1
_MAX_DOMAIN = 253  # RFC 1035 presentation form without the trailing dot
# Scripts written without spaces between words (Han, kana, Hangul, Yi). Their letters
# are allowed in addresses by RFC 6531, but "邮箱wang@example.cn" is a label glued to an
# address far more often than an address, so they end a local part or a domain.
_UNSPACED = (
    "\u1100-\u115f\u2e80-\u303f\u3041-\u33ff\u3400-\u4dbf\u4e00-\u9fff"
    "\ua000-\ua4cf\uac00-\ud7a3\uf900-\ufaff\ufe30-\ufe4f\U00020000-\U0003fffd"
)
_LOCAL_PUNCT = "._%+'-"
_LOCAL_CHAR = re.compile(rf"[^\W{_UNSPACED}]|[{re.escape(_LOCAL_PUNCT)}]")
_LETTER_OR_DIGIT = rf"[^\W_{_UNSPACED}]"
# One label is at most 63 characters and never starts or ends with a hyphen; the last
# label must be alphabetic (or an IDNA A-label), which keeps "1.5@2.0"-style noise out.
# Every repetition is bounded, so the work per '@' is bounded whatever follows it.
# Only the A-label is matched ignoring case: the letter class already holds both cases
# (and matches the same characters either way, which a test checks), and compiling it
# case-insensitively took 30 ms of every start instead of 10.
_DOMAIN = re.compile(
    rf"(?:{_LETTER_OR_DIGIT}(?:(?:{_LETTER_OR_DIGIT}|-){{0,61}}{_LETTER_OR_DIGIT})?\.){{1,126}}"
    rf"(?:(?:(?!\d){_LETTER_OR_DIGIT}){{2,63}}|(?i:xn--[a-z0-9-]{{1,59}}))"
    rf"(?!{_LETTER_OR_DIGIT}|-)"
)

# Runs that are dates, not numbers to call: 2020-11-03, 03.11.2020, 3-11-20.
_DATE_LIKE = re.compile(r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}|[0-9]{1,2}[-.][0-9]{1,2}[-.][0-9]{2,4}")
_CONTEXT_WINDOW = 30
_NANP_DOTTED = re.compile(r"[0-9]{3}\.[0-9]{3}\.[0-9]{4}")
_NAMING_WINDOW = 14
# Words that name a number as something else: a reference, or an identifier (a PESEL
# whose checksum fails is still not a phone number).
_NOT_PHONE_CONTEXT = (
    "isbn",
    "issn",
    "doi",
    "nr zam",
    "order",
    "invoice",
    "faktur",
    "pesel",
    "nip",
    "regon",
    "cccd",
    "cmnd",
    "căn cước",
    "steuer",
    "ssn",
    "social security",
    "itin",
    "nir",
    "dni",
    "身份证",
    "passport",
    "paszport",
    "iban",
    "konto",
    "account",
    "card",
    "karta",
)


def _de_or_vn(digits: str) -> bool:
    return digits.startswith("0")


def _pl(digits: str) -> bool:
    return len(digits) == 9 and not digits.startswith("0")


def _us(digits: str) -> bool:
    return len(digits) == 10 or (len(digits) == 11 and digits.startswith("1"))


def _cn(digits: str) -> bool:
    return (len(digits) == 11 and digits.startswith("1")) or digits.startswith("0")


def _fr(digits: str) -> bool:
    return len(digits) == 10 and digits.startswith("0")


def _es(digits: str) -> bool:
    return len(digits) == 9 and digits[0] in "6789"


# How each region's national numbers are written: German and Vietnamese numbers always
# with the trunk prefix 0, Polish ones as nine digits without it, and so on. phonenumbers
# alone accepts an unprefixed German number of almost any length, so without this shape
# test most order numbers would read as German telephone numbers.
_NATIONAL_SHAPE = {
    "PL": _pl,
    "VN": _de_or_vn,
    "DE": _de_or_vn,
    "US": _us,
    "CN": _cn,
    "FR": _fr,
    "ES": _es,
    "GB": _de_or_vn,
}
# Lower-case words that, just before a number, say it is a telephone number.
PHONE_CONTEXT = (
    "tel",
    "phone",
    "mobile",
    "call",
    "zadzwo",
    "komórk",
    "telefon",
    "điện thoại",
    "sđt",
    "gọi",
    "handy",
    "rufnummer",
    "téléphone",
    "portable",
    "teléfono",
    "móvil",
    "电话",
    "手机",
    "联系",
    "contact",
    "kontakt",
    "liên hệ",
    "contacto",
    "joignable",
    "appel",
    "anruf",
    "llam",
)
_NATIONAL_DIGITS = (7, 12)
_INTERNATIONAL_DIGITS = (8, 15)

_EMAIL_CONFIDENCE = 0.9
_PHONE_INTERNATIONAL = 0.95
_PHONE_NATIONAL = 0.75
_PHONE_NAMED = 0.9
_PHONE_POSSIBLE_ONLY = 0.4


def _is_local(char: str) -> bool:
    if char.isascii():  # nearly every character, tested without the regex engine
        return char in _ASCII_LOCAL
    return _LOCAL_CHAR.match(char) is not None


_ASCII_LOCAL = frozenset(c for c in map(chr, range(128)) if _LOCAL_CHAR.match(c))
_ASCII_LOCAL_CHARS = "".join(sorted(_ASCII_LOCAL))


def _local_part_start(text: str, at: int) -> int | None:
    """Start of the local part ending just before ``text[at] == '@'``, if well-formed."""
    # Look back one character further than a local part may be long, and no further, so
    # one long word costs bounded time at every '@' that follows it. The ASCII characters
    # of the local part are stepped over by one ``rstrip``; only a character outside ASCII
    # is tested on its own.
    limit = max(0, at - _MAX_LOCAL - 1)
    start = at
    while True:
        start = limit + len(text[limit:start].rstrip(_ASCII_LOCAL_CHARS))
        if start > limit and not text[start - 1].isascii() and _is_local(text[start - 1]):
            start -= 1
            continue
        break
    if at - start > _MAX_LOCAL:
        return None
    while start < at and text[start] in ".'":
        start += 1  # an ellipsis or opening quote before the address belongs to the prose
    local = text[start:at]
    if not local or ".." in local or local.endswith("."):
        return None
    return start


def detect_emails(text: str) -> Iterator[Finding]:
    """Yield one ``email`` finding per well-formed address in *text*.

    Args:
        text: the text to search; spans index it directly.

    Yields:
        Non-overlapping findings in order of start.
    """
    at = text.find("@")
    while at != -1:
        start = _local_part_start(text, at)
        match = _DOMAIN.match(text, at + 1) if start is not None else None
        if start is not None and match is not None and len(match.group()) <= _MAX_DOMAIN:
            yield Finding("email", start, match.end(), _EMAIL_CONFIDENCE, validated=True)
            at = text.find("@", match.end())
        else:
            at = text.find("@", at + 1)


_PHONE_WORDS = Words(PHONE_CONTEXT)
_NOT_PHONE_WORDS = Words(_NOT_PHONE_CONTEXT)


def _shaped(digits: str) -> bool:
    """Whether *digits*, written without a country code, fit one of the national shapes.

    The union of :data:`_NATIONAL_SHAPE`'s tests, written out because it runs for every
    digit run of seven or more (a test compares the two).
    """
    n = len(digits)
    if not _NATIONAL_DIGITS[0] <= n <= _NATIONAL_DIGITS[1]:
        return False
    return digits[0] == "0" or n in {9, 10} or (n == 11 and digits[0] == "1")


def _dated_or_priced(raw: str) -> bool:
    """A run that reads as a date, a page or issue reference ("12/2020") or a price."""
    if _DATE_LIKE.fullmatch(raw) or "/" in raw:
        return True
    # Dots group prices and dates far more often than phone numbers, except in the
    # French and Belgian style of five or more pairs ("06.12.34.56.78").
    return "." in raw and raw.count(".") < 3 and _NANP_DOTTED.fullmatch(raw) is None


_COUNTRY_CODES = {region: phonenumbers.country_code_for_region(region) for region in REGIONS}
_REGIONS_OF_CODE = {
    code: phonenumbers.region_codes_for_country_code(code) for code in _COUNTRY_CODES.values()
}

# What phonenumbers says of one printed run, before the words around it are read.
_INVALID, _POSSIBLE, _VALID = 0, 1, 2


def _international(raw: str) -> int:
    spelled = "+" + (raw[2:] if raw.startswith("00") else raw[1:])
    number = _plans.parse(spelled, None)
    if number is None or not _plans.possible(*number):
        return _INVALID
    return _VALID if _plans.valid(*number) else _POSSIBLE


def _national(raw: str, digits: str, named: bool) -> int:
    """What the numbering plans of :data:`REGIONS` say of a run printed without a
    country code: valid in one region, else (only asked when a phone word names it)
    possible in one. Regions whose plans no tail of the digits fits are not parsed to
    find a valid one; a possible one is looked for only when none is valid, since the
    answer is the same in whatever order the regions are read."""
    shaped = _SHAPED.get((len(digits), digits[:1]))
    if shaped is None:
        shaped = _regions_shaped(digits)
    for region in shaped:
        if not _may_be_valid(region, digits):
            continue
        number = _plans.parse(raw, region)
        if number is not None and _plans.valid(*number):
            return _VALID
    if named:
        for region in shaped:
            number = _plans.parse(raw, region)
            if number is not None and _plans.possible(*number):
                return _POSSIBLE
    return _INVALID


def _regions_shaped(digits: str) -> tuple[str, ...]:
    return tuple(region for region in REGIONS if _NATIONAL_SHAPE[region](digits))


# The shapes read only a number's length and first digit, so the regions each pair fits
# are listed once (a test compares the table with the shapes).
_SHAPED = {
    (n, first): _regions_shaped(first + "0" * (n - 1))
    for n in range(_NATIONAL_DIGITS[0], _NATIONAL_DIGITS[1] + 1)
    for first in "0123456789"
}


def _may_be_valid(region: str, digits: str) -> bool:
    """False only when ``phonenumbers.is_valid_number(phonenumbers.parse(raw, region))``
    is False for every printing *raw* of *digits*.

    Parsing in a region keeps a tail of the digits as the national number (it strips an
    international call prefix and country code, or the national prefix, and the plans
    of :data:`REGIONS` have no rule that rewrites digits); a valid number matches the
    general pattern of a region of its country code, in one of that pattern's lengths.
    So a region none of whose shared-code patterns fits any tail is skipped without a
    parse; digits that start with the region's international call prefix may name
    another country and are always parsed. (A test checks this on generated numbers.)
    """
    if _DIALS_OUT[region].match(digits):
        return True
    n = len(digits)
    for length, pattern in _TAILS[region]:
        if length <= n and pattern.fullmatch(digits, n - length):
            return True
    return False


def _metadata(region: str) -> PhoneMetadata:
    metadata = PhoneMetadata.metadata_for_region(region, None)
    if metadata is None:  # every region phonenumbers lists for a code has metadata
        raise LookupError(f"phonenumbers has no metadata for {region}")
    return metadata


def _tails(region: str) -> tuple[tuple[int, re.Pattern[str]], ...]:
    """For each length a valid national number of *region*'s country code may have,
    its regions' general patterns of that length as one expression."""
    by_length: dict[int, set[str]] = {}
    for other in _REGIONS_OF_CODE[_COUNTRY_CODES[region]]:
        desc = _metadata(other).general_desc
        if desc is None or not desc.national_number_pattern:
            continue  # phonenumbers finds no number valid for it
        # No lengths listed means any length (phonenumbers then tests the pattern alone).
        for length in desc.possible_length or range(1, 18):
            by_length.setdefault(length, set()).add(desc.national_number_pattern)
    return tuple(
        (length, re.compile("|".join(f"(?:{p})" for p in sorted(patterns))))
        for length, patterns in sorted(by_length.items())
    )


_TAILS = {region: _tails(region) for region in REGIONS}
# A region without an international call prefix gets a pattern that never matches.
_DIALS_OUT = {
    region: re.compile(_metadata(region).international_prefix or "(?!)") for region in REGIONS
}


def detect_phones(text: str) -> Iterator[Finding]:
    """Yield ``phone`` findings: valid national numbers and possible international ones.

    Candidates come from one pass over the text's digit runs (shared with the identity
    number detectors), and each is parsed once: with no region when it carries its own
    country code ("+48 ..." or "0048 ..."), otherwise in each region of
    :data:`REGIONS` until one numbering plan accepts it. Runs that read as dates, page
    or issue references ("12/2020"), dotted prices or ISBNs are skipped. A word such as
    "tel." or "số điện thoại" just before a national number raises its confidence.

    The cheap tests come first (digit counts, the national shapes, dates and prices,
    then the words before the run), and one text's runs that are printed alike are
    parsed once.

    Args:
        text: the text to search, with ASCII digits (the scanner folds others first);
            spans index it directly.

    Yields:
        Non-overlapping findings in order of start.
    """
    # Kept for one call only (one text, or one batch's texts joined by scan_many), never
    # carried over to the next.
    parsed: dict[tuple[str, bool], int] = {}
    for segment in segments(text):
        start, end = segment.lead, segment.end
        if end - start < _NATIONAL_DIGITS[0]:
            continue  # cheapest test first: most digit runs are short
        raw = text[start:end]
        international = raw.startswith("+") or (raw.startswith("00") and len(segment.digits) > 9)
        named = _named_if_candidate(text, start, raw, segment.digits, international)
        if named is None:
            continue
        outcome = parsed.get((raw, named))
        if outcome is None:
            if international:
                outcome = _international(raw)
            else:
                outcome = _national(raw, segment.digits, named)
            parsed[raw, named] = outcome
        finding = _phone(start, end, outcome, international, named)
        if finding is not None:
            yield finding


def _named_if_candidate(
    text: str, start: int, raw: str, digits: str, international: bool
) -> bool | None:
    """None when *raw* cannot be a phone number; else whether a phone word names it."""
    if international:
        if not _INTERNATIONAL_DIGITS[0] <= len(digits) <= _INTERNATIONAL_DIGITS[1]:
            return None
    elif not _shaped(digits):
        return None
    if _dated_or_priced(raw):
        return None
    before = text[max(0, start - _CONTEXT_WINDOW) : start].lower()
    named = _PHONE_WORDS.found_in(before)
    # Only a word right before the number names it as something else ("PESEL 4405...",
    # "ISBN 978-..."); further back it names the previous number, and a telephone word
    # nearer ("PESEL ..., tel. +48 ...") is the phone's.
    if not named and _NOT_PHONE_WORDS.found_in(before[-_NAMING_WINDOW:]):
        return None
    return named


def _phone(start: int, end: int, outcome: int, international: bool, named: bool) -> Finding | None:
    if international:
        if outcome == _VALID:
            return Finding("phone", start, end, _PHONE_INTERNATIONAL, validated=True)
        if outcome == _POSSIBLE:
            return Finding("phone", start, end, _PHONE_POSSIBLE_ONLY, validated=False)
        return None
    if outcome == _VALID:
        confidence = _PHONE_NAMED if named else _PHONE_NATIONAL
        return Finding("phone", start, end, confidence, validated=True)
    if outcome == _POSSIBLE and named:
        # Not in any numbering plan, but shaped like a number of one and introduced as a
        # telephone number: someone wrote it down as one (unassigned, or a typo).
        return Finding("phone", start, end, _PHONE_POSSIBLE_ONLY, validated=False)
    return None


def detect(text: str) -> Iterator[Finding]:
    """Yield every ``email`` and ``phone`` finding in *text*.

    E-mails and phones are searched independently; a phone number inside an address
    is resolved later by the scanner.

    Args:
        text: the text to search; spans index it directly.

    Yields:
        Findings of kinds :data:`KINDS`.
    """
    yield from detect_emails(text)
    yield from detect_phones(text)
