"""Financial account identifiers.

Kinds:
    ``iban``: an International Bank Account Number, compact (``PL61109010140000071219812874``)
    or printed in groups with single spaces (``PL61 1090 1014 0000 0712 1981 2874``),
    accepted only when ``stdnum.iban`` accepts its mod-97 check digits and the country's
    BBAN structure. A candidate that fails is not reported.

    ``payment_card``: 13 to 19 digits, compact or in groups, that pass the Luhn check
    (``stdnum.luhn``) and start with an issuer prefix of a card scheme (Visa, Mastercard,
    American Express, Discover, JCB, UnionPay, Diners, Maestro); twelve-digit Maestro
    numbers only after a word naming a card.

    ``vat_number``: an EU VAT number with its country prefix (``PL5261040828``,
    ``DE136695976``), accepted only when ``stdnum.eu.vat`` accepts the country's check.

    ``bic``: a SWIFT/BIC code (``BPKOPLPW``, ``DEUTDEFF500``) with a valid country, next
    to a word that names it ("BIC", "SWIFT"); eight capitals are too often a plain word
    to report on shape alone. ``stdnum.bic`` checks the shape and country.
"""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Callable, Iterator

from stdnum import bic, luhn, numdb
from stdnum.eu import vat
from stdnum.iso7064 import mod_97_10
from stdnum.util import get_cc_module

from sovra.classify._runs import segments, spans, windows
from sovra.classify._stdnum import passes
from sovra.classify._words import Words, occurrences
from sovra.model import Finding

__all__ = ["KINDS", "detect", "detect_bic", "detect_cards", "detect_iban", "detect_vat"]

KINDS = frozenset({"iban", "payment_card", "vat_number", "bic"})

# Issuer prefixes of the card schemes (ISO/IEC 7812 IINs), as the schemes publish them.
_CARD_PREFIX = re.compile(
    r"4|5[1-5]|2(?:22[1-9]|2[3-9]|[3-6]|7[01]|720)|3[47]|6(?:011|4[4-9]|5)|35"
    r"|62|3(?:0[0-5]|[689])|5[06-8]|6[0-9]|2131|1800"
)
# Maestro numbers may be as short as twelve digits; so many twelve-digit numbers pass
# the Luhn check (one in ten) that they are reported only after a word naming a card.
_MAESTRO = re.compile(r"5[06-8]|6[0-9]")
# Cards are printed whole or in groups of four (Amex 4-6-5); a run of pairs such as
# "1 61 08 64 643 414 65" is some other number.
_CARD_PRINTED = re.compile(r"[0-9]{4,19}(?:[ -][0-9]{3,6})*")
_CARD_CONFIDENCE = 0.9
_CARD_LENGTHS = frozenset(range(12, 20))
_CARD_LENGTHS_MIN = 12
_CARD_NAMED = 0.97
_CARD_CONTEXT = (
    "card",
    "karta",
    "karty",
    "kartą",
    "thẻ",
    "karte",
    "carte",
    "tarjeta",
    "visa",
    "mastercard",
    "amex",
    "卡",
    "cc ",
)
_VAT = re.compile(
    r"[A-Z](?=[A-Z])(?<![0-9A-Za-z][A-Z])[A-Z] ?"
    r"(?=[0-9A-Z]{0,3}[0-9])[0-9A-Z][0-9A-Z .-]{6,14}[0-9A-Z]"
)
_VAT_CONFIDENCE = 0.95
_VAT_COUNTRIES = frozenset(
    [
        "AT",
        "BE",
        "BG",
        "CY",
        "CZ",
        "DE",
        "DK",
        "EE",
        "EL",
        "ES",
        "FI",
        "FR",
        "HR",
        "HU",
        "IE",
        "IT",
        "LT",
        "LU",
        "LV",
        "MT",
        "NL",
        "PL",
        "PT",
        "RO",
        "SE",
        "SI",
        "SK",
        "XI",
    ]
)
_BIC = re.compile(r"[A-Z](?<![0-9A-Za-z][A-Z])[A-Z]{5}[A-Z0-9]{2}(?:[A-Z0-9]{3})?(?![0-9A-Za-z])")
_BIC_WORDS = ("BIC", "bic", "Bic", "SWIFT", "swift", "Swift")
_BIC_CONFIDENCE = 0.9
_CONTEXT_WINDOW = 30

_MIN_IBAN = 15  # Norway
_MAX_IBAN = 34  # ISO 13616
# A zero-width look-ahead reports a candidate at every plausible start, so a false start
# ("AB12" right before the real number) cannot swallow the IBAN that follows it. The
# repetition is bounded, so each start costs bounded work.
_BBAN_MIN, _BBAN_MAX = _MIN_IBAN - 4, _MAX_IBAN - 4
_CANDIDATE = re.compile(
    rf"(?<![A-Za-z0-9])(?=([A-Za-z]{{2}}[0-9]{{2}}(?: ?[A-Za-z0-9]){{{_BBAN_MIN},{_BBAN_MAX}}}))"
)
# Where an IBAN can start: a digit (the engine skips to digits fast) that is the first of
# two check digits right after a two-letter country code at a word start. The candidate
# pattern is then tried only there, not at every position of the text.
_CHECK_DIGITS = re.compile(r"[0-9](?<=(?<![A-Za-z0-9])[A-Za-z]{2}[0-9])[0-9]")
# One part of a SWIFT BBAN structure such as "8!n16!n": a length, "!" when it is fixed.
_BBAN_PART = re.compile(r"(\d+)(!?)[nac]")

_IBAN_CONFIDENCE = 0.97  # mod-97 leaves one false pass in 97, the BBAN shape far fewer


@functools.cache
def _bban_lengths() -> dict[str, int | None]:
    """Country code -> fixed BBAN length (None when variable), from stdnum's registry."""
    lengths: dict[str, int | None] = {}
    for code, props in _iban_countries(numdb.get("iban")):
        parts = _BBAN_PART.findall(str(props.get("bban", "")))
        fixed = bool(parts) and all(bang for _, bang in parts)
        lengths[code] = sum(int(n) for n, _ in parts) if fixed else None
    return lengths


def _iban_countries(registry: numdb.NumDB) -> list[tuple[str, dict[str, str]]]:
    """Each code from AA to ZZ with the properties ``registry.info(code)`` gives it, if any.

    stdnum's registry lists one country code a line, so a code's properties are those of
    its lines, merged in order: read so, without 676 walks of the registry (8 ms of each
    ``sovra scan``'s start). A registry laid out otherwise is asked code by code.
    """
    merged: dict[str, dict[str, str]] = {}
    for length, low, high, props, _ in registry.prefixes:
        if length != 2 or low != high:
            codes = (a + b for a in string.ascii_uppercase for b in string.ascii_uppercase)
            found = ((code, registry.info(code)[0][1]) for code in codes)
            return [(code, props) for code, props in found if props]
        merged.setdefault(low, {}).update(props)
    return [
        (code, props)
        for code, props in sorted(merged.items())
        if props and code.isascii() and code.isalpha() and code.isupper()
    ]


def _mod97_ends(candidate: str, bban_length: int | None) -> list[int]:
    """Offsets in *candidate* that end a space-separated chunk and pass ISO 7064 mod 97-10.

    A quick filter: ``stdnum`` only sees the rare chunk ends that pass.
    """
    # ISO 13616 moves the first four characters to the end and reads letters as 10..35,
    # so the country code and check digits always contribute six decimal digits.
    head = int(candidate[:4].translate(_AS_DECIMAL))
    ends: list[int] = []
    count = 0
    i = 4
    while i < len(candidate):
        if candidate[i] == " ":
            i += 1
            continue
        end = candidate.find(" ", i)
        end = len(candidate) if end == -1 else end
        count += end - i
        if bban_length is not None and count > bban_length:
            break
        long_enough = count >= _BBAN_MIN if bban_length is None else count == bban_length
        if long_enough:
            bban = int(candidate[4:end].replace(" ", "").translate(_AS_DECIMAL))
            if (bban * 10**6 + head) % 97 == 1:
                ends.append(end)
        i = end
    return ends


_AS_DECIMAL = str.maketrans({c: str(int(c, 36)) for c in string.ascii_letters})


# stdnum's reading of a BBAN structure such as "4!a6!n8!n": every part is a fixed length
# of digits (n), capitals (a) or either case and digits (c).
_STRUCTURE_PART = re.compile(r"([1-9][0-9]*)!?([nac])")
_STRUCTURE_CLASS = {"n": "[0-9]", "a": "[A-Z]", "c": "[A-Za-z0-9]"}


def _structure(bban: str) -> re.Pattern[str]:
    return re.compile(
        _STRUCTURE_PART.sub(lambda m: f"{_STRUCTURE_CLASS[m.group(2)]}{{{m.group(1)}}}", bban)
    )


@functools.cache
def _iban_rules(code: str) -> tuple[re.Pattern[str], Callable[[str], object] | None] | None:
    """stdnum's rules for one country's IBANs: its BBAN structure and its own check.

    ``stdnum.iban.validate`` looks the country up in its registry on every call, which
    costs more than all its checks together; read once per country here, the checks
    are then made with stdnum's own functions. A country with a module of its own
    (Belgium, Spain, Montenegro, Norway) is left to that module, which runs the generic
    checks first. None when stdnum knows no IBAN for the code.
    """
    props = numdb.get("iban").info(code)[0][1]
    if not props:
        return None
    module = get_cc_module(code.lower(), "iban")
    return _structure(str(props.get("bban", ""))), (module.validate if module else None)


def _is_iban(compact: str, mod97_checked: bool = False) -> bool:
    """``stdnum.iban.is_valid`` for a candidate with its spaces already removed.

    *mod97_checked* says the caller has already found the ISO 7064 remainder right
    (``_mod97_ends`` does, for every candidate it returns), so it is not computed again.
    """
    number = compact.upper()
    rules = _iban_rules(number[:2])
    if rules is None:
        return False
    structure, country_check = rules
    if country_check is not None:
        return passes(country_check, number)
    return (
        mod97_checked or passes(mod_97_10.is_valid, number[4:] + number[:4])
    ) and structure.fullmatch(number[4:]) is not None


def _longest_valid(candidate: str) -> int | None:
    """Length of the longest prefix of *candidate* that is an IBAN ending at a chunk end."""
    # The candidate may run on into the next word ("... 2874 DATA"); trying each end of
    # a space-separated chunk, longest first, finds the IBAN inside it.
    code = candidate[:2].upper()
    lengths = _bban_lengths()
    if code not in lengths:
        return None
    for end in reversed(_mod97_ends(candidate, lengths[code])):
        if _is_iban(candidate[:end].replace(" ", ""), mod97_checked=True):
            return end
    return None


def detect_iban(text: str) -> Iterator[Finding]:
    """Yield an ``iban`` finding for each valid IBAN in *text*.

    Args:
        text: the text to search, with ASCII digits and spaces (the scanner folds
            others first); spans index it directly.

    Yields:
        Non-overlapping findings in order of start.
    """
    resume = 0
    for digits in _check_digits(text):
        start = digits.start() - 2
        if start < resume:
            continue
        match = _CANDIDATE.match(text, start)
        if match is None:
            continue
        candidate = match.group(1)
        length = _longest_valid(candidate)
        # A candidate that ends mid-word is part of a longer token, not an IBAN.
        if length is None or (length == len(candidate) and _runs_on(text, start + length)):
            continue
        resume = start + length
        yield Finding("iban", start, resume, _IBAN_CONFIDENCE, validated=True)


def _check_digits(text: str) -> Iterator[re.Match[str]]:
    # Two digits, so the digit windows hold every match (see ``_runs.MARGIN``).
    for lo, hi in windows(text):
        yield from _CHECK_DIGITS.finditer(text, lo, hi)


def _runs_on(text: str, end: int) -> bool:
    return end < len(text) and text[end].isascii() and text[end].isalnum()


_CARD_WORDS = Words(_CARD_CONTEXT)


def _luhn(digits: str) -> bool:
    # stdnum's Luhn sum on the compact digits: is_valid would only add a test for empty
    # input around it.
    return luhn.checksum(digits) == 0


def detect_cards(text: str) -> Iterator[Finding]:
    """Yield a ``payment_card`` finding for each Luhn-valid card number in *text*.

    Args:
        text: the text to search, with ASCII digits (the scanner folds others first);
            spans index it directly.

    Yields:
        Findings in order of start.
    """
    for segment in segments(text):
        if segment.end - segment.lead < _CARD_LENGTHS_MIN:
            continue
        for start, end, digits in spans(text, segment, _CARD_LENGTHS):
            if text[start] in "+(" or _CARD_PRINTED.fullmatch(text, start, end) is None:
                continue
            if _CARD_PREFIX.match(digits) is None or not _luhn(digits):
                continue
            named = _CARD_WORDS.found_in(text[max(0, start - _CONTEXT_WINDOW) : start].lower())
            if len(digits) == _CARD_LENGTHS_MIN and not (named and _MAESTRO.match(digits)):
                continue
            confidence = _CARD_NAMED if named else _CARD_CONFIDENCE
            yield Finding("payment_card", start, end, confidence, validated=True)
            break  # the longest valid stretch of a segment is the card


def detect_vat(text: str) -> Iterator[Finding]:
    """Yield a ``vat_number`` finding for each valid EU VAT number in *text*.

    Args:
        text: the text to search, with ASCII digits (the scanner folds others first);
            spans index it directly.

    Yields:
        Findings in order of start.
    """
    # A candidate holds a digit within its first seven characters and is at most 19
    # long, so the digit windows hold every one (see ``_runs.MARGIN``).
    for lo, hi in windows(text):
        match = _VAT.search(text, lo, hi)
        while match is not None:
            found = _vat_at(text, match)
            resume = found.end if found is not None else match.start() + 1
            if found is not None:
                yield found
            # Searching again from just after a rejected start lets "UE PL526..." find
            # the VAT number that the rejected "UE P..." candidate had swallowed.
            match = _VAT.search(text, resume, hi)


def _vat_at(text: str, match: re.Match[str]) -> Finding | None:
    if match.group()[:2] not in _VAT_COUNTRIES:
        return None
    raw = match.group()
    # The candidate may run on into the next word; try each shorter end, longest first.
    for end in range(len(raw), 9, -1):
        if raw[end - 1] in " .-":
            continue
        if match.start() + end < len(text) and text[match.start() + end].isalnum():
            continue
        compact = raw[:end].replace(" ", "").replace(".", "").replace("-", "")
        if passes(vat.is_valid, compact):
            return Finding(
                "vat_number", match.start(), match.start() + end, _VAT_CONFIDENCE, validated=True
            )
    return None


def detect_bic(text: str) -> Iterator[Finding]:
    """Yield a ``bic`` finding for each well-formed BIC named as one in *text*.

    Args:
        text: the text to search; spans index it directly.

    Yields:
        Findings in order of start.
    """
    # Only reported after its naming word, so the words are searched for (a fast literal
    # search) and the code only in the short stretch after each.
    for word, starts in zip(_BIC_WORDS, occurrences(text, _BIC_WORDS), strict=True):
        for at in starts:
            window_end = min(len(text), at + len(word) + _CONTEXT_WINDOW)
            for match in _BIC.finditer(text, at + len(word), window_end):
                if passes(bic.is_valid, match.group()):
                    yield Finding(
                        "bic", match.start(), match.end(), _BIC_CONFIDENCE, validated=False
                    )
                    break


def detect(text: str) -> Iterator[Finding]:
    """Yield every financial-identifier finding in *text*.

    Args:
        text: the text to search; spans index it directly.

    Yields:
        Findings of kinds :data:`KINDS`.
    """
    yield from detect_iban(text)
    yield from detect_cards(text)
    yield from detect_vat(text)
    yield from detect_bic(text)
