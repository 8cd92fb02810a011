"""Legal-assistance grants: signing by the home authority and the checks on every use.

A grant is the software form of a mutual-legal-assistance request. The approving
(home) jurisdiction's authority signs :meth:`Grant.signed_bytes`; the decision point
trusts a grant only after :func:`check_grant` has verified signature, time window and
revocation, and then Cedar checks its scope (grantee, purpose, subjects).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from sovra.errors import Denied
from sovra.model import Grant

__all__ = ["GrantFacts", "check_grant", "sign_grant"]


def sign_grant(grant: Grant, authority_key: Ed25519PrivateKey) -> Grant:
    """Return *grant* signed by the approving authority's key."""
    return replace(grant, signature=authority_key.sign(grant.signed_bytes()))


@dataclass(frozen=True, slots=True)
class GrantFacts:
    """What the decision point may rely on about a presented grant.

    ``subjects`` holds subject *commitments*, so the policy engine never sees names.
    ``problem`` says why ``verified`` is False, in words for the decision's reason.
    """

    verified: bool
    digest: str | None
    approver: str
    grantee: str
    purpose: str
    subjects: frozenset[str]
    problem: str = ""

    @classmethod
    def none(cls) -> GrantFacts:
        """Facts for a request that presented no grant."""
        return cls(False, None, "", "", "", frozenset(), "no legal-assistance grant was presented")

    def to_context(self) -> dict[str, object]:
        """The Cedar ``context.grant`` record."""
        return {
            "verified": self.verified,
            "approver": self.approver,
            "grantee": self.grantee,
            "purpose": self.purpose,
            "subjects": sorted(self.subjects),
        }


def check_grant(
    grant: Grant,
    authority_keys: Mapping[str, Ed25519PublicKey],
    *,
    now_s: int,
    revoked: bool,
    commit: Callable[[str, str], str],
) -> GrantFacts:
    """Verify *grant* and return the facts the policy may use.

    A grant that fails a check still yields facts (``verified`` False and a ``problem``)
    so that the refusal is decided, explained and logged like any other deny.

    Args:
        grant: the presented grant.
        authority_keys: each jurisdiction's authority public key.
        now_s: the current UNIX time in seconds (injected clock).
        revoked: whether the grant id is on the revocation list.
        commit: ``commit(jurisdiction, subject_id)`` -> subject commitment.
    """
    facts = GrantFacts(
        verified=False,
        digest=grant.digest(),
        approver=grant.approver,
        grantee=grant.grantee,
        purpose=grant.purpose,
        subjects=frozenset(commit(grant.approver, s) for s in grant.subjects),
    )
    try:
        verify_grant_signature(grant, authority_keys)
    except Denied as exc:
        return replace(facts, problem=exc.message)
    if revoked:
        return replace(facts, problem=f"grant {grant.grant_id} has been revoked")
    if now_s < grant.not_before:
        problem = f"grant {grant.grant_id} is not valid before {grant.not_before}"
        return replace(facts, problem=problem)
    if now_s >= grant.not_after:
        return replace(facts, problem=f"grant {grant.grant_id} expired at {grant.not_after}")
    return replace(facts, verified=True)


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
