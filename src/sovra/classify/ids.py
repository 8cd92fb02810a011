"""National identity and tax numbers of people, one kind per country and scheme.

Every kind below is reported only when its check passes: ``python-stdnum``'s validator
where stdnum has one (check digits, encoded birth dates, region codes; its steps are
run here on the compact digits, and tests hold them to its ``is_valid``), the ICAO 9303
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

import dataclasses
import datetime
import functools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from operator import mul

from stdnum import numdb
from stdnum.cn import ric
from stdnum.es import dni, nie
from stdnum.fr import nir
from stdnum.iso7064 import mod_11_10
from stdnum.pl import nip, pesel, regon
from stdnum.vn import mst

from sovra.classify import _compiled
from sovra.classify._libraries import follow
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


# Each scheme's whole validation, on a candidate that is already compact: exactly the
# ASCII digits of one of the scheme's lengths, as every digit stretch here is. These are
# the steps of stdnum's ``validate`` for such a number, in the same order, without its
# generic ``compact``, which walks every character through ``stdnum.util.clean`` first
# and cost 3.2 ms of the 14.4 ms the detector took on the benchmark's mix. The check
# digits are first summed here (a few tenths of a microsecond, and most digit runs fail
# there), then computed by stdnum's own function for the few that pass, so the check
# digit of every reported identifier is stdnum's; the other steps (encoded dates,
# reserved ranges) are written out. Tests compare each with stdnum's ``is_valid`` over
# generated numbers, valid and not. Where ``_native.c`` is built, the scanner asks its
# ``id_checks`` instead (see :data:`_NATIVE_BITS`), which restates these functions, and
# tests hold it to them.
_ZERO = ord("0")


def _weighted(*weights: int) -> Callable[[str], int]:
    """The sum of each digit times its weight, over as many ASCII digits as weights.

    Read from the UTF-8 bytes in one ``map``, each a character code, the codes' share
    taken off once: 0.6 us for ten digits, against 2.5 for stdnum's ``int`` per digit.
    """
    offset = _ZERO * sum(weights)

    def total(digits: str) -> int:
        codes: int = sum(map(mul, weights, digits.encode()))
        return codes - offset

    return total


# PESEL's weights, with 1 for the check digit itself: stdnum's "check digit is
# (10 - sum) % 10" holds exactly when the sum with it added ends in 0.
_pesel_sum = _weighted(1, 3, 7, 9, 1, 3, 7, 9, 1, 3, 1)
_PESEL_CENTURY = (1900, 2000, 2100, 2200, 1800)  # by month // 20, as stdnum reads it


def _pesel_valid(d: str) -> bool:
    if _pesel_sum(d) % 10 or pesel.calc_check_digit(d[:10]) != d[10]:
        return False
    month = int(d[2:4])
    return _is_date(int(d[:2]) + _PESEL_CENTURY[month // 20], month % 20, int(d[4:6]))


def _is_date(year: int, month: int, day: int) -> bool:
    try:
        datetime.date(year, month, day)
    except ValueError:
        return False
    return True


# ISO 7064 Mod 11,10 as a table: each state is kept times 64, so that the state plus a
# digit's character code is the index of the next state (times 64). 0.4 us for eleven
# digits, against 1.8 for stdnum's loop.
def _mod_11_10_table() -> list[int]:
    table = [0] * 640
    for state in range(10):
        for digit in range(10):
            table[state * 64 + _ZERO + digit] = (((state or 10) * 2 % 11 + digit) % 10) * 64
    return table


_MOD_11_10_NEXT = _mod_11_10_table()


def _mod_11_10(d: str) -> int:
    """``stdnum.iso7064.mod_11_10.checksum`` of ASCII digits."""
    state = 5 * 64
    for code in d.encode():
        state = _MOD_11_10_NEXT[state + code]
    return state // 64


def _idnr_valid(d: str) -> bool:
    if d[0] == "0" or _mod_11_10(d) != 1 or mod_11_10.checksum(d) != 1:
        return False
    # In the first ten digits one digit, and only one, is there twice or three times:
    # nine different digits, or eight with one of them three times (not two pairs).
    head = d[:10]
    distinct = set(head)
    return len(distinct) == 9 or (len(distinct) == 8 and max(map(head.count, distinct)) == 3)


_nip_sum = _weighted(6, 5, 7, 2, 3, 4, 5, 6, 7, -1)


def _nip_valid(d: str) -> bool:
    return _nip_sum(d) % 11 == 0 and nip.checksum(d) == 0


_regon_sum_9 = _weighted(8, 9, 2, 3, 4, 5, 6, 7)
_regon_sum_14 = _weighted(2, 4, 8, 5, 0, 9, 7, 3, 6, 1, 2, 4, 8)


def _regon_valid(d: str) -> bool:
    # A 14-digit REGON holds a 9-digit one, each with its own check digit.
    if len(d) == 14 and (
        _regon_sum_14(d) % 11 % 10 != int(d[13]) or regon.calc_check_digit(d[:13]) != d[13]
    ):
        return False
    return _regon_sum_9(d) % 11 % 10 == int(d[8]) and regon.calc_check_digit(d[:8]) == d[8]


_mst_sum = _weighted(31, 29, 23, 19, 17, 13, 7, 5, 3)


def _mst_valid(d: str) -> bool:
    if d[2:9] == "0000000" or d[10:] == "000":  # no serial, no branch
        return False
    # A remainder of 0 asks for "10", which no digit is.
    return 10 - _mst_sum(d) % 11 == int(d[9]) and mst.calc_check_digit(d) == d[9]


def _nir_valid(d: str) -> bool:
    return nir.calc_check_digits(d) == d[13:]  # all digits: no Corsican department


# ``stdnum.us.itin``: area 9xx, and one of the groups the IRS issues.
_ITIN_GROUPS = frozenset(str(group) for group in range(70, 100) if group not in (89, 93))


def _itin_valid(d: str) -> bool:
    return d[0] == "9" and d[3:5] in _ITIN_GROUPS


# ``stdnum.us.ssn``: numbers published in advertising and never issued.
_SSN_BLOCKED = frozenset({"078-05-1120", "457-55-5462", "219-09-9999"})


def _ssn_valid(d: str) -> bool:
    area, group, serial = d[:3], d[3:5], d[5:]
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return False
    return f"{area}-{group}-{serial}" not in _SSN_BLOCKED


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


def _cccd(digits: str) -> bool:
    # Province code 001..096, then a digit for century and sex; no check digit exists.
    return len(digits) == 9 or (1 <= int(digits[:3]) <= 96)


@dataclass(frozen=True, slots=True)
class _Numeric:
    kind: str
    lengths: frozenset[int]
    check: Callable[[str], bool]  # whole validation of the digits, at one of the lengths
    bare: bool  # reported without a naming word (only when the check is a checksum)
    validated: bool
    printed: re.Pattern[str] | None = None  # a printed shape that counts as naming it
    compact: bool = False  # only ever written as one unbroken run of digits
    bit: int = 0  # its bit in the answer of the compiled ``id_checks``; 0: call ``check``


# Order matters where one number passes two checks: the earlier reading wins unless a
# naming word points to the later one.
_NUMERIC: tuple[_Numeric, ...] = (
    _Numeric("pl_pesel", frozenset({11}), _pesel_valid, True, True, compact=True),
    _Numeric("de_tax_id", frozenset({11}), _idnr_valid, True, True),
    _Numeric(
        "pl_nip",
        frozenset({10}),
        _nip_valid,
        False,
        True,
        re.compile(r"[0-9]{3}-[0-9]{3}-[0-9]{2}-[0-9]{2}|[0-9]{3}-[0-9]{2}-[0-9]{2}-[0-9]{3}"),
    ),
    _Numeric("pl_regon", frozenset({9, 14}), _regon_valid, False, True),
    _Numeric("vn_tax_code", frozenset({10, 13}), _mst_valid, False, True),
    _Numeric("vn_citizen_id", frozenset({9, 12}), _cccd, False, False),
    _Numeric("cn_resident_id", frozenset({18}), _ric_valid, True, True, compact=True),
    _Numeric("fr_nir", frozenset({15}), _nir_valid, True, True),
    _Numeric(
        "us_itin",
        frozenset({9}),
        _itin_valid,
        False,
        True,
        re.compile(r"9[0-9]{2}-[0-9]{2}-[0-9]{4}"),
    ),
    _Numeric(
        "us_ssn",
        frozenset({9}),
        _ssn_valid,
        False,
        True,
        re.compile(r"[0-8][0-9]{2}-[0-9]{2}-[0-9]{4}"),
    ),
)

# Each scheme's bit in what the compiled ``id_checks`` (``_native.c``) answers: it runs
# the restated checks above of every scheme of a length in one call, about 0.2 us where
# the four of a nine-digit stretch cost 2.5 in Python (tests compare the two).
_NATIVE_BITS = {
    "pl_pesel": 1,
    "de_tax_id": 2,
    "pl_nip": 4,
    "pl_regon": 8,
    "vn_tax_code": 16,
    "vn_citizen_id": 32,
    "fr_nir": 64,
    "us_itin": 128,
    "us_ssn": 256,
}

# Identifiers that mix letters and digits, each in its printed shapes, in one pattern;
# group names are the kinds. It is searched in two halves (below), and stays the
# definition that tests hold the halves to. It opens with a plain character class so
# the engine skips fast to an upper-case letter or a digit, then drops the common case
# of a capitalised word (a lower-case letter next), and only then checks the word
# boundary (a look-behind first would run at every position); each alternative
# re-reads that first character through a look-behind.
_OPEN = r"(?=[0-9A-Z -])(?<![0-9A-Za-z].)(?:"
_DIGIT_FIRST = (
    r"(?<=[0-9])(?P<cn_resident_id>[0-9]{16}[Xx])"
    r"|(?<=[0-9])(?P<es_dni>[0-9]{7}[- ]?[A-Z])"
)
_LETTER_FIRST = (
    r"(?<=[XYZ])(?P<es_nie>[- ]?[0-9]{7}[- ]?[A-Z])"
    r"|(?<=[A-CEGHJ-PR-TW-Z])(?P<gb_nino>[A-CEGHJ-NPR-TW-Z] ?[0-9]{2} ?[0-9]{2} ?[0-9]{2} ?[A-D])"
    r"|(?<=[A-Z])(?P<pl_id_card>[A-Z]{2} ?[0-9]{6})"
    r"|(?<=[A-Z])(?P<pl_passport>[A-Z] ?[0-9]{7})"
    r"|(?<=[CFGHJKLMNPRTVWXYZ])(?P<de_id_card>[CFGHJKLMNPRTVWXYZ0-9]{8}[0-9])"
)
_CLOSE = r")(?![0-9A-Za-z])"
_ALNUM = re.compile(r"[0-9A-Z]" + _OPEN + _DIGIT_FIRST + "|" + _LETTER_FIRST + _CLOSE)

# The same pattern in its two halves, searched apart (see :func:`_alnum_matches`): a
# shape that opens with a digit opens a group of exactly 8 or 17 digits, which the digit
# segments already list, so only the capitals of a window are tried as starts.
_ALNUM_DIGIT = re.compile(r"[0-9]" + _OPEN + _DIGIT_FIRST + _CLOSE)
_ALNUM_LETTER = re.compile(r"[A-Z]" + _OPEN + _LETTER_FIRST + _CLOSE)
_DIGIT_FIRST_LENGTHS = (8, 17)
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


# Each letter-and-digit kind: its check of the compact candidate (separators out), and
# whether that check validates it. Spanish numbers are checked with stdnum's own
# ``calc_check_digit`` on the compact form the pattern leaves (eight digits, or X, Y or Z
# and seven, then a capital), the rest of stdnum's ``validate`` being what the pattern
# already holds; ``is_valid`` would first clean it again, at 7 us a call.
_ALNUM_CHECKS: dict[str, tuple[Callable[[str], bool], bool]] = {
    "cn_resident_id": (_ric_valid, True),
    "es_dni": (lambda c: dni.calc_check_digit(c[:8]) == c[8], True),
    "es_nie": (lambda c: nie.calc_check_digit(c[:8]) == c[8], True),
    "pl_id_card": (_pl_id_card, True),
    "de_id_card": (lambda c: _icao_check(c[:9], c[9]), True),
    "gb_nino": (lambda c: c[:2] not in _GB_NINO_BAD_PREFIXES, False),
    "pl_passport": (lambda c: True, False),  # a shape only
}


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


def _by_length(numeric: tuple[_Numeric, ...]) -> dict[int, tuple[_Numeric, ...]]:
    return {n: tuple(spec for spec in numeric if n in spec.lengths) for n in _LENGTHS}


def _no_checks(digits: str) -> int:
    return 0


# Where the module is built, the schemes it checks are read from its one answer.
_id_checks = _compiled.native("id_checks") or _no_checks
_RESTATED_BY_LENGTH = _by_length(
    _NUMERIC
    if _id_checks is _no_checks
    else tuple(dataclasses.replace(s, bit=_NATIVE_BITS.get(s.kind, 0)) for s in _NUMERIC)
)
_BY_LENGTH = dict(_RESTATED_BY_LENGTH)
_RESTATED_ALNUM_CHECKS = dict(_ALNUM_CHECKS)


def _checks_by_stdnum() -> dict[str, Callable[[str], bool]]:
    """Each kind whose check restates stdnum's steps, checked by stdnum's ``is_valid``."""
    from stdnum.de import idnr
    from stdnum.us import itin, ssn

    modules = {
        "pl_pesel": pesel,
        "de_tax_id": idnr,
        "pl_nip": nip,
        "pl_regon": regon,
        "vn_tax_code": mst,
        "cn_resident_id": ric,
        "fr_nir": nir,
        "us_itin": itin,
        "us_ssn": ssn,
        "es_dni": dni,
        "es_nie": nie,
    }
    return {kind: functools.partial(passes, module.is_valid) for kind, module in modules.items()}


def _use(restated: bool) -> None:
    """Check with the steps restated here, or with stdnum's own ``is_valid``."""
    # Filled at import, and again only when _libraries.check() is called.
    if restated:
        _BY_LENGTH.update(_RESTATED_BY_LENGTH)
        _ALNUM_CHECKS.update(_RESTATED_ALNUM_CHECKS)
        return
    stdnum = _checks_by_stdnum()  # every bit 0: each scheme's check is called
    _BY_LENGTH.update(
        _by_length(
            tuple(
                dataclasses.replace(s, check=stdnum.get(s.kind, s.check), bit=0) for s in _NUMERIC
            )
        )
    )
    _ALNUM_CHECKS.update(
        (kind, (stdnum.get(kind, check), validated))
        for kind, (check, validated) in _RESTATED_ALNUM_CHECKS.items()
    )


follow("python-stdnum", _use)


def _numeric(text: str, seen: dict[int, frozenset[str]]) -> Iterator[Finding]:
    for segment in segments(text):
        digits = segment.digits
        if len(digits) < _SHORTEST:
            continue
        # Any stretch but the whole segment leaves out its first or its last group; when
        # that leaves too few digits, the whole segment is the only stretch ``spans``
        # could give, and it is read without the call (585 of the mix's 790 segments
        # long enough, every single group among them: 0.15 ms).
        first, last = segment.groups[0], segment.groups[-1]
        if len(digits) - min(first.end - first.start, last.end - last.start) < _SHORTEST:
            if len(digits) in _BY_LENGTH and text[segment.lead] not in "+(":
                found = _read_number(text, segment.lead, segment.end, digits, seen)
                if found is not None:
                    yield found
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
    passed = _id_checks(digits)
    for spec in _BY_LENGTH[len(digits)]:
        if spec.compact and end - start != len(digits):
            continue
        # The check first: a few arithmetic steps on the digits, which most digit runs
        # fail for every scheme, so the naming words are read for few of them (450 of
        # the mix's 1,100 starts, 0.7 ms less).
        if not (passed & spec.bit if spec.bit else spec.check(digits)):
            continue
        named = spec.kind in _kinds_named(text, start, seen)
        if not (
            named
            or spec.bare
            or (spec.printed is not None and spec.printed.fullmatch(text, start, end))
        ):
            continue
        confidence = (_NAMED if named else _BARE) if spec.validated else _UNCHECKED_NAMED
        finding = Finding(spec.kind, start, end, confidence, validated=spec.validated)
        if named:
            return finding
        if chosen is None:
            chosen = finding
    return chosen


def _alnum(text: str, seen: dict[int, frozenset[str]]) -> Iterator[Finding]:
    for match in _alnum_matches(text):
        kind = str(match.lastgroup)
        compact = match.group().replace(" ", "").replace("-", "")
        check, validated = _ALNUM_CHECKS[kind]
        if not check(compact):
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


def _any_letter_shape(text: str, spans: tuple[tuple[int, int], ...]) -> int:
    return 1


# Whether a letter-first shape may start in a text: one compiled walk over its digit
# windows, which spares most texts the search of them (tests check it never misses one).
_letter_shapes = _compiled.native("letter_shapes") or _any_letter_shape


def _alnum_matches(text: str) -> Iterator[re.Match[str]]:
    """What ``_ALNUM.finditer`` finds in each digit window, in order.

    Every shape holds a digit and is at most 20 characters long, so the digit windows
    hold every match (see ``_runs.MARGIN``). In a window the pattern is tried at every
    digit and capital, 28,000 starts on the mix, most of them digits inside a number.
    A shape that opens with a digit opens a digit group (a digit or a letter before it
    fails the pattern) of 8 or 17 digits, and the digit segments hold every group not
    glued to a letter or a digit; so the digit half is tried at those few group starts
    only, the letter half at the 7,700 capitals, and the two are merged as one walk
    would take them: a match starting inside one already taken is passed over, and the
    letter search starts again after a digit match it overlapped. 2.0 ms instead of 3.1
    on the mix.
    """
    starts = [
        group.start
        for segment in segments(text)
        if len(segment.digits) >= _DIGIT_FIRST_LENGTHS[0]
        for group in segment.groups
        if group.end - group.start in _DIGIT_FIRST_LENGTHS
    ]
    if not starts and not _letter_shapes(text, windows(text)):
        return  # most texts: no start for either half
    at = 0
    for lo, hi in windows(text):
        digit_first = []
        while at < len(starts) and starts[at] < hi:
            if starts[at] >= lo:
                match = _ALNUM_DIGIT.match(text, starts[at], hi)
                if match is not None:
                    digit_first.append(match)
            at += 1
        letters = _ALNUM_LETTER.finditer(text, lo, hi)
        if not digit_first:
            yield from letters
            continue
        taken = lo  # where the walk has reached: the end of the last match taken
        letter = next(letters, None)
        for digit in digit_first:
            while letter is not None and letter.start() < digit.start():
                yield letter
                taken = letter.end()
                letter = next(letters, None)
            if digit.start() < taken:
                continue
            yield digit
            taken = digit.end()
            if letter is not None and letter.start() < taken:
                letters = _ALNUM_LETTER.finditer(text, taken, hi)
                letter = next(letters, None)
        while letter is not None:
            yield letter
            letter = next(letters, None)


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
