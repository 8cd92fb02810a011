"""The two flows of sovra, and nothing else.

ingest:  classify -> minimise (the custodian tokenizes and seals) -> place -> encrypt
         -> wrap -> store -> log -> receipt
access:  decide -> log the decision (allow and deny) -> custodian checks the logged allow
         -> unwrap -> log the key release -> decrypt -> (reveal: the custodian turns
         tokens and sealed values back) -> response

Authentication happens at the edges (``sovra.auth``); every method here takes an
already-authenticated :class:`~sovra.model.Principal`.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import NoReturn

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sovra import classify
from sovra.config import Config
from sovra.errors import BadRequest, Denied, NotFound, PayloadTooLarge
from sovra.governance import Authorizer
from sovra.keys import Custodian, open_blob, seal
from sovra.keys.custodian import MAX_BATCH, SealingCustodian, ValueCustodian
from sovra.keys.envelope import BLOB_OVERHEAD, BLOB_PREFIX, STREAM_PREFIX, sealed_size
from sovra.keys.transport import CLIENT_SEALED_CONTENT_TYPE, check_public
from sovra.ledger import TransparencyLog
from sovra.ledger.storage import MAX_TAGS_PER_ENTRY
from sovra.model import (
    Decision,
    Grant,
    LogEntry,
    LogReceipt,
    Principal,
    RecordHeader,
    RecordMeta,
    ReleaseAuthorization,
    check_id,
    check_purpose,
    id_fields,
    subject_commitment,
)
from sovra.policy import (
    DecisionPoint,
    GrantChecker,
    GrantFacts,
    Justification,
    RecordFacts,
    Target,
    parse_justification,
)
from sovra.store import BlobStore, MetadataStore

__all__ = [
    "AccessResult",
    "Gateway",
    "IngestReceipt",
    "SealedAccessResult",
    "SealedPreparation",
    "SealedRecord",
]

_PREPARE_TTL_MS = 300_000
"""How long a header prepared for client-side sealing may be used."""


@dataclass(frozen=True, slots=True)
class IngestReceipt:
    """What the caller gets back from an ingest."""

    record_id: str
    region: str
    receipt: LogReceipt
    findings: Mapping[str, int]
    actions: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class AccessResult:
    """An allowed access: the records, the logged decision and the logged key release."""

    decision: Decision
    decision_receipt: LogReceipt
    release_receipt: LogReceipt
    records: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class SealedPreparation:
    """A header for a record the client seals itself, and what to seal its key to.

    ``ticket`` is the gateway's MAC over the caller, the header and ``expires_ms``; the
    client hands all three back with the sealed record.
    """

    header: RecordHeader
    custodian_key: bytes
    expires_ms: int
    ticket: str


@dataclass(frozen=True, slots=True)
class SealedRecord:
    """A record released for opening on the client: its blob and its key for the client."""

    header: RecordHeader
    blob: bytes
    sealed_key: bytes


@dataclass(frozen=True, slots=True)
class SealedAccessResult:
    """An allowed access in client-side mode: ciphertexts and keys only the client opens."""

    decision: Decision
    decision_receipt: LogReceipt
    release_receipt: LogReceipt
    records: Mapping[str, SealedRecord]
    decision_entry: bytes = b""  # the logged decision, naming the client's recipient key


class Gateway:
    """The ingest and access flows over the stages below."""

    def __init__(
        self,
        *,
        config: Config,
        store: MetadataStore,
        blobs: Mapping[str, BlobStore],
        custodians: Mapping[str, Custodian],
        log: TransparencyLog,
        decisions: DecisionPoint,
        authority_keys: Mapping[str, Ed25519PublicKey],
        commitment_secret: bytes,
        clock: Callable[[], float],
    ) -> None:
        self.config = config
        self.store = store
        self.blobs = blobs
        self.custodians = custodians
        self.log = log
        self.decisions = decisions
        self.authority_keys = authority_keys
        self._secret = commitment_secret
        self._clock = clock
        # Signatures are verified once per grant digest; revocation and window on every use.
        self._grant_checker = GrantChecker(authority_keys, self.commitment)
        self._authorizer = Authorizer(log, decisions, clock)

    # -- helpers -------------------------------------------------------------------------

    def commitment(self, jurisdiction: str, subject_id: str) -> str:
        """The keyed commitment standing for a subject in headers and the log."""
        self.config.jurisdiction(jurisdiction)
        return subject_commitment(self._secret, jurisdiction, check_id(subject_id, "subject id"))

    def _now_ms(self) -> int:
        return self._authorizer.now_ms()

    def _append(self, entry: LogEntry, tags: Sequence[str]) -> tuple[bytes, LogReceipt]:
        return self._authorizer.append(entry, tags)

    def _refuse(self, principal: Principal, action: str, reason: str, tags: Sequence[str]) -> int:
        """Log a refusal of content (a minimisation rule); returns its log index."""
        return self._authorizer.refuse(principal, action, reason, tags)

    def _may_ingest(
        self, principal: Principal, jurisdiction: str, subject: str, *, client_sealed: bool = False
    ) -> None:
        """The policy stage decides whether *principal* may ingest; a deny is logged.

        An allow is not logged on its own: the record's ``ingest`` entry is its trace.

        Raises:
            Denied: the decision is deny; it is in the log at ``exc.log_index``.
        """
        rules = self.config.jurisdiction(jurisdiction)
        target = Target(
            jurisdiction=jurisdiction,
            subjects=(subject,),
            client_sealed=client_sealed,
            scan_required=any(a == "refuse" for a in rules.minimisation.values()),
        )
        self._authorizer.authorize(principal, "ingest", target, log_allow=False)

    # -- ingest --------------------------------------------------------------------------

    def ingest(
        self,
        principal: Principal,
        *,
        subject_id: str,
        jurisdiction: str,
        content: str,
        purpose: str | None = None,
    ) -> IngestReceipt:
        """Store *content* about a subject under the rules of her home *jurisdiction*.

        *purpose* is what the data is collected for; it picks the jurisdiction's
        minimisation rule for that purpose (none: the base rule).

        Raises:
            BadRequest: unknown jurisdiction or purpose, content a minimisation rule
                refuses (that refusal is logged), or a rule that tokenizes or seals for a
                custodian that cannot.
            PayloadTooLarge: content over the configured record size.
            Denied: the principal may not ingest (logged).
        """
        rules = self.config.jurisdiction(jurisdiction)
        subject = self.commitment(jurisdiction, subject_id)
        plan = rules.rules_for(None if purpose is None else check_purpose(purpose))
        self._may_ingest(principal, jurisdiction, subject)
        data = content.encode("utf-8", errors="strict")
        if len(data) > self.config.max_record_bytes:
            raise PayloadTooLarge(
                f"record is {len(data)} bytes; this deployment accepts at most "
                f"{self.config.max_record_bytes}"
            )

        region = rules.regions[0]
        custodian = self.custodians[jurisdiction]
        header = RecordHeader(
            record_id="r-" + uuid.uuid4().hex,
            subject=subject,
            jurisdiction=jurisdiction,
            region=region,
            kek_version=custodian.current_kek_version,
        )
        findings = classify.scan(content)
        actions = {k: classify.Action(v) for k, v in plan.items()}
        protecting: list[bool] = []

        def protect(items: Sequence[tuple[str, str, str]]) -> list[str]:
            # Called only once no finding is refused, so its errors are not refusals.
            protecting.append(True)
            return self._value_custodian(jurisdiction).protect(header, items)

        try:
            minimised = classify.minimise(content, findings, actions, protect=protect)
        except BadRequest as exc:
            if protecting:
                raise
            kinds = sorted({f.kind for f in findings})
            exc.log_index = self._refuse(
                principal, "ingest", f"minimisation refused kinds {', '.join(kinds)}", [subject]
            )
            raise

        blob, data_key = seal(header, minimised.text.encode())
        wrapped = custodian.wrap(data_key, header)
        now = self._now_ms()
        meta = RecordMeta(
            header=header,
            wrapped_key=wrapped,
            blob_size=len(blob),
            created_ms=now,
            findings=dict(minimised.counts),
            actions=dict(minimised.actions),
        )
        entry = LogEntry(
            kind="ingest",
            time_ms=now,
            principal=principal.id,
            fields={
                "record": header.record_id,
                "subject": subject,
                "jurisdiction": jurisdiction,
                "region": region,
                "blob_sha256": hashlib.sha256(blob).hexdigest(),
                "kinds": dict(minimised.counts),
                "actions": dict(minimised.actions),
                **({"purpose": purpose} if purpose is not None else {}),
            },
        )
        receipt = self._store_logged(meta, blob, entry)
        return IngestReceipt(header.record_id, region, receipt, minimised.counts, minimised.actions)

    def _store_logged(self, meta: RecordMeta, blob: bytes, entry: LogEntry) -> LogReceipt:
        """Store a sealed record and log its ingest: logged before visible.

        The row is written pending, which no reader sees; then the blob; then the entry is
        appended; only then does the row get its log index and become readable. A crash
        at any step leaves a logged, complete record or a row no reader reaches, which
        ``sovra check`` completes from the log or quarantines. The blob is written after
        the row, so a blob without a row is always an orphan that check may remove.

        Raises:
            BadRequest: the record id is stored already; nothing of this call is kept.
        """
        record_id = meta.header.record_id
        self.store.put_record(meta)
        try:
            self.blobs[meta.header.region].put(record_id, blob)
        except BaseException:
            self.store.delete_unlogged_record(record_id)
            raise
        # From here a failure keeps the pending row: the entry may be in the log already.
        _, receipt = self._append(entry, [meta.header.subject])
        self.store.set_record_log_index(record_id, receipt.index)
        return receipt

    # -- access --------------------------------------------------------------------------

    def access(
        self,
        principal: Principal,
        *,
        purpose: str,
        record_ids: Sequence[str] = (),
        subjects: Sequence[tuple[str, str]] = (),
        jurisdiction: str | None = None,
        grant: Grant | None = None,
        justification: str | None = None,
        reveal: bool = False,
    ) -> AccessResult:
        """Read records: by id, by (jurisdiction, subject id), or every record of a jurisdiction.

        *justification* is one of the fixed codes of :mod:`sovra.policy.justification`;
        without one the request is decided under the code its purpose and role imply.
        With *reveal* the request is decided as the ``reveal`` action, and on an allow the
        records' custodians turn their tokens and sealed values back into the values.

        Raises:
            BadRequest: malformed request (no target, an unknown justification...).
            NotFound: a named record does not exist (nothing is logged: nothing was decided).
            Denied: the decision is deny, or the selection is over the deployment's
                ``max_records_per_request``; it is in the log at ``exc.log_index``.
        """
        check_purpose(purpose)
        code = None if justification is None else parse_justification(justification)
        action = "reveal" if reveal else "read"
        metas = self._targets(
            principal,
            purpose,
            action,
            record_ids=record_ids,
            subjects=subjects,
            jurisdiction=jurisdiction,
        )
        if any(m.header.content_type == CLIENT_SEALED_CONTENT_TYPE for m in metas):
            raise BadRequest("client-sealed records open only on the client: use sealed access")
        decision, authorization = self._decide(
            principal, purpose, metas, grant, code, action=action, names=_names(subjects)
        )
        keys = self._unwrap(metas, authorization, principal)
        # Log before release: the key release is in the log before any plaintext leaves.
        release = self._log_release(
            principal, decision, authorization, metas, **({"action": action} if reveal else {})
        )
        records = {
            m.header.record_id: open_blob(
                m.header,
                self.blobs[m.header.region].get(m.header.record_id),
                keys[m.header.record_id],
            ).decode()
            for m in metas
        }
        if reveal:
            records = self._reveal(metas, records, authorization, principal)
        return AccessResult(decision, authorization.receipt, release, records)

    def _value_custodian(self, jurisdiction: str) -> ValueCustodian:
        custodian = self.custodians[jurisdiction]
        if not isinstance(custodian, ValueCustodian):
            raise BadRequest(f"custodian {jurisdiction} does not tokenize or seal values")
        return custodian

    def _reveal(
        self,
        metas: Sequence[RecordMeta],
        records: dict[str, str],
        authorization: ReleaseAuthorization,
        principal: Principal,
    ) -> dict[str, str]:
        """Have each custodian turn the tokens and sealed values of its records back."""
        spans = {rid: classify.protected_spans(text) for rid, text in records.items()}
        for code, group in _by_jurisdiction(
            [m for m in metas if spans[m.header.record_id]]
        ).items():
            items = [
                (m.header, s.mode, s.kind, s.body) for m in group for s in spans[m.header.record_id]
            ]
            with self._authorizer.custodian_refusals(principal, authorization):
                revealed = self._value_custodian(code).reveal(items, authorization, principal.id)
            values = iter(revealed)
            for m in group:
                rid = m.header.record_id
                found = [next(values) for _ in spans[rid]]
                records[rid] = classify.restore(records[rid], spans[rid], found)
        return records

    def _decide(
        self,
        principal: Principal,
        purpose: str,
        metas: Sequence[RecordMeta],
        grant: Grant | None,
        code: Justification | None,
        *,
        action: str = "read",
        recipient: bytes | None = None,
        names: Sequence[str] = (),
    ) -> tuple[Decision, ReleaseAuthorization]:
        """Decide, log the decision (allow and deny alike), and raise on a deny.

        *names* are the subject ids the request named, if it named subjects: the bulk
        guard looks for a walk through them (otherwise through the record ids).

        Raises:
            Denied: the decision is deny; it is in the log at ``exc.log_index``.
        """
        facts = [
            RecordFacts(
                m.header.record_id,
                m.header.subject,
                m.header.jurisdiction,
                frozenset(k for k, n in m.findings.items() if n),
                m.header.region,
                m.created_ms / 1000,
            )
            for m in metas
        ]
        decision = self.decisions.decide(
            principal,
            purpose,
            facts,
            self._grant_facts(grant),
            justification=code,
            action=action,
            names=names,
        )
        if recipient is not None:
            # Logged with the decision: the custodian encrypts released keys to this key
            # only, and the client checks that the log names its own.
            decision = replace(decision, recipient=recipient.hex())
        entry, receipt = self._append(
            decision.to_entry(self._now_ms()),
            [*_subject_tags(decision.subjects), f"decision:{decision.decision_id}"],
        )
        if not decision.allow:
            raise Denied(decision.reason, log_index=receipt.index)
        return decision, ReleaseAuthorization.of(decision, entry, receipt)

    def _log_release(
        self,
        principal: Principal,
        decision: Decision,
        authorization: ReleaseAuthorization,
        metas: Sequence[RecordMeta],
        **extra: str,
    ) -> LogReceipt:
        """Append the key-release entry that must precede any release to the caller."""
        entry = LogEntry(
            kind="key_release",
            time_ms=self._now_ms(),
            principal=principal.id,
            fields={
                "decision_id": decision.decision_id,
                "decision_index": authorization.receipt.index,
                # Bounded as the decision's entry is: over MAX_LISTED_IDS, root and count.
                **id_fields("records", [m.header.record_id for m in metas]),
                **id_fields("subjects", decision.subjects),
                **extra,
            },
        )
        return self._append(entry, _subject_tags(decision.subjects))[1]

    def _unwrap(
        self,
        metas: Sequence[RecordMeta],
        authorization: ReleaseAuthorization,
        principal: Principal,
        recipient: bytes | None = None,
    ) -> dict[str, bytes]:
        """Batched unwraps per custodian, each of at most its :data:`MAX_BATCH` keys.

        Each batch carries the whole authorization (a large decision's lists with it), so
        the custodian checks every batch against the logged allow on its own. With
        *recipient*, each key leaves the custodian encrypted to that key only.
        """
        keys: dict[str, bytes] = {}
        with self._authorizer.custodian_refusals(principal, authorization):
            for code, group in _by_jurisdiction(metas).items():
                for start in range(0, len(group), MAX_BATCH):
                    batch = group[start : start + MAX_BATCH]
                    items = [(m.wrapped_key, m.header) for m in batch]
                    released = (
                        self.custodians[code].unwrap_many(items, authorization, principal.id)
                        if recipient is None
                        else self._sealing_custodian(code).unwrap_many_to(
                            items, authorization, principal.id, recipient
                        )
                    )
                    keys.update(zip((m.header.record_id for m in batch), released, strict=True))
        return {m.header.record_id: keys[m.header.record_id] for m in metas}

    # -- client-side sealing --------------------------------------------------------------

    def _sealing_custodian(self, jurisdiction: str) -> SealingCustodian:
        custodian = self.custodians[jurisdiction]
        if not isinstance(custodian, SealingCustodian):
            raise BadRequest(f"custodian {jurisdiction} does not take client-sealed keys")
        return custodian

    def _ticket(self, principal_id: str, header: RecordHeader, expires_ms: int) -> str:
        label = f"sovra-sealed-prepare/v1\n{principal_id}\n{expires_ms}\n".encode()
        return hmac.new(self._secret, label + header.to_bytes(), hashlib.sha256).hexdigest()

    def prepare_sealed(
        self, principal: Principal, *, subject_id: str, jurisdiction: str
    ) -> SealedPreparation:
        """Place a record the client will seal itself: its header and the custodian's key.

        The client never learns the commitment secret; the gateway never sees the data key.
        A jurisdiction that refuses kinds of data at ingest needs the scan, which cannot run
        on ciphertext, so it refuses client-sealed records (logged).

        Raises:
            BadRequest: unknown jurisdiction, or its custodian takes no client-sealed keys.
            Denied: the principal may not ingest, or the jurisdiction requires a scan (logged).
        """
        rules = self.config.jurisdiction(jurisdiction)
        subject = self.commitment(jurisdiction, subject_id)
        self._may_ingest(principal, jurisdiction, subject, client_sealed=True)
        version, public = self._sealing_custodian(jurisdiction).transport_key()
        header = RecordHeader(
            record_id="r-" + uuid.uuid4().hex,
            subject=subject,
            jurisdiction=jurisdiction,
            region=rules.regions[0],
            kek_version=version,
            content_type=CLIENT_SEALED_CONTENT_TYPE,
        )
        expires = self._now_ms() + _PREPARE_TTL_MS
        ticket = self._ticket(principal.id, header, expires)
        return SealedPreparation(header, public, expires, ticket)

    def ingest_sealed(
        self,
        principal: Principal,
        *,
        header: RecordHeader,
        expires_ms: int,
        ticket: str,
        blob: bytes,
        key_envelope: bytes,
    ) -> IngestReceipt:
        """Store a record the client sealed: ciphertext, and its key wrapped by the custodian.

        The custodian opens *key_envelope* itself and wraps the key under the subject's key;
        no classification runs (the log says ``kinds: "client-sealed"``).

        Raises:
            BadRequest: a header this gateway did not prepare for this caller, expired, of
                a stored record, a blob not in a sealed format, or an envelope for another
                record or subject.
            PayloadTooLarge: a blob over the configured record size.
            Denied: the principal may not ingest (logged).
        """
        self._may_ingest(principal, header.jurisdiction, header.subject, client_sealed=True)
        expected = self._ticket(principal.id, header, expires_ms)
        if not hmac.compare_digest(expected, ticket):
            raise BadRequest("this record header was not prepared by this gateway for this caller")
        if self._now_ms() > expires_ms:
            raise BadRequest("the prepared record header has expired; prepare again")
        limit = self.config.max_record_bytes
        if len(blob) > max(limit + BLOB_OVERHEAD, sealed_size(limit)):
            raise PayloadTooLarge(f"sealed record is over this deployment's {limit}-byte limit")
        if not blob.startswith((BLOB_PREFIX, STREAM_PREFIX)):
            raise BadRequest("the blob is not in a sealed record format")
        try:
            self.store.get_record(header.record_id)
        except NotFound:
            pass
        else:
            raise BadRequest(f"record {header.record_id} is stored already")
        wrapped = self._sealing_custodian(header.jurisdiction).wrap_sealed(key_envelope, header)
        now = self._now_ms()
        meta = RecordMeta(header=header, wrapped_key=wrapped, blob_size=len(blob), created_ms=now)
        entry = LogEntry(
            kind="ingest",
            time_ms=now,
            principal=principal.id,
            fields={
                "record": header.record_id,
                "subject": header.subject,
                "jurisdiction": header.jurisdiction,
                "region": header.region,
                "blob_sha256": hashlib.sha256(blob).hexdigest(),
                "kinds": "client-sealed",
                "actions": {},
            },
        )
        receipt = self._store_logged(meta, blob, entry)
        return IngestReceipt(header.record_id, header.region, receipt, {}, {})

    def access_sealed(
        self,
        principal: Principal,
        *,
        recipient: bytes,
        purpose: str,
        record_ids: Sequence[str] = (),
        subjects: Sequence[tuple[str, str]] = (),
        jurisdiction: str | None = None,
        grant: Grant | None = None,
        justification: str | None = None,
    ) -> SealedAccessResult:
        """As :meth:`access`, but keys leave the custodian encrypted to *recipient* only.

        The decision (allow or deny) and the key release are logged exactly as for
        :meth:`access`; the gateway returns blobs and keys it cannot open.

        Raises:
            BadRequest: *recipient* is not an X25519 public key, and as :meth:`access`.
            NotFound: as :meth:`access`.
            Denied: the decision is deny; it is in the log at ``exc.log_index``.
        """
        check_purpose(purpose)
        check_public(recipient)
        code = None if justification is None else parse_justification(justification)
        metas = self._targets(
            principal,
            purpose,
            "read",
            record_ids=record_ids,
            subjects=subjects,
            jurisdiction=jurisdiction,
        )
        decision, authorization = self._decide(
            principal, purpose, metas, grant, code, recipient=recipient, names=_names(subjects)
        )
        sealed = self._unwrap(metas, authorization, principal, recipient)
        release = self._log_release(principal, decision, authorization, metas, to="client")
        records = {
            m.header.record_id: SealedRecord(
                m.header,
                self.blobs[m.header.region].get(m.header.record_id),
                sealed[m.header.record_id],
            )
            for m in metas
        }
        return SealedAccessResult(
            decision, authorization.receipt, release, records, authorization.entry
        )

    def _targets(
        self,
        principal: Principal,
        purpose: str,
        action: str,
        *,
        record_ids: Sequence[str],
        subjects: Sequence[tuple[str, str]],
        jurisdiction: str | None,
    ) -> list[RecordMeta]:
        """The records a request selects; a selection over the per-request cap is refused
        by the policy stage and logged, before any record is loaded.

        Raises:
            BadRequest: not exactly one kind of target, or an unknown jurisdiction.
            NotFound: a named record does not exist, or the selection is empty.
            Denied: over ``max_records_per_request`` records (logged).
        """
        if sum(map(bool, (record_ids, subjects, jurisdiction))) != 1:
            raise BadRequest("name exactly one of: record ids, subjects, or a jurisdiction")
        limit = self.config.max_records_per_request

        def over_limit() -> NoReturn:
            self._authorizer.refuse_selection(principal, purpose, action=action, limit=limit)

        if record_ids:
            named = list(dict.fromkeys(record_ids))
            if len(named) > limit:
                over_limit()
            return [self.store.get_record(r) for r in named]
        if subjects:
            if len(dict.fromkeys(subjects)) > limit:
                over_limit()
            metas = [
                m
                for j, s in dict.fromkeys(subjects)
                for m in self.store.records_for_subject(self.commitment(j, s))
            ]
            if len(metas) > limit:
                over_limit()
            if not metas:
                raise NotFound("no records for the named subjects")
            return metas
        assert jurisdiction is not None
        self.config.jurisdiction(jurisdiction)
        ids = self.store.record_ids_for_jurisdiction(jurisdiction, limit + 1)
        if len(ids) > limit:
            over_limit()
        if not ids:
            raise NotFound(f"no records of {jurisdiction} subjects")
        return [self.store.get_record(r) for r in ids]

    def _grant_facts(self, grant: Grant | None) -> GrantFacts:
        """Verify a presented grant; it must be the one registered (and logged) under its id."""
        if grant is None:
            return GrantFacts.none()
        try:
            registered = Grant.from_json(self.store.get_grant(grant.grant_id))
            revoked = self.store.grant_revoked(grant.grant_id)
        except NotFound:
            registered, revoked = None, False
        facts = self._grant_checker.check(grant, now_s=int(self._clock()), revoked=revoked)
        if facts.verified and registered is None:
            return replace(
                facts,
                verified=False,
                problem=(
                    f"grant {grant.grant_id} is not registered; register it (POST /v1/grants) "
                    "so that it is in the log before it is used"
                ),
            )
        if facts.verified and registered is not None and registered.digest() != grant.digest():
            return replace(
                facts,
                verified=False,
                problem=(f"grant {grant.grant_id} differs from the grant registered under that id"),
            )
        return facts


def _subject_tags(subjects: Sequence[str]) -> Sequence[str]:
    """The subjects an entry is indexed under, for their reports, when the log takes them all.

    The log indexes at most MAX_TAGS_PER_ENTRY tags an entry. A decision about more
    subjects than that (only ever a bulk one, refused unless a deployment lifts its
    per-request cap that far) is still logged, committing to them by root, but is not in
    each one's subject report.
    """
    return subjects if len(subjects) < MAX_TAGS_PER_ENTRY else ()


def _names(subjects: Sequence[tuple[str, str]]) -> list[str]:
    """The subject ids a request named, as the bulk guard reads them for a walk."""
    return [f"{jurisdiction}/{subject_id}" for jurisdiction, subject_id in subjects]


def _by_jurisdiction(metas: Sequence[RecordMeta]) -> dict[str, list[RecordMeta]]:
    """Records grouped by home jurisdiction, in order: one custodian call per group."""
    groups: dict[str, list[RecordMeta]] = {}
    for m in metas:
        groups.setdefault(m.header.jurisdiction, []).append(m)
    return groups
