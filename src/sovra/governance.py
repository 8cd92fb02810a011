"""Governance beside the two flows: grants, policy packs, explanations, erasure, reports.

The gateway (:mod:`sovra.gateway`) runs ingest and access; everything else a principal can
ask of a deployment is here: register, show and revoke legal-assistance grants, activate a
signed policy pack (and restore the last one at start), explain a logged decision, read
the review queue and the bulk alerts, erase a subject (crypto-shredding) and report to a
subject who touched her data.

One place decides: every authorization, here and in the gateway's flows, is a decision of
the policy stage (:meth:`~sovra.policy.DecisionPoint.decide_action`, rules in the active
pack), and :class:`Authorizer` logs it, allow and deny alike, with its reason and the rules
that decided it, before anything else happens. A deny is :class:`~sovra.errors.Denied`
(403) carrying the log index of its entry. Each allowed action's own entry (``grant``,
``grant_revoked``, ``policy_activation``, ``shred``) names the decision that allowed it.

Every method takes an already-authenticated :class:`~sovra.model.Principal`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NoReturn

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sovra import _homes
from sovra.config import Config
from sovra.errors import BadRequest, ConfigError, Denied, NotFound, SovraError
from sovra.keys import Custodian
from sovra.ledger import TransparencyLog, verify_checkpoint
from sovra.ledger.storage import MAX_TAGS_PER_ENTRY
from sovra.model import (
    Decision,
    Grant,
    LogEntry,
    LogReceipt,
    Principal,
    ReleaseAuthorization,
    Role,
    check_id,
)
from sovra.policy import (
    Alert,
    DecisionPoint,
    Envelope,
    Explanation,
    ReviewItem,
    Target,
    explain_entry,
    verify_grant_signature,
    verify_pack,
)
from sovra.policy.grants import verified_cosigners
from sovra.store import MetadataStore

__all__ = [
    "Authorizer",
    "Governance",
    "GrantStatus",
    "ReportEntry",
    "Revocation",
    "SubjectReport",
]


@dataclass(frozen=True, slots=True)
class GrantStatus:
    """A registered grant and whether it has been revoked."""

    grant: Grant
    revoked: bool


@dataclass(frozen=True, slots=True)
class Revocation:
    """What :meth:`Governance.revoke_grant` did, and the log's receipt for it: the grant
    revoked (``cosigner`` None), or ``cosigner``'s co-signature of it withdrawn (the
    grant stands, as its approver's alone)."""

    grant_id: str
    receipt: LogReceipt
    cosigner: str | None = None

    @property
    def outcome(self) -> str:
        """``"revoked"`` or ``"cosignature-withdrawn"``."""
        return "revoked" if self.cosigner is None else "cosignature-withdrawn"


@dataclass(frozen=True, slots=True)
class ReportEntry:
    """One log entry about a subject, with its inclusion proof."""

    index: int
    entry: bytes
    proof: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class SubjectReport:
    """Everything the log says about one subject, provable against one checkpoint."""

    commitment: str
    checkpoint: str
    entries: tuple[ReportEntry, ...]


class Authorizer:
    """Asks the policy stage who may, and logs every answer: for the flows and governance."""

    def __init__(
        self, log: TransparencyLog, decisions: DecisionPoint, clock: Callable[[], float]
    ) -> None:
        self.log = log
        self.decisions = decisions
        self._clock = clock

    def now_ms(self) -> int:
        """The deployment clock, in milliseconds."""
        return int(self._clock() * 1000)

    def append(self, entry: LogEntry, tags: Sequence[str]) -> tuple[bytes, LogReceipt]:
        """Append *entry* under *tags*; returns its bytes and its receipt."""
        data = entry.to_bytes()
        return data, self.log.append(data, tags)

    def log_decision(self, decision: Decision) -> LogReceipt:
        """Log *decision* under its subjects and its id (so it can be explained)."""
        entry = decision.to_entry(self.now_ms())
        return self.append(entry, [*decision.subjects, f"decision:{decision.decision_id}"])[1]

    def authorize(
        self, principal: Principal, action: str, target: Target, *, log_allow: bool = True
    ) -> Decision:
        """Have the policy stage decide a governance *action*, log it, and raise on a deny.

        With *log_allow* false an allow is not logged here, for an action whose own entry
        records it (an ingest); a deny always is.

        Raises:
            Denied: the decision is deny; it is in the log at ``exc.log_index``.
        """
        decision = self.decisions.decide_action(principal, action, target)
        if decision.allow and not log_allow:
            return decision
        receipt = self.log_decision(decision)
        if not decision.allow:
            raise Denied(decision.reason, log_index=receipt.index)
        return decision

    def refuse_selection(
        self, principal: Principal, purpose: str, *, action: str, limit: int
    ) -> NoReturn:
        """Have the policy stage refuse a selection over *limit* records, log it, raise.

        Raises:
            Denied: always; the refusal is in the log at ``exc.log_index``.
        """
        decision = self.decisions.decide_selection(principal, purpose, action=action, limit=limit)
        raise Denied(decision.reason, log_index=self.log_decision(decision).index)

    @contextmanager
    def custodian_refusals(
        self, principal: Principal, authorization: ReleaseAuthorization
    ) -> Iterator[None]:
        """Log a custodian's refusal of what a logged allow allowed, and raise it with its index.

        The custodian checks the allow again (receipt, freshness, coverage); should it say
        no, the refusal is on the record too, naming the allow it refused.

        Raises:
            Denied: a custodian refused; the refusal is in the log at ``exc.log_index``.
        """
        try:
            yield
        except Denied as exc:
            if exc.log_index is not None:
                raise
            allowed = LogEntry.from_bytes(authorization.entry).fields
            decision = Decision(
                decision_id=uuid.uuid4().hex,
                allow=False,
                reason=f"{exc.message}; decision {allowed.get('decision_id')} had allowed it",
                principal=principal.id,
                purpose=str(allowed.get("purpose", "none")),
                records=(),
                subjects=(),
                action=str(allowed.get("action", "read")),
            )
            raise Denied(decision.reason, log_index=self.log_decision(decision).index) from None

    def refuse(self, principal: Principal, action: str, reason: str, tags: Sequence[str]) -> int:
        """Log a refusal of content, not of a principal (a minimisation rule refused a kind
        of data); returns its log index. Who may is never decided here."""
        decision = Decision(
            decision_id=uuid.uuid4().hex,
            allow=False,
            reason=reason,
            principal=principal.id,
            purpose="none",
            records=(),
            subjects=tuple(tags),
            action=action,
        )
        return self.append(decision.to_entry(self.now_ms()), tags)[1].index


class Governance:
    """Grants, policy packs, explanations, oversight, erasure and subject reports."""

    def __init__(
        self,
        *,
        config: Config,
        store: MetadataStore,
        custodians: Mapping[str, Custodian],
        log: TransparencyLog,
        decisions: DecisionPoint,
        authority_keys: Mapping[str, Ed25519PublicKey],
        commitment: Callable[[str, str], str],
        clock: Callable[[], float],
    ) -> None:
        self.config = config
        self.store = store
        self.custodians = custodians
        self.log = log
        self.decisions = decisions
        self.authority_keys = authority_keys
        self.commitment = commitment
        self._authorizer = Authorizer(log, decisions, clock)
        # The log index of the activation whose pack is active here (None: the default).
        self._activation: int | None = None

    # -- grants --------------------------------------------------------------------------

    def register_grant(self, principal: Principal, grant: Grant) -> LogReceipt:
        """Store a signed grant and log it (subjects as commitments only).

        Raises:
            Denied: the policy says no: by default, the signature is not the approving
                authority's (logged).
            BadRequest: a grant with this id exists already.
        """
        # Indexed under the subjects' commitments in every signing jurisdiction: a grant a
        # second home co-signed is in her report there too.
        signers = [grant.approver, *sorted(j for j, _ in grant.cosignatures)]
        tags = sorted({self.commitment(grant.approver, s) for s in grant.subjects})
        try:
            verify_grant_signature(grant, self.authority_keys)
            verified_cosigners(grant, self.authority_keys)
            signed, problem = True, ""
        except Denied as exc:
            signed, problem = False, exc.message
        if signed and len(signers) * len(tags) <= MAX_TAGS_PER_ENTRY:
            tags = sorted({self.commitment(j, s) for j in signers for s in grant.subjects})
        decision = self._authorizer.authorize(
            principal,
            "register-grant",
            Target(
                jurisdiction=grant.approver,
                subjects=tuple(tags),
                grantee=grant.grantee,
                signed=signed,
                problem=problem,
            ),
        )
        self.store.put_grant(grant.grant_id, grant.digest(), grant.to_json())
        entry = LogEntry(
            kind="grant",
            time_ms=self._authorizer.now_ms(),
            principal=principal.id,
            fields={
                "decision_id": decision.decision_id,
                "grant": grant.digest(),
                "grant_id": grant.grant_id,
                "approver": grant.approver,
                "grantee": grant.grantee,
                "purpose": grant.purpose,
                "not_before": grant.not_before,
                "not_after": grant.not_after,
                "subjects": tags,
                **({"cosigners": signers[1:]} if grant.cosignatures else {}),
            },
        )
        return self._authorizer.append(entry, tags)[1]

    def get_grant(self, grant_id: str) -> Grant:
        """A stored grant.

        Raises:
            NotFound: no grant with this id.
        """
        return Grant.from_json(self.store.get_grant(grant_id))

    def grant_status(self, principal: Principal, grant_id: str) -> GrantStatus:
        """A registered grant, with its revocation status (it names subjects: decided, logged).

        Raises:
            NotFound: no grant with this id.
            Denied: the policy says no: by default, the principal is neither the grantee,
                the approving authority, the operator nor an auditor (logged).
        """
        grant = self.get_grant(grant_id)
        self._authorizer.authorize(principal, "view-grant", self._grant_target(grant))
        return GrantStatus(grant, self.store.grant_revoked(grant_id))

    def _grant_target(self, grant: Grant) -> Target:
        subjects = {self.commitment(grant.approver, s) for s in grant.subjects}
        return Target(
            jurisdiction=grant.approver,
            subjects=tuple(sorted(subjects)),
            grantee=grant.grantee,
            signed=True,  # registered grants were verified when registered
            cosigners=tuple(sorted(j for j, _ in grant.cosignatures)),
        )

    def revoke_grant(self, principal: Principal, grant_id: str) -> Revocation:
        """Revoke a grant at once, or withdraw a co-signature of it at once; which of the
        two it was, with the log's receipt.

        The approving authority revokes the grant. An authority whose jurisdiction
        co-signed the grant (as registered) takes back its co-signature: the grant then
        no longer counts as that home's approval, so it stops covering the records that
        needed it (a subject's records of two homes), and the approver's own records stay
        covered. Either is decided by the policy (``revoke-grant``) and logged as a
        ``grant_revoked`` entry, a withdrawal with the ``cosigner`` whose co-signature went.

        Raises:
            NotFound: no grant with this id.
            BadRequest: the grant is revoked already, or the principal's co-signature
                withdrawn already (nothing logged).
            Denied: the policy says no: by default, the principal is neither the approving
                authority nor a co-signing one (logged).
        """
        grant = self.get_grant(grant_id)
        # Revocations are public (their entries are in the log), so saying so before the
        # decision tells nobody anything, and a request that can change nothing logs nothing.
        if self.store.grant_revoked(grant_id):
            raise BadRequest(f"grant {grant_id} is revoked already")
        cosigner = (
            principal.jurisdiction
            if principal.role == Role.AUTHORITY
            and principal.jurisdiction in {j for j, _ in grant.cosignatures}
            else None
        )
        if cosigner is not None and cosigner in self.store.grant_withdrawals(grant_id):
            raise BadRequest(
                f"{cosigner} has withdrawn its co-signature of grant {grant_id} already"
            )
        decision = self._authorizer.authorize(principal, "revoke-grant", self._grant_target(grant))
        now = self._authorizer.now_ms()
        if cosigner is None:
            self.store.revoke_grant(grant_id, now)
        else:
            self.store.withdraw_cosignature(grant_id, cosigner, now)
        entry = LogEntry(
            kind="grant_revoked",
            time_ms=now,
            principal=principal.id,
            fields={
                "decision_id": decision.decision_id,
                "grant": grant.digest(),
                "grant_id": grant_id,
                **({"cosigner": cosigner} if cosigner is not None else {}),
            },
        )
        return Revocation(grant_id, self._authorizer.append(entry, [])[1], cosigner)

    # -- policy: explanations, oversight and pack activation ---------------------------

    def explain(self, principal: Principal, decision_id: str) -> Explanation:
        """Explain a logged decision: its rules' reasons, grant, justification, review.

        Raises:
            BadRequest: a malformed decision id.
            Denied: the policy says no (logged; the shipped packs let anyone).
            NotFound: no decision with this id in the log.
        """
        tag = f"decision:{check_id(decision_id, 'decision id')}"
        self._authorizer.authorize(principal, "explain", Target())
        indexes = self.log.find(tag)
        if not indexes:
            raise NotFound(f"no decision {decision_id} in the log")
        entry = LogEntry.from_bytes(self.log.entry(indexes[0]))
        return explain_entry(
            entry.fields,
            index=indexes[0],
            time_ms=entry.time_ms,
            principal=entry.principal,
            pack=self.decisions.pack,
        )

    def reviews(self, principal: Principal) -> list[ReviewItem]:
        """Decisions queued for legal (or after-the-fact) review, oldest first.

        Raises:
            Denied: the policy says no: by default, the principal is not the operator, an
                authority or an auditor (logged).
        """
        self._authorizer.authorize(principal, "view-reviews", Target())
        return self.decisions.reviews()

    def alerts(self, principal: Principal) -> list[Alert]:
        """Refusals the bulk guard decided, newest last.

        Raises:
            Denied: the policy says no: by default, the principal is not the operator, an
                authority or an auditor (logged).
        """
        self._authorizer.authorize(principal, "view-alerts", Target())
        return self.decisions.guard.alerts()

    def metrics(self) -> str:
        """Prometheus metrics of the bulk guard (counts only: public, like the log)."""
        return self.decisions.guard.metrics()

    def active_pack(self) -> dict[str, Any]:
        """The active policy pack: name, version, digest, parties, threshold and rules."""
        pack = self.decisions.pack
        return {
            "name": pack.name,
            "version": pack.version,
            "digest": pack.digest,
            "parties": list(pack.parties),
            "threshold": pack.threshold,
            "rules": pack.rules(),
        }

    def activate_policy(self, principal: Principal, envelope: Envelope) -> LogReceipt:
        """Activate a signed policy pack: verify k of n signers, log, then switch.

        The ``policy_activation`` entry (pack name, version, digest, signers) is in the log
        before the pack decides anything.

        Raises:
            Denied: the active pack says no: by default, the principal is neither the
                operator nor an authority (logged).
            BadRequest: too few, unknown or non-party signers, rollback, a pack that fails
                validation or that would let no one activate a later pack; the active pack
                is unchanged.
            VerificationError: a signature over other bytes; the active pack is unchanged.
        """
        # The pack is checked first (no side effect): a pack that cannot take effect
        # leaves nothing in the log, whoever sent it.
        previous = self.decisions.pack
        verified = verify_pack(envelope, self.authority_keys, active=self.decisions.active())
        pack = verified.bundle.compile()
        if not self.decisions.permits_activation(pack):
            raise BadRequest(
                f"pack {pack.name} v{pack.version} lets no one activate a later pack, so it "
                "could never be replaced; add a rule permitting action activate-policy"
            )
        decision = self._authorizer.authorize(principal, "activate-policy", Target())
        entry = LogEntry(
            kind="policy_activation",
            time_ms=self._authorizer.now_ms(),
            principal=principal.id,
            fields={
                "decision_id": decision.decision_id,
                "pack": pack.name,
                "version": pack.version,
                "digest": pack.digest,
                "parties": list(pack.parties),
                "threshold": pack.threshold,
                "signers": list(verified.signers),
                "previous": {
                    "pack": previous.name,
                    "version": previous.version,
                    "digest": previous.digest,
                },
                # The signed pack itself (public, like the log), so that a restart restores it.
                "envelope": json.loads(envelope.to_json()),
            },
        )
        receipt = self._authorizer.append(entry, ["policy_activation"])[1]
        self.decisions.activate(pack)
        self._activation = receipt.index
        return receipt

    def restore_policy(self) -> None:
        """Re-activate the pack of the last ``policy_activation`` entry, if any.

        Its signatures are checked again against the authority keys: a logged pack that no
        longer verifies stops the gateway rather than falling back to another pack.

        Raises:
            ConfigError: the last logged pack no longer verifies or validates.
        """
        indexes = self.log.find("policy_activation")
        if not indexes:
            return
        self._restore(indexes[-1])

    def follow_policy(self) -> None:
        """Activate here the pack another process (a worker, a replica) activated since:
        the last ``policy_activation`` entry of the log, when it is not the active one.
        The server calls it about once a second.

        Raises:
            ConfigError: that pack no longer verifies or validates (as :meth:`restore_policy`).
        """
        indexes = self.log.find("policy_activation")
        if indexes and indexes[-1] != self._activation:
            self._restore(indexes[-1])

    def _restore(self, index: int) -> None:
        entry = LogEntry.from_bytes(self.log.entry(index))
        try:
            envelope = Envelope.from_json(json.dumps(entry.fields["envelope"]).encode())
            pack = verify_pack(envelope, self.authority_keys).bundle.compile()
        except (KeyError, SovraError) as exc:
            detail = exc.message if isinstance(exc, SovraError) else f"missing {exc}"
            raise ConfigError(
                f"the policy pack activated at log index {index} does not verify: {detail}"
            ) from None
        self.decisions.activate(pack)
        self._activation = index

    # -- crypto-shredding ----------------------------------------------------------------

    def shred(self, principal: Principal, *, jurisdiction: str, subject_id: str) -> LogReceipt:
        """Erase a subject: her custodian destroys her key, so no record of hers opens again.

        The ``shred`` entry is logged first, then the key is destroyed; blobs and metadata
        stay as they are and are unreadable. Shredding twice logs twice and is harmless.

        Raises:
            Denied: the policy says no: by default, the principal is neither the subject
                nor her home authority (logged).
            ConfigError: the custodian could not destroy the key; retry.
        """
        commitment = self.commitment(jurisdiction, subject_id)
        decision = self._authorizer.authorize(
            principal, "shred", Target(jurisdiction=jurisdiction, subjects=(commitment,))
        )
        records = _homes.records_for_subject(self.store, self.log, commitment)
        entry = LogEntry(
            kind="shred",
            time_ms=self._authorizer.now_ms(),
            principal=principal.id,
            fields={
                "decision_id": decision.decision_id,
                "subject": commitment,
                "jurisdiction": jurisdiction,
                # A count, not the ids: an entry is bounded and a subject's records are not.
                "records": len(records),
            },
        )
        # Her records of two homes die with this home's key: in her other home's report too.
        tags = [commitment, *_homes.other_commitments(records, commitment)]
        _, receipt = self._authorizer.append(entry, tags)
        self.custodians[jurisdiction].shred(commitment)
        return receipt

    # -- subject access report -----------------------------------------------------------

    def subject_report(
        self, principal: Principal, *, jurisdiction: str, subject_id: str
    ) -> SubjectReport:
        """Who touched this subject's data: every log entry about her, with inclusion proofs.

        Raises:
            Denied: the policy says no: by default, the principal is neither the subject
                nor her home authority (logged; the report then includes that refusal).
        """
        commitment = self.commitment(jurisdiction, subject_id)
        self._authorizer.authorize(
            principal, "report", Target(jurisdiction=jurisdiction, subjects=(commitment,))
        )
        checkpoint = self.log.checkpoint()
        size = verify_checkpoint(checkpoint, self.log.verifier_key).size
        entries = tuple(
            ReportEntry(i, self.log.entry(i), tuple(self.log.inclusion_proof(i, size)))
            for i in self.log.find(commitment)
            if i < size
        )
        return SubjectReport(commitment, checkpoint, entries)

    def describe(self) -> dict[str, Any]:
        """Public facts about this deployment: jurisdictions, regions, log key."""
        return {
            "origin": self.config.origin,
            "log_verifier_key": self.log.verifier_key,
            "log_size": self.log.stored_size(),
            "jurisdictions": {
                code: {"name": j.name, "regions": list(j.regions), "purposes": list(j.purposes)}
                for code, j in self.config.jurisdictions.items()
            },
        }
