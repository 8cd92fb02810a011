"""``sovra principal add|list|revoke|rotate-key`` against real deployments, and a served
gateway that refuses a revoked principal or a rotated-out key on the very next request."""

from __future__ import annotations

import base64
import shutil
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sovra.client import Client
from sovra.deployment import Deployment
from sovra.errors import Unauthenticated
from sovra.keys import load_ed25519
from sovra.model import Role
from sovra.server import create_app
from sovra.server.background import running


@pytest.fixture
def root(template: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "deployment"
    shutil.copytree(template, copy)
    return copy


def _principals(root: Path) -> dict[str, tuple[str, str, bytes]]:
    dep = Deployment.open(root)
    try:
        return {
            p.id: (p.jurisdiction, str(p.role), p.public_key) for p in dep.store.list_principals()
        }
    finally:
        dep.close()


def test_add_makes_a_key_pair_and_the_gateway_accepts_it(sovra, root):
    ran = sovra("principal", "add", "svc-billing", "-j", "de", "--role", "service", "-d", root)
    assert ran.code == 0, ran.err
    shown = ran.json()
    key_file = root / "principals" / "svc-billing.key"
    assert shown["private_key_file"] == str(key_file)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = load_ed25519(key_file)
    raw = key.public_key().public_bytes_raw()
    assert shown["public_key"] == base64.b64encode(raw).decode()
    assert _principals(root)["svc-billing"] == ("DE", "service", raw)
    listed = sovra("principal", "list", "--json", "-d", root).json()
    assert {"id": "svc-billing", "jurisdiction": "DE", "role": "service"}.items() <= next(
        p for p in listed if p["id"] == "svc-billing"
    ).items()
    dep = Deployment.open(root)
    try:
        with running(create_app(dep)) as url, Client(url, "svc-billing", key) as client:
            assert client.ingest("kunde-1", "DE", "Rechnung")["record_id"]
    finally:
        dep.close()


def test_add_with_a_public_key_writes_no_private_key(sovra, root, tmp_path):
    own = Ed25519PrivateKey.generate()
    pem = tmp_path / "svc.pub.pem"
    pem.write_bytes(own.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    ran = sovra(
        "principal", "add", "svc-ext", "-j", "PL", "--role", "service", "--public-key", pem,
        "-d", root,
    )  # fmt: skip
    assert ran.code == 0, ran.err
    assert "private_key_file" not in ran.json()
    assert not (root / "principals" / "svc-ext.key").exists()
    assert _principals(root)["svc-ext"][2] == own.public_key().public_bytes_raw()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["svc-pl", "-j", "PL", "--role", "service"], "principal svc-pl is already registered"),
        (["svc-x", "-j", "XX", "--role", "service"], "unknown jurisdiction 'XX'"),
        (["svc-x", "-j", "PL", "--role", "king"], "--role is one of service, authority"),
        (["svc-x", "-j", "PL", "--role", "subject"], "subjects sign in through"),
        (["bad id!", "-j", "PL", "--role", "service"], "principal id"),
    ],
)
def test_add_refuses_bad_input_and_stores_nothing(sovra, root, args, message):
    before = _principals(root)
    keys = sorted((root / "principals").iterdir())
    ran = sovra("principal", "add", *args, "-d", root)
    assert ran.code == 1
    assert message in ran.message
    assert _principals(root) == before
    assert sorted((root / "principals").iterdir()) == keys


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a key at all", "holds no Ed25519 public key"),
        (b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "not a readable PEM"),
        (base64.b64encode(b"x" * 31), "holds no Ed25519 public key"),
    ],
)
def test_add_refuses_a_bad_key_file(sovra, root, tmp_path, content, message):
    bad = tmp_path / "bad.pub"
    bad.write_bytes(content)
    before = _principals(root)
    ran = sovra(
        "principal", "add", "svc-x", "-j", "PL", "--role", "service", "--public-key", bad,
        "-d", root,
    )  # fmt: skip
    assert ran.code == 1
    assert message in ran.message
    assert _principals(root) == before


def test_add_refuses_an_rsa_key_and_a_missing_file(sovra, root, tmp_path):
    from cryptography.hazmat.primitives.asymmetric import rsa

    rsa_pem = tmp_path / "rsa.pem"
    rsa_pem.write_bytes(
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .public_key()
        .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    base = ["principal", "add", "svc-x", "-j", "PL", "--role", "service", "-d", root]
    ran = sovra(*base, "--public-key", rsa_pem)
    assert ran.code == 1
    assert "not an Ed25519 public key" in ran.message
    ran = sovra(*base, "--public-key", tmp_path / "missing.pem")
    assert ran.code == 1
    assert "cannot read" in ran.message
    assert "svc-x" not in _principals(root)


def test_unknown_principal_is_refused_by_revoke_and_rotate(sovra, root):
    before = _principals(root)
    for command in ("revoke", "rotate-key"):
        ran = sovra("principal", command, "svc-nobody", "-d", root)
        assert ran.code == 1
        assert "no principal svc-nobody" in ran.message
    assert _principals(root) == before


def test_revoke_and_rotate_take_effect_on_the_next_request(sovra, root):
    dep = Deployment.open(root)
    try:
        with running(create_app(dep)) as url:
            old_pl = dep.principal_key("svc-pl")
            old_de = dep.principal_key("svc-de")
            with Client(url, "svc-pl", old_pl) as pl, Client(url, "svc-de", old_de) as de:
                pl.ingest("a", "PL", "x")  # both known to the running gateway now
                de.ingest("b", "DE", "y")
                assert sovra("principal", "revoke", "svc-pl", "-d", root).code == 0
                with pytest.raises(Unauthenticated, match="unknown principal"):
                    pl.ingest("a", "PL", "x")
                rotated = sovra("principal", "rotate-key", "svc-de", "-d", root)
                assert rotated.code == 0, rotated.err
                with pytest.raises(Unauthenticated, match="signature"):
                    de.ingest("b", "DE", "y")
            new_de = load_ed25519(root / "principals" / "svc-de.key")
            assert new_de.private_bytes_raw() != old_de.private_bytes_raw()
            with Client(url, "svc-de", new_de) as de:
                assert de.ingest("b", "DE", "y")["record_id"]
    finally:
        dep.close()
    assert not (root / "principals" / "svc-pl.key").exists()
    principals = _principals(root)
    assert "svc-pl" not in principals
    assert principals["svc-de"][:2] == ("DE", str(Role.SERVICE))
