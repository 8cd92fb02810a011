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

import functools
import hashlib
import hmac
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import NoReturn, TypeVar, cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sovra import _homes, classify
from sovra._batching import Failing, chunks, each, grouped, returning_none, settle
from sovra._group import GroupCommit
from sovra._staging import BatchFacts, RuleBook
from sovra.classify.minimise import Prepared, finish, prepare
from sovra.classify.pool import Scanned, ScanPool
from sovra.config import Config
from sovra.errors import BadRequest, Denied, IntegrityError, NotFound, PayloadTooLarge, SovraError
from sovra.flow_types import (
    AccessRequest,
    AccessResult,
    IngestItem,
    IngestReceipt,
    SealedAccessResult,
    SealedPreparation,
    SealedRecord,
)
from sovra.governance import Authorizer
from sovra.keys import Custodian, open_blob, seal
from sovra.keys.custodian import MAX_BATCH, MAX_BATCH_KEYS, MAX_BATCH_VALUES
from sovra.keys.envelope import (
    BLOB_OVERHEAD,
    BLOB_PREFIX,
    STREAM_PREFIX,
    new_data_key,
    sealed_size,
)
from sovra.keys.protocol import ProtectWrapCustodian, SealingCustodian, ValueCustodian
from sovra.keys.split import SecondHome
from sovra.keys.split import unwrap_batches as unwrap_shares
from sovra.keys.split import wrap_many as wrap_shares
from sovra.keys.transport import CLIENT_SEALED_CONTENT_TYPE, check_public
from sovra.ledger import TransparencyLog
from sovra.ledger.storage import MAX_TAGS_PER_ENTRY
from sovra.model import (
    RECORD_FORMAT,
    SPLIT_KEY_FORMAT,
    Decision,
    Grant,
    LogEntry,
    LogReceipt,
    Principal,
    RecordHeader,
    RecordMeta,
    ReleaseAuthorization,
    WrappedKey,
    check_id,
    check_purpose,
    id_fields,
    subject_commitment,
)
from sovra.placement import Placement
from sovra.policy import (
    DecisionPoint,
    GrantChecker,
    GrantFacts,
    Justification,
    Target,
    parse_justification,
)
from sovra.policy import dual as two_homes_policy
from sovra.policy.grants import as_registered
from sovra.release_proofs import ReleaseProofs
from sovra.store import BlobStore, MetadataStore

__all__ = [
    "MAX_ACCESS_BATCH",
    "MAX_INGEST_BATCH",
    "AccessRequest",
    "AccessResult",
    "Gateway",
    "IngestItem",
    "IngestReceipt",
    "SealedAccessResult",
    "SealedPreparation",
    "SealedRecord",
]

_PREPARE_TTL_MS = 300_000
"""How long a header prepared for client-side sealing may be used."""

_INGEST_LEADERS = 2
"""Batches of single ingests in flight at once: one batch scans and seals while the other
waits for its fsyncs (more only made the batches smaller, in docs/benchmarks.md)."""

_ACCESS_LEADERS = 2
"""Batches of single accesses in flight at once. An access waits for two log appends (its
decision, then its key release), which go through the log's own queue: one batch's
decisions share an fsync with another's releases. Two, each gathering half of what is
waiting (see :mod:`sovra._group`): four made batches of four from 16 threads, at a third
more CPU per access (docs/benchmarks.md)."""

_GATHER_WAIT_S = 0.1
"""The longest a batch of single calls waits for more under load (:mod:`sovra._group`).
The window is also at most the recent batches' run time: a few milliseconds on SQLite,
tens on PostgreSQL + S3 under load, where 20 ms hardly ever opened one (docs/scale.md)."""

MAX_INGEST_BATCH = 1_000
"""The most records one :meth:`Gateway.ingest_many` call takes."""

MAX_ACCESS_BATCH = 1_000
"""The most requests one :meth:`Gateway.access_many` call takes."""


def _new_record_id() -> str:
    """A fresh record id: ``r-`` and 128 random bits in hex (the form ``uuid4().hex``
    gave, at a sixth of its cost)."""
    return "r-" + os.urandom(16).hex()


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
        rows_synced_by_log: bool = False,
        scan_helpers: int | None = None,
    ) -> None:
        """Wire the flows to their stages.

        *rows_synced_by_log* says the metadata store and the log storage are one SQLite
        file whose appends sync its write-ahead log: a pending row committed before an
        append is then on stable storage once the append returns (the WAL is one
        sequential file), so its own commit need not sync; otherwise it does.
        """
        self.config = config
        self.store = store
        self.blobs = blobs
        self.custodians = custodians
        self.log = log
        self.decisions = decisions
        self.authority_keys = authority_keys
        self.placement = Placement(config)
        self._secret = commitment_secret
        self._clock = clock
        # Signatures are verified once per grant digest; revocation and window on every use.
        self._grant_checker = GrantChecker(authority_keys, self.commitment)
        self._authorizer = Authorizer(log, decisions, clock)
        self._rows_durable = not rows_synced_by_log
        self._rules = RuleBook()
        if scan_helpers is None:
            scan_helpers = 1 if (os.cpu_count() or 1) > 1 else 0
        self._scans = ScanPool(scan_helpers)
        # Concurrent single calls share one batch each (group commit): one transaction,
        # one log batch, one set of fsyncs and one custodian call per jurisdiction.
        self._ingests: GroupCommit[tuple[Principal, IngestItem], IngestReceipt]
        self._ingests = GroupCommit(
            self._ingest_batch, MAX_INGEST_BATCH, leaders=_INGEST_LEADERS, max_wait_s=_GATHER_WAIT_S
        )
        self._accesses: GroupCommit[tuple[Principal, AccessRequest], AccessResult]
        self._accesses = GroupCommit(
            self._access_batch, MAX_ACCESS_BATCH, leaders=_ACCESS_LEADERS, max_wait_s=_GATHER_WAIT_S
        )
        self._release_proofs: ReleaseProofs | None = None
        """Set when custodians release only against witnessed checkpoints."""

    def close(self) -> None:
        """Stop the scan helper; the stores, the log and the custodians are the
        deployment's to close."""
        self._scans.close()

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
        self,
        principal: Principal,
        jurisdiction: str,
        subject: str,
        *,
        client_sealed: bool = False,
        scan_required: bool | None = None,
    ) -> None:
        """The policy stage decides whether *principal* may ingest; a deny is logged.

        An allow is not logged on its own: the record's ``ingest`` entry is its trace.

        Raises:
            Denied: the decision is deny; it is in the log at ``exc.log_index``.
        """
        if scan_required is None:
            rules = self.config.jurisdiction(jurisdiction)
            scan_required = any(a == "refuse" for a in rules.minimisation.values())
        target = Target(
            jurisdiction=jurisdiction,
            subjects=(subject,),
            client_sealed=client_sealed,
            scan_required=scan_required,
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
        other_homes: Sequence[str] = (),
    ) -> IngestReceipt:
        """Store *content* about a subject under the rules of her home *jurisdiction*.

        *other_homes* names a second home of hers, if she has one (``sovra._homes``): the
        record is then placed, minimised, keyed and later decided under both homes' rules.

        *purpose* is what the data is collected for; it picks the jurisdiction's
        minimisation rule for that purpose (none: the base rule). Concurrent calls are
        gathered into one :meth:`ingest_many` batch (group commit); each returns once its
        own record is stored and logged.

        Raises:
            BadRequest: unknown jurisdiction or purpose, content a minimisation rule
                refuses (that refusal is logged), or a rule that tokenizes or seals for a
                custodian that cannot.
            PayloadTooLarge: content over the configured record size.
            Denied: the principal may not ingest (logged).
        """
        return self._ingests.submit(
            (principal, IngestItem(subject_id, jurisdiction, content, purpose, other_homes))
        )

    def ingest_many(
        self, principal: Principal, items: Sequence[IngestItem]
    ) -> list[IngestReceipt | SovraError]:
        """Ingest many records at once: one result per item, in order.

        Each item is checked, decided and minimised on its own, exactly as :meth:`ingest`
        does it; a bad one gets its own error in its slot (a deny or a refusal logged as
        for one ingest) and the good ones are stored. The good ones share one custodian
        call per jurisdiction, one durable metadata transaction, one blob write per
        region and one log batch, and their entries follow the order of *items*.

        Raises:
            BadRequest: more than :data:`MAX_INGEST_BATCH` items; nothing is stored.
        """
        if len(items) > MAX_INGEST_BATCH:
            raise BadRequest(f"a batch holds at most {MAX_INGEST_BATCH} records, got {len(items)}")
        return self._ingest_batch([(principal, item) for item in items])

    def _ingest_batch(
        self, calls: Sequence[tuple[Principal, IngestItem]]
    ) -> list[IngestReceipt | SovraError]:
        """The ingest flow for a batch of (principal, item) calls, each on its own."""
        facts = BatchFacts()
        limit = self.config.max_record_bytes
        scans = self._scans.scan_many([_scannable(item, limit) for _, item in calls])
        staged = [
            self._try_stage(principal, item, facts, found)
            for (principal, item), found in zip(calls, scans, strict=True)
        ]
        live = [st for st in staged if isinstance(st, _Staged)]
        self._protect_all(live)
        for st in live:
            if st.error is None:
                try:
                    minimised = finish(st.prepared, st.bodies)
                    text = minimised.text.encode()
                    st.blob, st.data_key = seal(st.header, text, st.data_key or None)
                except SovraError as exc:
                    st.error = exc
        self._wrap_all([st for st in live if st.wrapped is None])
        ready = [st for st in live if st.error is None]
        now = self._now_ms()
        stored = self._store_logged_many([self._ingest_record(st, now) for st in ready])
        settle(ready, stored, _Staged.receipted)
        return [st if isinstance(st, SovraError) else st.result() for st in staged]

    def _try_stage(
        self, principal: Principal, item: IngestItem, facts: BatchFacts, found: Scanned
    ) -> _Staged | SovraError:
        try:
            return self._stage(principal, item, facts, found)
        except SovraError as exc:
            return exc

    def _protect_all(self, staged: Sequence[_Staged]) -> None:
        """Tokens, sealed values and wrapped keys: one custodian call per jurisdiction.

        Records of one home get a fresh data key here, before the text it will seal is
        final, so their custodian protects their values and wraps their keys in the same
        call. A record of two homes (its key split between both custodians), or one whose
        custodian has no such call, has its values protected here and its key wrapped once
        sealed (:meth:`_wrap_all`).
        """
        for code, group in grouped(staged, _Staged.jurisdiction).items():
            custodian = self.custodians[code]
            if _protects_and_wraps(type(custodian)):
                keyed = [st for st in group if st.second is None and st.error is None]
                for st in keyed:
                    st.data_key = new_data_key()
                call = functools.partial(
                    _protect_wrap_staged, cast("ProtectWrapCustodian", custodian)
                )
                for run in chunks(keyed, _Staged.values, MAX_BATCH, MAX_BATCH_VALUES):
                    settle(run, each(call, run), _Staged.keyed)
            protecting = [
                st
                for st in group
                if st.prepared.requests and st.error is None and st.wrapped is None
            ]
            if not protecting:
                continue
            protect = functools.partial(_protect_staged, self._value_custodian(code))
            for run in chunks(protecting, _Staged.values, MAX_BATCH, MAX_BATCH_VALUES):
                settle(run, each(protect, run), _Staged.protected)

    def _wrap_all(self, staged: Sequence[_Staged]) -> None:
        """Data keys wrapped: one custodian call per jurisdiction for the whole batch."""
        sealed = [st for st in staged if st.error is None]
        for code, group in grouped(sealed, _Staged.jurisdiction).items():
            wrap = functools.partial(_wrap_staged, self.custodians, code)
            settle(group, each(wrap, group), _Staged.wrapped_with)

    def _stage(
        self, principal: Principal, item: IngestItem, facts: BatchFacts, found: Scanned
    ) -> _Staged:
        """Check, decide and minimise one item up to its protected values; *found* is
        what the scan of its content found (or the error it raised).

        Raises:
            BadRequest: as :meth:`ingest` (a refusal by a minimisation rule is logged).
            PayloadTooLarge: content over the configured record size.
            Denied: the principal may not ingest (logged).
        """
        if not isinstance(item, IngestItem):
            raise BadRequest(f"expected an IngestItem, got {type(item).__name__}")
        jurisdiction, content, purpose = item.jurisdiction, item.content, item.purpose
        if not isinstance(content, str):
            raise BadRequest(f"content must be text, not {type(content).__name__}")
        rules = self.config.jurisdiction(jurisdiction)
        # self.commitment() without looking the jurisdiction up again.
        subject = subject_commitment(
            self._secret, jurisdiction, check_id(item.subject_id, "subject id")
        )
        plan, scan_required = self._rules.rules(
            rules, None if purpose is None else check_purpose(purpose)
        )
        two = _homes.plan(
            self.config,
            self.placement,
            self.commitment,
            jurisdiction=jurisdiction,
            other_homes=item.other_homes,
            subject_id=item.subject_id,
            purpose=purpose,
        )
        if two is not None:
            plan, scan_required = two.rules, two.scan_required
            facts.may_ingest(
                principal,
                two.second.jurisdiction,
                two.second.subject,
                scan_required,
                functools.partial(
                    self._may_ingest,
                    principal,
                    two.second.jurisdiction,
                    two.second.subject,
                    scan_required=scan_required,
                ),
            )
        facts.may_ingest(
            principal,
            jurisdiction,
            subject,
            scan_required,
            functools.partial(
                self._may_ingest, principal, jurisdiction, subject, scan_required=scan_required
            ),
        )
        try:
            size = len(content.encode("utf-8", errors="strict"))
        except UnicodeEncodeError:
            raise BadRequest(
                "content is not valid Unicode text (it holds a lone surrogate)"
            ) from None
        if size > self.config.max_record_bytes:
            raise PayloadTooLarge(
                f"record is {size} bytes; this deployment accepts at most "
                f"{self.config.max_record_bytes}"
            )
        custodian = self.custodians[jurisdiction]
        header = RecordHeader(
            record_id=_new_record_id(),
            subject=subject,
            jurisdiction=jurisdiction,
            region=self.placement.region_for(jurisdiction, subject) if two is None else two.region,
            kek_version=facts.kek_version(jurisdiction, lambda: custodian.current_kek_version),
            format=RECORD_FORMAT if two is None else SPLIT_KEY_FORMAT,
        )
        if isinstance(found, SovraError):
            raise found
        findings = found
        try:
            prepared = prepare(content, findings, plan)
        except BadRequest as exc:
            kinds = sorted({f.kind for f in findings})
            exc.log_index = self._refuse(
                principal, "ingest", f"minimisation refused kinds {', '.join(kinds)}", [subject]
            )
            raise
        if prepared.requests:
            self._value_custodian(jurisdiction)
        return _Staged(principal, header, prepared, purpose, None if two is None else two.second)

    def _ingest_record(self, st: _Staged, now: int) -> tuple[RecordMeta, bytes, LogEntry]:
        """The metadata row and the ingest entry of a sealed, wrapped record."""
        header, counts, actions = st.header, st.prepared.counts, st.prepared.actions
        assert st.wrapped is not None
        meta = RecordMeta(
            header=header,
            wrapped_key=st.wrapped,
            blob_size=len(st.blob),
            created_ms=now,
            findings=dict(counts),
            actions=dict(actions),
        )
        entry = LogEntry(
            kind="ingest",
            time_ms=now,
            principal=st.principal.id,
            fields={
                "record": header.record_id,
                "subject": header.subject,
                "jurisdiction": header.jurisdiction,
                "region": header.region,
                "blob_sha256": hashlib.sha256(st.blob).hexdigest(),
                "kinds": dict(counts),
                "actions": dict(actions),
                **({"purpose": st.purpose} if st.purpose is not None else {}),
                **_homes.ingest_fields(st.second),
            },
        )
        return meta, st.blob, entry

    def _store_logged(self, meta: RecordMeta, blob: bytes, entry: LogEntry) -> LogReceipt:
        """:meth:`_store_logged_many` for one record, raising its error.

        Raises:
            BadRequest: the record id is stored already; nothing of this call is kept.
        """
        (result,) = self._store_logged_many([(meta, blob, entry)])
        if isinstance(result, SovraError):
            raise result
        return result

    def _store_logged_many(
        self, records: Sequence[tuple[RecordMeta, bytes, LogEntry]]
    ) -> list[LogReceipt | SovraError]:
        """Store sealed records and log their ingest: logged before visible, per batch.

        The rows are written pending, which no reader sees, in one durable transaction;
        then the blobs, one write per region; then the entries are appended as one log
        batch, in order; only then do the rows get their log indices (one transaction)
        and become readable. A crash at any step leaves logged, complete records or rows
        no reader reaches, which ``sovra check`` completes from the log or quarantines.
        The blobs are written after the rows, so a blob without a row is always an orphan
        that check may remove. Each record is durable (row, blob, entry) before its
        receipt is returned. One record's failure is its own: the others go on.
        """
        recs = [_Record(meta, blob, entry) for meta, blob, entry in records]
        durable = self._rows_durable
        rows = each(
            returning_none(lambda g: self.store.put_records([r.meta for r in g], durable=durable)),
            recs,
        )
        settle(recs, rows, _Record.stored)
        self._put_blobs([r for r in recs if r.error is None])
        # From here a failure keeps the pending rows: their entries may be in the log.
        live = [r for r in recs if r.error is None]
        items = [(r.entry.to_bytes(), _homes.tags(r.meta)) for r in live]
        if self.log.marks_rows:
            # The log shares the rows' SQLite file: the transaction that stores the entries
            # gives the rows their indices, so they become visible with their entries.
            marks = [r.meta.header.record_id for r in live]
            settle(live, self.log.append_each(items, marks), _Record.logged)
            return [r.result() for r in recs]
        settle(live, self.log.append_each(items), _Record.logged)
        logged = [r for r in live if r.receipt is not None]
        try:
            self.store.set_record_log_indices(
                [(r.meta.header.record_id, r.receipt.index) for r in logged if r.receipt]
            )
        except SovraError as exc:
            for r in logged:
                r.error = exc
        return [r.result() for r in recs]

    def _put_blobs(self, recs: Sequence[_Record]) -> None:
        """The blobs of pending rows, one write per region. A row whose blob failed is
        deleted (it is not logged, and its record is refused); on an unexpected error
        every row of the batch is, and the error goes on."""
        try:
            for region, group in grouped(recs, _Record.region).items():
                put = functools.partial(_put_blobs, self.placement, self.blobs[region])
                settle(group, each(put, group), _Record.stored)
        except BaseException:
            self.store.delete_unlogged_records([r.meta.header.record_id for r in recs])
            raise
        failed = [r.meta.header.record_id for r in recs if r.error is not None]
        if failed:
            self.store.delete_unlogged_records(failed)

    @property
    def release_proofs(self) -> ReleaseProofs | None:
        """Set (before serving) when custodians release only against witnessed checkpoints."""
        return self._release_proofs

    @release_proofs.setter
    def release_proofs(self, proofs: ReleaseProofs | None) -> None:
        self._release_proofs = proofs
        # A batch of single accesses that sends its own witness round trip waits for it:
        # one batch at a time then takes every access waiting into the next round (two
        # split them between two rounds; docs/benchmarks.md, ADR 0023).
        leaders = 1 if proofs is not None and proofs.sends_rounds else _ACCESS_LEADERS
        self._accesses = GroupCommit(
            self._access_batch, MAX_ACCESS_BATCH, leaders=leaders, max_wait_s=_GATHER_WAIT_S
        )

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
        Concurrent calls are gathered into one :meth:`access_many` batch (group commit).

        Raises:
            BadRequest: malformed request (no target, an unknown justification...).
            NotFound: a named record does not exist (nothing is logged: nothing was decided).
            Denied: the decision is deny, or the selection is over the deployment's
                ``max_records_per_request``; it is in the log at ``exc.log_index``.
        """
        request = AccessRequest(
            purpose, record_ids, subjects, jurisdiction, grant, justification, reveal
        )
        return self._accesses.submit((principal, request))

    def access_many(
        self, principal: Principal, requests: Sequence[AccessRequest]
    ) -> list[AccessResult | SovraError]:
        """Read for many requests at once: one result per request, in order.

        Each request is decided and logged on its own, exactly as :meth:`access` does it
        (a deny, a refusal or a missing record is that request's error); they share one
        load of the records named by id, one log batch for the decisions, one custodian
        call per jurisdiction, one log batch for the key releases (all logged before any
        plaintext is returned) and one blob read per region.

        Raises:
            BadRequest: more than :data:`MAX_ACCESS_BATCH` requests; nothing is decided.
        """
        if len(requests) > MAX_ACCESS_BATCH:
            raise BadRequest(
                f"a batch holds at most {MAX_ACCESS_BATCH} requests, got {len(requests)}"
            )
        return self._access_batch([(principal, r) for r in requests])

    def _access_batch(
        self, calls: Sequence[tuple[Principal, AccessRequest]]
    ) -> list[AccessResult | SovraError]:
        """The access flow for a batch of (principal, request) calls, each on its own."""
        accesses = [self._try_check(n, p, request) for n, (p, request) in enumerate(calls)]
        live = [a for a in accesses if isinstance(a, _Access)]
        self._decide_all(live)
        if self.release_proofs is not None:  # witnessed release: one round trip per batch
            allowed = [a for a in live if a.error is None]
            got = self.release_proofs.attach_all([a.authorization() for a in allowed])
            settle(allowed, got, _Access.witnessed)
        self._unwrap_all(live)
        # Log before release: every key release is in the log before any plaintext leaves.
        releasing = [a for a in live if a.error is None]
        items = [self._release_items(a) for a in releasing]
        logged = iter(self.log.append_each([i for group in items for i in group]))
        settle(releasing, [_first([next(logged) for _ in g]) for g in items], _Access.released)
        self._open_all([a for a in live if a.error is None])
        for a in live:
            if a.error is None and a.request.reveal:
                try:
                    a.records = self._reveal(a.metas, a.records, a.authorization(), a.principal)
                except SovraError as exc:
                    a.error = exc
        return [a if isinstance(a, SovraError) else a.result() for a in accesses]

    def _try_check(
        self, slot: int, principal: Principal, request: AccessRequest
    ) -> _Access | SovraError:
        try:
            return self._check_access(slot, principal, request)
        except SovraError as exc:
            return exc

    def _check_access(self, slot: int, principal: Principal, request: AccessRequest) -> _Access:
        """Check one request's form and the size of its selection (over the cap: logged).

        Raises:
            BadRequest: malformed request.
            Denied: the selection is over ``max_records_per_request`` (logged).
        """
        if not isinstance(request, AccessRequest):
            raise BadRequest(f"expected an AccessRequest, got {type(request).__name__}")
        check_purpose(request.purpose)
        code = None if request.justification is None else parse_justification(request.justification)
        action = "reveal" if request.reveal else "read"
        named = self._selection(principal, request, action)
        return _Access(principal, request, code, action, named)

    def _decide_all(self, accesses: Sequence[_Access]) -> None:
        """Load every request's records (those named by id with one query), decide each on
        its own, in order, and log all the decisions, allow and deny, in one batch."""
        naming = [a for a in accesses if a.named]
        found: dict[str, RecordMeta] = {}
        for a, got in zip(naming, each(self._load_named, naming), strict=True):
            if isinstance(got, SovraError):
                a.error = got  # a row that no longer parses, say: this request's error
            else:
                found.update(got)
        deciding = []
        # One session of the bulk guard for the batch: one transaction of its journal,
        # however many requests, each still decided against the usage before it.
        with self.decisions.batch():
            for a in accesses:
                if a.error is not None:
                    continue
                try:
                    a.metas = self._targets(a.principal, a.request, a.action, found, a.named)
                    if any(m.header.content_type == CLIENT_SEALED_CONTENT_TYPE for m in a.metas):
                        raise BadRequest(
                            "client-sealed records open only on the client: use sealed access"
                        )
                    a.decision = self._decision(
                        a.principal,
                        a.request.purpose,
                        a.metas,
                        a.request.grant,
                        a.code,
                        action=a.action,
                        names=_names(a.request.subjects),
                    )
                except SovraError as exc:
                    a.error = exc
                else:
                    deciding.append(a)
        entries = [a.decision_item(self._decision_entry) for a in deciding]
        settle(deciding, self.log.append_each(entries), _Access.decided)

    def _load_named(self, accesses: list[_Access]) -> list[dict[str, RecordMeta]]:
        """The records named by id in *accesses*, read with one query, per request."""
        found = self.store.get_records([r for a in accesses for r in a.named])
        return [{r: found[r] for r in a.named if r in found} for a in accesses]

    def _unwrap_all(self, accesses: Sequence[_Access]) -> None:
        """Unwrap every allowed request's keys: one custodian call per jurisdiction, each
        request in batches of at most :data:`MAX_BATCH` keys, each batch carrying its own
        authorization. A custodian's refusal of a logged allow is logged too."""
        allowed = [a for a in accesses if a.error is None]
        refused: dict[int, tuple[_Access, SovraError]] = {}
        for code in dict.fromkeys(m.header.jurisdiction for a in allowed for m in a.metas):
            owners: list[tuple[_Access, list[RecordMeta]]] = []
            for a in allowed:
                mine = [m for m in a.metas if m.header.jurisdiction == code]
                owners.extend(
                    (a, mine[start : start + MAX_BATCH]) for start in range(0, len(mine), MAX_BATCH)
                )
            for run in chunks(owners, lambda o: len(o[1]), MAX_BATCH, MAX_BATCH_KEYS):
                requests = [
                    ([(m.wrapped_key, m.header) for m in batch], a.authorization(), a.principal.id)
                    for a, batch in run
                ]
                released: Sequence[list[bytes] | SovraError]
                try:
                    released = unwrap_shares(self.custodians, code, requests)
                except SovraError as exc:
                    released = [exc] * len(requests)
                for (a, batch), got in zip(run, released, strict=True):
                    if isinstance(got, SovraError):
                        refused.setdefault(id(a), (a, got))
                    else:
                        a.keys.update(zip((m.header.record_id for m in batch), got, strict=True))
        for a, error in refused.values():
            a.error = self._custodian_refusal(a, error)

    def _custodian_refusal(self, a: _Access, error: SovraError) -> SovraError:
        """*error* from a custodian, logged as a refusal of *a*'s allow if it is one."""
        try:
            with self._authorizer.custodian_refusals(a.principal, a.authorization()):
                raise error
        except SovraError as logged:
            return logged

    def _open_all(self, accesses: Sequence[_Access]) -> None:
        """Every request's blobs read (one read per region) and opened with its keys."""
        by_region = grouped(
            [(a, m) for a in accesses for m in a.metas], lambda item: item[1].header.region
        )
        held: dict[str, bytes] = {}
        for region, wanted in by_region.items():
            groups = list(grouped(wanted, lambda item: id(item[0])).values())
            read = functools.partial(_read_blobs, self.blobs[region])
            for group, got in zip(groups, each(read, groups), strict=True):
                if isinstance(got, SovraError):
                    group[0][0].error = got
                else:
                    held.update(got)
        for a in accesses:
            if a.error is None:
                try:
                    a.records = {
                        m.header.record_id: open_blob(
                            m.header, held[m.header.record_id], a.keys[m.header.record_id]
                        ).decode()
                        for m in a.metas
                    }
                except SovraError as exc:
                    a.error = exc

    def _release_items(self, a: _Access) -> list[tuple[bytes, Sequence[str]]]:
        """The key-release entries of an allowed request, as log items: one, or one per
        custodian when a record of two homes is among its records."""
        extra = {"action": a.action} if a.request.reveal else {}
        assert a.decision is not None
        out = []
        for code, metas in _homes.release_groups(a.metas):
            entry, tags = self._release_entry(
                a.principal,
                a.decision,
                a.authorization(),
                metas,
                **extra,
                **({"custodian": code} if code else {}),
            )
            out.append((entry.to_bytes(), tags))
        return out

    def _value_custodian(self, jurisdiction: str) -> ValueCustodian:
        custodian = self.custodians[jurisdiction]
        if not _tokenizes(type(custodian)):
            raise BadRequest(f"custodian {jurisdiction} does not tokenize or seal values")
        return cast("ValueCustodian", custodian)

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

    def _logged_allow(self, decision: Decision) -> ReleaseAuthorization:
        """Log *decision* (allow and deny alike) and raise on a deny.

        Raises:
            Denied: the decision is deny; it is in the log at ``exc.log_index``.
        """
        entry, receipt = self._append(*self._decision_entry(decision))
        if not decision.allow:
            raise Denied(decision.reason, log_index=receipt.index)
        allowed = ReleaseAuthorization.of(decision, entry, receipt)
        return allowed if self.release_proofs is None else self.release_proofs.attach([allowed])[0]

    def _decision(
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
    ) -> Decision:
        """The policy stage's decision on a request, not yet logged.

        *names* are the subject ids the request named, if it named subjects: the bulk
        guard looks for a walk through them (otherwise through the record ids).
        """
        decision = two_homes_policy.decide(
            self.decisions,
            principal,
            purpose,
            [_homes.record_homes(m) for m in metas],
            self._grant_facts(grant),
            justification=code,
            action=action,
            names=names,
        )
        if recipient is not None:
            # Logged with the decision: the custodian encrypts released keys to this key
            # only, and the client checks that the log names its own.
            decision = replace(decision, recipient=recipient.hex())
        return decision

    def _decision_entry(self, decision: Decision) -> tuple[LogEntry, list[str]]:
        """A decision's log entry and its tags (its subjects and its id)."""
        tags = [*_subject_tags(decision.subjects), f"decision:{decision.decision_id}"]
        return decision.to_entry(self._now_ms()), tags

    def _release_entry(
        self,
        principal: Principal,
        decision: Decision,
        authorization: ReleaseAuthorization,
        metas: Sequence[RecordMeta],
        **extra: str,
    ) -> tuple[LogEntry, Sequence[str]]:
        """The key-release entry of an allowed request, and its tags."""
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
        return entry, _subject_tags(decision.subjects)

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
        subject = self.commitment(jurisdiction, subject_id)
        self._may_ingest(principal, jurisdiction, subject, client_sealed=True)
        version, public = self._sealing_custodian(jurisdiction).transport_key()
        header = RecordHeader(
            record_id=_new_record_id(),
            subject=subject,
            jurisdiction=jurisdiction,
            region=self.placement.region_for(jurisdiction, subject),
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
        self.placement.check(header.jurisdiction, header.region)
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
            BadRequest: *recipient* is not a public key of an HPKE suite, and as :meth:`access`.
            NotFound: as :meth:`access`.
            Denied: the decision is deny; it is in the log at ``exc.log_index``.
        """
        check_purpose(purpose)
        check_public(recipient)
        code = None if justification is None else parse_justification(justification)
        request = AccessRequest(purpose, record_ids, subjects, jurisdiction)
        metas = self._targets(principal, request, "read")
        _homes.one_home_only(metas)
        decision = self._decision(
            principal, purpose, metas, grant, code, recipient=recipient, names=_names(subjects)
        )
        authorization = self._logged_allow(decision)
        sealed = self._unwrap(metas, authorization, principal, recipient)
        release = self._append(
            *self._release_entry(principal, decision, authorization, metas, to="client")
        )[1]
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

    def _selection(self, principal: Principal, request: AccessRequest, action: str) -> list[str]:
        """Check a request names exactly one kind of target, and refuse a selection by
        ids or subjects over the per-request cap (logged) before any record is loaded.
        Returns the record ids it names, each once, in order (none for other targets).

        Raises:
            BadRequest: not exactly one kind of target, or a malformed record id.
            Denied: over ``max_records_per_request`` ids or subjects (logged).
        """
        targets = (request.record_ids, request.subjects, request.jurisdiction)
        if sum(map(bool, targets)) != 1:
            raise BadRequest("name exactly one of: record ids, subjects, or a jurisdiction")
        limit = self.config.max_records_per_request
        named = list(dict.fromkeys(request.record_ids))
        if len(named) > limit or len(dict.fromkeys(request.subjects)) > limit:
            self._authorizer.refuse_selection(
                principal, request.purpose, action=action, limit=limit
            )
        for record_id in named:
            check_id(record_id, "record id")
        return named

    def _targets(
        self,
        principal: Principal,
        request: AccessRequest,
        action: str,
        loaded: Mapping[str, RecordMeta] | None = None,
        named: list[str] | None = None,
    ) -> list[RecordMeta]:
        """The records a request selects; a selection over the per-request cap is refused
        by the policy stage and logged, before any record is loaded. Records named by id
        are taken from *loaded* when given (a batch loads them all at once); *named* is
        what :meth:`_selection` returned for the request, when a batch checked it already.

        Raises:
            BadRequest: not exactly one kind of target, or an unknown jurisdiction.
            NotFound: a named record does not exist, or the selection is empty.
            Denied: over ``max_records_per_request`` records (logged).
        """
        if named is None:
            named = self._selection(principal, request, action)
        purpose, subjects, jurisdiction = request.purpose, request.subjects, request.jurisdiction
        limit = self.config.max_records_per_request

        def over_limit() -> NoReturn:
            self._authorizer.refuse_selection(principal, purpose, action=action, limit=limit)

        if named:
            found = self.store.get_records(named) if loaded is None else loaded
            missing = next((r for r in named if r not in found), None)
            if missing is not None:
                raise NotFound(f"no record {missing}")
            return [found[r] for r in named]
        if subjects:
            # Her records in each home named, those of two homes under either (once).
            chosen = {
                m.header.record_id: m
                for j, s in dict.fromkeys(subjects)
                for m in _homes.records_for_subject(
                    self.store,
                    self.log,
                    self.commitment(j, s),
                    second=_homes.may_be_second_home(self.config, self.placement, j),
                )
            }
            metas = list(chosen.values())
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
        found = self.store.get_records(ids)
        return [found[r] for r in ids if r in found]

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
        if registered is None:
            return facts
        withdrawn = (
            self.store.grant_withdrawals(grant.grant_id) if registered.cosignatures else frozenset()
        )
        return as_registered(facts, registered, withdrawn)


@functools.cache
def _tokenizes(kind: type) -> bool:
    """Whether custodians of class *kind* tokenize and seal values; asked once per class,
    since a check against a protocol looks at every method on each call."""
    return issubclass(kind, ValueCustodian)


def _first(results: Sequence[LogReceipt | SovraError]) -> LogReceipt | SovraError:
    """An access's release: its first entry's receipt, or the first error among them."""
    return next((r for r in results if isinstance(r, SovraError)), results[0])


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
    return grouped(metas, lambda m: m.header.jurisdiction)


_A = TypeVar("_A")


def _scannable(item: object, limit: int) -> str:
    """The text of a batch item to scan ahead of its checks: its content, unless the
    checks will refuse it before any scan (not an item, not text, over *limit* bytes)."""
    if not isinstance(item, IngestItem):
        return ""
    content = item.content
    return content if isinstance(content, str) and len(content) <= limit else ""


def _put_blobs(placement: Placement, store: BlobStore, recs: list[_Record]) -> list[None]:
    for r in recs:  # before any byte leaves for the region
        _homes.check_region(placement, r.meta, store.region)
    store.put_many([(r.meta.header.record_id, r.blob) for r in recs])
    return [None] * len(recs)


def _read_blobs(
    store: BlobStore, groups: list[list[tuple[_Access, RecordMeta]]]
) -> list[dict[str, bytes]]:
    """The blobs of several requests' records, read at once, handed back per request."""
    ids = [m.header.record_id for group in groups for _, m in group]
    blobs = iter(store.get_many(ids))
    return [{m.header.record_id: next(blobs) for _, m in group} for group in groups]


def _protect_staged(custodian: ValueCustodian, staged: list[_Staged]) -> list[list[str]]:
    return custodian.protect_many([(st.header, st.prepared.requests) for st in staged])


def _protect_wrap_staged(
    custodian: ProtectWrapCustodian, staged: list[_Staged]
) -> list[tuple[list[str], WrappedKey]]:
    return custodian.protect_and_wrap_many(
        [(st.data_key, st.header, st.prepared.requests) for st in staged]
    )


@functools.cache
def _protects_and_wraps(kind: type) -> bool:
    """Whether custodians of class *kind* protect values and wrap keys in one call."""
    return issubclass(kind, ProtectWrapCustodian)


def _wrap_staged(
    custodians: Mapping[str, Custodian], code: str, staged: list[_Staged]
) -> list[WrappedKey]:
    return wrap_shares(custodians, code, [(st.data_key, st.header, st.second) for st in staged])


@dataclass(slots=True)
class _Staged(Failing):
    """One ingest item on its way through a batch."""

    principal: Principal
    header: RecordHeader
    prepared: Prepared
    purpose: str | None
    second: SecondHome | None = None
    bodies: Sequence[str] = ()
    blob: bytes = b""
    data_key: bytes = b""
    wrapped: WrappedKey | None = None
    receipt: LogReceipt | None = None
    error: SovraError | None = None

    def jurisdiction(self) -> str:
        return self.header.jurisdiction

    def values(self) -> int:
        return len(self.prepared.requests)

    def protected(self, bodies: Sequence[str]) -> None:
        self.bodies = bodies

    def wrapped_with(self, wrapped: WrappedKey) -> None:
        self.wrapped = wrapped

    def keyed(self, answer: tuple[list[str], WrappedKey]) -> None:
        self.bodies, self.wrapped = answer

    def receipted(self, receipt: LogReceipt) -> None:
        self.receipt = receipt

    def result(self) -> IngestReceipt | SovraError:
        if self.error is not None:
            return self.error
        if self.receipt is None:  # pragma: no cover - every step sets one of the two
            raise IntegrityError("an ingest of a batch got neither a receipt nor an error")
        h, p = self.header, self.prepared
        return IngestReceipt(h.record_id, h.region, self.receipt, p.counts, p.actions)


@dataclass(slots=True)
class _Record(Failing):
    """One sealed record on its way to storage and the log."""

    meta: RecordMeta
    blob: bytes
    entry: LogEntry
    receipt: LogReceipt | None = None
    error: SovraError | None = None

    def region(self) -> str:
        return self.meta.header.region

    def stored(self, _: None) -> None:
        pass

    def logged(self, receipt: LogReceipt) -> None:
        self.receipt = receipt

    def result(self) -> LogReceipt | SovraError:
        if self.error is not None:
            return self.error
        if self.receipt is None:  # pragma: no cover - every step sets one of the two
            raise IntegrityError("a stored record got neither a receipt nor an error")
        return self.receipt


@dataclass(slots=True)
class _Access(Failing):
    """One access request on its way through a batch."""

    principal: Principal
    request: AccessRequest
    code: Justification | None
    action: str
    named: list[str]
    metas: list[RecordMeta] = field(default_factory=list)
    decision: Decision | None = None
    entry: bytes = b""
    allowed: ReleaseAuthorization | None = None
    keys: dict[str, bytes] = field(default_factory=dict)
    release: LogReceipt | None = None
    records: dict[str, str] = field(default_factory=dict)
    error: SovraError | None = None

    def decision_item(
        self, entry_of: Callable[[Decision], tuple[LogEntry, list[str]]]
    ) -> tuple[bytes, list[str]]:
        """The decision's log item; its bytes are kept for the authorization."""
        assert self.decision is not None
        entry, tags = entry_of(self.decision)
        self.entry = entry.to_bytes()
        return self.entry, tags

    def decided(self, receipt: LogReceipt) -> None:
        """The decision is logged: a deny is this request's error, an allow its authority."""
        assert self.decision is not None
        if not self.decision.allow:
            self.error = Denied(self.decision.reason, log_index=receipt.index)
        else:
            self.allowed = ReleaseAuthorization.of(self.decision, self.entry, receipt)

    def witnessed(self, authorization: ReleaseAuthorization) -> None:
        self.allowed = authorization

    def authorization(self) -> ReleaseAuthorization:
        if self.allowed is None:  # pragma: no cover - only allowed requests get here
            raise IntegrityError("a request went on without a logged allow")
        return self.allowed

    def released(self, receipt: LogReceipt) -> None:
        self.release = receipt

    def result(self) -> AccessResult | SovraError:
        if self.error is not None:
            return self.error
        if self.decision is None or self.release is None:  # pragma: no cover
            raise IntegrityError("an access of a batch got neither records nor an error")
        return AccessResult(self.decision, self.authorization().receipt, self.release, self.records)
