"""The decision point: one request in, one explained :class:`Decision` out.

Every authorization of a deployment is decided here. An access request (``read``,
``reveal``) is evaluated by Cedar once per record; a governance action (ingest, grants,
pack activation, explanations, the review queue and alerts, erasure, subject reports) once,
on a :class:`Target` (:meth:`DecisionPoint.decide_action`); a selection over the
deployment's per-request cap is refused before any record is loaded
(:meth:`DecisionPoint.decide_selection`). An access request is allowed only if every record
is permitted. A deny names the policies that forbade it or, when nothing permitted it, the
missing fact (no grant, wrong purpose, foreign service...). Pure: no I/O.

Speed: the request Cedar sees is built from facts only (roles, jurisdictions, purpose,
justification, grant facts, guard flags and per-record relations), never from identifiers,
so two requests with equal facts get equal answers. The decision point memoises Cedar's
answer per distinct fact tuple, and evaluates the distinct tuples a request still needs in
one batch. The memo belongs to one pack and is dropped when another is activated.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import cedarpy

from sovra.model import Decision, Principal, RecordMeta, Role
from sovra.policy.bulk import BulkGuard, BulkLimits
from sovra.policy.grants import GrantFacts
from sovra.policy.justification import Justification, default_justification
from sovra.policy.pack import PolicyPack
from sovra.policy.signing import ActivePack

__all__ = [
    "ACTIONS",
    "BUILT_IN_RULES",
    "GOVERNANCE_ACTIONS",
    "DecisionPoint",
    "RecordFacts",
    "ReviewItem",
    "Target",
]

_MAX_MEMO = 65_536
ACTIONS = ("read", "reveal")
"""What a request may ask: ``read`` the record as stored (minimised), or ``reveal`` it
with the values minimisation tokenized or sealed turned back by the custodian."""
GOVERNANCE_ACTIONS = (
    "ingest",
    "register-grant",
    "view-grant",
    "revoke-grant",
    "activate-policy",
    "explain",
    "view-reviews",
    "view-alerts",
    "shred",
    "report",
)
"""Everything a principal may ask besides reading records, each decided by the pack."""
_SELECTION_RULE = "bulk-selection-over-limit"
BUILT_IN_RULES = {
    _SELECTION_RULE: (
        "a request selects at most the deployment's max_records_per_request records; a wider "
        "selection is bulk collection and is refused before any record is loaded"
    ),
}
"""Rules the decision point applies itself, ``@id`` -> reason, beside the pack's."""
_PRINCIPAL = {"type": "Principal", "id": "requester"}
_TARGET = {"type": "Target", "id": "target"}
# Why a governance action no rule permitted was denied, in the shipped pack's terms.
_WHY_NOT_ACTION = {
    "ingest": "a {role} may not ingest records",
    "register-grant": "the grant is not signed by its approving authority",
    "view-grant": (
        "a grant is shown to its grantee, {j}'s authority, a co-signing one, the operator "
        "and auditors"
    ),
    "revoke-grant": "only {j}'s authority, or a co-signing one, may revoke this grant",
    "activate-policy": "only the operator or a jurisdiction authority may activate a policy pack",
    "explain": "no rule lets a {role} have logged decisions explained",
    "view-reviews": "the review queue is for the operator, authorities and auditors",
    "view-alerts": "bulk alerts are for the operator, authorities and auditors",
    "shred": "only the subject herself or her home authority may erase her data",
    "report": "a subject report is for the subject herself or her home authority",
}

# (allowed, cedar policy ids that decided, evaluation errors)
_Answer = tuple[bool, tuple[str, ...], tuple[str, ...]]


class _GovernanceFacts(NamedTuple):
    """What Cedar sees of one governance request: its action, the principal's role and
    jurisdiction, and the ``Target`` entity's attributes. Built by the decision point,
    read by the evaluation, and the memo's key (equal facts, equal answers)."""

    action: str
    role: str
    principal_jurisdiction: str
    # The Target's attributes, as the schema (packs/schema.cedarschema) names them.
    jurisdiction: str = ""
    own: bool = False
    grantee: bool = False
    signed: bool = False
    client_sealed: bool = False
    scan_required: bool = False
    cosigner: bool = False

    def target(self) -> dict[str, Any]:
        """The ``Target`` entity's attributes: every field after the principal's."""
        return dict(zip(self._fields[3:], self[3:], strict=True))


@dataclass(frozen=True, slots=True)
class RecordFacts:
    """What the policy may know of a record: never its content.

    ``kinds`` are the kinds of sensitive data found at ingest (the record's data categories);
    ``region`` where it is stored; ``created_s`` when it was ingested (UNIX seconds).
    """

    record_id: str
    subject: str  # commitment
    jurisdiction: str
    kinds: frozenset[str] = frozenset()
    region: str = ""
    created_s: float | None = None

    @classmethod
    def of(cls, meta: RecordMeta) -> RecordFacts:
        """The facts of a stored record: its header, the kinds found in it, when stored."""
        header = meta.header
        return cls(
            header.record_id,
            header.subject,
            header.jurisdiction,
            frozenset(k for k, n in meta.findings.items() if n),
            header.region,
            meta.created_ms / 1000,
        )


@dataclass(frozen=True, slots=True)
class Target:
    """What the policy may know of what a governance action acts on: facts, never content.

    ``jurisdiction`` is the jurisdiction it concerns (a subject's home, a grant's approver;
    empty for the review queue or a pack); ``subjects`` the commitments of the subjects it
    concerns (the decision is logged under them); ``grantee`` a grant's grantee; ``signed``
    whether a grant's signature is its approver's, and ``problem`` why not;
    ``client_sealed`` an ingest of a record sealed on the client, whose home
    ``scan_required`` (refuses kinds of data at ingest); ``cosigners`` the jurisdictions
    whose co-signature is on a grant as registered (the policy sees whether the
    requester's is one of them).
    """

    jurisdiction: str = ""
    subjects: tuple[str, ...] = ()
    grantee: str = ""
    signed: bool = False
    problem: str = ""
    client_sealed: bool = False
    scan_required: bool = False
    cosigners: tuple[str, ...] = ()


def _context(request_key: tuple[Any, ...]) -> dict[str, Any]:
    """The Cedar context of an access request's facts."""
    _, _, _, purpose, justification, g, bulk = request_key
    return {
        "purpose": purpose,
        "justification": justification,
        "grant": {
            "present": g[0],
            "verified": g[1],
            "approver": g[2],
            "issued_to_requester": g[3],
            "purpose": g[4],
            "within_max_records": g[5],
            "cosigned": g[6],
            "bulk_scope": g[7],
        },
        "bulk": {
            "over_request_cap": bulk[0],
            "over_window_budget": bulk[1],
            "over_jurisdiction_budget": bulk[2],
            "over_foreign_budget": bulk[3],
            "enumeration": bulk[4],
        },
    }


def _within_retention(record: RecordFacts, retention: Mapping[str, int], now: float) -> bool:
    """Whether *record* is within its home's retention period (unknown age: not, if limited)."""
    days = retention.get(record.jurisdiction)
    if days is None:
        return True
    return record.created_s is not None and now - record.created_s < days * 86400


@dataclass(frozen=True, slots=True)
class ReviewItem:
    """A decision sent to human review by a rule's ``@review`` annotation."""

    decision_id: str
    queue: str
    time_s: float
    principal: str
    principal_jurisdiction: str
    justification: str
    allow: bool
    policies: tuple[str, ...]
    jurisdictions: tuple[str, ...]


@dataclass
class _State:
    """What changes together when a pack is activated."""

    pack: PolicyPack
    home: dict[str, tuple[list[str], list[str], list[str]]]  # purposes, adequacy, contracts
    memo: dict[tuple[Any, ...], _Answer] = field(default_factory=dict)
    # The policies that decided an allow -> their names, reasons joined, review queue: as
    # few distinct sets fire as there are distinct answers, so each is explained once.
    explained: dict[tuple[str, ...], tuple[tuple[str, ...], str, str]] = field(default_factory=dict)

    def explain(self, fired: tuple[str, ...]) -> tuple[tuple[str, ...], str, str]:
        """Names, reasons (each once, joined) and first review queue of the *fired* rules."""
        known = self.explained.get(fired)
        if known is None:
            pack = self.pack
            known = (
                tuple(pack.name_of(p) for p in fired),
                "; ".join(dict.fromkeys(pack.reason_of(p) for p in fired)),
                next((pack.review[p] for p in fired if p in pack.review), ""),
            )
            if len(self.explained) >= _MAX_MEMO:
                self.explained.clear()
            self.explained[fired] = known
        return known


class DecisionPoint:
    """Decides access requests against a policy pack, grants and the bulk guard."""

    def __init__(
        self,
        pack: PolicyPack,
        guard: BulkGuard,
        home_purposes: Mapping[str, Sequence[str]],
        new_id: Callable[[], str] = lambda: os.urandom(16).hex(),
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.guard = guard
        self.home_purposes = {j: sorted(p) for j, p in home_purposes.items()}
        self._base_limits = guard.limits
        self._new_id = new_id
        self._clock = clock or guard.clock
        self._lock = threading.Lock()
        self._state = self._prepare(pack)
        self.guard.limits = pack.parameters.bulk_limits(self._base_limits)

    # -- the active pack -------------------------------------------------------------------

    @property
    def pack(self) -> PolicyPack:
        """The active pack."""
        return self._state.pack

    def activate(self, pack: PolicyPack) -> None:
        """Make *pack* the active pack at once (its memo starts empty)."""
        state = self._prepare(pack)
        with self._lock:
            self._state = state
            self.guard.limits = pack.parameters.bulk_limits(self._base_limits)

    def active(self) -> ActivePack:
        """Name, version, digest, parties and threshold of the active pack."""
        pack = self.pack
        return ActivePack(pack.name, pack.version, pack.digest, pack.parties, pack.threshold)

    def _prepare(self, pack: PolicyPack) -> _State:
        params = pack.parameters
        codes = set(self.home_purposes) | set(params.purposes) | set(params.adequacy)
        home = {
            j: (
                sorted(set(self.home_purposes.get(j, ())) | set(params.purposes.get(j, ()))),
                list(params.adequacy.get(j, ())),
                list(params.contracts.get(j, ())),
            )
            for j in codes
        }
        return _State(pack, home)

    def reviews(self, queue: str | None = None) -> list[ReviewItem]:
        """Decisions waiting for review, oldest first (the last 10,000 at most); the
        queue is the guard's, so that it is shared as the guard is."""
        items = [
            ReviewItem(**(r | {k: tuple(r[k]) for k in ("policies", "jurisdictions")}))
            for r in self.guard.reviews()
        ]
        return [r for r in items if queue is None or r.queue == queue]

    # -- deciding --------------------------------------------------------------------------

    def batch(self) -> AbstractContextManager[None]:
        """Decide several requests in one session of the bulk guard (with a journal shared
        by worker processes, one transaction of it): each request is still assessed
        against the usage of every one before it, and no other worker decides meanwhile."""
        return self.guard.session()

    def decide(
        self,
        principal: Principal,
        purpose: str,
        records: Sequence[RecordFacts],
        grant: GrantFacts,
        justification: Justification | None = None,
        *,
        action: str = "read",
        names: Sequence[str] = (),
        grants: Sequence[GrantFacts] = (),
    ) -> Decision:
        """Decide whether *principal* may read *records* for *purpose* under *justification*.

        A request without a justification is decided under
        :func:`~sovra.policy.justification.default_justification`. *action* is one of
        :data:`ACTIONS`; a pack that has no rule permitting ``reveal`` denies it. *names*
        are what the request named, if not the record ids (the subject ids it asked for):
        the bulk guard looks for enumeration in them. The whole decision is one session
        of the guard, so the budgets it assesses are the ones it spends, whatever other
        threads or worker processes decide meanwhile. *grants*, when given, is *grant* as
        each record's home sees it, one per record (a grant co-signed by a record's other
        home is that home's grant too: :mod:`sovra.policy.dual`); the decision names *grant*.

        Raises:
            ValueError: *action* is not one of :data:`ACTIONS` (a caller's bug).
        """
        with self.guard.session():
            return self._decide(
                principal,
                purpose,
                records,
                grant,
                justification,
                action=action,
                names=names,
                grants=grants,
            )

    def _decide(
        self,
        principal: Principal,
        purpose: str,
        records: Sequence[RecordFacts],
        grant: GrantFacts,
        justification: Justification | None,
        *,
        action: str,
        names: Sequence[str],
        grants: Sequence[GrantFacts] = (),
    ) -> Decision:
        if action not in ACTIONS:
            raise ValueError(f"action must be one of {ACTIONS}, not {action!r}")
        state = self._state
        pack = state.pack
        pj = principal.jurisdiction
        by_subject = {r.subject: r.jurisdiction for r in records}
        subjects = sorted(by_subject)
        if justification is None:
            foreign = any(j != pj for j in by_subject.values())
            justification = default_justification(principal.role, purpose, foreign)
        decision_id = self._new_id()

        def outcome(
            allow: bool, reason: str, policies: Sequence[str] = (), review: str = ""
        ) -> Decision:
            return Decision(
                decision_id=decision_id,
                allow=allow,
                reason=reason,
                principal=principal.id,
                purpose=purpose,
                records=tuple(r.record_id for r in records),
                subjects=tuple(subjects),
                policies=tuple(policies),
                grant=grant.digest,
                action=action,
                justification=str(justification),
                review=review,
            )

        if not records:
            return outcome(False, "the request names no records")
        pairs = list(by_subject.items())
        usage = self.guard.assess(principal.id, pj, pairs, names or [r.record_id for r in records])
        limits = self.guard.limits

        def grant_context(g: GrantFacts) -> tuple[Any, ...]:
            return (
                g.present,
                g.verified,
                g.approver,
                g.present and g.grantee == principal.id,
                g.purpose,
                not g.max_records or len(records) <= g.max_records,
                len(g.cosigners) >= pack.parameters.bulk_grant_cosigners,
                len(g.subjects) > limits.request_limit,
            )

        flags = usage.flags
        request_key = (
            action,
            str(principal.role),
            pj,
            purpose,
            str(justification),
            grant_context(grant),
            (
                flags.over_request_cap,
                flags.over_window_budget,
                flags.over_jurisdiction_budget,
                flags.over_foreign_budget,
                flags.enumeration,
            ),
        )
        own = principal.subject
        regions = pack.parameters.regions
        retention = pack.parameters.retention_days
        now = self._clock() if retention else 0.0
        seen = grants or (grant,) * len(records)
        keys = [
            (
                request_key if g is grant else (*request_key[:5], grant_context(g), request_key[6]),
                r.jurisdiction,
                bool(own) and r.subject == own,
                r.subject in g.subjects,
                g.covers(r.kinds),
                r.jurisdiction not in regions or r.region in regions[r.jurisdiction],
                _within_retention(r, retention, now),
            )
            for r, g in zip(records, seen, strict=True)
        ]
        answers = self._answers(state, keys)

        denied = next((i for i, a in enumerate(answers) if not a[0]), None)
        if denied is None:
            # One record (the common read): its answer's policies are sorted already.
            fired = (
                answers[0][1]
                if len(answers) == 1
                else tuple(sorted({pid for a in answers for pid in a[1]}))
            )
            names, reason, review = state.explain(fired)
            if review:
                reason += f"; queued for {review} review"
            decision = outcome(True, reason, names, review)
            self.guard.record(usage)
            self._queue(decision, principal, records, review)
            return decision
        _, forbidding, errors = answers[denied]
        if errors:
            # An evaluation error means a policy could not be applied: fail closed, visibly.
            return outcome(False, f"policy evaluation error: {errors[0]}")
        if forbidding:
            names = [pack.name_of(p) for p in forbidding]
            review = next((pack.review[p] for p in forbidding if p in pack.review), "")
            decision = outcome(
                False, "; ".join(pack.reason_of(p) for p in forbidding), names, review
            )
            if any(p in pack.alerts for p in forbidding):
                self.guard.alert(principal.id, pj, names, decision_id)
            self._queue(decision, principal, records, review)
            return decision
        if action == "reveal" and self._readable(state, keys[denied]):
            return outcome(False, self._why_not_reveal(principal, justification, records[denied]))
        why = self._why_not(
            principal,
            purpose,
            justification,
            records[denied],
            seen[denied],
            count=len(records),
            limits=limits,
        )
        return outcome(False, why)

    def decide_action(self, principal: Principal, action: str, target: Target) -> Decision:
        """Decide whether *principal* may take the governance *action* on *target*.

        One Cedar request on a ``Target`` entity; allowed only if a rule permits it and none
        forbids it. The decision names the rules that decided it, with their reasons.

        Raises:
            ValueError: *action* is not one of :data:`GOVERNANCE_ACTIONS` (a caller's bug).
        """
        if action not in GOVERNANCE_ACTIONS:
            raise ValueError(f"action must be one of {GOVERNANCE_ACTIONS}, not {action!r}")
        state = self._state
        pack = state.pack
        key = _GovernanceFacts(
            action=action,
            role=str(principal.role),
            principal_jurisdiction=principal.jurisdiction,
            jurisdiction=target.jurisdiction,
            own=bool(principal.subject) and principal.subject in target.subjects,
            grantee=bool(target.grantee) and target.grantee == principal.id,
            signed=target.signed,
            client_sealed=target.client_sealed,
            scan_required=target.scan_required,
            cosigner=bool(principal.jurisdiction) and principal.jurisdiction in target.cosigners,
        )
        answer = self._answers(state, [key])[0]
        allowed, fired, errors = answer

        def outcome(allow: bool, reason: str, names: Sequence[str] = ()) -> Decision:
            return Decision(
                decision_id=self._new_id(),
                allow=allow,
                reason=reason,
                principal=principal.id,
                purpose="none",
                records=(),
                subjects=tuple(sorted(set(target.subjects))),
                policies=tuple(names),
                action=action,
            )

        if allowed:
            names, reason, _ = state.explain(fired)
            return outcome(True, reason, names)
        if errors:
            return outcome(False, f"policy evaluation error: {errors[0]}")
        if fired:
            reasons = "; ".join(pack.reason_of(p) for p in fired)
            return outcome(False, reasons, [pack.name_of(p) for p in fired])
        why = target.problem or _WHY_NOT_ACTION[action].format(
            role=principal.role, j=target.jurisdiction or principal.jurisdiction
        )
        return outcome(False, why)

    def permits_activation(self, pack: PolicyPack) -> bool:
        """Whether *pack* lets the operator or any of its parties' authorities activate a
        later pack: one that does not could never be replaced, so it is not activated."""
        state = self._prepare(pack)
        keys: list[tuple[Any, ...]] = [
            _GovernanceFacts("activate-policy", str(role), j)
            for role, j in [
                (Role.OPERATOR, ""),
                *((Role.AUTHORITY, p) for p in pack.parties),
            ]
        ]
        return any(a[0] for a in self._evaluate(state, keys).values())

    def decide_selection(
        self, principal: Principal, purpose: str, *, action: str, limit: int
    ) -> Decision:
        """Refuse a selection over *limit* records (the deployment's per-request cap).

        The selection is bulk collection whatever the pack says: it is denied, as the rule
        :data:`BUILT_IN_RULES` names, and raises a bulk alert like the guard's refusals.
        """
        decision = Decision(
            decision_id=self._new_id(),
            allow=False,
            reason=f"bulk: selection over {limit} records",
            principal=principal.id,
            purpose=purpose,
            records=(),
            subjects=(),
            policies=(_SELECTION_RULE,),
            action=action,
        )
        self.guard.alert(
            principal.id, principal.jurisdiction, [_SELECTION_RULE], decision.decision_id
        )
        return decision

    def _answers(self, state: _State, keys: list[tuple[Any, ...]]) -> list[_Answer]:
        memo = state.memo
        found = [memo.get(k) for k in keys]
        if None not in found:  # every answer memoised: the common case
            return found  # type: ignore[return-value]
        missing = list(dict.fromkeys(k for k, a in zip(keys, found, strict=True) if a is None))
        if missing:
            fresh = self._evaluate(state, missing)
            if len(memo) + len(fresh) > _MAX_MEMO:
                memo.clear()
            memo.update(fresh)
            found = [a if a is not None else fresh[k] for k, a in zip(keys, found, strict=True)]
        return [a for a in found if a is not None]

    def _evaluate(self, state: _State, keys: list[tuple[Any, ...]]) -> dict[Any, _Answer]:
        """One Cedar batch for the distinct fact tuples not in the memo."""
        if isinstance(keys[0], _GovernanceFacts):
            return self._evaluate_governance(state, keys)
        # One request key per decision, except where a record's homes see a grant apart.
        contexts = {k[0]: _context(k[0]) for k in keys}
        _, role, pj, *_ = keys[0][0]
        entities: list[dict[str, Any]] = [
            {"uid": _PRINCIPAL, "attrs": {"role": role, "jurisdiction": pj}, "parents": []}
        ]
        requests = []
        empty: tuple[list[str], list[str], list[str]] = ([], [], [])
        for n, (request_key, rj, own, in_grant, categories, region_ok, recent) in enumerate(keys):
            purposes, adequacy, contracts = state.home.get(rj, empty)
            uid = {"type": "Record", "id": f"k{n}"}
            entities.append(
                {
                    "uid": uid,
                    "attrs": {
                        "jurisdiction": rj,
                        "home_purposes": purposes,
                        "adequate_to": adequacy,
                        "contracts_with": contracts,
                        "own": own,
                        "in_grant": in_grant,
                        "grant_categories": categories,
                        "region_allowed": region_ok,
                        "within_retention": recent,
                    },
                    "parents": [],
                }
            )
            requests.append(
                {
                    "principal": _PRINCIPAL,
                    "action": {"type": "Action", "id": request_key[0]},
                    "resource": uid,
                    "context": contexts[request_key],
                }
            )
        # No per-call schema: the pack was validated against it at load, and these facts are
        # built here with the schema's types; a mistyped fact would be an evaluation error,
        # which denies (fail closed). Skipping it makes the miss path about 20% faster.
        results = cedarpy.is_authorized_batch(requests, state.pack.policy_set, entities, None)
        return {
            k: (
                res.allowed,
                tuple(sorted(res.diagnostics.reasons)),
                tuple(res.diagnostics.errors),
            )
            for k, res in zip(keys, results, strict=True)
        }

    @staticmethod
    def _evaluate_governance(state: _State, keys: list[tuple[Any, ...]]) -> dict[Any, _Answer]:
        """One Cedar request per governance fact tuple (each with its own principal)."""
        out: dict[Any, _Answer] = {}
        for key in keys:
            facts = _GovernanceFacts(*key)
            principal = {"role": facts.role, "jurisdiction": facts.principal_jurisdiction}
            entities: list[dict[str, Any]] = [
                {"uid": _PRINCIPAL, "attrs": principal, "parents": []},
                {"uid": _TARGET, "attrs": facts.target(), "parents": []},
            ]
            request = {
                "principal": _PRINCIPAL,
                "action": {"type": "Action", "id": facts.action},
                "resource": _TARGET,
                "context": {},
            }
            res = cedarpy.is_authorized(request, state.pack.policy_set, entities, None)
            out[key] = (
                res.allowed,
                tuple(sorted(res.diagnostics.reasons)),
                tuple(res.diagnostics.errors),
            )
        return out

    def _queue(
        self, decision: Decision, principal: Principal, records: Sequence[RecordFacts], queue: str
    ) -> None:
        if not queue:
            return
        self.guard.queue_review(
            {
                "decision_id": decision.decision_id,
                "queue": queue,
                "time_s": self._clock(),
                "principal": principal.id,
                "principal_jurisdiction": principal.jurisdiction,
                "justification": decision.justification,
                "allow": decision.allow,
                "policies": list(decision.policies),
                "jurisdictions": sorted({r.jurisdiction for r in records}),
            }
        )

    def _readable(self, state: _State, key: tuple[Any, ...]) -> bool:
        """Whether the record of a denied reveal's *key* could be read as stored."""
        return self._answers(state, [(("read", *key[0][1:]), *key[1:])])[0][0]

    @staticmethod
    def _why_not_reveal(
        principal: Principal, justification: Justification, record: RecordFacts
    ) -> str:
        """Explain a reveal denied where a read would be allowed."""
        return (
            f"no policy lets a {principal.role} of {principal.jurisdiction} reveal the values "
            f"that minimisation tokenized or sealed in {record.jurisdiction} records under "
            f"justification {justification}; read them as stored"
        )

    def _why_not(
        self,
        principal: Principal,
        purpose: str,
        justification: Justification,
        record: RecordFacts,
        grant: GrantFacts,
        *,
        count: int,
        limits: BulkLimits,
    ) -> str:
        """Explain a deny that no forbid decided: which permit's condition is missing."""
        home = record.jurisdiction
        pj = principal.jurisdiction
        j = str(justification)
        if pj != home and principal.role is Role.AUTHORITY:
            return self._why_not_grant(
                principal, purpose, justification, record, grant, count=count, limits=limits
            )
        if pj != home:
            return (
                f"a {principal.role} of {pj} may not read records of "
                f"{home} subjects; foreign access needs judicial assistance"
                + self._transfer_hint(home, pj)
            )
        if principal.role is Role.SERVICE:
            if justification not in (
                Justification.CUSTOMER_INITIATED_SUPPORT,
                Justification.SERVICE_OPERATION,
            ):
                return (
                    "a service reads for customer-initiated-support or service-operation, "
                    f"not under justification {j}"
                )
            allowed = ", ".join(self._state.home.get(home, ([], [], []))[0]) or "none"
            return f"{home} does not allow services the purpose {purpose!r} (allowed: {allowed})"
        if principal.role is Role.AUTHORITY:
            return (
                f"{home}'s authority reads its residents' data under domestic-legal-process "
                f"or emergency, not {j}"
            )
        return (
            f"no policy permits a {principal.role} of {home} to read this record for "
            f"{purpose!r} under justification {j}"
        )

    def _why_not_grant(
        self,
        principal: Principal,
        purpose: str,
        justification: Justification,
        record: RecordFacts,
        grant: GrantFacts,
        *,
        count: int,
        limits: BulkLimits,
    ) -> str:
        """Explain why a foreign authority's request was not permitted."""
        home = record.jurisdiction
        if justification is not Justification.FOREIGN_LEGAL_PROCESS:
            return (
                f"a foreign authority reads {home} subjects' data only through judicial "
                f"assistance (justification foreign-legal-process), not {justification}"
            )
        if not grant.verified:
            return (
                f"foreign authority of {principal.jurisdiction} needs a legal-assistance "
                f"grant signed by {home}'s authority: {grant.problem}"
            )
        if grant.approver != home:
            return f"the grant is approved by {grant.approver}, not by {home} (subject's home)"
        if grant.grantee != principal.id:
            return f"the grant was issued to {grant.grantee}, not to {principal.id}"
        if grant.purpose != purpose:
            return f"the grant covers purpose {grant.purpose!r}, not {purpose!r}"
        if record.subject not in grant.subjects:
            return f"the grant does not name the subject of record {record.record_id}"
        if not grant.covers(record.kinds):
            kinds = ", ".join(sorted(record.kinds)) or "plain"
            allowed = ", ".join(sorted(grant.categories))
            return (
                f"the grant covers data categories {allowed}, not {kinds} "
                f"found in record {record.record_id}"
            )
        if grant.max_records and count > grant.max_records:
            return (
                f"the request names {count} records; the grant allows at most "
                f"{grant.max_records} per request"
            )
        if len(grant.subjects) > limits.request_limit:
            need = self.pack.parameters.bulk_grant_cosigners
            return (
                f"the grant names {len(grant.subjects)} subjects (bulk scope) and needs "
                f"{need} co-signing authorit{'y' if need == 1 else 'ies'} besides "
                f"{grant.approver}; it has {len(grant.cosigners)}"
            )
        return f"no policy of pack {self.pack.name} permits this grant's use"

    def _transfer_hint(self, home: str, to: str) -> str:
        _, adequacy, contracts = self._state.home.get(home, ([], [], []))
        if not (adequacy or contracts):
            return ""
        return f" (no transfer basis from {home} to {to}: no adequacy, no contract on file)"
