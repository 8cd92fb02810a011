"""Shared keys, subjects, principals and grants for the policy tests (no I/O, fixed clock)."""

from __future__ import annotations

import hashlib
from dataclasses import replace

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sovra.model import Grant, Principal, Role, subject_commitment
from sovra.policy import (
    Envelope,
    GrantChecker,
    GrantFacts,
    PolicyPack,
    RecordFacts,
    cosign_grant,
    shipped_bundle,
    sign_grant,
    sign_pack,
    verify_pack,
)

SECRET = b"k" * 32
PARTIES = ("CN", "DE", "PL", "US", "VN")
KEYS = {j: Ed25519PrivateKey.generate() for j in PARTIES}
PUBLIC = {j: k.public_key() for j, k in KEYS.items()}
NOW = 1_800_000_000
PURPOSES = {j: ["customer-support", "billing", "service-operation"] for j in PARTIES}


class Clock:
    """A deployment clock the test can move (UNIX seconds)."""

    def __init__(self, start: float = 1_790_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def commit(j: str, s: str) -> str:
    return subject_commitment(SECRET, j, s)


def who(pid: str, j: str, role: Role, subject: str = "") -> Principal:
    return Principal(pid, j, role, b"\x01" * 32, subject)


def rec(
    i: int | str, j: str = "VN", subject: str = "lan", kinds: frozenset[str] = frozenset()
) -> RecordFacts:
    return RecordFacts(f"r-{i}", commit(j, subject), j, kinds)


def random_id(i: int) -> str:
    """The *i*-th of a fixed set of ids shaped like sovra's (random hex, no sequence)."""
    return hashlib.sha256(b"record %d" % i).hexdigest()[:32]


def grant(**change: object) -> Grant:
    fields: dict[str, object] = dict(
        grant_id="g",
        grantee="authority-us",
        grantee_jurisdiction="US",
        approver="VN",
        subjects=("lan",),
        purpose="foreign-legal-process",
        legal_basis="MLA",
        not_before=NOW - 10,
        not_after=NOW + 10,
    )
    fields.update(change)
    return sign_grant(Grant(**fields), KEYS[str(fields["approver"])])


def facts(g: Grant | None, *, revoked: bool = False, now: int = NOW) -> GrantFacts:
    if g is None:
        return GrantFacts.none()
    return GrantChecker(PUBLIC, commit).check(g, now_s=now, revoked=revoked)


def signed_pack(name: str, signers: tuple[str, ...] = ("PL", "VN", "DE")) -> PolicyPack:
    """A shipped pack that went through k-of-n signing and verification."""
    envelope = Envelope.wrap(shipped_bundle(name))
    for j in signers:
        envelope = sign_pack(envelope, j, KEYS[j])
    return verify_pack(envelope, PUBLIC).bundle.compile()


def forged(g: Grant) -> Grant:
    """*g* with a signature by the wrong authority."""
    return replace(g, signature=KEYS["PL"].sign(g.signed_bytes()))


def cosigned(g: Grant, *by: str) -> Grant:
    for j in by:
        g = cosign_grant(g, j, KEYS[j])
    return g


# Principals of every role, home and foreign.
SVC = {j: who(f"svc-{j.lower()}", j, Role.SERVICE) for j in PARTIES}
AUTH = {j: who(f"authority-{j.lower()}", j, Role.AUTHORITY) for j in PARTIES}
LAN = who("subject-lan", "VN", Role.SUBJECT, commit("VN", "lan"))
MINH = who("subject-minh", "VN", Role.SUBJECT, commit("VN", "minh"))
OPERATOR = who("operator", "PL", Role.OPERATOR)
ANALYST = who("analyst-vn", "VN", Role.ANALYST)
AUDITOR = who("auditor", "PL", Role.AUDITOR)
