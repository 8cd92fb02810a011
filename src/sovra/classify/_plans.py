"""Numbering plans from phonenumbers' metadata, read for printed digit runs.

``phonenumbers.parse`` accepts whatever a person may type (RFC 3966 URIs, extensions,
vanity letters, full-width digits) and pays for that on every call: about 27 µs a
number, and on text dense with numbers two thirds of the phone detector's time. The runs
the scanner asks about are narrower: ASCII digits, the separators ``-./`` and space,
parentheses, and at most a leading ``+``. For those, :func:`parse` takes phonenumbers'
own steps (an international prefix and country code, or the region's country code, is
taken off; then the national prefix and carrier code, each under the same viability
tests) with each plan's patterns compiled once, in about a tenth of the time. Any other
input, and any plan whose metadata is laid out in a way these steps do not expect, goes
to phonenumbers itself.

:func:`possible`, :func:`valid` and :func:`valid_for_region` are phonenumbers'
``is_possible_number``, ``is_valid_number`` and ``is_valid_number_for_region`` for the
parsed ``(country code, national significant number)``. Tests compare all four with
phonenumbers over generated numbers of every region, printed in every way, mutated and
random, on the version recorded in ``_libraries.TESTED``; with any other version
installed, the four names are bound to phonenumbers' own functions instead.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import phonenumbers
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, PhoneMetadata, PhoneNumberDesc

from sovra.classify._libraries import follow

__all__ = ["parse", "possible", "valid", "valid_for_region"]

_NON_GEO = "001"  # phonenumbers' region for non-geographic codes (+800, +808, ...)
_MIN_NSN, _MAX_NSN = 2, 17  # the shortest and longest national significant numbers
_MAX_INPUT = 250  # phonenumbers' limit on what it parses
_MAX_CODE_DIGITS = 3
# What a printed run looks like here: opening parentheses, an optional plus, then digits
# joined by separators and parentheses, ending in a digit. phonenumbers drops what comes
# before the first digit or plus, and finds no extension, letters or second number in
# such a run; its viability test holds for three digits or more.
_RUN = re.compile(r"\(*(\+?[0-9](?:[-./ ()]*[0-9])*)")
_NOT_DIGITS = str.maketrans("", "", "+-./ ()")

_UNMADE = re.compile("")  # typed_by_length holds no expression for this length yet

# Outcomes of the length test (phonenumbers' ValidationResult, for the general plan).
_POSSIBLE, _LOCAL_ONLY, _TOO_SHORT, _TOO_LONG, _INVALID_LENGTH = range(5)


@dataclass(frozen=True, slots=True)
class _Desc:
    """One number type's possible lengths (empty: those of the plan) and pattern."""

    lengths: frozenset[int]
    pattern: re.Pattern[str]

    def matches(self, nsn: str) -> bool:
        return (not self.lengths or len(nsn) in self.lengths) and (
            self.pattern.fullmatch(nsn) is not None
        )


def _desc(desc: PhoneNumberDesc | None) -> _Desc | None:
    """A type's description; None where phonenumbers finds no number of that type."""
    if desc is None or not desc.national_number_pattern:
        return None
    return _Desc(frozenset(desc.possible_length), re.compile(desc.national_number_pattern))


@dataclass(frozen=True, slots=True)
class _Plan:
    """What parsing and validation read from one region's (or code's) metadata."""

    country_code: int
    code: str  # the country code as printed
    idd: re.Pattern[str] | None  # the international call prefix dialled from here
    national_prefix: re.Pattern[str] | None  # with the carrier code, if any
    transform: str  # how a matched national prefix is rewritten; "" to drop it
    general: _Desc | None
    lengths: tuple[int, ...]  # the general possible lengths, in order
    local_lengths: frozenset[int]
    types: tuple[_Desc, ...]  # premium rate ... voicemail, in phonenumbers' order
    fixed_line: _Desc | None
    mobile: _Desc | None
    same_fixed_and_mobile: bool
    leading_digits: re.Pattern[str] | None
    # typed()'s one expression per length of number, made on first use (see there).
    typed_by_length: dict[int, re.Pattern[str] | None] = field(default_factory=dict, compare=False)

    def viable(self, number: str) -> bool:
        """Whether *number* fits the general pattern, whatever its length."""
        return self.general is not None and self.general.pattern.fullmatch(number) is not None

    def length(self, number: str) -> int:
        """phonenumbers' ``_test_number_length`` for any type."""
        n = len(number)
        if n in self.local_lengths:
            return _LOCAL_ONLY
        shortest = self.lengths[0]
        if n == shortest:
            return _POSSIBLE
        if n < shortest:
            return _TOO_SHORT
        if n > self.lengths[-1]:
            return _TOO_LONG
        return _POSSIBLE if n in self.lengths[1:] else _INVALID_LENGTH

    def typed(self, nsn: str) -> bool:
        """Whether phonenumbers gives *nsn* a number type other than UNKNOWN here.

        That is: the general description matches, and so does one type's (any match
        gives a type, so the order phonenumbers tries them in does not matter). For each
        length of number the descriptions whose lengths allow it are one expression,
        ``(?=general$)(?:type|type|...)``, so the answer is one match instead of up to
        eleven (tests compare it with the descriptions tried one by one).
        """
        n = len(nsn)
        pattern = self.typed_by_length.get(n, _UNMADE)
        if pattern is _UNMADE:
            pattern = self._typed_pattern(n)
            if n <= _MAX_NSN:  # the lengths of national numbers: a bounded table
                self.typed_by_length[n] = pattern
        return pattern is not None and pattern.fullmatch(nsn) is not None

    def _typed_pattern(self, n: int) -> re.Pattern[str] | None:
        """The expression :meth:`typed` matches numbers of *n* digits with; None when no
        number of that length is typed."""
        general = self.general
        if general is None or (general.lengths and n not in general.lengths):
            return None
        mobile = None if self.same_fixed_and_mobile else self.mobile
        fits = [
            desc.pattern.pattern
            for desc in (self.fixed_line, mobile, *self.types)
            if desc is not None and (not desc.lengths or n in desc.lengths)
        ]
        if not fits:
            return None
        types = "|".join(f"(?:{p})" for p in fits)
        return re.compile(f"(?=(?:{general.pattern.pattern})\\Z)(?:{types})")

    def strip_national_prefix(self, number: str) -> str:
        """*number* without its national prefix and carrier code, where that leaves a
        number fitting the plan or the number did not fit it before."""
        if not number or self.national_prefix is None:
            return number
        prefix = self.national_prefix.match(number)
        if prefix is None:
            return number
        if self.transform and prefix.groups()[-1] is not None:
            stripped = self.national_prefix.sub(self.transform, number, count=1)
        else:
            stripped = number[prefix.end() :]
        if self.viable(number) and not self.viable(stripped):
            return number
        return stripped


def _metadata(region: str, code: int) -> PhoneMetadata | None:
    if region == _NON_GEO:
        return PhoneMetadata.metadata_for_nongeo_region(code, None)
    return PhoneMetadata.metadata_for_region(region, None)


@functools.cache
def _plan(region: str, code: int = 0) -> _Plan | None:
    """The plan of *region* (of the non-geographic *code* for ``"001"``), compiled once.

    None where phonenumbers has no metadata, or where the metadata is laid out in a way
    the steps here do not restate (no general description or lengths, a transform rule
    without a group to test): numbers of such a plan are left to phonenumbers.
    """
    metadata = _metadata(region, code)
    if metadata is None or metadata.country_code is None:
        return None
    general = metadata.general_desc
    if general is None or not general.possible_length:
        return None
    prefix = metadata.national_prefix_for_parsing or None
    national_prefix = re.compile(prefix) if prefix is not None else None
    transform = metadata.national_prefix_transform_rule or ""
    if transform and (national_prefix is None or national_prefix.groups == 0):
        return None
    types = (
        metadata.premium_rate,
        metadata.toll_free,
        metadata.shared_cost,
        metadata.voip,
        metadata.personal_number,
        metadata.pager,
        metadata.uan,
        metadata.voicemail,
    )
    return _Plan(
        country_code=metadata.country_code,
        code=str(metadata.country_code),
        idd=re.compile(metadata.international_prefix) if metadata.international_prefix else None,
        national_prefix=national_prefix,
        transform=transform,
        general=_desc(general),
        lengths=tuple(general.possible_length),
        local_lengths=frozenset(general.possible_length_local_only),
        types=tuple(desc for desc in map(_desc, types) if desc is not None),
        fixed_line=_desc(metadata.fixed_line),
        mobile=_desc(metadata.mobile),
        same_fixed_and_mobile=bool(metadata.same_mobile_and_fixed_line_pattern),
        leading_digits=(
            re.compile(metadata.leading_digits) if metadata.leading_digits is not None else None
        ),
    )


def _plan_for(region: str, code: int) -> _Plan | None:
    """The plan a number of country *code* is read by in *region*: the region's own, or
    for ``"001"`` the non-geographic code's (cached once per region, not per code)."""
    return _plan(region, code if region == _NON_GEO else 0)


def _code_plan(code: int) -> _Plan | None:
    """The plan of the main region of *code*: the one phonenumbers parses and sizes by."""
    return _plan_for(phonenumbers.region_code_for_country_code(code), code)


def _country_code(digits: str) -> tuple[int, str]:
    """The country code at the start of *digits* and the rest; ``(0, digits)`` if none."""
    if not digits or digits[0] == "0":
        return 0, digits
    for size in range(1, min(len(digits), _MAX_CODE_DIGITS) + 1):
        code = _CODES_PRINTED.get(digits[:size])
        if code is not None:
            return code, digits[size:]
    return 0, digits


# Each country code as printed (no leading zero, as the digits it is read from have none):
# one lookup per prefix instead of parsing it as a number first.
_CODES_PRINTED = {str(code): code for code in COUNTRY_CODE_TO_REGION_CODE}


# What taking the country code off gives besides (code, rest): a number too short after
# its international prefix, and one whose country code is unknown.
_TOO_SHORT_AFTER_IDD = None
_UNKNOWN_CODE = (-1, "")


def _extract(digits: str, plan: _Plan | None, plus: bool) -> tuple[int, str] | None:
    """phonenumbers' ``_maybe_extract_country_code`` on a run's *digits*.

    ``(code, national number)`` when a country code was written, ``(0, "")`` when none
    was, or one of the two failures above.
    """
    international = plus
    if not plus and plan is not None and plan.idd is not None:
        idd = plan.idd.match(digits)
        # Country codes never start with 0, so a 0 after the prefix means it is not one.
        if idd is not None and digits[idd.end() : idd.end() + 1] != "0":
            digits = digits[idd.end() :]
            international = True
    if international:
        if len(digits) <= _MIN_NSN:
            return _TOO_SHORT_AFTER_IDD
        code, rest = _country_code(digits)
        return (code, rest) if code else _UNKNOWN_CODE
    if plan is not None and digits.startswith(plan.code):
        national = plan.strip_national_prefix(digits[len(plan.code) :])
        # The region's own code written without a plus: taken off when the number fits
        # the plan only without it, or is too long with it.
        if (not plan.viable(digits) and plan.viable(national)) or plan.length(digits) == _TOO_LONG:
            return plan.country_code, national
    return 0, ""


def _printed_run(raw: str, region: str | None) -> str | None:
    """What phonenumbers reads of *raw* as the number, when the steps here apply to it:
    a run of the scanner's shape, read with no region or in one phonenumbers knows
    (written in capitals) whose plan is restated here."""
    run = _RUN.fullmatch(raw)
    if run is None or len(raw) > _MAX_INPUT:
        return None
    if region is None:
        return run.group(1)
    known = region in phonenumbers.SUPPORTED_REGIONS and region.isupper()
    return run.group(1) if known and _plan(region) is not None else None


def _parse(raw: str, region: str | None) -> tuple[int, str] | None:
    """``phonenumbers.parse(raw, region)`` as ``(country code, national significant
    number)``, or None where phonenumbers raises NumberParseException.

    Args:
        raw: a printed number; runs of the scanner's shape are parsed here, anything
            else by phonenumbers.
        region: the region the number is read in, None for a number with a plus.
    """
    national = _printed_run(raw, region)
    digits = national.translate(_NOT_DIGITS) if national is not None else ""
    if national is None or len(digits) < 3:  # phonenumbers' viability test needs three
        return _parse_slowly(raw, region)
    plus = national[0] == "+"
    plan = _plan(region) if region is not None else None
    if region is None and not plus:
        return None  # no region to read it in
    extracted = _extract(digits, plan, plus)
    if extracted is _UNKNOWN_CODE and plus:
        # phonenumbers then reads the digits after the plus as if no plus were there.
        extracted = _extract(digits, plan, False)
        if extracted is not None and extracted[0] == 0:
            return None
    if extracted is None or extracted is _UNKNOWN_CODE:
        return None
    code, nsn = extracted
    if code:
        main = phonenumbers.region_code_for_country_code(code)
        if main != region:
            plan = _plan_for(main, code)
    else:
        nsn = digits
        code = plan.country_code if plan is not None else 0
    if plan is None:
        return _parse_slowly(raw, region)
    if len(nsn) < _MIN_NSN:
        return None
    stripped = plan.strip_national_prefix(nsn)
    if plan.length(stripped) not in (_TOO_SHORT, _LOCAL_ONLY, _INVALID_LENGTH):
        nsn = stripped
    if not _MIN_NSN <= len(nsn) <= _MAX_NSN:
        return None
    return code, nsn


def _parse_slowly(raw: str, region: str | None) -> tuple[int, str] | None:
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    return number.country_code or 0, phonenumbers.national_significant_number(number)


def _number(code: int, nsn: str) -> phonenumbers.PhoneNumber:
    """The PhoneNumber phonenumbers makes of *code* and *nsn*, for its own checks."""
    zeros = len(nsn) - len(nsn.lstrip("0")) if len(nsn) > 1 else 0
    zeros = min(zeros, len(nsn) - 1)
    return phonenumbers.PhoneNumber(
        country_code=code,
        national_number=int(nsn),
        italian_leading_zero=True if zeros else None,
        number_of_leading_zeros=zeros if zeros > 1 else None,
    )


def _possible(code: int, nsn: str) -> bool:
    """``phonenumbers.is_possible_number`` for a parsed number."""
    if code not in COUNTRY_CODE_TO_REGION_CODE:
        return False
    plan = _code_plan(code)
    if plan is None:
        return bool(phonenumbers.is_possible_number(_number(code, nsn)))
    return plan.length(nsn) in (_POSSIBLE, _LOCAL_ONLY)


def _valid_for_region(code: int, nsn: str, region: str) -> bool:
    """``phonenumbers.is_valid_number_for_region`` for a parsed number."""
    plan = _plan_for(region.upper(), code)
    if plan is None:
        return bool(phonenumbers.is_valid_number_for_region(_number(code, nsn), region))
    return (region == _NON_GEO or plan.country_code == code) and plan.typed(nsn)


def _valid(code: int, nsn: str) -> bool:
    """``phonenumbers.is_valid_number`` for a parsed number: valid for the region of its
    code that its leading digits (or, for a region without them, its type) pick."""
    regions = COUNTRY_CODE_TO_REGION_CODE.get(code)
    if regions is None:
        return False
    if len(regions) == 1:
        return _valid_for_region(code, nsn, regions[0])
    plans = _shared_plans(code)
    if plans is None:
        return bool(phonenumbers.is_valid_number(_number(code, nsn)))
    for region, plan in plans:
        if plan.leading_digits is not None:
            if plan.leading_digits.match(nsn):
                return _valid_for_region(code, nsn, region)
        elif plan.typed(nsn):  # so valid for that region, if it is one of the code's
            return plan.country_code == code
    return False


@functools.cache
def _shared_plans(code: int) -> tuple[tuple[str, _Plan], ...] | None:
    """The regions of a shared *code* that have metadata, in phonenumbers' order, with
    their plans; None when one of them has no plan here."""
    plans = []
    for region in COUNTRY_CODE_TO_REGION_CODE[code]:
        plan = _plan(region.upper())
        if plan is None:
            if PhoneMetadata.metadata_for_region(region.upper(), None) is None:
                continue  # phonenumbers skips a region without metadata
            return None
        plans.append((region, plan))
    return tuple(plans)


def _possible_by_library(code: int, nsn: str) -> bool:
    return bool(phonenumbers.is_possible_number(_number(code, nsn)))


def _valid_for_region_by_library(code: int, nsn: str, region: str) -> bool:
    return bool(phonenumbers.is_valid_number_for_region(_number(code, nsn), region))


def _valid_by_library(code: int, nsn: str) -> bool:
    return bool(phonenumbers.is_valid_number(_number(code, nsn)))


# The four answers, bound by _use to the steps above or to phonenumbers' own functions.
parse: Callable[[str, str | None], tuple[int, str] | None] = _parse
possible: Callable[[int, str], bool] = _possible
valid_for_region: Callable[[int, str, str], bool] = _valid_for_region
valid: Callable[[int, str], bool] = _valid


def _use(restated: bool) -> None:
    """Bind the four answers to the steps restated here, or to phonenumbers itself."""
    # Rebound at import, and again only when _libraries.check() is called.
    global parse, possible, valid_for_region, valid
    if restated:
        parse, possible, valid_for_region, valid = (
            _parse,
            _possible,
            _valid_for_region,
            _valid,
        )
    else:
        parse, possible, valid_for_region, valid = (
            _parse_slowly,
            _possible_by_library,
            _valid_for_region_by_library,
            _valid_by_library,
        )


follow("phonenumbers", _use)
