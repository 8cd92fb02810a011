"""Legal-assistance grants: signing by the home authority and the checks on every use.

A grant is the software form of a mutual-legal-assistance request: the requesting authority
(grantee), the approving (home) authority, the legal basis, the named subjects, the purpose,
the data categories, the time window and the maximum records per request, signed by the
approving authority over :meth:`Grant.signed_bytes`. A grant whose subjects exceed the
per-request bulk cap must also be co-signed by further authorities.

:class:`GrantChecker` runs on *every* use: signatures (verified once per grant digest, since
the digest fixes the signed bytes), then revocation and the time window against the injected
clock, both of which can change between uses. Cedar then checks the scope.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from sovra.errors import BadRequest, Denied
from sovra.model import Grant

__all__ = [
    "GrantChecker",
    "GrantFacts",
    "as_registered",
    "check_grant",
    "cosign_grant",
    "sign_grant",
    "verify_grant_signature",
]

_MAX_MEMO = 4096


def sign_grant(grant: Grant, authority_key: Ed25519PrivateKey) -> Grant:
    """Return *grant* signed by the approving authority's key (co-signatures are dropped)."""
    return replace(grant, signature=authority_key.sign(grant.signed_bytes()), cosignatures=())


def cosign_grant(grant: Grant, jurisdiction: str, authority_key: Ed25519PrivateKey) -> Grant:
    """Return *grant* with *jurisdiction*'s authority's co-signature added.

    Raises:
        BadRequest: the approver cannot co-sign its own grant.
    """
    if jurisdiction == grant.approver:
        raise BadRequest(f"{jurisdiction} approved grant {grant.grant_id}; a co-signer is another")
    others = tuple(c for c in grant.cosignatures if c[0] != jurisdiction)
    signature = authority_key.sign(grant.signed_bytes())
    return replace(grant, cosignatures=tuple(sorted((*others, (jurisdiction, signature)))))


@dataclass(frozen=True, slots=True)
class GrantFacts:
    """What the decision point may rely on about a presented grant.

    ``subjects`` holds subject *commitments*, so the policy engine never sees names.
    ``problem`` says why ``verified`` is False, in words for the decision's reason.
    ``categories`` empty means the grant does not restrict data categories;
    ``max_records`` 0 means no cap beyond the bulk guard.
    """

    verified: bool
    digest: str | None
    approver: str
    grantee: str
    purpose: str
    subjects: frozenset[str]
    problem: str = ""
    categories: frozenset[str] = frozenset()
    max_records: int = 0
    cosigners: frozenset[str] = frozenset()
    grant_id: str = ""
    # The co-signers whose co-signature is on the grant as registered, so in the log before
    # any use (ADR 0001); only these count as a second home's approval (ADR 0025).
    registered_cosigners: frozenset[str] = frozenset()
    # Co-signers that took their co-signature back since (it no longer counts at all).
    withdrawn_cosigners: frozenset[str] = frozenset()

    @classmethod
    def none(cls) -> GrantFacts:
        """Facts for a request that presented no grant."""
        return cls(False, None, "", "", "", frozenset(), "no legal-assistance grant was presented")

    @property
    def present(self) -> bool:
        """Whether a grant was presented at all."""
        return self.digest is not None

    def covers(self, kinds: frozenset[str]) -> bool:
        """Whether the grant's categories cover a record holding *kinds* of data."""
        if not self.categories:
            return True
        return (kinds or frozenset({"plain"})) <= self.categories


def check_grant(
    grant: Grant,
    authority_keys: Mapping[str, Ed25519PublicKey],
    *,
    now_s: int,
    revoked: bool,
    commit: Callable[[str, str], str],
) -> GrantFacts:
    """Verify *grant* and return the facts the policy may use (no memo).

    A grant that fails a check still yields facts (``verified`` False and a ``problem``)
    so that the refusal is decided, explained and logged like any other deny.

    Args:
        grant: the presented grant.
        authority_keys: each jurisdiction's authority public key.
        now_s: the current UNIX time in seconds (injected clock).
        revoked: whether the grant id is on the revocation list.
        commit: ``commit(jurisdiction, subject_id)`` -> subject commitment.
    """
    return GrantChecker(authority_keys, commit).check(grant, now_s=now_s, revoked=revoked)


class GrantChecker:
    """Checks grants on every use; memoises what cannot change for a given digest.

    Signatures and subject commitments depend only on the grant's bytes, so they are
    computed once per digest (bounded memo). Revocation and the time window are checked on
    every call.
    """

    def __init__(
        self,
        authority_keys: Mapping[str, Ed25519PublicKey],
        commit: Callable[[str, str], str],
    ) -> None:
        self._keys = authority_keys
        self._commit = commit
        self._memo: dict[tuple[str, bytes, tuple[tuple[str, bytes], ...]], GrantFacts] = {}
        self._lock = threading.Lock()

    def _static(self, grant: Grant) -> GrantFacts:
        digest = grant.digest()
        key = (digest, grant.signature, grant.cosignatures)
        with self._lock:
            known = self._memo.get(key)
        if known is not None:
            return known
        facts = GrantFacts(
            verified=False,
            digest=digest,
            approver=grant.approver,
            grantee=grant.grantee,
            purpose=grant.purpose,
            subjects=frozenset(self._commit(grant.approver, s) for s in grant.subjects),
            categories=frozenset(grant.categories),
            max_records=grant.max_records,
            grant_id=grant.grant_id,
        )
        try:
            verify_grant_signature(grant, self._keys)
            cosigners = verified_cosigners(grant, self._keys)
        except Denied as exc:
            facts = replace(facts, problem=exc.message)
        else:
            facts = replace(facts, verified=True, cosigners=cosigners)
        with self._lock:
            if len(self._memo) >= _MAX_MEMO:
                self._memo.clear()
            self._memo[key] = facts
        return facts

    def check(self, grant: Grant, *, now_s: int, revoked: bool) -> GrantFacts:
        """The facts of *grant* at *now_s* (see :func:`check_grant`)."""
        facts = self._static(grant)
        if not facts.verified:
            return facts
        if revoked:
            return replace(
                facts, verified=False, problem=f"grant {grant.grant_id} has been revoked"
            )
        if now_s < grant.not_before:
            problem = f"grant {grant.grant_id} is not valid before {grant.not_before}"
            return replace(facts, verified=False, problem=problem)
        if now_s >= grant.not_after:
            problem = f"grant {grant.grant_id} expired at {grant.not_after}"
            return replace(facts, verified=False, problem=problem)
        return facts


def as_registered(
    facts: GrantFacts, registered: Grant, withdrawn: frozenset[str] = frozenset()
) -> GrantFacts:
    """*facts* of a presented grant, with the co-signers that the grant as *registered*
    under its id (the same digest) also carries, less those that have *withdrawn* their
    co-signature since: a withdrawn co-signature counts for nothing, neither as a second
    home's approval nor towards a bulk grant's co-signers."""
    on_file = frozenset(j for j, _ in registered.cosignatures)
    gone = withdrawn & on_file
    return replace(
        facts,
        cosigners=facts.cosigners - gone,
        registered_cosigners=(facts.cosigners & on_file) - gone,
        withdrawn_cosigners=gone,
    )


def verify_grant_signature(grant: Grant, authority_keys: Mapping[str, Ed25519PublicKey]) -> None:
    """Check that the approving jurisdiction's authority signed exactly this grant.

    Raises:
        Denied: unknown approver, or the signature does not verify.
    """
    key = authority_keys.get(grant.approver)
    if key is None:
        raise Denied(
            f"grant {grant.grant_id} names approver {grant.approver}, "
            "which has no authority key here"
        )
    try:
        key.verify(grant.signature, grant.signed_bytes())
    except InvalidSignature:
        raise Denied(
            f"grant {grant.grant_id} is not signed by the {grant.approver} authority's key"
        ) from None


def verified_cosigners(
    grant: Grant, authority_keys: Mapping[str, Ed25519PublicKey]
) -> frozenset[str]:
    """The jurisdictions whose co-signatures on *grant* verify.

    Raises:
        Denied: a co-signature is from an unknown jurisdiction or does not verify (a
            tampered co-signature spoils the grant rather than being ignored).
    """
    good = set()
    for jurisdiction, signature in grant.cosignatures:
        key = authority_keys.get(jurisdiction)
        if key is None or jurisdiction == grant.approver:
            raise Denied(f"grant {grant.grant_id} has a co-signature by unknown {jurisdiction}")
        try:
            key.verify(signature, grant.signed_bytes())
        except InvalidSignature:
            raise Denied(
                f"grant {grant.grant_id}'s co-signature by {jurisdiction} does not verify"
            ) from None
        good.add(jurisdiction)
    return frozenset(good)
