"""Minimisation: redact, tokenize, seal, refuse and keep, and what the result may reveal."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import re
from collections.abc import Sequence

import pytest

from sovra.classify import (
    KINDS,
    Action,
    Minimised,
    ProtectedSpan,
    minimise,
    protected_spans,
    restore,
    scan,
)
from sovra.classify.minimise import canonical
from sovra.errors import BadRequest
from sovra.model import Finding

TOKEN = re.compile(r"\[TOKEN:(?P<kind>[a-z_]+):(?P<body>[A-Za-z0-9_-]+)\]")


class Recorder:
    """Stands in for the custodian's protect call: a keyless, visible body per item.

    The custodian's cryptography is tested in tests/keys; here only what minimisation
    asks for, and where it puts the answers.
    """

    def __init__(self) -> None:
        self.calls: list[list[tuple[str, str, str]]] = []

    def __call__(self, items: Sequence[tuple[str, str, str]]) -> list[str]:
        self.calls.append(list(items))
        return [body(mode, kind, value) for mode, kind, value in items]


def body(mode: str, kind: str, value: str) -> str:
    digest = hashlib.sha256(f"{mode}\x00{kind}\x00{value}".encode("utf-8", "surrogatepass"))
    return base64.urlsafe_b64encode(digest.digest()[:12]).decode()


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
    result = minimise(text, scan(text), rules, protect=Recorder())
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


def test_tokenize_asks_once_for_canonical_values(parts: list[tuple[str, str | None]]) -> None:
    text = _text(parts)
    recorder = Recorder()
    result = minimise(text, scan(text), dict.fromkeys(KINDS, Action.TOKENIZE), protect=recorder)
    expected, asked = [], []
    for piece, kind in parts:
        if kind is None:
            expected.append(piece)
            continue
        # Documented canonical forms: e-mail lower-cased; others letters and digits only.
        value = piece.lower() if kind == "email" else re.sub(r"[\W_]", "", piece).upper()
        asked.append(("tokenize", kind, value))
        expected.append(f"[TOKEN:{kind}:{body('tokenize', kind, value)}]")
    assert recorder.calls == [asked]
    assert result.text == "".join(expected)
    for piece, kind in parts:
        if kind is not None:
            assert piece not in result.text


def test_seal_asks_for_the_exact_text(parts: list[tuple[str, str | None]]) -> None:
    text = _text(parts)
    recorder = Recorder()
    rules = {"iban": Action.SEAL, "pl_pesel": Action.TOKENIZE}
    result = minimise(text, scan(text), rules, protect=recorder)
    iban = next(p for p, k in parts if k == "iban")
    assert ("seal", "iban", iban) in recorder.calls[0]
    assert f"[SEALED:iban:{body('seal', 'iban', iban)}]" in result.text
    assert result.actions["iban"] == "seal"


def test_markers_are_found_again_and_restored(parts: list[tuple[str, str | None]]) -> None:
    text = _text(parts)
    rules = {"iban": Action.SEAL, "pl_pesel": Action.TOKENIZE, "phone": Action.REDACT}
    recorder = Recorder()
    result = minimise(text, scan(text), rules, protect=recorder)
    spans = protected_spans(result.text)
    assert [(s.mode, s.kind) for s in spans] == [("tokenize", "pl_pesel"), ("seal", "iban")]
    assert [s.body for s in spans] == [body(*item) for item in recorder.calls[0]]
    values = [item[2] for item in recorder.calls[0]]
    restored = restore(result.text, spans, values)
    assert restored == text.replace("+48 601 234 567", "[REDACTED:phone]").replace(
        "0912 345 678", "[REDACTED:phone]"
    )
    # A value the custodian would not open (None) leaves its marker where it was.
    assert restore(result.text, spans, [None, values[1]]).count("[TOKEN:pl_pesel:") == 1


def test_text_that_only_looks_like_a_marker_is_reported_for_the_custodian() -> None:
    text = "[TOKEN:email:abc] [SEALED:Bad:xx] [TOKEN:email:] [SEALED:iban:a+b]"
    assert protected_spans(text) == [ProtectedSpan(0, 17, "tokenize", "email", "abc")]


def test_restore_refuses_mismatched_spans() -> None:
    spans = protected_spans("[TOKEN:email:abc]")
    with pytest.raises(BadRequest, match="1 protected spans but 2 values"):
        restore("[TOKEN:email:abc]", spans, ["a", "b"])
    with pytest.raises(BadRequest, match="inside the text"):
        restore("short", spans, ["a"])


def test_same_value_in_another_form_has_one_canonical_form(samples: dict[str, str]) -> None:
    wide_digits = "".join(chr(0xFF10 + d) for d in range(10))
    wide = samples["pesel"].translate(str.maketrans("0123456789", wide_digits))
    assert canonical("pl_pesel", samples["pesel"]) == canonical("pl_pesel", wide)
    assert canonical("iban", samples["iban"]) == canonical("iban", samples["iban_printed"])
    assert canonical("email", "Anna.Nowak@Example.PL") == "anna.nowak@example.pl"


def test_protect_returning_the_wrong_number_of_bodies_is_refused() -> None:
    text = "tel. +48 601 234 567"
    with pytest.raises(BadRequest, match="1 values to protect, but 0 bodies"):
        minimise(text, scan(text), {"phone": Action.TOKENIZE}, protect=lambda items: [])


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


@pytest.mark.parametrize("action", [Action.TOKENIZE, Action.SEAL])
def test_tokenize_and_seal_need_the_custodian(action: Action) -> None:
    text = "tel. +48 601 234 567"
    with pytest.raises(BadRequest, match="custodian is required"):
        minimise(text, scan(text), {"phone": action})


def test_missing_custodian_is_caught_even_when_nothing_is_tokenized() -> None:
    with pytest.raises(BadRequest, match="custodian is required"):
        minimise("nic tu nie ma", [], {}, default=Action.TOKENIZE)


def test_refusal_comes_before_any_value_leaves() -> None:
    text = "tel. +48 601 234 567, e-mail anna@example.pl"
    recorder = Recorder()
    with pytest.raises(BadRequest, match="refuses"):
        minimise(text, scan(text), {"phone": Action.SEAL, "email": Action.REFUSE}, protect=recorder)
    assert recorder.calls == []


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
    result = minimise(text, scan(text), {"pl_pesel": Action.TOKENIZE}, protect=Recorder())
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
