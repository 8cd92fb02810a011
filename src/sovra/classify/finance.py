"""Financial account identifiers.

Kinds:
    ``iban``: an International Bank Account Number, compact (``PL61109010140000071219812874``)
    or printed in groups with single spaces (``PL61 1090 1014 0000 0712 1981 2874``),
    accepted only when ``stdnum.iban`` accepts its mod-97 check digits and the country's
    BBAN structure. A candidate that fails is not reported.
"""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Iterator

from stdnum import iban, numdb
from stdnum.exceptions import ValidationError

from sovra.model import Finding

__all__ = ["KINDS", "detect", "detect_iban"]

KINDS = frozenset({"iban"})

_MIN_IBAN = 15  # Norway
_MAX_IBAN = 34  # ISO 13616
# A zero-width look-ahead reports a candidate at every plausible start, so a false start
# ("AB12" right before the real number) cannot swallow the IBAN that follows it. The
# repetition is bounded, so each start costs bounded work.
_BBAN_MIN, _BBAN_MAX = _MIN_IBAN - 4, _MAX_IBAN - 4
_CANDIDATE = re.compile(
    rf"(?<![A-Za-z0-9])(?=([A-Za-z]{{2}}[0-9]{{2}}(?: ?[A-Za-z0-9]){{{_BBAN_MIN},{_BBAN_MAX}}}))"
)
_BASE36 = 36
# One part of a SWIFT BBAN structure such as "8!n16!n": a length, "!" when it is fixed.
_BBAN_PART = re.compile(r"(\d+)(!?)[nac]")

_IBAN_CONFIDENCE = 0.97  # mod-97 leaves one false pass in 97, the BBAN shape far fewer


@functools.cache
def _bban_lengths() -> dict[str, int | None]:
    """Country code -> fixed BBAN length (None when variable), from stdnum's registry."""
    registry = numdb.get("iban")
    lengths: dict[str, int | None] = {}
    for code in (a + b for a in string.ascii_uppercase for b in string.ascii_uppercase):
        props = registry.info(code)[0][1]
        if not props:
            continue
        parts = _BBAN_PART.findall(str(props.get("bban", "")))
        fixed = bool(parts) and all(bang for _, bang in parts)
        lengths[code] = sum(int(n) for n, _ in parts) if fixed else None
    return lengths


def _mod97_ends(candidate: str, bban_length: int | None) -> list[int]:
    """Offsets in *candidate* that end a space-separated chunk and pass ISO 7064 mod 97-10.

    The remainder is carried across the candidate in one pass, so trying every chunk
    end costs one walk, and ``stdnum`` only sees the rare candidates that pass.
    """
    # ISO 13616 moves the first four characters to the end and reads letters as 10..35,
    # so the country code and check digits always contribute six decimal digits.
    head = int("".join(str(int(c, _BASE36)) for c in candidate[:4]))
    remainder, count, ends = 0, 0, []
    for i in range(4, len(candidate)):
        if candidate[i] == " ":
            continue
        value = int(candidate[i], _BASE36)
        remainder = (remainder * (100 if value >= 10 else 10) + value) % 97
        count += 1
        if bban_length is not None and count > bban_length:
            break
        at_chunk_end = i + 1 == len(candidate) or candidate[i + 1] == " "
        long_enough = count >= _BBAN_MIN if bban_length is None else count == bban_length
        if at_chunk_end and long_enough and (remainder * 10**6 + head) % 97 == 1:
            ends.append(i + 1)
    return ends


def _is_iban(compact: str) -> bool:
    try:
        iban.validate(compact)
    except ValidationError:
        return False
    return True


def _longest_valid(candidate: str) -> int | None:
    """Length of the longest prefix of *candidate* that is an IBAN ending at a chunk end."""
    # The candidate may run on into the next word ("... 2874 DATA"); trying each end of
    # a space-separated chunk, longest first, finds the IBAN inside it.
    code = candidate[:2].upper()
    lengths = _bban_lengths()
    if code not in lengths:
        return None
    for end in reversed(_mod97_ends(candidate, lengths[code])):
        if _is_iban(candidate[:end].replace(" ", "")):
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
    for match in _CANDIDATE.finditer(text):
        start = match.start()
        if start < resume:
            continue
        candidate = match.group(1)
        length = _longest_valid(candidate)
        # A candidate that ends mid-word is part of a longer token, not an IBAN.
        if length is None or (length == len(candidate) and _runs_on(text, start + length)):
            continue
        resume = start + length
        yield Finding("iban", start, resume, _IBAN_CONFIDENCE, validated=True)


def _runs_on(text: str, end: int) -> bool:
    return end < len(text) and text[end].isascii() and text[end].isalnum()


def detect(text: str) -> Iterator[Finding]:
    """Yield every financial-identifier finding in *text*.

    Args:
        text: the text to search; spans index it directly.

    Yields:
        Findings of kinds :data:`KINDS`.
    """
    yield from detect_iban(text)
