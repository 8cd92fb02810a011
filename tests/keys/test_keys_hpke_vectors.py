"""RFC 9180 and draft-ietf-hpke-pq test vectors: pyca's ``hpke`` and sovra's use of it.

Provenance in tests/vectors/README-keys.md. pyca's public single-shot API takes no
associated data and no fixed ephemeral key, and every published encryption has
associated data (``Count-0``, ...), so a vector is checked by decryption through the
library's own test hook ``_decrypt_with_aad`` (the function its ``decrypt`` calls with
empty associated data). sovra's own side is checked without the hook where it has one:
the key expansion and public-key encoding of :func:`sovra.keys._hpke.derive`, its suite
table's registry ids, and the message layout its opener accepts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.bindings._rust import openssl as rust_openssl
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import ec, mlkem, x25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sovra.keys import _hpke

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
RFC9180 = json.loads((VECTORS / "hpke_rfc9180_base.json").read_text())
PQ = json.loads((VECTORS / "hpke_pq_base.json").read_text())

# IANA HPKE registry ids -> the library's parameters.
KEMS = {
    0x0010: hpke.KEM.P256,
    0x0011: hpke.KEM.P384,
    0x0012: hpke.KEM.P521,
    0x0020: hpke.KEM.X25519,
    0x0041: hpke.KEM.MLKEM768,
    0x0042: hpke.KEM.MLKEM1024,
    0x0051: hpke.KEM.MLKEM1024_P384,
    0x647A: hpke.KEM.MLKEM768_X25519,
}
KDFS = {
    0x0001: hpke.KDF.HKDF_SHA256,
    0x0002: hpke.KDF.HKDF_SHA384,
    0x0003: hpke.KDF.HKDF_SHA512,
    0x0010: hpke.KDF.SHAKE128,
    0x0011: hpke.KDF.SHAKE256,
}
AEADS = {
    0x0001: hpke.AEAD.AES_128_GCM,
    0x0002: hpke.AEAD.AES_256_GCM,
    0x0003: hpke.AEAD.CHACHA20_POLY1305,
}
CURVES = {0x0010: ec.SECP256R1(), 0x0011: ec.SECP384R1(), 0x0012: ec.SECP521R1()}


def _id(v: dict[str, Any]) -> str:
    return f"kem{v['kem_id']:04x}-kdf{v['kdf_id']:04x}-aead{v['aead_id']:04x}"


def _library_private(v: dict[str, Any]) -> tuple[Any, bytes]:
    """The recipient's private key from the vector's ``skRm``, and its encoded public key,
    built without sovra's code (for the KEMs sovra has no suite of)."""
    kem, sk = v["kem_id"], bytes.fromhex(v["skRm"])
    if kem == 0x0020:
        key = x25519.X25519PrivateKey.from_private_bytes(sk)
        return key, key.public_key().public_bytes_raw()
    if kem in CURVES:
        key = ec.derive_private_key(int.from_bytes(sk, "big"), CURVES[kem])
        point = key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        return key, point
    if kem in (0x0041, 0x0042):
        cls = mlkem.MLKEM768PrivateKey if kem == 0x0041 else mlkem.MLKEM1024PrivateKey
        key = cls.from_seed_bytes(sk)
        return key, key.public_key().public_bytes_raw()
    derived = _hpke.derive({0x647A: "mlkem768-x25519", 0x0051: "mlkem1024-p384"}[kem], sk)
    return derived.key, derived.public


def _decrypt(suite: hpke.Suite, v: dict[str, Any], private: Any, message: bytes) -> bytes:
    first = v["encryptions"][0]
    out: bytes = rust_openssl.hpke._decrypt_with_aad(
        suite,
        message,
        private,
        info=bytes.fromhex(v["info"]),
        aad=bytes.fromhex(first["aad"]),
    )
    return out


@pytest.mark.parametrize("v", RFC9180 + PQ, ids=_id)
def test_the_library_opens_every_published_base_mode_vector(v: dict[str, Any]) -> None:
    assert v["mode"] == 0
    suite = hpke.Suite(KEMS[v["kem_id"]], KDFS[v["kdf_id"]], AEADS[v["aead_id"]])
    private, public = _library_private(v)
    assert public.hex() == v["pkRm"]
    first = v["encryptions"][0]
    message = bytes.fromhex(v["enc"] + first["ct"])
    assert _decrypt(suite, v, private, message).hex() == first["pt"]
    changed = bytearray(message)
    changed[-1] ^= 1
    with pytest.raises(InvalidTag):
        _decrypt(suite, v, private, bytes(changed))


def _ours(name: str) -> dict[str, Any]:
    """The published vector of exactly sovra's suite *name*."""
    s = _hpke.SUITES[name]
    (v,) = [
        v
        for v in RFC9180 + PQ
        if (v["kem_id"], v["kdf_id"], v["aead_id"]) == (s.kem_id, s.kdf_id, s.aead_id)
    ]
    return v


@pytest.mark.parametrize("name", sorted(_hpke.SUITES))
def test_each_of_our_suites_has_a_published_vector_and_matches_it(name: str) -> None:
    v = _ours(name)
    s = _hpke.SUITES[name]
    # Our registry ids name the library parameters the vector was made with.
    assert s.library_kem == KEMS[v["kem_id"]]
    assert s.header == b"HPKE" + bytes.fromhex(
        f"{v['kem_id']:04x}{v['kdf_id']:04x}{v['aead_id']:04x}"
    )
    assert len(bytes.fromhex(v["enc"])) == s.enc_size
    # Our key from the published private key (X25519) or seed (hybrids): the published
    # public key, in the draft's encoding, and a size that names the suite.
    private = _hpke.derive(name, bytes.fromhex(v["skRm"]))
    assert private.public.hex() == v["pkRm"]
    assert _hpke.suite_of_public(private.public) is s
    # Our message layout around the published encapsulation and ciphertext is accepted
    # by our opener's checks and decrypts with our suite's library parameters.
    first = v["encryptions"][0]
    message = s.header + bytes.fromhex(v["enc"] + first["ct"])
    pt = bytes.fromhex(first["pt"])
    _hpke.check_layout(private, message, len(pt))
    assert _decrypt(s.library, v, private.key, message[_hpke.HEADER_SIZE :]) == pt


def test_the_suites_differ_in_public_key_size() -> None:
    sizes = [s.public_size for s in _hpke.SUITES.values()]
    assert len(set(sizes)) == len(sizes)
