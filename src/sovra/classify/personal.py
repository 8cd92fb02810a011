"""Dates of birth: a calendar date written right after a word that says it is one.

Kinds:
    ``date_of_birth``: a real calendar date (day within its month, year from 1900 to
    this year) in one of the common written forms (``12.03.1980``, ``12/03/1980``,
    ``1980-03-12``, ``1980年3月12日``, ``12 marca 1980``, ``12. März 1980``,
    ``12 mars 1980``, ``12 de marzo de 1980``, ``ngày 12 tháng 3 năm 1980``,
    ``March 12, 1980``), reported only when a birth word of :data:`BIRTH_WORDS` stands
    within :data:`CONTEXT_WINDOW` characters before it. Other dates (invoices,
    meetings, news) are not personal data and are not reported. No checksum exists, so
    ``validated`` is false.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterator

from sovra.classify._runs import segments
from sovra.classify._words import Words
from sovra.model import Finding

__all__ = ["BIRTH_WORDS", "CONTEXT_WINDOW", "KINDS", "detect", "detect_birth_dates"]

KINDS = frozenset({"date_of_birth"})

CONTEXT_WINDOW = 40

# Lower-case words, per language, that introduce a date of birth.
BIRTH_WORDS: dict[str, tuple[str, ...]] = {
    "en": ("born", "date of birth", "birth date", "birthday", "dob", "d.o.b"),
    "pl": ("urodzon", "data urodzenia", "ur.", "urodził", "urodziła", "dzień urodzenia"),
    "vi": ("sinh ngày", "ngày sinh", "sinh năm", "sinh vào"),
    "de": ("geboren", "geburtsdatum", "geb.", "geburtstag"),
    "fr": ("né le", "née le", "date de naissance", "né en", "née en", "naissance"),
    "es": ("nacido", "nacida", "fecha de nacimiento", "nació", "f. nac"),
    "zh": ("出生", "生日", "出生日期", "生于"),
}
_ALL_WORDS = tuple(word for words in BIRTH_WORDS.values() for word in words)
_WORDS = {lang: Words(words) for lang, words in BIRTH_WORDS.items()}
_ANY_WORDS = Words(_ALL_WORDS)

_MONTHS: dict[str, int] = {}
for _names in (
    "january february march april may june july august september october november december",
    "stycznia lutego marca kwietnia maja czerwca lipca sierpnia września października "
    "listopada grudnia",
    "januar februar märz april mai juni juli august september oktober november dezember",
    "janvier février mars avril mai juin juillet août septembre octobre novembre décembre",
    "enero febrero marzo abril mayo junio julio agosto septiembre octubre noviembre diciembre",
):
    for _number, _name in enumerate(_names.split(), start=1):
        _MONTHS.setdefault(_name, _number)
_MONTH_NAME = "|".join(sorted(_MONTHS, key=len, reverse=True))

# Forms that end with the year: matched backwards from a four-digit year.
_YEAR_LAST = re.compile(
    r"(?:(?P<d1>[0-9]{1,2})[./-](?P<m1>[0-9]{1,2})[./-]"
    rf"|(?P<d2>[0-9]{{1,2}})\.? (?:de )?(?P<mn2>{_MONTH_NAME}) (?:de )?"
    r"|ngày (?P<d3>[0-9]{1,2}) tháng (?P<m3>[0-9]{1,2}) năm "
    rf"|(?P<mn4>{_MONTH_NAME}) (?P<d4>[0-9]{{1,2}}), ?)"
    r"(?P<y>(?:19|20)[0-9]{2})$",
    re.IGNORECASE,
)
# Forms that start with the year.
_YEAR_FIRST = re.compile(
    r"(?P<y>(?:19|20)[0-9]{2})(?:-(?P<m1>[0-9]{1,2})-(?P<d1>[0-9]{1,2})"
    r"|年(?P<m2>[0-9]{1,2})月(?P<d2>[0-9]{1,2})[日号])(?![0-9])"
)
_YEAR = re.compile(r"(?:19|20)[0-9]{2}")
_LOOKBACK = 24  # longer than the longest day-and-month prefix ("ngày 12 tháng 12 năm ")
_CONFIDENCE = 0.9


def _date(year: str, month: str | None, day: str | None, month_name: str | None) -> bool:
    number = _MONTHS.get(month_name.lower(), 0) if month_name else int(month or 0)
    try:
        when = datetime.date(int(year), number, int(day or 0))
    except ValueError:
        return False
    return when <= datetime.datetime.now(datetime.UTC).date()


def _first(match: re.Match[str], *names: str) -> str | None:
    for name in names:
        value = match.group(name)
        if value:
            return value
    return None


# Where one statement ends and the next begins: a birth word before it names some other
# date ("date of birth: 1980-03-12. Invoice 12.03.2020"). A full stop counts only after
# a digit, since abbreviations such as "ur." and "geb." end in one too.
_STATEMENT_END = re.compile(r"[;\uff1b\u3002\n]|(?<=[0-9])\. ")


def _born(text: str, start: int, words: Words) -> bool:
    before = text[max(0, start - CONTEXT_WINDOW) : start].lower()
    ends = list(_STATEMENT_END.finditer(before))
    if ends:
        before = before[ends[-1].end() :]
    return words.found_in(before)


def _birth_word_within_reach(text: str, year: int, words: Words) -> bool:
    """Whether a birth word stands close enough before the year at *year* to count.

    A date starts at most ``_LOOKBACK`` characters before its year, and its birth word
    ends before the date (or inside its own "ngày"); so with no birth word in that reach
    no date ending or starting at this year can be reported, and the date patterns,
    which cost far more than this test, are skipped.
    """
    return words.found_in(text[max(0, year - _LOOKBACK - CONTEXT_WINDOW) : year].lower())


def _years(text: str) -> Iterator[re.Match[str]]:
    # Four-digit groups of the shared digit-run pass, so no extra walk over the text.
    for segment in segments(text):
        for group in segment.groups:
            if group.end - group.start == 4:
                match = _YEAR.match(text, group.start, group.end)
                if match is not None:
                    yield match


def detect_birth_dates(text: str, lang: str | None = None) -> Iterator[Finding]:
    """Yield a ``date_of_birth`` finding for each date a birth word introduces.

    Every candidate is anchored on a four-digit year, so text without years costs one
    regex pass.

    Args:
        text: the text to search, with ASCII digits (the scanner folds others first);
            spans index it directly.
        lang: restrict the birth words to one language of :data:`BIRTH_WORDS`; None
            uses all of them.

    Yields:
        Findings in order of start.
    """
    words = _WORDS.get(lang or "", _ANY_WORDS)
    for year in _years(text):
        if not _birth_word_within_reach(text, year.start(), words):
            continue
        found: tuple[int, int] | None = None
        forward = _YEAR_FIRST.match(text, year.start())
        if forward is not None and _date(
            forward["y"], _first(forward, "m1", "m2"), _first(forward, "d1", "d2"), None
        ):
            found = forward.span()
        else:
            window_start = max(0, year.start() - _LOOKBACK)
            # The leftmost form that ends with this year, the search trying each start
            # in turn.
            back = _YEAR_LAST.search(text[window_start : year.end()])
            if back is not None:
                month = _first(back, "m1", "m3")
                name = _first(back, "mn2", "mn4")
                if _date(back["y"], month, _first(back, "d1", "d2", "d3", "d4"), name):
                    found = (window_start + back.start(), year.end())
        # "sinh ngày 12 tháng 3 năm 1980": the birth word ends inside the date's own
        # "ngày", so the window read for it runs to the end of that word.
        own = len("ngày") if found is not None and text.startswith("ngày", found[0]) else 0
        if found is not None and _born(text, found[0] + own, words):
            yield Finding("date_of_birth", found[0], found[1], _CONFIDENCE, validated=False)


def detect(text: str) -> Iterator[Finding]:
    """Yield every date-of-birth finding in *text*.

    Args:
        text: the text to search; spans index it directly.

    Yields:
        Findings of kinds :data:`KINDS`.
    """
    yield from detect_birth_dates(text)
