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

# Forms that end with the year: matched backwards from a four-digit year. The reference
# for the searches below, which look for one form at a time.
_YEAR_LAST = re.compile(
    r"(?:(?P<d1>[0-9]{1,2})[./-](?P<m1>[0-9]{1,2})[./-]"
    rf"|(?P<d2>[0-9]{{1,2}})\.? (?:de )?(?P<mn2>{_MONTH_NAME}) (?:de )?"
    r"|ngày (?P<d3>[0-9]{1,2}) tháng (?P<m3>[0-9]{1,2}) năm "
    rf"|(?P<mn4>{_MONTH_NAME}) (?P<d4>[0-9]{{1,2}}), ?)"
    r"(?P<y>(?:19|20)[0-9]{2})$",
    re.IGNORECASE,
)
# The same forms one by one, each ending where the year starts. The one or two
# characters before a year leave one form that can end there: a separator of digits
# ("12.03."), a comma ("March 12,"), or after a space a comma ("March 12, "), the "m"
# of Vietnamese "năm", or else a month name or "de" (no month name ends in "m"). One
# form searched for costs 1.5 µs against 11 for all four, whose month names are tried
# at every start of the window.
_NUMERIC = re.compile(r"(?P<d>[0-9]{1,2})[./-](?P<m>[0-9]{1,2})[./-]\Z")
_DAY_NAMED = re.compile(
    rf"(?P<d>[0-9]{{1,2}})\.? (?:de )?(?P<mn>{_MONTH_NAME}) (?:de )?\Z", re.IGNORECASE
)
_VIETNAMESE = re.compile(r"ngày (?P<d>[0-9]{1,2}) tháng (?P<m>[0-9]{1,2}) năm \Z", re.IGNORECASE)
_NAMED_DAY = re.compile(rf"(?P<mn>{_MONTH_NAME}) (?P<d>[0-9]{{1,2}}), ?\Z", re.IGNORECASE)
# Forms that start with the year.
_YEAR_FIRST = re.compile(
    r"(?P<y>(?:19|20)[0-9]{2})(?:-(?P<m1>[0-9]{1,2})-(?P<d1>[0-9]{1,2})"
    r"|年(?P<m2>[0-9]{1,2})月(?P<d2>[0-9]{1,2})[日号])(?![0-9])"
)
_CENTURIES = ("19", "20")  # how a year opens
_AFTER_YEAR = ("-", "年")  # what follows the year in a form that opens with it
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
# The same written backwards: its first match in the reversed window is the last
# statement end, found in 0.7 µs where listing every match takes 1.9.
_STATEMENT_END_REVERSED = re.compile(r"[;\uff1b\u3002\n]| \.(?=[0-9])")


def _born(text: str, start: int, words: Words) -> bool:
    before = text[max(0, start - CONTEXT_WINDOW) : start].lower()
    last = _STATEMENT_END_REVERSED.search(before[::-1])
    if last is not None:
        before = before[len(before) - last.start() :]
    return words.found_in(before)


def _birth_word_within_reach(text: str, year: int, words: Words) -> bool:
    """Whether a birth word stands close enough before the year at *year* to count.

    A date starts at most ``_LOOKBACK`` characters before its year, and its birth word
    ends before the date (or inside its own "ngày"); so with no birth word in that reach
    no date ending or starting at this year can be reported, and the date patterns,
    which cost far more than this test, are skipped.
    """
    return words.found_in(text[max(0, year - _LOOKBACK - CONTEXT_WINDOW) : year].lower())


def _years(text: str) -> Iterator[int]:
    """Where each four-digit group of *text* that reads as a year from 1900 to 2099 starts."""
    # Four-digit groups of the shared digit-run pass, so no extra walk over the text.
    for segment in segments(text):
        for start, end in segment.groups:
            if end - start == 4 and text.startswith(_CENTURIES, start):
                yield start


def _form_ending_at(text: str, year: int) -> tuple[re.Pattern[str], bool] | None:
    """The one form of :data:`_YEAR_LAST` that can end right before the year at *year*.

    Returns:
        The form's pattern and whether it names its month (groups ``d`` and ``mn``, or
        ``d`` and ``m``); None when the characters before the year end no form.
    """
    before = text[year - 1 : year]
    if before == " ":
        two = text[year - 2 : year - 1]
        if two == ",":
            return _NAMED_DAY, True
        if two in ("m", "M"):
            return _VIETNAMESE, False
        return _DAY_NAMED, True
    if before == ",":
        return _NAMED_DAY, True
    if before in (".", "/", "-"):
        return _NUMERIC, False
    return None


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
        # A form starting with the year goes on with "-" or "年"; one ending with it is
        # told by the characters before it. Both are read before the birth words,
        # which cost ten times more.
        starts_form = text.startswith(_AFTER_YEAR, year + 4)
        ends_form = _form_ending_at(text, year)
        if not (starts_form or ends_form) or not _birth_word_within_reach(text, year, words):
            continue
        found: tuple[int, int] | None = None
        forward = _YEAR_FIRST.match(text, year) if starts_form else None
        if forward is not None and _date(
            forward["y"], _first(forward, "m1", "m2"), _first(forward, "d1", "d2"), None
        ):
            found = forward.span()
        elif ends_form is not None:
            form, named = ends_form
            # The leftmost start of the form, as a search over the window tries each.
            back = form.search(text, max(0, year - _LOOKBACK), year)
            if back is not None:
                month = back["mn" if named else "m"]
                if _date(
                    text[year : year + 4],
                    None if named else month,
                    back["d"],
                    month if named else None,
                ):
                    found = (back.start(), year + 4)
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
