"""The seed scenario: seven outcomes that show what sovra guarantees.

A Polish and a Vietnamese subject (and a few hundred synthetic ones) are ingested; then
a home service reads, a foreign authority is refused and then allowed under a grant, a
bulk request is refused, the operator is refused by the custodian, the subject audits who
touched her data, and an auditor verifies the whole log. Each step authenticates with a
real signed token, exactly as an HTTP request would.
"""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sovra.auth import make_token
from sovra.custody import authority_key_path, custodian_key_path, separate
from sovra.deployment import Deployment
from sovra.errors import Denied, NotFound, SovraError
from sovra.gateway import AccessResult
from sovra.keys import generate_ed25519, load_ed25519, public_bytes
from sovra.ledger import audit, verify_checkpoint, verify_consistency, verify_entry_inclusion
from sovra.model import Decision, Grant, LogEntry, LogReceipt, Principal, ReleaseAuthorization, Role
from sovra.policy import sign_grant

__all__ = ["ANNA", "DEMO_PRINCIPALS", "LAN", "Step", "demo_keys", "run_demo"]

ANNA = ("PL", "anna.kowalska@example.pl")
LAN = ("VN", "nguyen.thi.lan@example.vn")

ANNA_RECORDS = [
    "Zgłoszenie klientki: Anna Kowalska, PESEL 44051401359, tel. +48 601 234 567, "
    "e-mail anna.kowalska@example.pl. Prosi o zmianę adresu dostawy na ul. Długa 5, Gdańsk.",
    "Reklamacja: przelew z rachunku PL61 1090 1014 0000 0712 1981 2874 nie został zaksięgowany.",
]
LAN_RECORDS = [
    "Khách hàng Nguyễn Thị Lan, số điện thoại +84 912 345 678, email "
    "nguyen.thi.lan@example.vn, yêu cầu hỗ trợ về đơn hàng số 44871.",
]


DEMO_PRINCIPALS = ("svc-pl", "svc-vn", "authority-us", "authority-vn", "authority-cn")
"""The registered principals whose keys the scenario signs with."""
_SUBJECT = "subject-anna"
_GRANTOR = "authority:VN"
"""The key that signs step 3's grant: VN's authority key, not its principal's."""


def demo_keys(root: Path) -> dict[str, Ed25519PrivateKey]:
    """Every private key the scenario uses, read (or, for Anna, made) by the clients' user.

    Principals' keys and the authority's are not the gateway's: where the gateway runs as
    a user of its own, it cannot read them, so the command reads them first and the
    scenario signs with these.

    Raises:
        ConfigError: a key file is missing or open to others.
    """
    keys = {pid: load_ed25519(root / "principals" / f"{pid}.key") for pid in DEMO_PRINCIPALS}
    anna = root / "principals" / f"{_SUBJECT}.key"
    keys[_SUBJECT] = load_ed25519(anna) if anna.exists() else generate_ed25519(anna)
    keys[_GRANTOR] = load_ed25519(authority_key_path(root, "VN"))
    return keys


@dataclass(frozen=True, slots=True)
class Step:
    """One line of the scenario's table."""

    number: int
    actor: str
    action: str
    expected: str
    outcome: str
    reason: str
    log_index: int | None

    @property
    def ok(self) -> bool:
        """Whether the outcome is the expected one."""
        return self.expected == self.outcome


def _pesel(rng: random.Random) -> str:
    """A synthetic PESEL with a valid checksum (born 1950-1999)."""
    digits = [
        rng.randint(5, 9),
        rng.randint(0, 9),
        0,
        rng.randint(1, 9),
        rng.randint(1, 2),
        rng.randint(0, 8),
    ] + [rng.randint(0, 9) for _ in range(4)]
    check = (10 - sum(w * d for w, d in zip((1, 3, 7, 9) * 3, digits, strict=False)) % 10) % 10
    return "".join(map(str, digits)) + str(check)


def _synthetic(rng: random.Random, n: int) -> list[tuple[str, str, str]]:
    out = []
    for i in range(n):
        if i % 2:
            body = (
                f"Klient nr {i}: PESEL {_pesel(rng)}, tel. +48 5{rng.randint(10, 99)} "
                f"{rng.randint(100, 999)} {rng.randint(100, 999)}, prosi o fakturę."
            )
            out.append(("PL", f"pl-synthetic-{i:04d}", body))
        else:
            body = (
                f"Khách hàng số {i}, điện thoại +84 9{rng.randint(10, 99)} "
                f"{rng.randint(100, 999)} {rng.randint(100, 999)}, hỏi về giao hàng."
            )
            out.append(("VN", f"vn-synthetic-{i:04d}", body))
    return out


class _Actor:
    """A principal that authenticates each call with a fresh signed token."""

    def __init__(self, dep: Deployment, principal_id: str, key: Ed25519PrivateKey) -> None:
        self.dep, self.id, self.key = dep, principal_id, key

    def login(self, path: str) -> Principal:
        now = int(self.dep.gateway._clock())
        token = make_token(self.key, self.id, "POST", path, b"", now_s=now)
        return self.dep.authenticator.authenticate(token, "POST", path, b"")


def run_demo(
    dep: Deployment,
    *,
    synthetic: int = 300,
    progress: Callable[[int, int], None] | None = None,
    keys: Mapping[str, Ed25519PrivateKey] | None = None,
) -> list[Step]:
    """Run the seven steps on an opened deployment; return one :class:`Step` per outcome.

    *keys* are the clients' keys from :func:`demo_keys`; without them they are read from
    the deployment (where this process may read them).
    """
    gw = dep.gateway
    keys = keys if keys is not None else demo_keys(dep.root)
    # Synthetic data, not secrets; a fixed seed (the Initiative's date) keeps runs comparable.
    rng = random.Random(20200908)  # noqa: S311
    svc = {j: _Actor(dep, f"svc-{j.lower()}", keys[f"svc-{j.lower()}"]) for j in ("PL", "VN")}
    anna_c = gw.commitment(*ANNA)
    anna_key = keys[_SUBJECT]
    try:  # a second run on the same deployment reuses her
        dep.store.get_principal(_SUBJECT)
    except NotFound:
        dep.store.put_principal(
            Principal(_SUBJECT, "PL", Role.SUBJECT, public_bytes(anna_key), anna_c)
        )
    anna = _Actor(dep, _SUBJECT, anna_key)

    todo = [(*ANNA, t) for t in ANNA_RECORDS] + [(*LAN, t) for t in LAN_RECORDS]
    # Enough subjects of each jurisdiction that step 4 crosses the per-request bulk cap.
    todo += _synthetic(rng, max(synthetic, 2 * dep.config.request_subject_limit + 2))
    for n, (j, sid, text) in enumerate(todo, 1):
        gw.ingest(svc[j].login("/v1/records"), subject_id=sid, jurisdiction=j, content=text)
        if progress:
            progress(n, len(todo))
    first_checkpoint = gw.log.checkpoint()
    steps: list[Step] = []

    def attempt(
        number: int, actor: str, action: str, expected: str, call: Callable[[], AccessResult]
    ) -> None:
        try:
            result = call()
            index = result.decision_receipt.index
            reason = result.decision.reason
            steps.append(Step(number, actor, action, expected, "allow", reason, index))
        except Denied as exc:
            outcome = "deny"
            if exc.log_index is not None:
                # Read the refusal back from the public log: which policy decided it.
                logged = LogEntry.from_bytes(gw.log.entry(exc.log_index))
                if any(p.startswith("bulk-collection") for p in logged.fields["policies"]):
                    outcome = "deny: bulk"
            steps.append(Step(number, actor, action, expected, outcome, exc.message, exc.log_index))
        except SovraError as exc:
            steps.append(
                Step(number, actor, action, expected, "error", exc.diagnostics(), exc.log_index)
            )

    def read(
        actor: _Actor, purpose: str, grant: Grant | None = None, **target: Any
    ) -> AccessResult:
        return gw.access(actor.login("/v1/access"), purpose=purpose, grant=grant, **target)

    # 1. the subject's own-country service, for a declared purpose
    attempt(
        1,
        "svc-pl (PL service)",
        "read Anna's records for customer-support",
        "allow",
        lambda: read(svc["PL"], "customer-support", subjects=[ANNA]),
    )

    # 2. a foreign authority without a grant
    us = _Actor(dep, "authority-us", keys["authority-us"])
    attempt(
        2,
        "authority-us (foreign)",
        "read Lan's record, no grant",
        "deny",
        lambda: read(us, "foreign-legal-process", subjects=[LAN]),
    )

    # 3. the home authority signs a scoped grant; the same request is allowed
    now = int(gw._clock())
    grant_id = f"mla-vn-{now}-{os.urandom(3).hex()}"  # unique, so the demo can run again
    grant = sign_grant(
        Grant(
            grant_id=grant_id,
            grantee="authority-us",
            grantee_jurisdiction="US",
            approver="VN",
            subjects=(LAN[1],),
            purpose="foreign-legal-process",
            legal_basis="VN-US mutual legal assistance request 2026/17, fraud investigation",
            not_before=now - 60,
            not_after=now + 7 * 86400,
        ),
        keys[_GRANTOR],
    )
    dep.governance.register_grant(
        _Actor(dep, "authority-vn", keys["authority-vn"]).login("/v1/grants"), grant
    )
    attempt(
        3,
        "authority-us + VN grant",
        f"same request under grant {grant_id}",
        "allow",
        lambda: read(us, "foreign-legal-process", grant=grant, subjects=[LAN]),
    )

    # 4. another state asks for every record of a foreign nationality at once
    cn = _Actor(dep, "authority-cn", keys["authority-cn"])
    attempt(
        4,
        "authority-cn (foreign)",
        "read every VN record at once",
        "deny: bulk",
        lambda: read(cn, "foreign-legal-process", jurisdiction="VN"),
    )

    # 5. the operator goes straight to the custodian, with no logged decision
    steps.append(_operator_bypass(dep))

    # 6. the subject asks who touched her data, and verifies every proof herself
    steps.append(_subject_report(dep, anna))

    # 7. an auditor verifies the log from its first checkpoint to its last
    steps.append(_audit(dep, first_checkpoint))
    return steps


def _operator_bypass(dep: Deployment) -> Step:
    gw = dep.gateway
    meta = gw.store.records_for_subject(gw.commitment(*ANNA))[0]
    custodian = gw.custodians["PL"]
    action = "unwrap Anna's key with no decision, then with a self-made receipt"
    refusals = []
    try:
        custodian.unwrap(meta.wrapped_key, meta.header, None, "operator")
        refusals.append("released with no authorization")
    except Denied as exc:
        refusals.append(exc.message)
    # An allow the operator invents, with a receipt it signs itself: not the log's key.
    now_ms = int(gw._clock() * 1000)
    entry = (
        Decision(
            decision_id="forged",
            allow=True,
            reason="",
            principal="operator",
            purpose="service-operation",
            records=(meta.header.record_id,),
            subjects=(meta.header.subject,),
        )
        .to_entry(now_ms)
        .to_bytes()
    )
    unsigned = LogReceipt(
        gw.config.origin, gw.log.size, hashlib.sha256(b"\x00" + entry).digest(), now_ms
    )
    receipt = replace(
        unsigned, signature=Ed25519PrivateKey.generate().sign(unsigned.signed_bytes())
    )
    try:
        custodian.unwrap(
            meta.wrapped_key, meta.header, ReleaseAuthorization(entry, receipt), "operator"
        )
        refusals.append("released against a forged receipt")
    except SovraError as exc:
        refusals.append(exc.message)
    leaked = any(r.startswith("released") for r in refusals)
    refusals.append(_key_file_reach(dep))
    return Step(
        5, "operator", action, "deny", "allow" if leaked else "deny", " | ".join(refusals), None
    )


def _key_file_reach(dep: Deployment) -> str:
    """Whether this process, the gateway's, can open custodian PL's key file itself."""
    if not separate(dep.root, "PL"):
        return "in-process custodian: its key file is beside the gateway (a test layout)"
    path = custodian_key_path(dep.root, "PL")
    try:
        with path.open("rb"):
            pass
    except PermissionError:
        return f"and the gateway's user cannot open {path.name}: permission denied"
    except OSError as exc:
        return f"and the gateway cannot open {path.name}: {exc.strerror}"
    return (
        f"the custodian runs as its own process, but as this same user, which can open "
        f"{path.name} (run sovra as root for a user per custodian)"
    )


def _subject_report(dep: Deployment, anna: _Actor) -> Step:
    gw = dep.gateway
    report = dep.governance.subject_report(
        anna.login("/v1/report"), jurisdiction=ANNA[0], subject_id=ANNA[1]
    )
    vkey = gw.log.verifier_key
    try:
        checkpoint = verify_checkpoint(report.checkpoint, vkey)
        kinds: dict[str, int] = {}
        for e in report.entries:
            verify_entry_inclusion(e.entry, e.index, list(e.proof), checkpoint)
            kind = LogEntry.from_bytes(e.entry).kind
            kinds[kind] = kinds.get(kind, 0) + 1
    except SovraError as exc:
        return Step(
            6, "subject-anna", "who touched my data?", "verified", "failed", exc.message, None
        )
    summary = ", ".join(f"{v} {k}" for k, v in sorted(kinds.items()))
    return Step(
        6,
        "subject-anna",
        "who touched my data? (inclusion proofs)",
        "verified",
        "verified",
        f"{len(report.entries)} entries ({summary}), all proofs verify "
        f"against checkpoint of size {checkpoint.size}",
        None,
    )


def _audit(dep: Deployment, first_note: str) -> Step:
    gw = dep.gateway
    last_note = gw.log.checkpoint()
    vkey = gw.log.verifier_key
    try:
        first = verify_checkpoint(first_note, vkey)
        last = verify_checkpoint(last_note, vkey)
        verify_consistency(
            first.size,
            last.size,
            first.root_hash,
            last.root_hash,
            gw.log.consistency_proof(first.size, last.size),
        )
        report = audit(gw.log.iter_entries(0, last.size), gw.log.checkpoints(), vkey)
        report.check()
    except SovraError as exc:
        return Step(7, "auditor", "verify the log", "verified", "failed", exc.message, None)
    return Step(
        7,
        "auditor",
        "verify log: first -> last checkpoint",
        "verified",
        "verified",
        f"{last.size} entries replayed, {report.checkpoints} checkpoints, "
        f"consistent {first.size} -> {last.size}",
        None,
    )
