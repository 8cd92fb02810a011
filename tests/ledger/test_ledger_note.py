"""C2SP signed notes: published examples byte for byte, and every way a note can be wrong."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from sovra.errors import BadRequest, SovraError, VerificationError
from sovra_verify.note import (
    MAX_NOTE_BYTES,
    MAX_SIGNATURES,
    NoteSigner,
    NoteVerifier,
    check_key_name,
    key_id,
    open_note,
    sign_note,
)

EXAMPLES: dict[str, Any] = json.loads(
    (Path(__file__).parents[1] / "vectors" / "signed_note_examples.json").read_text("utf-8")
)
GO = EXAMPLES["go_sumdb_note"]


def go_signer() -> NoteSigner:
    """The PeterNeumann signer from its published ``PRIVATE+KEY+...`` string."""
    _, _, name, id_hex, material = GO["skey"].split("+", 4)
    raw = base64.b64decode(material)
    assert raw[0] == 1
    signer = NoteSigner(name, Ed25519PrivateKey.from_private_bytes(raw[1:]))
    assert signer.key_id == int(id_hex, 16)
    return signer


def fresh(name: str = "sovra.example/log") -> NoteSigner:
    return NoteSigner(name, Ed25519PrivateKey.generate())


# --- published examples ------------------------------------------------------------


def test_c2sp_spec_example_verifies() -> None:
    ex = EXAMPLES["c2sp_signed_note_example"]
    verifier = NoteVerifier.from_vkey(ex["vkey"])
    assert verifier.vkey == ex["vkey"]
    assert open_note(ex["note"], [verifier]) == (ex["text"], ["example.com/foo"])
    assert open_note(ex["note"].encode(), [verifier]) == (ex["text"], ["example.com/foo"])


def test_go_signer_reproduces_the_published_note_byte_for_byte() -> None:
    signer = go_signer()
    assert signer.vkey == GO["peter_vkey"]
    assert sign_note(GO["text"], [signer]) == GO["signed_by_peter"]


def test_go_note_with_two_signatures() -> None:
    note = GO["text"] + "\n" + GO["peter_sig_line"] + GO["enoch_sig_line"]
    peter = NoteVerifier.from_vkey(GO["peter_vkey"])
    enoch = NoteVerifier.from_vkey(GO["enoch_vkey"])
    assert open_note(note, [peter]) == (GO["text"], ["PeterNeumann"])
    assert open_note(note, [enoch]) == (GO["text"], ["EnochRoot"])
    assert open_note(note, [enoch, peter]) == (GO["text"], ["PeterNeumann", "EnochRoot"])
    with pytest.raises(VerificationError, match="no known key"):
        open_note(note, [])
    with pytest.raises(VerificationError, match="no known key"):
        open_note(note, [fresh("PeterNeumann").verifier])


def test_repeated_signature_lines_are_checked_once() -> None:
    note = GO["text"] + "\n" + GO["peter_sig_line"] * 3 + GO["enoch_sig_line"] * 2
    peter = NoteVerifier.from_vkey(GO["peter_vkey"])
    assert open_note(note, [peter, peter]) == (GO["text"], ["PeterNeumann"])


def test_vkey_manglings_are_refused() -> None:
    vkey = GO["peter_vkey"]
    NoteVerifier.from_vkey(vkey)
    for i in range(len(vkey)):
        for j in range(i + 1, len(vkey) + 1):
            if (i, j) != (0, len(vkey)):
                with pytest.raises(BadRequest):
                    NoteVerifier.from_vkey(vkey[i:j])
    for i in range(len(vkey)):
        mangled = vkey[:i] + chr(ord(vkey[i]) + 1) + vkey[i + 1 :]
        with pytest.raises(BadRequest):
            NoteVerifier.from_vkey(mangled)


@pytest.mark.parametrize(
    ("vkey", "message"),
    [
        ("PeterNeumann+c74f20a3", "three parts"),
        ("PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "lower-case hex"),
        ("Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "U\\+0020"),
        ("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "type 0x01"),
        ("PeterNeumann+c74f20a3+" + base64.b64encode(b"\x01" + b"k" * 31).decode(), "not 31"),
        ("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T", "base64"),
        ("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW=", "base64"),
        ("PeterNeumann+c74f20a3+AQ==", "not 0"),
        ("PeterNeumann+c74f20a3+AR==", "canonical"),
        ("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "does not match"),
        ("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TX", "does not match"),
        ("x" * 400, "bounded"),
    ],
)
def test_bad_vkeys_say_why(vkey: str, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        NoteVerifier.from_vkey(vkey)


def test_key_id_is_the_recommended_hash() -> None:
    peter = NoteVerifier.from_vkey(GO["peter_vkey"])
    assert key_id("PeterNeumann", peter.public_key) == 0xC74F20A3
    assert key_id("PeterNeumann2", peter.public_key) != 0xC74F20A3


# --- key names ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["", "a b", "a+b", "a\tb", "a\nb", "a\u00a0b", "a\u2003b", "a\u3000b", "a\x01b", "a\ud800"],
)
def test_bad_key_names(name: str) -> None:
    with pytest.raises(BadRequest):
        check_key_name(name)
    with pytest.raises(BadRequest):
        fresh(name)


@pytest.mark.parametrize("name", ["example.com/log", "PeterNeumann", "żółw.example/łog", "日志/1"])
def test_good_key_names(name: str) -> None:
    signer = fresh(name)
    text, names = open_note(sign_note("hello\n", [signer]), [signer.verifier])
    assert (text, names) == ("hello\n", [name])
    assert NoteVerifier.from_vkey(signer.vkey).key_id == signer.key_id


# --- forged, truncated, unknown-key and malformed notes ----------------------------


def test_forged_signature_is_refused() -> None:
    signer = fresh()
    note = sign_note("tree\n", [signer])
    body, line = note.rsplit("\n\n", 1)
    name, sig = line.rstrip("\n").split(" ", 2)[1:]
    raw = bytearray(base64.b64decode(sig))
    for i in range(4, len(raw)):
        raw[i] ^= 0x40
        forged = f"{body}\n\n\u2014 {name} {base64.b64encode(bytes(raw)).decode()}\n"
        with pytest.raises(VerificationError, match="does not verify"):
            open_note(forged, [signer.verifier])
        raw[i] ^= 0x40


def test_altered_text_is_refused() -> None:
    signer = fresh()
    note = sign_note("origin\n10\nroot\n", [signer])
    with pytest.raises(VerificationError, match="does not verify"):
        open_note(note.replace("10", "11", 1), [signer.verifier])


def test_a_bad_known_signature_condemns_the_note_even_beside_a_good_one() -> None:
    a, b = fresh("a.example"), fresh("b.example")
    good = sign_note("x\n", [a, b])
    bad_b = sign_note("y\n", [b]).split("\n\n", 1)[1]
    text, sigs = good.split("\n\n", 1)
    mixed = text + "\n\n" + sigs.splitlines()[0] + "\n" + bad_b
    assert open_note(mixed, [a.verifier]) == ("x\n", ["a.example"])
    with pytest.raises(VerificationError):
        open_note(mixed, [a.verifier, b.verifier])


def test_unknown_keys_are_ignored() -> None:
    ours, witness = fresh("log.example"), fresh("witness.example")
    note = sign_note("checkpoint\n", [witness, ours])
    assert open_note(note, [ours.verifier]) == ("checkpoint\n", ["log.example"])
    impostor = fresh("log.example")  # same name, different key, so a different key ID
    with pytest.raises(VerificationError, match="no known key"):
        open_note(note, [impostor.verifier])


def test_every_truncation_is_refused() -> None:
    signer = fresh()
    note = sign_note("origin\n3\nabc\n", [signer])
    for cut in range(len(note)):
        with pytest.raises(SovraError) as info:
            open_note(note[:cut], [signer.verifier])
        assert isinstance(info.value, BadRequest | VerificationError)


def _peter_note() -> str:
    return str(GO["signed_by_peter"])


@pytest.mark.parametrize(
    ("note", "message"),
    [
        (GO["text"], "no blank line"),
        (GO["text"] + "\n", "signature lines"),
        (GO["signed_by_peter"][:-1], "newline-terminated"),
        ("\x01" + GO["signed_by_peter"], "control character"),
        (GO["signed_by_peter"].replace("\n", "\r\n"), "control character"),
        (GO["signed_by_peter"].replace("PeterNeumann", "Bad Name"), "base64"),
        (GO["signed_by_peter"].replace("PeterNeumann", "Peter+Neumann"), "U\\+002B"),
        (GO["signed_by_peter"].replace("PeterNeumann", "Peter\u00a0Neumann"), "U\\+00A0"),
        (GO["signed_by_peter"] + "Unexpected line.\n", "em dash"),
        (GO["signed_by_peter"].replace("\u2014", "\u2013"), "em dash"),
        (GO["signed_by_peter"].replace("\u2014 ", "-- "), "em dash"),
        (GO["signed_by_peter"].replace(" x08go", "  x08go"), "base64"),
        (GO["text"] + "\n\u2014 PeterNeumann\n", "no signature"),
        (GO["text"] + "\n\u2014 PeterNeumann x08g!\n", "base64"),
        (GO["text"] + "\n\u2014 PeterNeumann x08g\n", "too short"),
        (GO["text"] + "\n\u2014 PeterNeumann x08gow==\n", "too short"),
        (GO["text"] + "\n\u2014 PeterNeumann x08gox==\n", "canonical"),
        (GO["text"] + "\n" + GO["peter_sig_line"] * (MAX_SIGNATURES + 1), "over 100"),
        ("a" * MAX_NOTE_BYTES + "\n\n" + GO["peter_sig_line"], "over"),
    ],
)
def test_malformed_notes(note: str, message: str) -> None:
    peter = NoteVerifier.from_vkey(GO["peter_vkey"])
    with pytest.raises(BadRequest, match=message):
        open_note(note, [peter])


def test_bad_utf8_and_oversized_bytes() -> None:
    peter = NoteVerifier.from_vkey(GO["peter_vkey"])
    with pytest.raises(BadRequest, match="UTF-8"):
        open_note(b"\xff" + GO["signed_by_peter"].encode(), [peter])
    with pytest.raises(BadRequest, match="UTF-8"):
        open_note("\ud800" + GO["signed_by_peter"], [peter])
    with pytest.raises(BadRequest, match="over"):
        open_note(b"a" * (MAX_NOTE_BYTES + 1), [peter])
    with pytest.raises(BadRequest, match="text"):
        open_note(12, [peter])  # type: ignore[arg-type]


def test_a_short_ed25519_signature_from_a_known_key_fails_verification() -> None:
    peter = NoteVerifier.from_vkey(GO["peter_vkey"])
    blob = base64.b64encode(peter.key_id.to_bytes(4, "big") + b"\x00" * 10).decode()
    with pytest.raises(VerificationError):
        open_note(f"{GO['text']}\n\u2014 PeterNeumann {blob}\n", [peter])


def test_ambiguous_verifiers_are_refused() -> None:
    a, b = fresh("same.example"), fresh("same.example")
    clash = NoteVerifier("same.example", b.public_key)
    clash._key_id = a.key_id  # a 32-bit ID collision an attacker could grind
    note = sign_note("x\n", [a])
    with pytest.raises(BadRequest, match="two different verifier keys"):
        open_note(note, [a.verifier, clash])
    twice = [a.verifier, NoteVerifier.from_vkey(a.vkey)]
    assert open_note(note, twice) == ("x\n", ["same.example"])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("no newline", "end in a newline"),
        ("", "end in a newline"),
        ("tab\there\n", "control character"),
        ("\ud800\n", "UTF-8"),
        ("a" * MAX_NOTE_BYTES + "\n", "exceed"),
    ],
)
def test_sign_note_refuses_bad_text(text: str, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        sign_note(text, [fresh()])


def test_sign_note_needs_distinct_signers() -> None:
    signer = fresh()
    with pytest.raises(BadRequest, match="at least one"):
        sign_note("x\n", [])
    with pytest.raises(BadRequest, match="share key"):
        sign_note("x\n", [signer, signer])


# --- round trips -------------------------------------------------------------------

_LINE = st.text(alphabet=st.characters(min_codepoint=0x20, exclude_categories=("Cs",)), max_size=30)
_TEXT = st.lists(_LINE, min_size=1, max_size=6).map(lambda lines: "\n".join(lines) + "\n")
_SIGNERS = [fresh("a.example"), fresh("b.example"), fresh("c.example")]


@settings(max_examples=60, deadline=None)
@given(text=_TEXT, count=st.integers(min_value=1, max_value=3))
def test_note_round_trips_both_ways(text: str, count: int) -> None:
    signers = _SIGNERS[:count]
    note = sign_note(text, signers)
    opened, names = open_note(note, [s.verifier for s in _SIGNERS])
    assert opened == text
    assert names == [s.name for s in signers]
    # Ed25519 is deterministic, so serialising what was parsed gives the same bytes.
    assert sign_note(opened, signers) == note
