"""Financial account identifiers.

Kinds:
    ``iban``: an International Bank Account Number, compact (``PL61109010140000071219812874``)
    or printed in groups with single spaces (``PL61 1090 1014 0000 0712 1981 2874``),
    accepted only when ``stdnum.iban`` accepts its mod-97 check digits and the country's
    BBAN structure. A candidate that fails is not reported.

    ``payment_card``: 13 to 19 digits, compact or in groups, that pass the Luhn check
    (summed over bytes first, then confirmed by ``stdnum.luhn.checksum``) and start with
    an issuer prefix of a card scheme (Visa, Mastercard, American Express, Discover, JCB,
    UnionPay, Diners, Maestro); twelve-digit Maestro numbers only after a word naming a
    card.

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

from stdnum import bic, iban, luhn, numdb
from stdnum.iso7064 import mod_97_10
from stdnum.util import NumberValidationModule, get_cc_module

from sovra.classify import _compiled
from sovra.classify._libraries import follow
from sovra.classify._runs import segments, spans, windows, windows_ascii
from sovra.classify._stdnum import passes
from sovra.classify._words import Words, occurrences
from sovra.model import Finding

__all__ = ["KINDS", "detect", "detect_bic", "detect_cards", "detect_iban", "detect_vat"]

KINDS = frozenset({"iban", "payment_card", "vat_number", "bic"})


def _translation(classes: dict[str, str], other: str) -> bytes:
    """A table for ``bytes.translate``: the characters of each key of *classes* to its
    value, every other byte to *other*."""
    table = bytearray(other.encode() * 256)
    for chars, shape in classes.items():
        for char in chars:
            table[ord(char)] = ord(shape)
    return bytes(table)


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
# Where a match of ``_VAT`` can start, in the text read through ``_VAT_SHAPES``: two
# capitals at a word start and, after an optional space, a digit among the next four
# characters. A literal opens it, which the engine finds fast (see ``_IBAN_SHAPES``):
# 0.6 ms for the windows of the mix against 1.4 for ``_VAT`` searched for in each.
_VAT_SHAPES = _translation(
    {string.ascii_uppercase: "A", string.ascii_lowercase: "a", string.digits: "0", " ": " "}, "#"
)
_VAT_SHAPE = re.compile(rb"AA(?<![0aA]AA) ?(?=[0A]{0,3}0)")
_BIC = re.compile(r"[A-Z](?<![0-9A-Za-z][A-Z])[A-Z]{5}[A-Z0-9]{2}(?:[A-Z0-9]{3})?(?![0-9A-Za-z])")
_BIC_WORDS = ("BIC", "bic", "Bic", "SWIFT", "swift", "Swift")
# The part of each word that the text is searched for. The search finds a part's first
# character first (``occurrences``), so a part opening with a common letter costs more:
# "s" of "swift" stands 30,000 times in the mix, "f" of "ft" 3,600, and the six words
# cost 0.55 ms this way against 1.4 searched whole.
_BIC_PARTS = ("IC", "bic", "Bic", "FT", "ft", "ft")
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
# Where an IBAN can start: two check digits right after a two-letter country code at a
# word start. The candidate pattern is then tried only there, not at every position of
# the text. This pattern is the definition; ``_check_digits`` finds its matches faster.
_CHECK_DIGITS = re.compile(r"[0-9](?<=(?<![A-Za-z0-9])[A-Za-z]{2}[0-9])[0-9]")
# The same, over the text's ASCII letters read as "a", its digits as "0" and every
# other character as " " (see ``_shapes``): a country code and check digits at a word
# start then read " aa00", a literal that the engine finds with a fast search, where a
# pattern that opens with a class of characters is tried at each of them in turn. Over
# the windows of the mix: 0.65 ms, the copy of the windows included, against 1.6.
_IBAN_SHAPES = _translation({string.ascii_letters: "a", string.digits: "0"}, " ")
_IBAN_SHAPE = re.compile(rb" aa00")
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
    head = int(_AS_DIGITS[candidate[0]] + _AS_DIGITS[candidate[1]] + candidate[2:4])
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
            chunks = candidate[4:end].replace(" ", "")
            # Most BBANs are digits only, and ``str.translate`` with a table of strings
            # costs a microsecond even where it has nothing to replace.
            bban = int(chunks if chunks.isdigit() else chunks.translate(_AS_DECIMAL))
            if (bban * 10**6 + head) % 97 == 1:
                ends.append(end)
        i = end
    return ends


_AS_DIGITS = {c: str(int(c, 36)) for c in string.ascii_letters}
_AS_DECIMAL = str.maketrans(_AS_DIGITS)


# stdnum's reading of a BBAN structure such as "4!a6!n8!n": every part is a fixed length
# of digits (n), capitals (a) or either case and digits (c).
_STRUCTURE_PART = re.compile(r"([1-9][0-9]*)!?([nac])")
_STRUCTURE_CLASS = {"n": "[0-9]", "a": "[A-Z]", "c": "[A-Za-z0-9]"}


def _structure(bban: str) -> re.Pattern[str]:
    return re.compile(
        _STRUCTURE_PART.sub(lambda m: f"{_STRUCTURE_CLASS[m.group(2)]}{{{m.group(1)}}}", bban)
    )


def _bban_check(code: str) -> Callable[[str], object] | None:
    """What the country's own IBAN module checks after the generic IBAN checks, as a
    check of the BBAN alone; None where that is left to the module's ``validate``.

    That ``validate`` makes the generic checks again first, registry walk included:
    52 µs for each Spanish candidate, against 7 for the CCC check alone. The modules
    are imported on first need, as ``stdnum.iban`` does (Norway's brings four more).
    """
    if code == "ES":
        from stdnum.es import ccc

        # What ``ccc.validate`` checks once the length and the digits pass, which the
        # BBAN structure ("4!n4!n1!n1!n10!n") makes sure of; it would clean it twice.
        return lambda number: ccc.calc_check_digits(number) == number[8:10]
    if code == "NO":
        from stdnum.no import kontonr

        return kontonr.validate
    return None


@functools.cache
def _iban_rules(
    code: str,
) -> tuple[re.Pattern[str], Callable[[str], object] | None, Callable[[str], object] | None] | None:
    """stdnum's rules for one country's IBANs: its BBAN structure and its own checks.

    ``stdnum.iban.validate`` looks the country up in its registry on every call, which
    costs more than all its checks together; read once per country here, the checks
    are then made with stdnum's own functions. A country with a module of its own
    (Belgium, Spain, Montenegro, Norway) has that module's check of the BBAN where
    :func:`_bban_check` gives one, and is otherwise left to the module's ``validate``,
    which runs the generic checks first.

    Returns:
        The BBAN structure, the country's check of the BBAN alone, and the country's
        check of the whole number; None when stdnum knows no IBAN for the code.
    """
    props = numdb.get("iban").info(code)[0][1]
    if not props:
        return None
    structure = _structure(str(props.get("bban", "")))
    module = get_cc_module(code.lower(), "iban")
    bban_check = _bban_check(code) if module is not None else None
    if module is None or bban_check is not None:
        return structure, bban_check, None
    return structure, None, module.validate


def _is_iban(compact: str, mod97_checked: bool = False) -> bool:
    """``stdnum.iban.is_valid`` for a candidate with its spaces already removed.

    *mod97_checked* says the caller has already found the ISO 7064 remainder right
    (``_mod97_ends`` does, for every candidate it returns), so it is not computed again.
    """
    number = compact.upper()
    rules = _iban_rules(number[:2])
    if rules is None:
        return False
    structure, bban_check, country_check = rules
    if country_check is not None:
        return passes(country_check, number)
    bban = number[4:]
    return (
        (mod97_checked or passes(mod_97_10.is_valid, bban + number[:4]))
        and structure.fullmatch(bban) is not None
        and (bban_check is None or passes(bban_check, bban))
    )


def _is_iban_by_stdnum(compact: str, mod97_checked: bool = False) -> bool:
    return passes(iban.is_valid, compact)


def _is_vat(compact: str) -> bool:
    """``stdnum.eu.vat.is_valid`` for a candidate of capitals and digits."""
    return passes(_vat_module(compact[:2]).validate, compact)


def _is_vat_by_stdnum(compact: str) -> bool:
    from stdnum.eu import vat

    return passes(vat.is_valid, compact)


_IS_IBAN_RESTATED, _IS_VAT_RESTATED = _is_iban, _is_vat


def _use(restated: bool) -> None:
    """Check IBANs and VAT numbers with the steps restated here, or with stdnum's own."""
    # Rebound at import, and again only when _libraries.check() is called.
    global _is_iban, _is_vat
    if restated:
        _is_iban, _is_vat = _IS_IBAN_RESTATED, _IS_VAT_RESTATED
    else:
        _is_iban, _is_vat = _is_iban_by_stdnum, _is_vat_by_stdnum


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
    for start in _check_digits(text):
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


def _every_shape(text: str, spans: tuple[tuple[int, int], ...]) -> int:
    return _IBAN_START | _VAT_START


# Which of the two shapes below a text holds at all: one compiled walk over its digit
# windows, which spares most texts the copy of their windows and both searches (tests
# compare it with the searches).
_IBAN_START, _VAT_START = 1, 2
_account_shapes = _compiled.native("account_shapes") or _every_shape


def _check_digits(text: str) -> Iterator[int]:
    """Where each match of :data:`_CHECK_DIGITS` in *text* starts, less two: the start
    of its country code."""
    # Two digits, so the digit windows hold every match, and the character before its
    # country code too (see ``_runs.MARGIN``).
    if not _account_shapes(text, windows(text)) & _IBAN_START:
        return
    for start, _ in _shapes(text, _IBAN_SHAPES, _IBAN_SHAPE, 1):
        yield start


def _shapes(
    text: str, table: bytes, pattern: re.Pattern[bytes], offset: int
) -> Iterator[tuple[int, int]]:
    """Where *pattern* matches the digit windows of *text* read through *table*.

    The windows are read as one ASCII string, each after a NUL (``_runs.windows_ascii``,
    made once per call for every detector that reads it), and translated by *table*:
    0.07 ms for the 110,000 characters of the mix's windows. The NUL reads as the word
    start the text has there, since a window that does not start the text starts at
    least ``MARGIN`` characters before its first digit, and a match of these patterns
    lies within a few characters of one.

    Yields:
        For each match, the offset in *text* of the match's start plus *offset*, and
        the end of the window that holds it.
    """
    spans = windows(text)
    if not spans:
        return
    shapes = windows_ascii(text).translate(table)
    index, base = 0, 1  # the window being read, and where it starts in ``joined``
    lo, hi = spans[0]
    for found in pattern.finditer(shapes):
        at = found.start() + offset
        while at >= base + hi - lo:
            base += hi - lo + 1
            index += 1
            lo, hi = spans[index]
        yield lo + at - base, hi


def _runs_on(text: str, end: int) -> bool:
    return end < len(text) and text[end].isascii() and text[end].isalnum()


_CARD_WORDS = Words(_CARD_CONTEXT)


# Each digit as the digit sum of its double, for the Luhn sum over ASCII bytes.
_DOUBLED = bytes.maketrans(b"0123456789", b"0246813579")


def _luhn_checksum(digits: str) -> int:
    """``stdnum.luhn.checksum(digits)`` for a string of ASCII digits.

    Summed over the digits' bytes, every other one read through :data:`_DOUBLED`, in
    0.6 µs against 4.4 for stdnum's walk through a tuple of digit values. Both sums add
    one term per position, so agreeing on every single-digit number of each length
    means agreeing on all (the tests check that, and random numbers besides).
    """
    data = digits.encode()
    return (sum(data[-1::-2]) + sum(data[-2::-2].translate(_DOUBLED)) - 48 * len(data)) % 10


# The compiled sum where the module is built (0.1 us; tests compare it with the above).
_luhn = _compiled.native("luhn") or _luhn_checksum


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
            # The Luhn sum first: it turns away nine in ten stretches, in less time than
            # either regular expression.
            if _luhn(digits) != 0 or text[start] in "+(":
                continue
            if _CARD_PRINTED.fullmatch(text, start, end) is None:
                continue
            if _CARD_PREFIX.match(digits) is None or luhn.checksum(digits) != 0:
                continue  # stdnum's own sum decides for the few that get this far
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
    # long, so the digit windows hold every one (see ``_runs.MARGIN``). Each start
    # after the last number found is tried: a rejected "PL PL526..." must not hide the
    # number that starts inside it.
    if not _account_shapes(text, windows(text)) & _VAT_START:
        return
    resume = 0
    for start, hi in _shapes(text, _VAT_SHAPES, _VAT_SHAPE, 0):
        if start < resume or text[start : start + 2] not in _VAT_COUNTRIES:
            continue
        match = _VAT.match(text, start, hi)
        found = None if match is None else _vat_at(text, match)
        if found is not None:
            resume = found.end
            yield found


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
        if _is_vat(compact):
            return Finding(
                "vat_number", match.start(), match.start() + end, _VAT_CONFIDENCE, validated=True
            )
    return None


_BIC_SEARCHED = tuple(dict.fromkeys(_BIC_PARTS))


def _bic_words(text: str) -> list[list[int]]:
    """``occurrences(text, _BIC_WORDS)``, found from the parts in :data:`_BIC_PARTS`."""
    hits = occurrences(text, _BIC_SEARCHED)
    if not any(hits):  # nearly every text: no part at all, nothing to compare
        return [[] for _ in _BIC_WORDS]
    found = dict(zip(_BIC_SEARCHED, hits, strict=True))
    every: list[list[int]] = []
    for word, part in zip(_BIC_WORDS, _BIC_PARTS, strict=True):
        offset = word.index(part)
        every.append(
            [
                at - offset
                for at in found[part]
                if offset == 0 or (at >= offset and text.startswith(word, at - offset))
            ]
        )
    return every


@functools.cache
def _vat_module(code: str) -> NumberValidationModule:
    """stdnum's VAT module for a prefix of :data:`_VAT_COUNTRIES`, as ``stdnum.eu.vat`` picks it.

    ``stdnum.eu.vat.validate`` cleans the number and looks its module up before calling
    the module's ``validate``, on every call: half its cost. The candidates are already
    clean (capitals and digits), so the module is called directly; the tests check that
    it answers as ``stdnum.eu.vat`` does for every prefix.
    """
    module = get_cc_module(_VAT_STATES.get(code, code.lower()), "vat")
    if module is None:
        raise LookupError(code)
    return module


# VAT prefixes that are not the ISO code of the state stdnum files the number under.
_VAT_STATES = {"EL": "gr", "XI": "gb"}


def detect_bic(text: str) -> Iterator[Finding]:
    """Yield a ``bic`` finding for each well-formed BIC named as one in *text*.

    Args:
        text: the text to search; spans index it directly.

    Yields:
        Findings in order of start.
    """
    # Only reported after its naming word, so the words are searched for (a fast literal
    # search) and the code only in the short stretch after each.
    every = _bic_words(text)
    if not any(every):
        return
    for word, starts in zip(_BIC_WORDS, every, strict=True):
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


follow("python-stdnum", _use)
