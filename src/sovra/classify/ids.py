"""National identity and tax numbers of people, one kind per country and scheme.

Every kind below is reported only when its check passes: ``python-stdnum``'s validator
where stdnum has one (check digits, encoded birth dates, region codes), the ICAO 9303
or national check digit written out here where it does not. A candidate whose check
fails is never reported as that identifier. The few schemes that carry no check at all
(the Vietnamese citizen ID, the British National Insurance number, the Polish passport)
are reported only next to a word that names them, and with ``validated`` false.

Kinds (country, validation):
    ``pl_pesel`` (PL, ``stdnum.pl.pesel``: check digit and birth date),
    ``pl_nip`` (PL, ``stdnum.pl.nip``; bare only in its printed 3-3-2-2 or 3-2-2-3
    form, otherwise next to "NIP"), ``pl_regon`` (PL, ``stdnum.pl.regon``, named only),
    ``pl_id_card`` (PL, the ID card's check digit), ``pl_passport`` (PL, shape, named
    only), ``vn_citizen_id`` (VN, CCCD 12 digits with a province code or CMND 9 digits,
    named only), ``vn_tax_code`` (VN, ``stdnum.vn.mst``, named only),
    ``cn_resident_id`` (CN, ``stdnum.cn.ric``: region, birth date, ISO 7064 check),
    ``de_tax_id`` (DE, ``stdnum.de.idnr``), ``de_id_card`` (DE, ICAO check digit),
    ``fr_nir`` (FR, ``stdnum.fr.nir``: control key), ``es_dni`` and ``es_nie`` (ES,
    ``stdnum.es.dni`` / ``stdnum.es.nie``: control letter), ``us_ssn`` and ``us_itin``
    (US, ``stdnum.us.ssn`` / ``stdnum.us.itin``: reserved ranges; bare only in the
    printed ``123-45-6789`` form, otherwise named), ``gb_nino`` (GB, HMRC's prefix
    and suffix rules, named or printed in its own shape).

A word that names the number within :data:`CONTEXT_WINDOW` characters before it
("PESEL", "số CCCD", "Steuer-ID", "NIR") raises the confidence.
"""

from __future__ import annotations

import datetime
import functools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources

from stdnum import numdb
from stdnum.cn import ric
from stdnum.de import idnr
from stdnum.es import dni, nie
from stdnum.fr import nir
from stdnum.iso7064 import mod_11_10
from stdnum.pl import nip, pesel, regon
from stdnum.us import itin, ssn
from stdnum.vn import mst

from sovra.classify._runs import segments, spans, windows
from sovra.classify._stdnum import passes
from sovra.classify._words import WordLists
from sovra.model import Finding

__all__ = ["CONTEXT", "CONTEXT_WINDOW", "KINDS", "detect", "detect_pesel"]

# How many characters before a number are searched for a word that names it.
CONTEXT_WINDOW = 40

# Lower-case words that, written just before a number, say which identifier it is.
CONTEXT: dict[str, tuple[str, ...]] = {
    "pl_pesel": ("pesel", "numer ewidencyjny", "nr ewid"),
    "pl_nip": ("nip",),
    "pl_regon": ("regon",),
    "pl_id_card": ("dowód", "dowodu", "dowod", "id card", "identity card"),
    "pl_passport": ("paszport", "passport"),
    "vn_citizen_id": (
        "cccd",
        "cmnd",
        "căn cước",
        "chứng minh",
        "citizen id",
        "định danh",
    ),
    "vn_tax_code": ("mst", "mã số thuế", "mã số doanh nghiệp", "tax code"),
    "cn_resident_id": ("身份证", "公民身份号码", "身份号码", "resident id", "id number"),
    "de_tax_id": (
        "steuer-id",
        "steuerid",
        "steuer-identifikationsnummer",
        "steueridentifikationsnummer",
        "identifikationsnummer",
        "idnr",
        "tax id",
    ),
    "de_id_card": ("personalausweis", "ausweisnummer", "ausweis-nr", "ausweis", "id card"),
    "fr_nir": (
        "nir",
        "sécurité sociale",
        "securite sociale",
        "n° ss",
        "numéro de sécu",
        "insee",
    ),
    "es_dni": ("dni", "nif", "documento nacional"),
    "es_nie": ("nie", "extranjero"),
    "us_ssn": ("ssn", "social security", "soc. sec"),
    "us_itin": ("itin", "taxpayer identification"),
    "gb_nino": ("national insurance", "nino", "ni number", "ni no"),
}

KINDS = frozenset(CONTEXT)

_BARE = 0.8
_SHORTEST = 9  # digits of the shortest numeric identifier here
_NAMED = 0.97
_UNCHECKED_NAMED = 0.85  # no check digit: the naming word is the evidence


# The check digits first, each with stdnum's own function called on the compact digits
# (no cleaning, nothing to catch): most digit runs in a text are not identifiers, and
# fail here. The few that pass are then validated whole by stdnum (birth dates, region
# codes, reserved ranges), which stays the authority.
def _pesel_check(d: str) -> bool:
    return pesel.calc_check_digit(d[:-1]) == d[-1]


def _nip_check(d: str) -> bool:
    return nip.checksum(d) == 0


def _regon_check(d: str) -> bool:
    return regon.calc_check_digit(d[:-1]) == d[-1]


def _idnr_check(d: str) -> bool:
    return mod_11_10.checksum(d) == 1


def _mst_check(d: str) -> bool:
    return mst.calc_check_digit(d) == d[9]


def _ric_check(d: str) -> bool:
    return ric.calc_check_digit(d) == d[-1]


def _nir_check(d: str) -> bool:
    return nir.calc_check_digits(d) == d[13:]


def _always(_: str) -> bool:
    return True


@functools.cache
def _cn_counties() -> dict[str, str] | None:
    """Region code -> the county entry of stdnum's ``cn/loc`` database, read once.

    ``stdnum.cn.ric`` looks the region up with a linear walk of that database on every
    call, which costs more than the rest of its checks together. The database is two
    levels, provinces (two digits) and their counties (four more); None when it is laid
    out otherwise, and stdnum is then asked for every number.

    stdnum's own reader takes 35 ms over the file's 6,900 lines, paid by every ``sovra
    scan`` before its workers start; :func:`_read_counties` reads the same file in 8 ms,
    and leaves any layout it does not expect to stdnum's reader.
    """
    text = resources.files("stdnum").joinpath("cn/loc.dat").read_bytes().decode("utf-8")
    counties = _read_counties(text)
    return counties if counties is not None else _counties_in(numdb.get("cn/loc"))


# The two kinds of line of cn/loc.dat: a province, and one of its counties, indented.
_LOC_PROVINCE = re.compile(r'[0-9]{2} [0-9A-Za-z_-]+="[^"]*"')
_LOC_COUNTY = re.compile(r'  ([0-9]{4}) county="([^"]*)"')


def _read_counties(text: str) -> dict[str, str] | None:
    """What :func:`_counties_in` gives for the database *text*, read a line at a time.

    Lines are split, and comments and blank lines skipped, as ``stdnum.numdb`` does; a
    line of one of the two kinds above is exactly what numdb makes of it (a test
    compares the two readings). None for anything else: another layout, a county before
    any province, a code twice.
    """
    counties: dict[str, str] = {}
    province = None
    for line in text.splitlines():
        county = _LOC_COUNTY.fullmatch(line)
        if county is not None and province is not None:
            code, name = county.groups()
            code = province + code
            if code in counties:
                return None
            counties[code] = name
        elif _LOC_PROVINCE.fullmatch(line):
            province = line[:2]
        elif line[:1] != "#" and line.strip():  # numdb skips comments and blank lines
            return None
    return counties


def _counties_in(database: numdb.NumDB) -> dict[str, str] | None:
    """The table of :func:`_cn_counties` from stdnum's reading of the database."""
    counties: dict[str, str] = {}
    for length, low, high, _, children in database.prefixes:
        if length != 2 or low != high:
            return None
        for county_length, county_low, county_high, props, grandchildren in children:
            if county_length != 4 or county_low != county_high or grandchildren:
                return None
            if "county" not in props or low + county_low in counties:
                return None
            counties[low + county_low] = props["county"]
    return counties


def _ric_valid(number: str) -> bool:
    """``stdnum.cn.ric.is_valid`` for a compact number, the region read from a table.

    The same steps as stdnum's ``validate`` and ``get_birth_place``: length, digits,
    check digit, birth date, then a county of the region that existed in the birth
    year (a test compares the two over every region code).
    """
    counties = _cn_counties()
    if counties is None:
        return passes(ric.is_valid, number)
    number = number.upper()  # as stdnum's compact(): a final "x" is an "X"
    if len(number) != 18 or not _ascii_digits(number[:-1]):
        return False
    if ric.calc_check_digit(number) != number[-1]:
        return False
    try:
        year = datetime.date(int(number[6:10]), int(number[10:12]), int(number[12:14])).year
    except ValueError:
        return False
    entry = counties.get(number[:6])
    if entry is None:
        return False
    try:
        for county in entry.split(","):
            if not county.startswith("["):
                return True
            years, _ = county[1:].split("]")
            start, end = years.split("-")
            if (not start or year >= int(start)) and (not end or year <= int(end)):
                return True
    except ValueError:  # an entry stdnum could not read either
        return False
    return False


def _ascii_digits(number: str) -> bool:
    return number.isascii() and number.isdigit()


def _valid(
    validator: Callable[[str], object], quick: Callable[[str], bool] = _always
) -> Callable[[str], bool]:
    def check(number: str) -> bool:
        return quick(number) and passes(validator, number)

    return check


def _cccd(digits: str) -> bool:
    # Province code 001..096, then a digit for century and sex; no check digit exists.
    return len(digits) == 9 or (1 <= int(digits[:3]) <= 96)


@dataclass(frozen=True, slots=True)
class _Numeric:
    kind: str
    lengths: frozenset[int]
    check: Callable[[str], bool]
    bare: bool  # reported without a naming word (only when the check is a checksum)
    validated: bool
    printed: re.Pattern[str] | None = None  # a printed shape that counts as naming it
    compact: bool = False  # only ever written as one unbroken run of digits


# Order matters where one number passes two checks: the earlier reading wins unless a
# naming word points to the later one.
_NUMERIC: tuple[_Numeric, ...] = (
    _Numeric(
        "pl_pesel", frozenset({11}), _valid(pesel.is_valid, _pesel_check), True, True, compact=True
    ),
    _Numeric("de_tax_id", frozenset({11}), _valid(idnr.is_valid, _idnr_check), True, True),
    _Numeric(
        "pl_nip",
        frozenset({10}),
        _valid(nip.is_valid, _nip_check),
        False,
        True,
        re.compile(r"[0-9]{3}-[0-9]{3}-[0-9]{2}-[0-9]{2}|[0-9]{3}-[0-9]{2}-[0-9]{2}-[0-9]{3}"),
    ),
    _Numeric("pl_regon", frozenset({9, 14}), _valid(regon.is_valid, _regon_check), False, True),
    _Numeric("vn_tax_code", frozenset({10, 13}), _valid(mst.is_valid, _mst_check), False, True),
    _Numeric("vn_citizen_id", frozenset({9, 12}), _cccd, False, False),
    _Numeric(
        "cn_resident_id",
        frozenset({18}),
        _valid(_ric_valid, _ric_check),
        True,
        True,
        compact=True,
    ),
    _Numeric("fr_nir", frozenset({15}), _valid(nir.is_valid, _nir_check), True, True),
    _Numeric(
        "us_itin",
        frozenset({9}),
        _valid(itin.is_valid),
        False,
        True,
        re.compile(r"9[0-9]{2}-[0-9]{2}-[0-9]{4}"),
    ),
    _Numeric(
        "us_ssn",
        frozenset({9}),
        _valid(ssn.is_valid),
        False,
        True,
        re.compile(r"[0-8][0-9]{2}-[0-9]{2}-[0-9]{4}"),
    ),
)

# Identifiers that mix letters and digits, each in its printed shapes, in one pattern so
# the text is walked once; group names are the kinds. The pattern opens with a plain
# character class so the engine skips fast to an upper-case letter or a digit, then
# drops the common case of a capitalised word (a lower-case letter next), and only then
# checks the word boundary (a look-behind first would run at every position); each
# alternative re-reads that first character through a look-behind.
_ALNUM = re.compile(
    r"[0-9A-Z](?=[0-9A-Z -])(?<![0-9A-Za-z].)(?:"
    r"(?<=[0-9])(?P<cn_resident_id>[0-9]{16}[Xx])"
    r"|(?<=[0-9])(?P<es_dni>[0-9]{7}[- ]?[A-Z])"
    r"|(?<=[XYZ])(?P<es_nie>[- ]?[0-9]{7}[- ]?[A-Z])"
    r"|(?<=[A-CEGHJ-PR-TW-Z])(?P<gb_nino>[A-CEGHJ-NPR-TW-Z] ?[0-9]{2} ?[0-9]{2} ?[0-9]{2} ?[A-D])"
    r"|(?<=[A-Z])(?P<pl_id_card>[A-Z]{2} ?[0-9]{6})"
    r"|(?<=[A-Z])(?P<pl_passport>[A-Z] ?[0-9]{7})"
    r"|(?<=[CFGHJKLMNPRTVWXYZ])(?P<de_id_card>[CFGHJKLMNPRTVWXYZ0-9]{8}[0-9])"
    r")(?![0-9A-Za-z])"
)
_GB_NINO_BAD_PREFIXES = frozenset({"BG", "GB", "NK", "KN", "TN", "NT", "ZZ"})
_ICAO_WEIGHTS = (7, 3, 1)
_PL_ID_WEIGHTS = (7, 3, 1, 0, 7, 3, 1, 7, 3)


def _char_value(char: str) -> int:
    return int(char, 36)  # 0-9, then A=10 ... Z=35, as ICAO 9303 and the Polish card


def _icao_check(body: str, check: str) -> bool:
    total = sum(_char_value(c) * _ICAO_WEIGHTS[i % 3] for i, c in enumerate(body))
    return total % 10 == int(check)


def _pl_id_card(compact: str) -> bool:
    # Three letters, then the check digit, then five digits; the check digit's weight 9
    # is left out of the sum, which must then equal it modulo 10.
    total = sum(_char_value(c) * w for c, w in zip(compact, _PL_ID_WEIGHTS, strict=True))
    return total % 10 == int(compact[3])


def _alnum_check(kind: str, compact: str) -> tuple[bool, bool]:
    """(passes, validated) for a letter-and-digit candidate of *kind*."""
    if kind == "cn_resident_id":
        return _ric_valid(compact), True
    if kind == "es_dni":
        return passes(dni.is_valid, compact), True
    if kind == "es_nie":
        return passes(nie.is_valid, compact), True
    if kind == "pl_id_card":
        return _pl_id_card(compact), True
    if kind == "de_id_card":
        return _icao_check(compact[:9], compact[9]), True
    if kind == "gb_nino":
        return compact[:2] not in _GB_NINO_BAD_PREFIXES, False
    return True, False  # pl_passport: a shape only


_CONTEXT_WORDS = WordLists(CONTEXT)


def _kinds_named(text: str, start: int, seen: dict[int, frozenset[str]]) -> frozenset[str]:
    """The kinds whose naming words stand within reach before *start*.

    Every list is searched in one pass, once per start within one call (*seen*): the
    stretches of one digit segment, and the schemes that read them, share a start.
    """
    kinds = seen.get(start)
    if kinds is None:
        before = text[max(0, start - CONTEXT_WINDOW) : start].lower()
        kinds = seen[start] = _CONTEXT_WORDS.names_in(before)
    return kinds


_LENGTHS = frozenset(n for spec in _NUMERIC for n in spec.lengths)
_BY_LENGTH = {n: tuple(spec for spec in _NUMERIC if n in spec.lengths) for n in _LENGTHS}


def _numeric(text: str, seen: dict[int, frozenset[str]]) -> Iterator[Finding]:
    for segment in segments(text):
        if segment.end - segment.lead < _SHORTEST:
            continue
        for start, end, digits in spans(text, segment, _LENGTHS):
            if text[start] in "+(":
                continue  # a phone number's country code or area code
            found = _read_number(text, start, end, digits, seen)
            if found is not None:
                yield found


def _read_number(
    text: str, start: int, end: int, digits: str, seen: dict[int, frozenset[str]]
) -> Finding | None:
    chosen: Finding | None = None
    kinds: frozenset[str] | None = None  # the kinds named before the number, if needed
    for spec in _BY_LENGTH[len(digits)]:
        if spec.compact and end - start != len(digits):
            continue
        # Cheapest first: a scheme that needs its word or its printed shape is skipped
        # before any check digit is computed.
        printed = spec.printed is not None and spec.printed.fullmatch(text, start, end)
        if kinds is None:
            kinds = _kinds_named(text, start, seen)
        named = spec.kind in kinds
        if not (named or printed or spec.bare) or not spec.check(digits):
            continue
        confidence = (_NAMED if named else _BARE) if spec.validated else _UNCHECKED_NAMED
        finding = Finding(spec.kind, start, end, confidence, validated=spec.validated)
        if named:
            return finding
        if chosen is None:
            chosen = finding
    return chosen


def _alnum(text: str, seen: dict[int, frozenset[str]]) -> Iterator[Finding]:
    # Every shape holds a digit and is at most 20 characters long, so the digit windows
    # hold every match (see ``_runs.MARGIN``).
    for lo, hi in windows(text):
        yield from _alnum_in(text, lo, hi, seen)


def _alnum_in(text: str, lo: int, hi: int, seen: dict[int, frozenset[str]]) -> Iterator[Finding]:
    for match in _ALNUM.finditer(text, lo, hi):
        kind = str(match.lastgroup)
        compact = match.group().replace(" ", "").replace("-", "").upper()
        passes, validated = _alnum_check(kind, compact)
        if not passes:
            continue
        named = kind in _kinds_named(text, match.start(), seen)
        if not validated and not named and kind != "gb_nino":
            continue
        if kind == "de_id_card" and not named and compact[:9].isalpha():
            continue  # ten capitals ending in a digit: a word or a code, unless named
        if validated:
            confidence = _NAMED if named else _BARE
        else:
            confidence = _UNCHECKED_NAMED if named else _BARE - 0.1
        yield Finding(kind, match.start(), match.end(), confidence, validated=validated)


def detect_pesel(text: str) -> Iterator[Finding]:
    """Yield a ``pl_pesel`` finding for each checksum- and date-valid PESEL in *text*.

    Args:
        text: the text to search, with ASCII digits (the scanner folds others first);
            spans index it directly.

    Yields:
        Findings in order of start.
    """
    for finding in _numeric(text, {}):
        if finding.kind == "pl_pesel":
            yield finding


def detect(text: str) -> Iterator[Finding]:
    """Yield every national-identity-number finding in *text*.

    Args:
        text: the text to search, with ASCII digits (the scanner folds others first);
            spans index it directly.

    Yields:
        Findings of kinds :data:`KINDS`; where two readings of one number overlap the
        scanner keeps one.
    """
    # Offsets and the kinds named before them, for this call only.
    seen: dict[int, frozenset[str]] = {}
    yield from _numeric(text, seen)
    yield from _alnum(text, seen)
