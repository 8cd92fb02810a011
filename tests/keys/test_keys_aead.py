"""AES-256-GCM primitive: Wycheproof known answers and the sealed framing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sovra.errors import BadRequest, IntegrityError
from sovra.keys import _aead

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "wycheproof_aes_gcm_256_iv96.json"


def _load_cases() -> list[Any]:
    data = json.loads(VECTORS.read_text())
    cases = []
    for group in data["testGroups"]:
        assert (group["keySize"], group["ivSize"], group["tagSize"]) == (256, 96, 128)
        for test in group["tests"]:
            cases.append(pytest.param(test, id=f"tc{test['tcId']}"))
    return cases


CASES = _load_cases()


def test_vector_file_is_the_expected_subset() -> None:
    data = json.loads(VECTORS.read_text())
    tests = [t for g in data["testGroups"] for t in g["tests"]]
    assert data["algorithm"] == "AES-GCM"
    assert len(tests) == data["numberOfTests"] == 66
    assert {t["result"] for t in tests} == {"valid", "invalid"}
    # Both kinds must be present, or half of the check below would silently vanish.
    assert sum(t["result"] == "invalid" for t in tests) == 27


@pytest.mark.parametrize("case", CASES)
def test_wycheproof(case: dict[str, Any]) -> None:
    key, iv = bytes.fromhex(case["key"]), bytes.fromhex(case["iv"])
    aad, msg = bytes.fromhex(case["aad"]), bytes.fromhex(case["msg"])
    sealed = bytes.fromhex(case["ct"]) + bytes.fromhex(case["tag"])
    if case["result"] == "valid":
        assert _aead.encrypt(key, iv, msg, aad) == sealed
        assert _aead.decrypt(key, iv, sealed, aad) == msg
        assert _aead.open_sealed(key, iv + sealed, aad) == msg
    else:
        assert case["result"] == "invalid"
        with pytest.raises(IntegrityError):
            _aead.decrypt(key, iv, sealed, aad)
        with pytest.raises(IntegrityError):
            _aead.open_sealed(key, iv + sealed, aad)


def test_seal_uses_a_fresh_nonce_each_time() -> None:
    key = _aead.new_key()
    first, second = _aead.seal(key, b"same", b"aad"), _aead.seal(key, b"same", b"aad")
    assert first[: _aead.NONCE_SIZE] != second[: _aead.NONCE_SIZE]
    assert len(first) == 4 + _aead.OVERHEAD
    assert _aead.open_sealed(key, first, b"aad") == _aead.open_sealed(key, second, b"aad")


def test_new_keys_differ_and_are_256_bits() -> None:
    keys = {_aead.new_key() for _ in range(8)}
    assert len(keys) == 8
    assert {len(k) for k in keys} == {32}


@pytest.mark.parametrize("size", [16, 24, 31, 33])
def test_encrypt_refuses_other_key_sizes(size: int) -> None:
    with pytest.raises(BadRequest, match="32 bytes"):
        _aead.encrypt(bytes(size), bytes(12), b"", b"")


@pytest.mark.parametrize("size", [8, 11, 13, 16])
def test_encrypt_refuses_other_nonce_sizes(size: int) -> None:
    with pytest.raises(BadRequest, match="nonce"):
        _aead.encrypt(bytes(32), bytes(size), b"", b"")


def test_decrypt_refuses_aes128_key_even_if_it_would_work() -> None:
    # A 16-byte key is valid AES; accepting it would silently downgrade the cipher.
    with pytest.raises(IntegrityError, match="key is 16 bytes"):
        _aead.decrypt(bytes(16), bytes(12), bytes(16), b"")


@pytest.mark.parametrize("length", [0, 1, _aead.OVERHEAD - 1])
def test_open_sealed_refuses_truncated_input(length: int) -> None:
    with pytest.raises(IntegrityError, match="shorter"):
        _aead.open_sealed(bytes(32), bytes(length), b"")


def test_open_sealed_refuses_other_aad() -> None:
    key = _aead.new_key()
    sealed = _aead.seal(key, b"payload", b"aad-1")
    with pytest.raises(IntegrityError, match="tag"):
        _aead.open_sealed(key, sealed, b"aad-2")
