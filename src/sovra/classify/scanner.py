"""Find sensitive data in a text: every registered detector family, one answer per span.

Offsets always index the string the caller passed. The scanner does not normalise the
text (NFC and NFKC change its length); it folds look-alike characters one code point for
one code point (full-width digit four to ``4``, no-break space to space, see ``_fold``) and
runs the detectors on the folded copy, whose offsets are the original's.

Cost is linear in the text. Prose costs a few passes (about 8 ms per megabyte on one
core: folding, the digit windows, the term automaton, a few string searches); each
candidate number costs more: check digits, and for a phone number one parse per region
whose national shape fits (a few microseconds each, see ``_plans``). A text made of
numbers would therefore cost up to seconds per megabyte, so the count of separate
numbers is bounded as well as the length; a text over either bound is refused whole
rather than scanned in part.

A batch of texts pays the set-up once: :func:`scan_many` scans them joined into one
text, a run of newlines between each two (``_SEPARATOR``), and hands each text the
findings that lie in it, moved to its own offsets: exactly what :func:`scan` finds in
that text alone (``_SEPARATOR`` says why).
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import cast

from sovra.classify._findings import finding
from sovra.classify._fold import fold
from sovra.classify._overlap import resolve_overlaps
from sovra.classify._runs import forget, segments, windows
from sovra.classify.registry import FAMILIES
from sovra.classify.special import LANGUAGES
from sovra.errors import BadRequest, PayloadTooLarge, SovraError
from sovra.model import Finding

__all__ = [
    "DEFAULT_MAX_CHARS",
    "DEFAULT_MAX_NUMBERS",
    "LANGUAGES",
    "Scanned",
    "scan",
    "scan_many",
]

DEFAULT_MAX_CHARS = 10_000_000
# About half a second of phone matching on one core in the worst layout: nine-digit
# numbers one space apart, nearly every one a valid Polish number.
DEFAULT_MAX_NUMBERS = 10_000

_SEPARATOR = "\n" * 128
"""What :func:`scan_many` puts between two texts: newlines, more of them than any
detector reads around a candidate (65 characters at most: an e-mail address's local
part; a birth word 64 before a year, a special-category context word 60 before its term)
and than two digit windows reach towards each other (``2 * MARGIN + STEP`` in ``_runs``,
96), so each text's windows in the joined text are its own, shifted. No detector
matches a newline (digit runs, addresses, terms and naming words hold none), and each
reads one where a text ends as it reads the end of the text: not a letter, a digit or a
separator inside a number; a word boundary; the end of a sentence and of a statement.
Tests pin both: these lengths, and :func:`scan_many` against :func:`scan`."""

_JOINED_CHARS = 1 << 16
"""About how many characters one joined text of :func:`scan_many` holds. The set-up is
paid once a chunk (some 50 us: under 0.3 us a text for two hundred records of 300
characters), and what a chunk holds alive at once (its digit segments, its findings)
stays small: a chunk of a megabyte keeps tens of thousands of objects alive through the
garbage collector's passes, which then cost more than the set-up saved."""

Scanned = list[Finding] | SovraError
"""One text's findings, or the error scanning it raised."""

_BY_START = operator.attrgetter("start")


def scan(
    text: str,
    *,
    lang: str | None = None,
    max_chars: int = DEFAULT_MAX_CHARS,
    max_numbers: int = DEFAULT_MAX_NUMBERS,
) -> list[Finding]:
    """Find the sensitive data in *text*.

    Where findings overlap, one is kept: a validated finding beats an unvalidated one,
    then the longer span wins, then the higher confidence (ties go to the earlier
    start, then the kind's name). Findings never include the matched value;
    ``text[f.start:f.end]`` is it.

    Args:
        text: the content to scan. Lone surrogates and any other code points are
            accepted.
        lang: a code of :data:`LANGUAGES` to use only that language's term lists and
            context words (special categories, dates of birth); None or ``"auto"``
            uses every language's, which finds the same in mixed-language text at a
            small cost. Identifiers, contacts and accounts are found in any language.
        max_chars: the largest number of characters (code points) accepted.
        max_numbers: the largest number of separate digit runs accepted (after
            folding, so full-width and other-script digits count).

    Returns:
        Pairwise disjoint findings sorted by start; ``[]`` for an empty text.

    Raises:
        BadRequest: *text* is not a string, or *lang* is not a known language code.
        PayloadTooLarge: *text* is longer than *max_chars*, or holds more than
            *max_numbers* separate numbers.
    """
    lang = None if lang == "auto" else lang
    _admit(text, lang, max_chars)
    if not text:
        return []
    folded = fold(text)
    try:
        return _detect(folded, lang, max_numbers)
    finally:
        # The digit passes are cached for the detectors to share; dropped here, so that
        # no copy of the text outlives the call and a later call pays for its own.
        forget()


def scan_many(
    texts: Sequence[object],
    *,
    lang: str | None = None,
    max_chars: int = DEFAULT_MAX_CHARS,
    max_numbers: int = DEFAULT_MAX_NUMBERS,
) -> list[Scanned]:
    """What :func:`scan` gives for each of *texts*, in order: its findings, or the error
    it raises for that text (the others are scanned all the same).

    The set-up of a call (the passes over the text, each family's call, the term
    automaton's start) is paid once for many short texts: they are scanned joined, each
    after the one before with a run of newlines between, in chunks of about 64 Ki characters,
    and each text gets the findings inside it, moved to its own offsets and resolved as
    :func:`scan` resolves them. The separator is longer than anything a detector reads
    around a candidate and no detector matches it, so what is found in a text does not
    depend on its neighbours: the answers are exactly :func:`scan`'s. A text long enough
    to be counted for *max_numbers* (over twice it) is scanned on its own.

    Args:
        texts: the contents to scan; any that is not a string gets its error.
        lang: as for :func:`scan`, for every text.
        max_chars: as for :func:`scan`, for each text.
        max_numbers: as for :func:`scan`, for each text.

    Returns:
        One entry per text: its findings, as :func:`scan` returns them, or the
        :class:`~sovra.errors.BadRequest` or :class:`~sovra.errors.PayloadTooLarge`
        :func:`scan` raises for it.
    """
    if len(texts) == 1:
        # Nothing to share the set-up with: scan's own path, a few microseconds shorter.
        try:
            return [
                scan(cast(str, texts[0]), lang=lang, max_chars=max_chars, max_numbers=max_numbers)
            ]
        except SovraError as exc:
            return [exc]
    lang = None if lang == "auto" else lang
    out: list[Scanned] = [[] for _ in texts]
    chunk: list[tuple[int, str]] = []  # the texts to scan joined next, and where they go
    size = 0
    for i, text in enumerate(texts):
        try:
            admitted = _admit(text, lang, max_chars)
            if len(admitted) > 2 * max_numbers or len(admitted) > _JOINED_CHARS:
                out[i] = scan(admitted, lang=lang, max_chars=max_chars, max_numbers=max_numbers)
                continue
        except SovraError as exc:
            out[i] = exc
            continue
        if not admitted:
            continue
        if size + len(admitted) > _JOINED_CHARS:
            _scan_joined(chunk, lang, out)
            chunk, size = [], 0
        chunk.append((i, admitted))
        size += len(admitted) + len(_SEPARATOR)
    if chunk:
        _scan_joined(chunk, lang, out)
    return out


def _admit(text: object, lang: str | None, max_chars: int) -> str:
    """*text*, unless :func:`scan` refuses it before reading it (checked in its order)."""
    if not isinstance(text, str):
        raise BadRequest(f"scan takes text, not {type(text).__name__}")
    if lang is not None and lang not in LANGUAGES:
        raise BadRequest(f"unknown language {lang!r}; use auto or one of {', '.join(LANGUAGES)}")
    if len(text) > max_chars:
        raise PayloadTooLarge(f"text of {len(text)} characters is over the {max_chars} limit")
    return text


def _scan_joined(chunk: list[tuple[int, str]], lang: str | None, out: list[Scanned]) -> None:
    """Scan the texts of *chunk* (admitted, not empty, too short to be counted for
    numbers) joined, and set each one's findings at its index in *out*."""
    texts = [text for _, text in chunk]
    folded = fold(_SEPARATOR.join(texts))
    try:
        found = _found(folded, lang)
    finally:
        forget()  # as in scan: no copy of a text outlives the call
    each = _split(found, texts)
    if each is None:
        # A finding in a separator or across one: a detector reads past what _SEPARATOR
        # allows for (the tests would say which). Each text is scanned alone instead.
        try:
            each = [_detect(fold(text), lang, len(text)) for text in texts]
        finally:
            forget()
    for (i, _), mine in zip(chunk, each, strict=True):
        out[i] = mine


def _split(found: list[Finding], texts: list[str]) -> list[list[Finding]] | None:
    """The findings of *texts* joined with :data:`_SEPARATOR`, each text's at its own
    offsets and resolved as :func:`scan` resolves them; None if one lies outside every
    text."""
    found.sort(key=_BY_START)
    each: list[list[Finding]] = [[] for _ in texts]
    k, base, end = 0, 0, len(texts[0])
    for f in found:
        while f.start >= end:
            k += 1
            base = end + len(_SEPARATOR)
            end = base + len(texts[k])
        if f.start < base or f.end > end:
            return None
        each[k].append(
            f
            if not base
            else finding(f.kind, f.start - base, f.end - base, f.confidence, f.validated)
        )
    return [resolve_overlaps(mine) if len(mine) > 1 else mine for mine in each]


def _detect(folded: str, lang: str | None, max_numbers: int) -> list[Finding]:
    # The digit groups of the shared digit-run pass are the separate numbers; computing
    # them here costs nothing extra, since the number detectors read the same cached pass.
    # Two groups stand at least one character apart, so a text shorter than twice the
    # bound cannot hold too many, and most are not counted.
    if len(folded) > 2 * max_numbers and (
        sum(len(segment.groups) for segment in segments(folded)) > max_numbers
    ):
        raise PayloadTooLarge(
            f"text holds more than {max_numbers} separate numbers, too many to check for "
            "phone numbers in bounded time; split it"
        )
    return resolve_overlaps(_found(folded, lang))


def _found(folded: str, lang: str | None) -> list[Finding]:
    """Every family's findings in *folded*, overlapping ones included."""
    # A family that needs a digit or a character the text lacks is not run: one test
    # here instead of its passes (see Family.requires).
    digit = bool(windows(folded))
    found: list[Finding] = []
    for family in FAMILIES:
        needs = family.requires
        if not digit and needs is not None and not any(c in folded for c in needs):
            continue
        if lang is not None and family.detect_in is not None:
            found.extend(family.detect_in(folded, lang))
        else:
            found.extend(family.detect(folded))
    return found
