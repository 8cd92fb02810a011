"""E-mail and phone detection in Polish, Vietnamese, German, English, French, Spanish and
Chinese text."""

from __future__ import annotations

import phonenumbers
import pytest

from sovra.classify import contact, scan

# name -> (text, the one address that must be found)
EMAILS = {
    "pl_sentence_end": ("Napisz do mnie: jan.kowalski@firma.pl.", "jan.kowalski@firma.pl"),
    "vi_subdomain": (
        "Email của tôi: nguyen.van.a@congty.com.vn, cảm ơn.",
        "nguyen.van.a@congty.com.vn",
    ),
    "angle_brackets_plus": ("Od: <ania+zamowienia@example.org>", "ania+zamowienia@example.org"),
    "mailto": ("mailto:x@y.io", "x@y.io"),
    "unicode_mailbox": ("Kontakt: łukasz@żółw.pl", "łukasz@żółw.pl"),
    "idna_tld": ("pisz: jan@xn--p1ai.xn--p1ai", "jan@xn--p1ai.xn--p1ai"),
    "leading_dot_is_punctuation": ("...jan@x.pl", "jan@x.pl"),
    "quoted": ("napisz na 'jan@x.pl'", "jan@x.pl"),
    "leading_plus_kept": ("+48601234567@sms.example.pl", "+48601234567@sms.example.pl"),
    "cjk_before": ("邮箱wang@example.cn", "wang@example.cn"),
    "cjk_after": ("发到wang_wei@example.cn邮箱。", "wang_wei@example.cn"),
    "hangul_around": ("메일kim@example.kr입니다", "kim@example.kr"),
    "local_part_64": ("x" * 64 + "@a.pl", "x" * 64 + "@a.pl"),
}

NOT_EMAILS = {
    "version_numbers": "wersja 1.5@2.0",
    "no_tld": "jan@localhost",
    "double_dot": "a..b@x.pl",
    "no_local_part": "@firma.pl",
    "no_domain": "jan@ to ja",
    "local_part_65": "x" * 65 + "@a.pl",
    "digit_after_tld": "jan@firma.pl1",
    "hyphen_ends_label": "jan@firma-.pl",
    "dot_before_at": "jan.@x.pl",
}

# name -> (language, text, the one address that must be found): French and Spanish
# prose, with the words that introduce an address there and diacritics in the mailbox.
EMAILS_FR_ES = {
    "fr_courriel": ("fr", "Courriel : marie.dupont@exemple.fr, merci.", "marie.dupont@exemple.fr"),
    "fr_adresse_electronique": (
        "fr",
        "Son adresse électronique est élodie.leclerc@mairie-lyon.fr.",
        "élodie.leclerc@mairie-lyon.fr",
    ),
    "fr_accented_mailbox": (
        "fr",
        "Écrivez à françois.lefèvre@société.fr avant vendredi.",
        "françois.lefèvre@société.fr",
    ),
    "fr_guillemets": ("fr", "Le mél « contact@assoc.fr » ne répond plus.", "contact@assoc.fr"),
    "es_correo_electronico": (
        "es",
        "Correo electrónico: josé.garcía@empresa.es",
        "josé.garcía@empresa.es",
    ),
    "es_enye": (
        "es",
        "Escriba a begoña.núñez@correo.com.es, gracias.",
        "begoña.núñez@correo.com.es",
    ),
    "es_inverted_question": (
        "es",
        "¿Recibió el correo de info@ayuntamiento.es?",
        "info@ayuntamiento.es",
    ),
    "es_parentheses": (
        "es",
        "Contacto (correo: soporte+pedidos@tienda.es).",
        "soporte+pedidos@tienda.es",
    ),
}

# name -> text in French or Spanish where something looks like an address but is not one.
NOT_EMAILS_FR_ES = {
    "fr_no_domain": "Courriel : jean.dupont@ (à compléter)",
    "fr_double_dot": "Courriel : jean..dupont@exemple.fr",
    "fr_no_tld": "adresse électronique : admin@serveur",
    "es_spaces_around_at": "Correo electrónico: juan @ empresa.es",
    "es_dot_before_at": "correo: maría.@empresa.es",
    "es_numeric_tld": "correo electrónico pedro@empresa.123",
}

# name -> (text, the one number that must be found, region to parse it in as reference)
PHONES = {
    "pl_international": ("Mój PESEL to..., tel. +48 601 234 567", "+48 601 234 567", None),
    "pl_national_mobile": ("Zadzwoń: 601 234 567 po 17:00", "601 234 567", "PL"),
    "pl_landline_idd": ("tel. 0048 22 123 45 67", "0048 22 123 45 67", "PL"),
    "vi_national": ("Số điện thoại: 0912 345 678", "0912 345 678", "VN"),
    "vi_international": ("SĐT +84 912 345 678 (Zalo)", "+84 912 345 678", None),
    "vi_landline": ("Gọi +84 28 3823 4567", "+84 28 3823 4567", None),
    "de_national": ("Ruf an: 030 12345678", "030 12345678", "DE"),
    "us_national": ("call (201) 555-0123 today", "(201) 555-0123", "US"),
    "cn_national": ("电话 138 0013 8000", "138 0013 8000", "CN"),
    "possible_but_unassigned": ("numer +48 100 000 000", "+48 100 000 000", None),
}

NOT_PHONES = {
    "years_and_counts": "W roku 2020 było 1500 osób.",
    "date": "Spotkanie 2020-11-03 o 10:30",
    "isbn": "ISBN 978-83-01-00000-1",
    "issue_and_pages": "Nr 12/2020, str. 33-45",
    "vi_prices": "Giá 150.000 đồng, giảm 20%",
}


@pytest.mark.parametrize(("text", "value"), EMAILS.values(), ids=EMAILS.keys())
def test_email_found_with_exact_span(text: str, value: str) -> None:
    found = list(contact.detect_emails(text))
    assert [text[f.start : f.end] for f in found] == [value]


@pytest.mark.parametrize("text", NOT_EMAILS.values(), ids=NOT_EMAILS.keys())
def test_not_an_email(text: str) -> None:
    assert list(contact.detect_emails(text)) == []


@pytest.mark.parametrize(("lang", "text", "value"), EMAILS_FR_ES.values(), ids=EMAILS_FR_ES.keys())
def test_email_in_french_and_spanish(lang: str, text: str, value: str) -> None:
    found = scan(text)
    assert [(f.kind, text[f.start : f.end]) for f in found] == [("email", value)]
    assert found[0].validated
    assert scan(text, lang=lang) == found  # addresses are found in any language


@pytest.mark.parametrize("text", NOT_EMAILS_FR_ES.values(), ids=NOT_EMAILS_FR_ES.keys())
def test_not_an_email_in_french_and_spanish(text: str) -> None:
    assert [f for f in scan(text) if f.kind == "email"] == []
    assert list(contact.detect_emails(text)) == []


@pytest.mark.parametrize(("text", "value", "region"), PHONES.values(), ids=PHONES.keys())
def test_phone_found_with_exact_span(text: str, value: str, region: str | None) -> None:
    found = [f for f in scan(text) if f.kind == "phone"]
    assert [text[f.start : f.end] for f in found] == [value]
    # Independent reference: the validated flag is phonenumbers' own verdict.
    reference = phonenumbers.is_valid_number(phonenumbers.parse(value, region))
    assert found[0].validated is reference


@pytest.mark.parametrize("text", NOT_PHONES.values(), ids=NOT_PHONES.keys())
def test_not_a_phone(text: str) -> None:
    assert [f for f in scan(text) if f.kind == "phone"] == []


def test_international_form_is_more_confident_than_national() -> None:
    (international,) = contact.detect_phones("tel. +48 601 234 567")
    (national,) = contact.detect_phones("tel. 601 234 567")
    assert international.confidence > national.confidence


def test_number_valid_in_several_regions_reported_once() -> None:
    text = "tel. 22 123 45 67"  # a valid landline in both Poland and Germany
    assert phonenumbers.is_valid_number(phonenumbers.parse("22 123 45 67", "PL"))
    assert phonenumbers.is_valid_number(phonenumbers.parse("22 123 45 67", "DE"))
    assert [text[f.start : f.end] for f in contact.detect_phones(text)] == ["22 123 45 67"]


def test_several_contacts_in_order() -> None:
    text = (
        "Ania: ania@firma.pl, +48 601 234 567; Bình: binh@congty.vn, +84 912 345 678; "
        "Hans: +49 30 12345678"
    )
    found = scan(text)
    assert [(f.kind, text[f.start : f.end]) for f in found] == [
        ("email", "ania@firma.pl"),
        ("phone", "+48 601 234 567"),
        ("email", "binh@congty.vn"),
        ("phone", "+84 912 345 678"),
        ("phone", "+49 30 12345678"),
    ]
