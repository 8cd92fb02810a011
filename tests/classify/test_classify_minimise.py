"""Minimisation: redact, tokenize, refuse and keep, and what the result may reveal."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import re

import pytest

from sovra.classify import KINDS, Action, Minimised, minimise, scan
from sovra.classify.minimise import MIN_TOKEN_KEY_BYTES, token_for
from sovra.errors import BadRequest
from sovra.model import Finding

KEY_A = bytes(range(32))
KEY_B = bytes(range(1, 33))
TOKEN = re.compile(r"\[TOKEN:(?P<kind>[a-z_]+):(?P<hex>[0-9a-f]{16})\]")


@pytest.fixture
def parts(samples: dict[str, str]) -> list[tuple[str, str | None]]:
    """The text as (piece, kind) pairs; kind is None for prose between findings."""
    return [
        ("Pani Nguyễn Thị Hương, PESEL ", None),
        (samples["pesel"], "pl_pesel"),
        (", tel. ", None),
        ("+48 601 234 567", "phone"),
        (", e-mail ", None),
        ("huong.nguyen@congty.vn", "email"),
        (", konto ", None),
        (samples["iban_printed"], "iban"),
        (". Số điện thoại ở Việt Nam: ", None),
        ("0912 345 678", "phone"),
        (".", None),
    ]


def _text(parts: list[tuple[str, str | None]]) -> str:
    return "".join(piece for piece, _ in parts)


def test_redact_every_kind(parts: list[tuple[str, str | None]]) -> None:
    text = _text(parts)
    result = minimise(text, scan(text), dict.fromkeys(KINDS, Action.REDACT))
    # The expectation is assembled from the pieces, not by replacing in the text.
    expected = "".join(piece if kind is None else f"[REDACTED:{kind}]" for piece, kind in parts)
    assert result.text == expected
    values = [piece for piece, kind in parts if kind is not None]
    assert len(result.text) == len(text) - sum(map(len, values)) + sum(
        len(f"[REDACTED:{kind}]") for _, kind in parts if kind is not None
    )
    assert result.counts == {"email": 1, "iban": 1, "phone": 2, "pl_pesel": 1}
    assert result.actions == dict.fromkeys(result.counts, "redact")
    for value in values:
        assert value not in result.text


def test_mixed_actions(parts: list[tuple[str, str | None]]) -> None:
    text = _text(parts)
    rules = {"pl_pesel": Action.REDACT, "iban": Action.TOKENIZE, "phone": Action.REDACT}
    result = minimise(text, scan(text), rules, token_key=KEY_A)
    assert result.actions == {
        "email": "keep",
        "iban": "tokenize",
        "phone": "redact",
        "pl_pesel": "redact",
    }
    assert "huong.nguyen@congty.vn" in result.text  # kept by the default
    (token,) = TOKEN.finditer(result.text)
    assert token["kind"] == "iban"
    assert result.text.count("[REDACTED:phone]") == 2
    for piece, kind in parts:
        if kind in {"pl_pesel", "iban", "phone"}:
            assert piece not in result.text


def test_tokens_match_an_independent_hmac(parts: list[tuple[str, str | None]]) -> None:
    text = _text(parts)
    result = minimise(text, scan(text), dict.fromkeys(KINDS, Action("tokenize")), token_key=KEY_A)
    expected = []
    for piece, kind in parts:
        if kind is None:
            expected.append(piece)
            continue
        # Documented canonical forms: e-mail lower-cased; others letters and digits only.
        canonical = piece.lower() if kind == "email" else re.sub(r"[\W_]", "", piece).upper()
        mac = hmac.new(KEY_A, f"{kind}\x00{canonical}".encode(), hashlib.sha256)
        expected.append(f"[TOKEN:{kind}:{mac.hexdigest()[:16]}]")
    assert result.text == "".join(expected)
    for piece, kind in parts:
        if kind is not None:
            assert piece not in result.text


def test_tokenize_is_deterministic_per_key_and_differs_across_keys(
    parts: list[tuple[str, str | None]],
) -> None:
    text = _text(parts)
    found = scan(text)
    rules = dict.fromkeys(KINDS, Action.TOKENIZE)
    first = minimise(text, found, rules, token_key=KEY_A).text
    again = minimise(text, found, rules, token_key=KEY_A).text
    other = minimise(text, found, rules, token_key=KEY_B).text
    assert first == again
    tokens_a = [m["hex"] for m in TOKEN.finditer(first)]
    tokens_b = [m["hex"] for m in TOKEN.finditer(other)]
    assert len(tokens_a) == len(tokens_b) == 5
    assert all(a != b for a, b in zip(tokens_a, tokens_b, strict=True))
    assert len(set(tokens_a)) == 5  # different values, different tokens


def test_same_value_in_another_form_gets_the_same_token(samples: dict[str, str]) -> None:
    wide_digits = "".join(chr(0xFF10 + d) for d in range(10))
    wide = samples["pesel"].translate(str.maketrans("0123456789", wide_digits))
    assert token_for("pl_pesel", samples["pesel"], KEY_A) == token_for("pl_pesel", wide, KEY_A)
    assert token_for("iban", samples["iban"], KEY_A) == token_for(
        "iban", samples["iban_printed"], KEY_A
    )
    # The kind is part of the keyed message: same digits, different kind, other token.
    assert (
        token_for("phone", samples["pesel"], KEY_A)[-17:]
        != token_for("pl_pesel", samples["pesel"], KEY_A)[-17:]
    )


@pytest.mark.parametrize("kind", sorted({"email", "iban", "phone", "pl_pesel"}))
def test_refuse_names_the_kind_not_the_value(
    kind: str, parts: list[tuple[str, str | None]]
) -> None:
    text = _text(parts)
    with pytest.raises(BadRequest) as caught:
        minimise(text, scan(text), {kind: Action.REFUSE}, default=Action.REDACT)
    error = caught.value
    assert str(error) == (
        f"content contains {kind}, which this jurisdiction's minimisation rule refuses"
    )
    shown = [str(error), error.diagnostics(), repr(error.to_dict())]
    for piece, piece_kind in parts:
        if piece_kind is not None:
            digits = re.sub(r"\D", "", piece)
            for rendered in shown:
                assert piece not in rendered
                assert not digits or digits not in re.sub(r"\D", "", rendered)


def test_refuse_without_a_finding_of_that_kind_passes() -> None:
    text = "Bez danych osobowych, tel. +48 601 234 567."
    result = minimise(text, scan(text), {"pl_pesel": Action.REFUSE})
    assert result.text == text
    assert result.actions == {"phone": "keep"}


def test_default_applies_to_kinds_without_a_rule(parts: list[tuple[str, str | None]]) -> None:
    text = _text(parts)
    result = minimise(text, scan(text), {"email": Action.KEEP}, default=Action.REDACT)
    assert "huong.nguyen@congty.vn" in result.text
    assert result.actions["pl_pesel"] == result.actions["iban"] == "redact"


def test_keep_everything_changes_nothing(parts: list[tuple[str, str | None]]) -> None:
    text = _text(parts)
    result = minimise(text, scan(text), {})
    assert result.text == text
    assert set(result.actions.values()) == {"keep"}
    assert sum(result.counts.values()) == 5


def test_no_findings() -> None:
    assert minimise("nic", [], {"phone": Action.REDACT}) == Minimised("nic", {}, {})


@pytest.mark.parametrize("key", [None, b"", b"k" * (MIN_TOKEN_KEY_BYTES - 1)])
def test_tokenize_needs_a_key(key: bytes | None) -> None:
    text = "tel. +48 601 234 567"
    with pytest.raises(BadRequest, match="token key"):
        minimise(text, scan(text), {"phone": Action.TOKENIZE}, token_key=key)


def test_missing_key_is_caught_even_when_nothing_is_tokenized() -> None:
    with pytest.raises(BadRequest, match="token key"):
        minimise("nic tu nie ma", [], {}, default=Action.TOKENIZE)


# name -> (rules, default)
BAD_RULES = {
    "misspelt_kind": ({"pl_pesl": Action.REDACT}, Action.KEEP),
    "unknown_action": ({"phone": "shred"}, Action.KEEP),
    "action_not_a_string": ({"phone": 1}, Action.KEEP),
    "unknown_default": ({}, "drop"),
}


@pytest.mark.parametrize(("rules", "default"), BAD_RULES.values(), ids=BAD_RULES.keys())
def test_bad_rules_are_refused(rules: dict[str, object], default: object) -> None:
    with pytest.raises(BadRequest):
        minimise("tel. +48 601 234 567", [], rules, default=default)  # type: ignore[arg-type]


# name -> findings over "0123456789"
BAD_FINDINGS = {
    "overlapping": [Finding("phone", 0, 5, 0.9, True), Finding("iban", 4, 8, 0.9, True)],
    "past_the_end": [Finding("phone", 5, 11, 0.9, True)],
    "negative_start": [Finding("phone", -1, 3, 0.9, True)],
    "empty_span": [Finding("phone", 3, 3, 0.9, True)],
}


@pytest.mark.parametrize("findings", BAD_FINDINGS.values(), ids=BAD_FINDINGS.keys())
def test_bad_findings_are_refused(findings: list[Finding]) -> None:
    with pytest.raises(BadRequest):
        minimise("0123456789", findings, {"phone": Action.REDACT})


def test_findings_in_any_order(parts: list[tuple[str, str | None]]) -> None:
    text = _text(parts)
    found = scan(text)
    rules = dict.fromkeys(KINDS, Action.REDACT)
    assert minimise(text, reversed(found), rules) == minimise(text, found, rules)


def test_result_is_frozen_and_holds_no_values(parts: list[tuple[str, str | None]]) -> None:
    text = _text(parts)
    result = minimise(text, scan(text), dict.fromkeys(KINDS, Action.REDACT))
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.text = text  # type: ignore[misc]
    assert set(result.counts) <= KINDS
    assert set(result.actions) <= KINDS
    assert set(result.actions.values()) <= {a.value for a in Action}


def test_surrogates_survive_tokenizing(samples: dict[str, str]) -> None:
    text = f"\ud800PESEL {samples['pesel']}\udfff"
    result = minimise(text, scan(text), {"pl_pesel": Action.TOKENIZE}, token_key=KEY_A)
    assert result.text.startswith("\ud800PESEL [TOKEN:pl_pesel:")
    assert result.text.endswith("]\udfff")


def test_many_findings_in_linear_time(samples: dict[str, str]) -> None:
    unit = f"PESEL {samples['pesel']}; "
    text = unit * 50_000
    found = [
        Finding("pl_pesel", i * len(unit) + 6, i * len(unit) + 17, 0.97, True)
        for i in range(50_000)
    ]
    assert {text[f.start : f.end] for f in found} == {samples["pesel"]}
    result = minimise(text, found, {"pl_pesel": Action.REDACT})
    assert result.text == "PESEL [REDACTED:pl_pesel]; " * 50_000
    assert result.counts == {"pl_pesel": 50_000}


def test_actions_given_as_strings_from_a_policy_file() -> None:
    text = "tel. +48 601 234 567"
    rules: dict[str, str] = {"phone": "redact"}
    result = minimise(text, scan(text), rules)  # type: ignore[arg-type]
    assert result.text == "tel. [REDACTED:phone]"
