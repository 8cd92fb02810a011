"""The restated library steps are used only on the library versions they were tested on.

``_plans`` restates phonenumbers' steps and ``ids`` and ``finance`` python-stdnum's; the
other classify tests hold them to the libraries' answers on the installed versions. The
first test here fails as soon as either library moves, so those tests are run again
before the record moves; the others pretend a library moved (by changing the recorded
version, never the library) and check that the scanner then asks the library itself and
finds exactly what it finds on the tested version.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator

import phonenumbers
import pytest
from stdnum import iban
from stdnum.cn import ric
from stdnum.de import idnr
from stdnum.es import dni, nie
from stdnum.fr import nir
from stdnum.pl import nip, pesel, regon
from stdnum.us import itin, ssn
from stdnum.vn import mst

from sovra.classify import _libraries, _plans, finance, ids, scan

# A scheme's module, the digits before its check, and the check characters to try.
_SCHEMES = [
    (pesel, 10, "0123456789", "PESEL"),
    (idnr, 10, "0123456789", "Steuer-ID"),
    (nip, 9, "0123456789", "NIP"),
    (regon, 8, "0123456789", "REGON"),
    (mst, 9, "0123456789", "mã số thuế"),
    (ric, 17, "0123456789X", "身份证"),
    (ssn, 9, "", "SSN"),
    (itin, 9, "", "ITIN"),
]


def _valid_numbers(rng: random.Random) -> list[tuple[str, str]]:
    """(naming word, number) of every scheme: each found by completing random digits,
    valid by the library's own ``is_valid``, and a near miss beside each."""
    found = []
    for module, length, checks, word in _SCHEMES:
        made = 0
        for _ in range(3000):
            body = "".join(rng.choice("0123456789") for _ in range(length))
            if module is ric:  # a real region and a birth date, so some complete
                body = rng.choice(["110101", "310104", "440305"]) + "19850317" + body[14:]
            if module is itin:
                body = "9" + body[1:3] + rng.choice(["70", "88", "90", "99"]) + body[5:]
            candidates = [body + c for c in checks] if checks else [body]
            valid = [c for c in candidates if module.is_valid(c)]
            if valid:
                found.append((word, valid[0]))
                found.append((word, valid[0][:-1] + ("1" if valid[0][-1] != "1" else "2")))
                made += 1
            if made == 6:
                break
    for _ in range(6):  # FR NIR: two check digits
        body = rng.choice("12") + "".join(rng.choice("0123456789") for _ in range(12))
        found.append(("NIR", body + nir.calc_check_digits(body)))
    for _ in range(6):
        body = "".join(rng.choice("0123456789") for _ in range(8))
        found.append(("DNI", body + dni.calc_check_digit(body)))
        digits = rng.choice("XYZ") + body[:7]
        found.append(("NIE", digits + nie.calc_check_digit(digits)))
    for _ in range(6):
        bban = "".join(rng.choice("0123456789") for _ in range(24))
        found.append(("IBAN", "PL" + iban.calc_check_digits("PL00" + bban) + bban))
    found += [("VAT", "PL5260250274"), ("VAT", "DE136695976"), ("VAT", "PL5260250275")]
    return found


def _phone_numbers() -> list[str]:
    """Every region's example numbers, printed nationally and internationally."""
    out = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS)[::3]:
        number = phonenumbers.example_number(region)
        if number is None:
            continue
        out.append(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL))
        out.append(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL))
    return out


def _texts() -> list[str]:
    rng = random.Random(13)
    numbers = _valid_numbers(rng)
    texts = [f"Dane klienta: {word} {number}." for word, number in numbers]
    texts += [f"{number} / {number[:3]}-{number[3:5]}-{number[5:]}" for _, number in numbers]
    texts += [f"tel. {p}, kontakt pilny" for p in _phone_numbers()]
    texts.append(" ".join(f"{w} {n}" for w, n in numbers))
    return texts


@pytest.fixture
def moved(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Change recorded versions with the returned monkeypatch; afterwards the scanner is
    back on the installed versions' restated steps."""
    monkeypatch.setattr(_libraries, "_warned", set())
    yield monkeypatch
    monkeypatch.undo()
    _libraries.check()


def test_the_installed_libraries_are_the_tested_ones() -> None:
    # Failing here means a library moved: run tests/classify against the new version
    # (they compare every restated step with it), then record it in _libraries.TESTED.
    for distribution, tested in _libraries.TESTED.items():
        assert _libraries.installed(distribution) == tested, distribution
    assert _plans.parse is _plans._parse
    assert finance._is_iban is finance._IS_IBAN_RESTATED
    assert ids._BY_LENGTH == ids._RESTATED_BY_LENGTH


def test_a_moved_phonenumbers_is_asked_itself(
    moved: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    texts = _texts()
    restated = [scan(t) for t in texts]
    moved.setitem(_libraries.TESTED, "phonenumbers", "0.0.1")
    with caplog.at_level(logging.WARNING, logger="sovra.classify"):
        _libraries.check()
        _libraries.check()
    warnings = [r for r in caplog.records if "phonenumbers" in r.getMessage()]
    assert len(warnings) == 1, caplog.text  # once, however often the check runs
    assert "tested against 0.0.1" in warnings[0].getMessage()
    assert _plans.parse is _plans._parse_slowly  # the library's own parse
    for raw in _phone_numbers():
        for region in (None, "PL", "US", "DE", "VN"):
            try:
                number = phonenumbers.parse(raw, region)
            except phonenumbers.NumberParseException:
                assert _plans.parse(raw, region) is None
                continue
            code, nsn = number.country_code, phonenumbers.national_significant_number(number)
            assert _plans.parse(raw, region) == (code, nsn)
            assert _plans.possible(code, nsn) == phonenumbers.is_possible_number(number)
            assert _plans.valid(code, nsn) == phonenumbers.is_valid_number(number)
            assert _plans.valid_for_region(code, nsn, "PL") == (
                phonenumbers.is_valid_number_for_region(number, "PL")
            )
    assert [scan(t) for t in texts] == restated


def test_a_moved_stdnum_is_asked_itself(
    moved: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    texts = _texts()
    restated = [scan(t) for t in texts]
    assert sum(f.kind not in ("phone", "iban", "vat_number") for r in restated for f in r) > 40
    moved.setitem(_libraries.TESTED, "python-stdnum", "0.1")
    with caplog.at_level(logging.WARNING, logger="sovra.classify"):
        _libraries.check()
    assert "python-stdnum 2.2 is installed" in caplog.text
    assert caplog.text.count("python-stdnum") == 2  # one warning, naming it twice
    # Every scheme whose steps are restated is now checked by stdnum's is_valid.
    checks = {s.kind: s.check for group in ids._BY_LENGTH.values() for s in group}
    assert checks["pl_pesel"].args == (pesel.is_valid,)  # type: ignore[attr-defined]
    assert checks["us_ssn"].args == (ssn.is_valid,)  # type: ignore[attr-defined]
    assert ids._ALNUM_CHECKS["es_nie"][0].args == (nie.is_valid,)  # type: ignore[attr-defined]
    assert finance._is_iban is finance._is_iban_by_stdnum
    assert [scan(t) for t in texts] == restated
