"""Every kind, in every language: valid, checksum-broken and in-context examples.

Values with check digits are computed or checked with python-stdnum (the reference), not
copied from the detectors; each broken value is verified here to fail its check.
"""

from __future__ import annotations

import unicodedata

import pytest
from stdnum import bic, iban, luhn
from stdnum.cn import ric
from stdnum.de import idnr
from stdnum.es import dni, nie
from stdnum.eu import vat
from stdnum.fr import nir
from stdnum.pl import nip, pesel, regon
from stdnum.us import itin, ssn
from stdnum.vn import mst

from sovra.classify import KINDS, Action, minimise, scan
from sovra.classify._terms import TERMS
from sovra.classify.special import LANGUAGES
from sovra.errors import BadRequest

# kind -> (naming word, valid value, same value with its check broken, stdnum check)
CHECKED = {
    "pl_pesel": ("PESEL", "44051401359", "44051401358", pesel.is_valid),
    "pl_nip": ("NIP", "526-104-08-28", "526-104-08-29", nip.is_valid),
    "pl_regon": ("REGON", "123456785", "123456786", regon.is_valid),
    "pl_id_card": ("dowód osobisty", "ABA300000", "ABA300001", None),
    "vn_tax_code": ("MST", "0100112437", "0100112438", mst.is_valid),
    "cn_resident_id": ("身份证号码", "11010519491231002X", "110105194912310021", ric.is_valid),
    "de_tax_id": ("Steuer-ID", "36574261809", "36574261808", idnr.is_valid),
    "de_id_card": ("Personalausweis", "T220001293", "T220001294", None),
    "fr_nir": ("NIR", "295109912611193", "295109912611194", nir.is_valid),
    "es_dni": ("DNI", "54362315K", "54362315L", dni.is_valid),
    "es_nie": ("NIE", "X2482300W", "X2482300X", nie.is_valid),
    "us_ssn": ("SSN", "536-90-4399", "000-90-4399", ssn.is_valid),
    "us_itin": ("ITIN", "912-71-1234", "912-11-1234", itin.is_valid),
    "payment_card": ("card", "4111 1111 1111 1111", "4111 1111 1111 1112", luhn.is_valid),
    "iban": (
        "IBAN",
        "PL61 1090 1014 0000 0712 1981 2874",
        "PL61 1090 1014 0000 0712 1981 2875",
        iban.is_valid,
    ),
    "vat_number": ("VAT", "PL5261040828", "PL5261040829", vat.is_valid),
    "ip_address": ("IP", "192.168.1.20", "192.168.1.300", None),
    "date_of_birth": ("", "12.03.1980", "31.02.1980", None),  # birth word per language
    "gb_nino": ("National Insurance number", "AB 12 34 56 C", "BG 12 34 56 C", None),
    "bic": ("BIC", "BPKOPLPW", "BPKOXXPW", bic.is_valid),
}

# Schemes without a check: found only next to a word that names them.
NAMED_ONLY = {
    "pl_passport": ("paszport nr", "AB1234567"),
    "vn_citizen_id": ("số CCCD", "001085012345"),
    "geo_coordinates": ("GPS", "52.2297, 21.0122"),
}

# One sentence frame per language; {word} is the naming word, {value} the value.
FRAMES = {
    "en": "The customer's {word} {value} is on file.",
    "pl": "Klient podał {word} {value} w formularzu.",
    "vi": "Khách hàng cung cấp {word} {value} trong hồ sơ.",
    "de": "Der Kunde hat {word} {value} angegeben.",
    "fr": "Le client a donné {word} {value} au guichet.",
    "es": "El cliente facilitó {word} {value} en la oficina.",
    "zh": "客户提供了{word} {value}。",
}
BIRTH = {
    "en": "born",
    "pl": "urodzona",
    "vi": "sinh ngày",
    "de": "geboren",
    "fr": "née le",
    "es": "nacida el",
    "zh": "出生日期",
}


def _cases() -> list[tuple[str, str, str, str, str]]:
    cases = []
    for kind, (word, good, bad, _) in CHECKED.items():
        for lang, frame in FRAMES.items():
            named = BIRTH[lang] if kind == "date_of_birth" else word
            cases.append((f"{kind}-{lang}", kind, frame, named, good))
            cases.append((f"{kind}-{lang}-bad", kind, frame, named, bad))
    return cases


CASES = _cases()


def test_reference_agrees_with_the_table() -> None:
    for kind, (_, good, bad, check) in CHECKED.items():
        if check is not None:
            assert check(good.replace(" ", "").replace("-", "")), kind
            assert not check(bad.replace(" ", "").replace("-", "")), kind


def test_every_kind_has_examples() -> None:
    special = set(TERMS)
    assert set(CHECKED) | set(NAMED_ONLY) | special | {"email", "phone"} == KINDS


@pytest.mark.parametrize(
    ("kind", "frame", "word", "value"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_valid_found_and_broken_checksum_not_reported(
    kind: str, frame: str, word: str, value: str
) -> None:
    text = frame.format(word=word, value=value)
    start = text.index(value)
    found = [(f.kind, f.start, f.end) for f in scan(text)]
    good = CHECKED[kind][1]
    if value == good:
        assert (kind, start, start + len(value)) in found, found
    else:
        assert kind not in {k for k, _, _ in found}, found


# Kinds reported only with their word, or whose confidence does not depend on one.
_WORD_INDEPENDENT = {"date_of_birth", "ip_address", "bic", "iban", "vat_number"}


@pytest.mark.parametrize("kind", sorted(set(CHECKED) - _WORD_INDEPENDENT))
def test_naming_word_raises_confidence(kind: str) -> None:
    word, good, _, _ = CHECKED[kind]
    bare = [f for f in scan(f"Wartość: {good}.") if f.kind == kind]
    named = [f for f in scan(f"{word} {good}.") if f.kind == kind]
    if kind == "pl_nip":
        assert bare  # the printed 3-3-2-2 form counts as naming it
    if kind in {"pl_regon", "vn_tax_code", "us_ssn", "us_itin"} and not bare:
        assert named
        return
    assert named
    assert bare
    assert named[0].confidence > bare[0].confidence


@pytest.mark.parametrize(("kind", "case"), NAMED_ONLY.items(), ids=NAMED_ONLY.keys())
def test_unchecked_schemes_need_their_word(kind: str, case: tuple[str, str]) -> None:
    word, value = case
    named = f"{word} {value}."
    found = [f for f in scan(named) if f.kind == kind]
    assert [named[f.start : f.end] for f in found] == [value]
    assert not found[0].validated
    if kind != "geo_coordinates":
        assert kind not in {f.kind for f in scan(f"Kod {value}.")}


# Special categories: a hand-written sentence per kind and language (context present)
# and the same term in impersonal prose (no context: not reported).
SPECIAL = {
    "health-en": ("She was diagnosed with diabetes last year.", "diabetes"),
    "health-pl": ("Pacjentka choruje na cukrzycę od 2015 r.", "cukrzycę"),
    "health-vi": ("Bà Lan mắc bệnh tiểu đường từ năm ngoái.", "tiểu đường"),
    "health-de": ("Der Patient leidet an Diabetes.", "Diabetes"),
    "health-fr": ("Elle est atteinte d'un cancer du sein.", "cancer"),
    "health-es": ("El paciente padece asma desde niño.", "asma"),
    "health-zh": ("他患有糖尿病。", "糖尿病"),
    "religion-en": ("He is a devout Catholic.", "Catholic"),
    "religion-pl": ("Pani Nowak jest muzułmanką.", "muzułmanką"),
    "religion-vi": ("Ông ấy là tín đồ Phật giáo.", "Phật giáo"),
    "religion-de": ("Frau Weber ist evangelisch.", "evangelisch"),
    "religion-fr": ("Il est musulman pratiquant.", "musulman"),
    "religion-es": ("Ella es católica.", "católica"),
    "religion-zh": ("她是基督徒。", "基督徒"),
    "ethnicity-en": ("The applicant is Kurdish.", "Kurdish"),
    "ethnicity-pl": ("Klient jest pochodzenia romskiego.", "pochodzenia romskiego"),
    "ethnicity-vi": ("Anh Páo là người dân tộc H'Mông.", "dân tộc H'Mông"),
    "ethnicity-de": ("Die Kundin gehört der Volksgruppe der Sinti an.", "Sinti"),
    "ethnicity-fr": ("Le salarié est d'origine kurde.", "kurde"),
    "ethnicity-es": ("La clienta es gitana.", "gitana"),
    "ethnicity-zh": ("申请人是维吾尔族。", "维吾尔族"),
    "political_opinion-en": ("My neighbour is a party member.", "party member"),
    "political_opinion-pl": ("Jan jest członkiem partii od lat.", "członkiem partii"),
    "political_opinion-vi": ("Ông Hùng là đảng viên.", "đảng viên"),
    "political_opinion-de": ("Er ist Mitglied der SPD.", "Mitglied der SPD"),
    "political_opinion-fr": ("Elle est membre du parti depuis 2010.", "membre du parti"),
    "political_opinion-es": ("Él es afiliado al partido.", "afiliado al partido"),
    "political_opinion-zh": ("他是共产党员。", "共产党员"),
    "sexual_orientation-en": ("He is gay.", "gay"),
    "sexual_orientation-pl": ("Mój brat jest gejem.", "gejem"),
    "sexual_orientation-vi": ("Anh ấy là người đồng tính.", "đồng tính"),
    "sexual_orientation-de": ("Sie ist lesbisch.", "lesbisch"),
    "sexual_orientation-fr": ("Il est homosexuel.", "homosexuel"),
    "sexual_orientation-es": ("Ella es bisexual.", "bisexual"),
    "sexual_orientation-zh": ("他是同性恋。", "同性恋"),
    "biometric-en": ("Her fingerprint template is stored.", "fingerprint"),
    "biometric-pl": ("Pobrano odciski palców pracownika.", "odciski palców"),
    "biometric-vi": ("Nhân viên đã đăng ký vân tay.", "vân tay"),
    "biometric-de": ("Sein Fingerabdruck wurde gespeichert.", "Fingerabdruck"),
    "biometric-fr": ("Son empreinte digitale est enregistrée.", "empreinte digitale"),
    "biometric-es": ("Su huella dactilar fue registrada.", "huella dactilar"),
    "biometric-zh": ("员工的指纹已录入。", "指纹"),
    "genetic-en": ("The patient's genetic test found BRCA1.", "genetic test"),
    "genetic-pl": ("Wynik: badanie genetyczne pacjenta.", "badanie genetyczne"),
    "genetic-vi": ("Kết quả xét nghiệm gen của bệnh nhân.", "xét nghiệm gen"),
    "genetic-de": ("Der Gentest des Patienten war positiv.", "Gentest"),
    "genetic-fr": ("Le test génétique du patient est positif.", "test génétique"),
    "genetic-es": ("La prueba genética del paciente fue positiva.", "prueba genética"),
    "genetic-zh": ("患者的基因检测结果。", "基因检测"),
}

IMPERSONAL = {
    "en": "Cancer research funding rose in 2020.",
    "pl": "Ministerstwo finansuje badania nad cukrzycą.",
    "vi": "Hội thảo về bệnh tiểu đường diễn ra tại Hà Nội.",
    "de": "Die Konferenz über Diabetes beginnt morgen.",
    "fr": "La conférence sur le diabète commence demain.",
    "es": "La conferencia sobre diabetes empieza mañana.",
    "zh": "糖尿病研究会议明天开始。",
}


@pytest.mark.parametrize(("text", "value"), SPECIAL.values(), ids=SPECIAL.keys())
def test_special_category_in_context(text: str, value: str, request: pytest.FixtureRequest) -> None:
    kind = request.node.callspec.id.rsplit("-", 1)[0]
    found = [(f.kind, text[f.start : f.end]) for f in scan(text)]
    assert (kind, value) in found, found


@pytest.mark.parametrize("name", list(SPECIAL))
def test_special_category_found_with_its_language_only(name: str) -> None:
    text, value = SPECIAL[name]
    lang = name.rsplit("-", 1)[1]
    assert value in [text[f.start : f.end] for f in scan(text, lang=lang)]


@pytest.mark.parametrize("text", IMPERSONAL.values(), ids=IMPERSONAL.keys())
def test_special_category_without_a_person_is_not_reported(text: str) -> None:
    assert [f for f in scan(text) if f.kind in TERMS] == []


def test_decomposed_vietnamese_found_with_original_spans() -> None:
    text = unicodedata.normalize("NFD", "Bà Lan mắc bệnh tiểu đường.")
    value = unicodedata.normalize("NFD", "tiểu đường")
    (finding,) = scan(text)
    assert text[finding.start : finding.end] == value


def test_fullwidth_identifier_found() -> None:
    wide = "".join(chr(0xFF10 + int(d)) for d in "36574261809")
    text = f"Steuer-ID\uff1a{wide}\u3002"
    (finding,) = scan(text)
    assert (finding.kind, text[finding.start : finding.end]) == ("de_tax_id", wide)


def test_unknown_language_is_refused() -> None:
    with pytest.raises(BadRequest, match="unknown language 'xx'"):
        scan("tekst", lang="xx")


@pytest.mark.parametrize("lang", ["auto", *LANGUAGES])
def test_every_language_code_is_accepted(lang: str) -> None:
    assert scan("PESEL 44051401359", lang=lang)[0].kind == "pl_pesel"


NOT_PERSONAL = {
    "ipv4_version": "wersja 1.2.3.4 jest dostępna",
    "loopback": "serwer na 127.0.0.1",
    "time": "spotkanie o 10:30:00",
    "coarse_coordinates": "Warszawa leży na 52.2, 21.0",
    "invoice_date": "Faktura z dnia 12.03.2020",
    "price": "Cena 1 299,99 zł",
    "order_number": "Zamówienie nr 2020/11/0345",
    "isbn": "ISBN 978-83-01-00000-1",
    "bic_shape_without_word": "HELLOWORLD and BPKOPLPW",
}


@pytest.mark.parametrize("text", NOT_PERSONAL.values(), ids=NOT_PERSONAL.keys())
def test_look_alikes_are_not_reported(text: str) -> None:
    assert scan(text) == []


def _example(kind: str) -> tuple[str, str]:
    if kind in CHECKED:
        word, good, _, _ = CHECKED[kind]
        word = BIRTH["en"] if kind == "date_of_birth" else word
        return FRAMES["en"].format(word=word, value=good), good
    if kind in NAMED_ONLY:
        word, value = NAMED_ONLY[kind]
        return f"{word} {value}.", value
    if kind in TERMS:
        return SPECIAL[f"{kind}-en"]
    return {
        "email": ("mail: jan@firma.pl", "jan@firma.pl"),
        "phone": ("tel. +48 601 234 567", "+48 601 234 567"),
    }[kind]


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_refuse_names_the_kind_never_the_value(kind: str) -> None:
    text, value = _example(kind)
    with pytest.raises(BadRequest) as caught:
        minimise(text, scan(text), {kind: Action.REFUSE}, default=Action.REDACT)
    message = caught.value.diagnostics()
    assert kind in message
    assert value not in message


def test_a_validator_that_raises_is_a_rejection() -> None:
    # stdnum.cn.ric raises KeyError (not a validation error) for this number, whose
    # region code its database lists without counties; the scan must not crash on it.
    number = "420592704506040690"
    with pytest.raises(KeyError):
        ric.is_valid(number)
    assert [f.kind for f in scan(f"身份证 {number}")] == []


# name -> (text, kind, value): shapes beyond the table above.
SHAPES = {
    "ipv6": ("addr 2001:db8::8a2e:370:7334.", "ip_address", "2001:db8::8a2e:370:7334"),
    "ipv4_after_a_number": ("pokój 1 192.168.1.20 dziś", "ip_address", "192.168.1.20"),
    "dms": ("GPS 52°13'47\"N 21°00'42\"E", "geo_coordinates", "52°13'47\"N 21°00'42\"E"),
    "negative_coordinates": ("at -33.8688, 151.2093 now", "geo_coordinates", "-33.8688, 151.2093"),
    "de_landline_area_code": ("Telefon 06947 897435.", "phone", "06947 897435"),
    "fr_national": ("Tél. 01 42 68 53 00", "phone", "01 42 68 53 00"),
    "nir_printed": ("NIR 2 95 10 99 126 111 93", "fr_nir", "2 95 10 99 126 111 93"),
    "vat_spaced": ("TVA FR 40 303 265 045.", "vat_number", "FR 40 303 265 045"),
    "birth_vi_words": (
        "sinh ngày 12 tháng 3 năm 1980",
        "date_of_birth",
        "ngày 12 tháng 3 năm 1980",
    ),
    "birth_zh": ("出生于1980年3月12日", "date_of_birth", "1980年3月12日"),
    "birth_de_month": ("geboren am 12. März 1980", "date_of_birth", "12. März 1980"),
}


@pytest.mark.parametrize(("text", "kind", "value"), SHAPES.values(), ids=SHAPES.keys())
def test_other_printed_shapes(text: str, kind: str, value: str) -> None:
    assert (kind, value) in [(f.kind, text[f.start : f.end]) for f in scan(text)]


def test_two_long_numbers_are_two_candidates() -> None:
    text = "601234567 44051401359"
    assert [(f.kind, text[f.start : f.end]) for f in scan(text)] == [
        ("phone", "601234567"),
        ("pl_pesel", "44051401359"),
    ]
