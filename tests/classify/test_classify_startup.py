"""What the scanner does to start quickly gives what the plain way gives.

Every ``sovra scan`` builds these before its workers start, so each was made cheaper: the
e-mail domain pattern compiled without ``re.IGNORECASE``, stdnum's ``cn/loc`` database
read a line at a time instead of through ``stdnum.numdb``, and the IBAN registry's
countries read from its entries instead of 676 lookups. Each is compared here with the
way it replaced, on stdnum's own data files and on many altered copies of them (fixed
seeds, so that a failure reproduces).
"""

from __future__ import annotations

import codecs
import io
import random
import re
import string
import sys
from importlib import resources

import pytest
from stdnum import numdb

from sovra.classify import contact, finance, ids

# --- the e-mail domain -------------------------------------------------------------------

_LETTER = contact._LETTER_OR_DIGIT
# The domain pattern as it was first written: all of it matched ignoring case.
_DOMAIN_IGNORING_CASE = re.compile(
    rf"(?:{_LETTER}(?:(?:{_LETTER}|-){{0,61}}{_LETTER})?\.){{1,126}}"
    rf"(?:(?:(?!\d){_LETTER}){{2,63}}|xn--[a-z0-9-]{{1,59}})"
    rf"(?!{_LETTER}|-)",
    re.IGNORECASE,
)


def _matched(pattern: str, flags: int) -> list[int]:
    """Every code point that *pattern*, one character long, matches."""
    every = "".join(map(chr, range(sys.maxunicode + 1)))
    return [m.start() for m in re.compile(pattern, flags).finditer(every)]


def test_letter_class_matches_the_same_characters_ignoring_case_or_not() -> None:
    # The only parts of the pattern that now match case-sensitively: over every code
    # point, each matches the same characters either way, so the two patterns accept
    # the same domains with the same spans.
    for part in (_LETTER, r"\d", "-", r"\."):
        assert _matched(part, 0) == _matched(part, re.IGNORECASE), part


def test_a_labels_still_match_in_any_case() -> None:
    for text in ("a.xn--p1ai", "a.XN--P1AI", "a.Xn--p1Ai", "a.xN--\u212a\u017f\u0130\u0131"):
        assert contact._DOMAIN.fullmatch(text), text


# Pieces of generated domains: both cases, digits, IDN letters, the four non-ASCII
# letters that case-insensitive [a-z] matches (U+0130, U+0131, U+017F, U+212A), A-label
# prefixes in every case,
# scripts that end a domain, and what may follow one.
_PIECES = [
    *string.ascii_letters,
    *string.digits,
    *"-----.....",
    *"ąłżüßçñЖжΣσςđ",
    *"\u0130\u0131\u017f\u212a",
    *("xn--", "XN--", "Xn--", "xN--", ".xn--", ".XN--"),
    *("中", "한", "\uff58", "\uff21", "٣", "\u0301", "_", " ", "@", ",", ">", "\n"),
]


def _domain(rng: random.Random) -> str:
    pieces = [rng.choice(_PIECES) for _ in range(rng.randrange(1, 30))]
    if rng.random() < 0.1:  # a label near the 63-character limit
        pieces.insert(rng.randrange(len(pieces) + 1), rng.choice("aZ5") * rng.randrange(58, 66))
    return "".join(pieces)


def test_domain_pattern_agrees_with_the_one_ignoring_case() -> None:
    rng = random.Random(21)
    found = 0
    for _ in range(40_000):
        text = _domain(rng)
        for at in range(min(len(text), 3)):
            expected = _DOMAIN_IGNORING_CASE.match(text, at)
            match = contact._DOMAIN.match(text, at)
            assert (match and match.span()) == (expected and expected.span()), (text, at)
            found += expected is not None
    assert found > 5_000


def _domains(pattern: re.Pattern[str], text: str) -> list[tuple[int, int]]:
    """The span of the domain *pattern* matches after each "@" of *text*, as detect does."""
    at = [i + 1 for i, char in enumerate(text) if char == "@"]
    return [m.span() for m in (pattern.match(text, i) for i in at) if m is not None]


def test_addresses_found_as_with_the_pattern_ignoring_case(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(22)
    texts = [
        f"{rng.choice(['jan', 'Ĳ', 'a.b'])}@{_domain(rng)} {rng.choice(['x', 'a@B.PL'])}"
        for _ in range(3_000)
    ]
    for text in texts:
        assert _domains(contact._DOMAIN, text) == _domains(_DOMAIN_IGNORING_CASE, text), text
    found = [list(contact.detect_emails(text)) for text in texts]
    monkeypatch.setattr(contact, "_DOMAIN", _DOMAIN_IGNORING_CASE)
    assert found == [list(contact.detect_emails(text)) for text in texts]
    assert sum(map(len, found)) > 1_000


# --- the Chinese region codes ------------------------------------------------------------


def _loc_text() -> str:
    return resources.files("stdnum").joinpath("cn/loc.dat").read_bytes().decode("utf-8")


def _numdb_read(text: str) -> numdb.NumDB:
    """*text* read as ``numdb.get`` reads a database file: lines from a UTF-8 stream."""
    return numdb.read(codecs.getreader("utf-8")(io.BytesIO(text.encode("utf-8"))))


def test_region_table_is_stdnum_reading_of_its_database() -> None:
    expected = ids._counties_in(numdb.get("cn/loc"))
    assert expected is not None and len(expected) > 6_000
    for table in (ids._cn_counties(), ids._read_counties(_loc_text())):
        assert table is not None and list(table.items()) == list(expected.items())


def _altered(lines: list[str], rng: random.Random) -> list[str]:
    lines = list(lines)
    for _ in range(rng.randrange(1, 4)):
        at = rng.randrange(len(lines))
        line = lines[at]
        change = rng.randrange(14)
        # Changes that keep the layout the quick reading expects:
        if change == 0:
            del lines[at]
        elif change == 1:
            lines.insert(at, rng.choice(["# note", "", "   ", "\t", "#", '#  0101 county="x"']))
        elif change == 2:
            lines[at] = line + rng.choice(["\r", "\x85", "\u2028", "\x1c"])  # other line ends
        elif change == 3:
            lines[at] = line.replace('county="', 'county="[2001-]', 1)
        elif change == 4:
            lines[at] = line[:4] + str(rng.randrange(10)) + line[5:]  # another code
        # and changes that do not, or that stdnum's reader reads otherwise:
        elif change == 5:
            lines.insert(at, line)  # a code twice
        elif change == 6:
            lines[at] = line.strip()  # a county at the top level
        elif change == 7:
            lines[at] = "  " + line  # deeper
        elif change == 8:
            lines[at] = line.replace(" ", "\t", 1)
        elif change == 9:
            lines[at] = line.replace("0", "0-9", 1)  # a range
        elif change == 10:
            lines[at] = line + rng.choice([' note="x"', " ", '"'])
        elif change == 11:
            lines[at] = line.replace('"', "", 1)
        elif change == 12:
            lines[at] = line.replace("county", rng.choice(["province", "name", "c"]), 1)
        else:
            lines[at] = line.replace("1", rng.choice(["12", "", "x", "\uff11"]), 1)
    return lines


def test_region_reading_agrees_with_stdnum_on_altered_databases() -> None:
    # Either the quick reading gives what stdnum's reading of the same text does, or it
    # gives up and stdnum's reading is used.
    rng = random.Random(23)
    lines = _loc_text().split("\n")
    head = [line for line in lines if line.startswith("#")]
    body = [line for line in lines if not line.startswith("#")]
    provinces = [at for at, line in enumerate(body) if line[:1].isdigit()]
    read = 0
    for _ in range(400):
        start = rng.choice(provinces)
        text = "\n".join(head + _altered(body[start : start + 300], rng)) + "\n"
        quick = ids._read_counties(text)
        if quick is None:
            continue
        read += 1
        expected = ids._counties_in(_numdb_read(text))
        assert expected is not None and list(quick.items()) == list(expected.items()), text
    assert read > 60


# --- the IBAN registry -------------------------------------------------------------------


def _info_walk(registry: numdb.NumDB) -> list[tuple[str, dict[str, str]]]:
    """Each code from AA to ZZ looked up in the registry, as stdnum.iban does."""
    codes = (a + b for a in string.ascii_uppercase for b in string.ascii_uppercase)
    found = ((code, registry.info(code)[0][1]) for code in codes)
    return [(code, props) for code, props in found if props]


def test_iban_countries_are_the_registry_lookups() -> None:
    registry = numdb.get("iban")
    assert finance._iban_countries(registry) == _info_walk(registry)
    assert len(finance._bban_lengths()) == len(_info_walk(registry)) > 80


def test_iban_countries_agree_with_lookups_on_altered_registries() -> None:
    text = resources.files("stdnum").joinpath("iban.dat").read_bytes().decode("utf-8")
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    rng = random.Random(24)
    for _ in range(100):
        altered = list(lines)
        for _ in range(rng.randrange(1, 4)):
            at = rng.randrange(len(altered))
            line = altered[at]
            altered[at] = rng.choice(
                [
                    line[:2] + ' bban="2!n"',  # the same code again, later
                    line.lower(),
                    line[0] + line[2:],  # a one-letter prefix
                    line[:2] + "-" + line[:1] + "Z" + line[2:],  # a range
                    "Q" + line[1:],
                    "1" + line[1:],
                    line[:2],  # no properties
                    line + '\n  12 bank="x"',  # a child
                ]
            )
        registry = _numdb_read("\n".join(altered) + "\n")
        assert finance._iban_countries(registry) == _info_walk(registry)
