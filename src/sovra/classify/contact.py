"""Contact details: e-mail addresses and telephone numbers.

Kinds:
    ``email``: a mailbox ``local@domain`` within RFC 5321's length limits whose domain
    ends in an alphabetic (or ``xn--``) top-level label. Only well-formed addresses are
    reported, so every e-mail finding is ``validated``.

    ``phone``: found with ``phonenumbers.PhoneNumberMatcher``. Numbers written in
    national form are reported only when they are valid for one of :data:`REGIONS`;
    numbers in international form (leading ``+``) are reported when they are possible,
    and ``validated`` says whether ``phonenumbers.is_valid_number`` accepts them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import phonenumbers

from sovra.classify._overlap import resolve_overlaps
from sovra.model import Finding

__all__ = ["KINDS", "REGIONS", "detect", "detect_emails", "detect_phones"]

KINDS = frozenset({"email", "phone"})

# Regions whose national numbering plans are tried for numbers written without a
# country code. Any region's matcher also finds "+CC ..." numbers of every country.
REGIONS = ("PL", "VN", "DE", "US", "CN")

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
_DOMAIN = re.compile(
    rf"(?:{_LETTER_OR_DIGIT}(?:(?:{_LETTER_OR_DIGIT}|-){{0,61}}{_LETTER_OR_DIGIT})?\.){{1,126}}"
    rf"(?:(?:(?!\d){_LETTER_OR_DIGIT}){{2,63}}|xn--[a-z0-9-]{{1,59}})"
    rf"(?!{_LETTER_OR_DIGIT}|-)",
    re.IGNORECASE,
)

_DIGIT = re.compile(r"\d")

_EMAIL_CONFIDENCE = 0.9
_PHONE_INTERNATIONAL = 0.95
_PHONE_NATIONAL = 0.75
_PHONE_POSSIBLE_ONLY = 0.4


def _is_local(char: str) -> bool:
    return _LOCAL_CHAR.match(char) is not None


def _local_part_start(text: str, at: int) -> int | None:
    """Start of the local part ending just before ``text[at] == '@'``, if well-formed."""
    start = at
    # Look back one character further than a local part may be long, and no further, so
    # one long word costs bounded time at every '@' that follows it.
    limit = max(0, at - _MAX_LOCAL - 1)
    while start > limit and _is_local(text[start - 1]):
        start -= 1
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


def _phone_matches(text: str, region: str | None, leniency: int) -> Iterator[Finding]:
    # max_tries caps how many failed candidates the matcher tolerates before it stops
    # looking. Its default would let a prefix of junk numbers hide a real one, so the cap
    # is lifted to the number of characters: the work stays linear in the text.
    matcher = phonenumbers.PhoneNumberMatcher(
        text, region, leniency=leniency, max_tries=len(text) + 1
    )
    for match in matcher:
        raw = str(match.raw_string).lstrip()
        international = raw.startswith(("+", "\uff0b", "00"))
        valid = bool(phonenumbers.is_valid_number(match.number))
        if valid:
            confidence = _PHONE_INTERNATIONAL if international else _PHONE_NATIONAL
        else:
            confidence = _PHONE_POSSIBLE_ONLY
        yield Finding("phone", int(match.start), int(match.end), confidence, validated=valid)


def detect_phones(text: str) -> Iterator[Finding]:
    """Yield ``phone`` findings: valid national numbers and possible international ones.

    Each region of :data:`REGIONS` is tried in turn; where their matches overlap, the
    validated, longer, more confident one is kept.

    Args:
        text: the text to search; spans index it directly.

    Yields:
        Non-overlapping findings in order of start.
    """
    if _DIGIT.search(text) is None:
        return
    found: list[Finding] = []
    for region in REGIONS:
        found.extend(_phone_matches(text, region, phonenumbers.Leniency.VALID))
    if "+" in text or "\uff0b" in text:  # phonenumbers reads the full-width plus too
        # With no region only numbers that carry their own country code are considered;
        # the lenient check lets an unassigned but well-shaped "+CC ..." number through,
        # marked as not validated, since someone wrote it down as a phone number.
        found.extend(_phone_matches(text, None, phonenumbers.Leniency.POSSIBLE))
    yield from resolve_overlaps(found)


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
