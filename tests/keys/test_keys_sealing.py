"""Custodian KEK files sealed at rest under a passphrase (scrypt) or an operator key file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sovra.errors import ConfigError
from sovra.keys import LocalCustodian, write_secret
from sovra.keys.sealing import Unlock

PASS = Unlock.from_passphrase("correct horse battery", log2_n=14)  # fast for tests


@pytest.fixture
def log_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "operator.key"
    write_secret(path, bytes(range(32)))
    return path


def _kek_hexes(custodian: LocalCustodian) -> list[str]:
    return [k.hex() for k in custodian._keks.values()]


@pytest.mark.parametrize("kind", ["passphrase", "key-file"])
def test_sealed_file_round_trip_and_rotation(
    tmp_path: Path, log_key: Ed25519PrivateKey, key_file: Path, kind: str
) -> None:
    unlock = PASS if kind == "passphrase" else Unlock.from_key_file(key_file)
    path = tmp_path / "PL.key"
    pl = LocalCustodian.create(path, "PL", log_key.public_key(), unlock=unlock)
    assert pl.sealed_at_rest
    text = path.read_text()
    assert json.loads(text)["type"] == "sovra-custodian-keys-sealed"
    assert all(h not in text for h in _kek_hexes(pl))
    pl.rotate()
    reopened = LocalCustodian.open(path, "PL", log_key.public_key(), unlock=unlock)
    assert _kek_hexes(reopened) == _kek_hexes(pl)
    assert all(h not in path.read_text() for h in _kek_hexes(pl))


def test_wrong_missing_or_mismatched_unlock_is_refused(
    tmp_path: Path, log_key: Ed25519PrivateKey, key_file: Path
) -> None:
    path = tmp_path / "PL.key"
    LocalCustodian.create(path, "PL", log_key.public_key(), unlock=PASS)
    public = log_key.public_key()
    with pytest.raises(ConfigError, match="does not open"):
        LocalCustodian.open(
            path, "PL", public, unlock=Unlock.from_passphrase("wrong horse", log2_n=14)
        )
    with pytest.raises(ConfigError, match="sealed; give"):
        LocalCustodian.open(path, "PL", public)
    with pytest.raises(ConfigError, match="under a passphrase"):
        LocalCustodian.open(path, "PL", public, unlock=Unlock.from_key_file(key_file))


def test_a_plain_file_can_be_sealed_and_then_needs_its_unlock(
    tmp_path: Path, log_key: Ed25519PrivateKey
) -> None:
    path = tmp_path / "PL.key"
    pl = LocalCustodian.create(path, "PL", log_key.public_key())
    with pytest.raises(ConfigError, match="not sealed"):
        LocalCustodian.open(path, "PL", log_key.public_key(), unlock=PASS)
    pl.seal_at_rest(PASS)
    with pytest.raises(ConfigError):
        LocalCustodian.open(path, "PL", log_key.public_key())
    assert LocalCustodian.open(path, "PL", log_key.public_key(), unlock=PASS).sealed_at_rest


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda b: b["kdf"].update(n=2**30), "out of the accepted range"),
        (lambda b: b["kdf"].update(n=2**15), "does not open"),  # KDF is associated data
        (lambda b: b.update(jurisdiction="DE"), "keys of 'DE'"),
        (lambda b: b.update(extra=1), "exactly"),
        (lambda b: b.update(sealed="%%%"), "not base64"),
    ],
    ids=["huge-cost", "other-cost", "other-jurisdiction", "unknown-field", "not-base64"],
)
def test_tampered_sealed_file_is_refused(
    tmp_path: Path, log_key: Ed25519PrivateKey, edit: object, reason: str
) -> None:
    path = tmp_path / "PL.key"
    LocalCustodian.create(path, "PL", log_key.public_key(), unlock=PASS)
    body = json.loads(path.read_text())
    edit(body)  # type: ignore[operator]
    write_secret(path, json.dumps(body).encode(), overwrite=True)
    with pytest.raises(ConfigError, match=reason):
        LocalCustodian.open(path, "PL", log_key.public_key(), unlock=PASS)


def test_unlock_is_validated_and_never_printed() -> None:
    with pytest.raises(ConfigError):
        Unlock.from_passphrase("short")
    with pytest.raises(ConfigError):
        Unlock(passphrase=b"x" * 10, key=b"k" * 32)
    assert "correct" not in repr(PASS)
