"""A labelled multilingual corpus for scanner evaluation, generated from a seed.

Documents are built from sentence templates in seven languages, filled with values that
Faker (in the language's locale) or python-stdnum generate, and each filled slot is a
labelled span. Two template sets exist, ``dev`` and ``test``: different sentences,
different wording, and the caller uses different seeds for each, so nothing tuned on the
development split has seen the test split's sentences or values.

Template syntax:
    ``{kind}``         a generated value of that kind, labelled with it;
    ``{neg:what}``     a generated look-alike (a broken checksum, a price, an order
                       number, a date that is not a birth date), not labelled;
    ``{name}``, ``{city}``, ``{company}``  Faker filler, not labelled;
    ``[[kind|text]]``  literal text labelled with a kind (special categories).
"""

from __future__ import annotations

import datetime
import random
import re
import string
from dataclasses import dataclass, field

from faker import Faker
from stdnum import iban as std_iban
from stdnum import luhn
from stdnum.cn import ric
from stdnum.de import idnr
from stdnum.es import dni, nie
from stdnum.eu import vat
from stdnum.fr import nir
from stdnum.pl import nip, pesel, regon
from stdnum.us import itin, ssn
from stdnum.vn import mst

LOCALES = {
    "en": "en_US",
    "pl": "pl_PL",
    "vi": "vi_VN",
    "de": "de_DE",
    "fr": "fr_FR",
    "es": "es_ES",
    "zh": "zh_CN",
}


@dataclass
class Document:
    lang: str
    text: str
    labels: list[tuple[str, int, int]] = field(default_factory=list)


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


def _until(rng: random.Random, make, check) -> str:  # type: ignore[no-untyped-def]
    for _ in range(10_000):
        value = make(rng)
        try:
            valid = check(value)
        except KeyError:  # stdnum.cn.ric, for a region its database lists without counties
            valid = False
        if valid:
            return value
    raise RuntimeError("no valid value generated")


def _break(rng: random.Random, value: str, check) -> str:  # type: ignore[no-untyped-def]
    """The value with one digit changed so that its check fails."""
    positions = [i for i, c in enumerate(value) if c.isdigit()]
    for _ in range(100):
        i = rng.choice(positions)
        broken = value[:i] + str((int(value[i]) + rng.randrange(1, 10)) % 10) + value[i + 1 :]
        if not check(re.sub(r"[ .-]", "", broken)):
            return broken
    return value[:-1] + ("0" if value[-1] != "0" else "1")


def _icao(body: str) -> str:
    weights = (7, 3, 1)
    return str(sum(int(c, 36) * weights[i % 3] for i, c in enumerate(body)) % 10)


class Values:
    """Generators of labelled values and negatives for one language."""

    def __init__(self, lang: str, seed: int) -> None:
        self.lang = lang
        self.rng = random.Random(seed)
        self.fake = Faker(LOCALES[lang])
        self.fake.seed_instance(seed)

    # -- identifiers -----------------------------------------------------------------

    def pl_pesel(self) -> str:
        birth = self.fake.date_of_birth(minimum_age=1, maximum_age=95)
        offset = {19: 0, 20: 20}[birth.year // 100]
        body = f"{birth.year % 100:02d}{birth.month + offset:02d}{birth.day:02d}"
        body += _digits(self.rng, 4)
        return body + pesel.calc_check_digit(body)

    def pl_nip(self) -> str:
        n = _until(self.rng, lambda r: _digits(r, 10), nip.is_valid)
        return f"{n[:3]}-{n[3:6]}-{n[6:8]}-{n[8:]}" if self.rng.random() < 0.5 else n

    def pl_regon(self) -> str:
        return _until(self.rng, lambda r: _digits(r, 9), regon.is_valid)

    def pl_id_card(self) -> str:
        letters = "".join(self.rng.choice(string.ascii_uppercase) for _ in range(3))
        rest = _digits(self.rng, 5)
        weights = (7, 3, 1, 7, 3, 1, 7, 3)
        chars = letters + rest
        total = sum(int(c, 36) * w for c, w in zip(chars, weights, strict=True))
        return letters + str(total % 10) + rest

    def pl_passport(self) -> str:
        letters = "".join(self.rng.choice(string.ascii_uppercase) for _ in range(2))
        return letters + _digits(self.rng, 7)

    def vn_citizen_id(self) -> str:
        return f"{self.rng.randrange(1, 97):03d}{self.rng.randrange(4)}{_digits(self.rng, 8)}"

    def vn_tax_code(self) -> str:
        return _until(
            self.rng, lambda r: (b := _digits(r, 9)) + mst.calc_check_digit(b), mst.is_valid
        )

    def cn_resident_id(self) -> str:
        return _until(self.rng, lambda r: self.fake.ssn(), ric.is_valid)

    def de_tax_id(self) -> str:
        return _until(self.rng, lambda r: str(r.randrange(1, 10)) + _digits(r, 10), idnr.is_valid)

    def de_id_card(self) -> str:
        alphabet = "CFGHJKLMNPRTVWXYZ0123456789"
        body = self.rng.choice("CFGHJKLMNPRTVWXYZ") + "".join(
            self.rng.choice(alphabet) for _ in range(8)
        )
        return body + _icao(body)

    def fr_nir(self) -> str:
        body = f"{self.rng.randrange(1, 3)}{self.rng.randrange(100):02d}"
        body += f"{self.rng.randrange(1, 13):02d}{self.rng.randrange(1, 96):02d}"
        body += _digits(self.rng, 6)
        number = body + nir.calc_check_digits(body)
        if self.rng.random() < 0.5:
            return number
        return " ".join(
            (
                number[0],
                number[1:3],
                number[3:5],
                number[5:7],
                number[7:10],
                number[10:13],
                number[13:],
            )
        )

    def es_dni(self) -> str:
        body = _digits(self.rng, 8)
        return body + dni.calc_check_digit(body)

    def es_nie(self) -> str:
        return _until(self.rng, lambda r: self.fake.nie(), nie.is_valid)

    def us_ssn(self) -> str:
        return _until(self.rng, lambda r: self.fake.ssn(), ssn.is_valid)

    def us_itin(self) -> str:
        return _until(self.rng, lambda r: self.fake.itin(), itin.is_valid)

    def gb_nino(self) -> str:
        first = self.rng.choice("ABCEGHJKLMNOPRSTWXYZ")
        second = self.rng.choice("ABCEGHJKLMNPRSTWXYZ")
        while first + second in {"BG", "GB", "NK", "KN", "TN", "NT", "ZZ"}:
            second = self.rng.choice("ABCEGHJKLMNPRSTWXYZ")
        d = _digits(self.rng, 6)
        suffix = self.rng.choice("ABCD")
        if self.rng.random() < 0.5:
            return f"{first}{second} {d[:2]} {d[2:4]} {d[4:]} {suffix}"
        return f"{first}{second}{d}{suffix}"

    # -- finance ----------------------------------------------------------------------

    def iban(self) -> str:
        number = _until(self.rng, lambda r: self.fake.iban(), std_iban.is_valid)
        if self.rng.random() < 0.5:
            return " ".join(number[i : i + 4] for i in range(0, len(number), 4))
        return number

    def payment_card(self) -> str:
        number = _until(self.rng, lambda r: self.fake.credit_card_number(), luhn.is_valid)
        if len(number) == 16 and self.rng.random() < 0.5:
            return " ".join(number[i : i + 4] for i in range(0, 16, 4))
        return number

    def vat_number(self) -> str:
        country = self.rng.choice(["PL", "DE", "FR", "ES"])
        if country == "PL":
            return "PL" + _until(self.rng, lambda r: _digits(r, 10), nip.is_valid)
        if country == "DE":
            return _until(self.rng, lambda r: "DE" + _digits(r, 9), vat.is_valid)
        if country == "FR":
            return _until(self.rng, lambda r: "FR" + _digits(r, 11), vat.is_valid)
        return "ES" + self.es_dni()

    def bic(self) -> str:
        bank = "".join(self.rng.choice(string.ascii_uppercase) for _ in range(4))
        country = self.rng.choice(["PL", "DE", "FR", "ES", "VN", "CN", "US", "GB"])
        loc = "".join(self.rng.choice(string.ascii_uppercase + string.digits) for _ in range(2))
        branch = "" if self.rng.random() < 0.6 else _digits(self.rng, 3)
        return bank + country + loc + branch

    # -- contact, network, location, dates ---------------------------------------------

    def email(self) -> str:
        return str(self.fake.email())

    def phone(self) -> str:
        return str(self.fake.phone_number()).split("x")[0].strip()

    def ip_address(self) -> str:
        return str(self.fake.ipv4_public() if self.rng.random() < 0.75 else self.fake.ipv6())

    def geo_coordinates(self) -> str:
        lat = float(self.fake.latitude())
        lon = float(self.fake.longitude())
        if self.rng.random() < 0.8:
            return f"{lat:.{self.rng.randrange(4, 7)}f}, {lon:.{self.rng.randrange(4, 7)}f}"

        def dms(value: float, pos: str, neg: str) -> str:
            hemi = pos if value >= 0 else neg
            value = abs(value)
            d = int(value)
            m = int((value - d) * 60)
            s = int(((value - d) * 60 - m) * 60)
            return f"{d}°{m:02d}'{s:02d}\"{hemi}"

        return f"{dms(lat, 'N', 'S')} {dms(lon, 'E', 'W')}"

    def date_of_birth(self) -> str:
        d = self.fake.date_of_birth(minimum_age=18, maximum_age=90)
        return self._date(d)

    def _date(self, d: datetime.date) -> str:
        months = {
            "en": "January February March April May June July August September October "
            "November December",
            "pl": "stycznia lutego marca kwietnia maja czerwca lipca sierpnia września "
            "października listopada grudnia",
            "de": "Januar Februar März April Mai Juni Juli August September Oktober November "
            "Dezember",
            "fr": "janvier février mars avril mai juin juillet août septembre octobre novembre "
            "décembre",
            "es": "enero febrero marzo abril mayo junio julio agosto septiembre octubre "
            "noviembre diciembre",
        }
        style = self.rng.random()
        if self.lang == "zh":
            return f"{d.year}年{d.month}月{d.day}日" if style < 0.7 else d.isoformat()
        if self.lang == "vi":
            return (
                f"{d.day:02d}/{d.month:02d}/{d.year}"
                if style < 0.6
                else (f"ngày {d.day} tháng {d.month} năm {d.year}")
            )
        if style < 0.4:
            sep = {"pl": ".", "de": ".", "en": "/", "fr": "/", "es": "/"}[self.lang]
            return f"{d.day:02d}{sep}{d.month:02d}{sep}{d.year}"
        if style < 0.55:
            return d.isoformat()
        name = months[self.lang].split()[d.month - 1]
        if self.lang == "en":
            return f"{name} {d.day}, {d.year}"
        if self.lang == "de":
            return f"{d.day}. {name} {d.year}"
        if self.lang == "es":
            return f"{d.day} de {name} de {d.year}"
        return f"{d.day} {name} {d.year}"

    # -- look-alikes ---------------------------------------------------------------------

    def negative(self, what: str) -> str:
        rng = self.rng
        if what == "pesel":
            return _break(rng, self.pl_pesel(), pesel.is_valid)
        if what == "card":
            return _break(rng, self.payment_card(), luhn.is_valid)
        if what == "iban":
            return _break(rng, self.iban(), std_iban.is_valid)
        if what == "nir":
            return _break(rng, self.fr_nir(), nir.is_valid)
        if what == "ric":
            return _break(rng, self.cn_resident_id(), ric.is_valid)
        if what == "idnr":
            return _break(rng, self.de_tax_id(), idnr.is_valid)
        if what == "dni":
            value = self.es_dni()
            return value[:-1] + next(c for c in "TRWAGMYFPDXBNJZSQVHLCKE" if c != value[-1])
        if what == "order":
            return f"{rng.randrange(10**5, 10**7)}"
        if what == "price":
            return f"{rng.randrange(10, 99_999):,}".replace(",", " ") + f",{rng.randrange(100):02d}"
        if what == "date":
            return self._date(self.fake.date_between(start_date="-5y", end_date="today"))
        if what == "year":
            return str(rng.randrange(1990, 2026))
        if what == "amount":
            return f"{rng.randrange(1, 999)}.{rng.randrange(1000):03d}"
        if what == "version":
            return (
                f"{rng.randrange(1, 9)}.{rng.randrange(10)}.{rng.randrange(10)}.{rng.randrange(10)}"
            )
        raise KeyError(what)

    def filler(self, what: str) -> str:
        if what == "name":
            return str(self.fake.name())
        if what == "city":
            return str(self.fake.city())
        return str(self.fake.company())


_SLOT = re.compile(r"\{(neg:)?([a-z_0-9]+)\}|\[\[([a-z_]+)\|([^\]]+)\]\]")
_FILLERS = frozenset({"name", "city", "company"})


def fill(template: str, values: Values) -> tuple[str, list[tuple[str, int, int]]]:
    """Fill one template; return the text and its labelled spans."""
    out: list[str] = []
    labels: list[tuple[str, int, int]] = []
    cursor = 0
    length = 0
    for match in _SLOT.finditer(template):
        literal = template[cursor : match.start()]
        out.append(literal)
        length += len(literal)
        if match.group(3):
            kind, value = match.group(3), match.group(4)
            labels.append((kind, length, length + len(value)))
        elif match.group(1):
            value = values.negative(match.group(2))
        elif match.group(2) in _FILLERS:
            value = values.filler(match.group(2))
        else:
            kind = match.group(2)
            value = getattr(values, kind)()
            labels.append((kind, length, length + len(value)))
        out.append(value)
        length += len(value)
        cursor = match.end()
    out.append(template[cursor:])
    return "".join(out), labels


def documents(
    split: str, seed: int, per_language: int, templates: dict[str, dict[str, list[str]]]
) -> list[Document]:
    """*per_language* documents per language, each of three to five sentences."""
    docs: list[Document] = []
    for lang_index, lang in enumerate(LOCALES):
        # Some Faker providers (es_ES nie) draw from the global generator, not the
        # instance's: seed that too, or the corpus differs from run to run.
        random.seed(seed * 100 + lang_index)
        values = Values(lang, seed * 100 + lang_index)
        pool = templates[split][lang]
        for _ in range(per_language):
            doc = Document(lang, "")
            pieces: list[str] = []
            length = 0
            for template in values.rng.sample(pool, k=min(len(pool), values.rng.randrange(3, 6))):
                text, labels = fill(template, values)
                doc.labels += [(k, s + length, e + length) for k, s, e in labels]
                pieces.append(text)
                length += len(text) + 1
            doc.text = " ".join(pieces)
            docs.append(doc)
    return docs
