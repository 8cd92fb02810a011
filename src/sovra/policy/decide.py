"""The decision point: one access request in, one explained :class:`Decision` out.

Cedar evaluates the request once per record; the request is allowed only if every record
is permitted. A deny names the policy that forbade it or, when nothing permitted it, the
missing fact (no grant, wrong purpose, foreign service...). Pure: no I/O.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cedarpy

from sovra.model import Decision, Principal, Role
from sovra.policy.bulk import BulkGuard
from sovra.policy.grants import GrantFacts
from sovra.policy.pack import PolicyPack

__all__ = ["DecisionPoint", "RecordFacts"]


@dataclass(frozen=True, slots=True)
class RecordFacts:
    """What the policy may know of a record: never its content."""

    record_id: str
    subject: str  # commitment
    jurisdiction: str


class DecisionPoint:
    """Decides access requests against a policy pack, grants and the bulk guard."""

    def __init__(
        self,
        pack: PolicyPack,
        guard: BulkGuard,
        home_purposes: Mapping[str, Sequence[str]],
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self.pack = pack
        self.guard = guard
        self.home_purposes = {j: sorted(p) for j, p in home_purposes.items()}
        self._new_id = new_id

    def decide(
        self,
        principal: Principal,
        purpose: str,
        records: Sequence[RecordFacts],
        grant: GrantFacts,
    ) -> Decision:
        """Decide whether *principal* may read *records* for *purpose*."""
        subjects = sorted({r.subject for r in records})
        decision_id = self._new_id()

        def outcome(allow: bool, reason: str, policies: Sequence[str] = ()) -> Decision:
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
            )

        if not records:
            return outcome(False, "the request names no records")
        context = {
            "purpose": purpose,
            "grant": grant.to_context(),
            "distinct_subjects": len(subjects),
            "request_subject_limit": self.guard.limits.request_limit,
            "window_subjects": self.guard.window_count(principal.id, subjects),
            "window_subject_limit": self.guard.limits.window_limit,
        }
        results = cedarpy.is_authorized_batch(
            [self._request(principal, r, context) for r in records],
            self.pack.policy_set,
            self._entities(principal, records),
            self.pack.schema,
        )
        if all(res.allowed for res in results):
            fired = sorted({pid for res in results for pid in res.diagnostics.reasons})
            self.guard.record(principal.id, subjects)
            return outcome(
                True,
                "; ".join(dict.fromkeys(self.pack.reason_of(p) for p in fired)),
                [self.pack.name_of(p) for p in fired],
            )
        index, denied = next((i, res) for i, res in enumerate(results) if not res.allowed)
        errors = list(denied.diagnostics.errors)
        if errors:
            # An evaluation error means a policy could not be applied: fail closed, visibly.
            return outcome(False, f"policy evaluation error: {errors[0]}")
        forbidding = sorted(denied.diagnostics.reasons)
        if forbidding:
            return outcome(
                False,
                "; ".join(self.pack.reason_of(p) for p in forbidding),
                [self.pack.name_of(p) for p in forbidding],
            )
        return outcome(False, self._why_not(principal, purpose, records[index], grant))

    def _why_not(
        self, principal: Principal, purpose: str, record: RecordFacts, grant: GrantFacts
    ) -> str:
        """Explain a deny that no forbid decided: which permit's condition is missing."""
        home = record.jurisdiction
        foreign = principal.jurisdiction != home
        if principal.role is Role.AUTHORITY and foreign:
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
            return f"the grant does not name the subject of record {record.record_id}"
        if foreign:
            return (
                f"a {principal.role} of {principal.jurisdiction} may not read records of "
                f"{home} subjects; foreign access needs judicial assistance"
            )
        if principal.role is Role.SERVICE:
            allowed = ", ".join(self.home_purposes.get(home, [])) or "none"
            return f"{home} does not allow services the purpose {purpose!r} (allowed: {allowed})"
        return f"no policy permits a {principal.role} of {home} to read this record for {purpose!r}"

    @staticmethod
    def _request(
        principal: Principal, record: RecordFacts, context: dict[str, Any]
    ) -> dict[str, Any]:
        return {
            "principal": {"type": "Principal", "id": principal.id},
            "action": {"type": "Action", "id": "read"},
            "resource": {"type": "Record", "id": record.record_id},
            "context": context,
        }

    def _entities(
        self, principal: Principal, records: Sequence[RecordFacts]
    ) -> list[dict[str, Any]]:
        entities: list[dict[str, Any]] = [
            {
                "uid": {"type": "Principal", "id": principal.id},
                "attrs": {
                    "id": principal.id,
                    "role": str(principal.role),
                    "jurisdiction": principal.jurisdiction,
                    "subject": principal.subject,
                },
                "parents": [],
            }
        ]
        entities.extend(
            {
                "uid": {"type": "Record", "id": r.record_id},
                "attrs": {
                    "jurisdiction": r.jurisdiction,
                    "subject": r.subject,
                    "home_purposes": self.home_purposes.get(r.jurisdiction, []),
                },
                "parents": [],
            }
            for r in records
        )
        return entities
