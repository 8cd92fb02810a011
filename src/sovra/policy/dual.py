"""Subjects of two countries: a record decided under both homes' rules.

A record of a subject with two home jurisdictions is, to the policy, two records: the
same record seen as its first home's and as its second home's. Cedar evaluates the
request on both, and a request is allowed only when every record it touches is permitted
(and none forbidden), so an access needs an allow under both homes' rules: a home
service of one is foreign to the other, a home authority of one is a foreign authority to
the other, and a legal-assistance grant approved by one authority covers the record only
as that home's (``judicial-assistance-grant`` needs the approver to be the record's
home), so a grant from either authority alone is never enough. A grant approved by one
home and co-signed by the other, both signatures on the grant as registered (so in the
log before any use, ADR 0001), is each home's grant: each view sees it as approved by
its own home (:func:`grant_views`). Both views carry the subject's commitment in her
first home (her second-home one when she asks as her second home knows her), so that she
is the same person to the rules (``own``, ``in_grant``, the bulk guard's one subject);
the logged decision names her commitment in each home, since each home's custodian
checks that its own is named, and the homes whose rules decided.

At ingest, minimisation under both homes' rules keeps, for each kind of data, the
stricter action (:func:`stricter`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from sovra.model import Decision, Principal
from sovra.policy.decide import DecisionPoint, RecordFacts
from sovra.policy.grants import GrantFacts
from sovra.policy.justification import Justification

__all__ = ["STRICTNESS", "RecordHomes", "decide", "grant_views", "stricter"]

STRICTNESS = ("keep", "tokenize", "seal", "redact", "refuse")
"""Minimisation actions from the least to the most protective: a token links equal
values and can be turned back; a sealed value can be turned back but links nothing; a
redacted value is gone; a refused kind keeps the whole record out."""

_RANK = {action: n for n, action in enumerate(STRICTNESS)}


@dataclass(frozen=True, slots=True)
class RecordHomes:
    """A record's facts, and for a record of two homes its second home and the subject's
    commitment there."""

    facts: RecordFacts
    second: tuple[str, str] | None = None  # (jurisdiction, commitment)


def stricter(first: Mapping[str, str], second: Mapping[str, str]) -> dict[str, str]:
    """The minimisation rule of data under both homes: per kind, the more protective action.

    A kind one rule does not list is kept under it, so the other's action stands.

    Raises:
        ValueError: an action is not one of :data:`STRICTNESS` (rules are parsed first).
    """
    out = dict(first)
    for kind, action in second.items():
        mine = out.get(kind, "keep")
        if action not in _RANK or mine not in _RANK:
            raise ValueError(f"unknown minimisation action for {kind}: {mine!r} or {action!r}")
        if _RANK[action] > _RANK[mine]:
            out[kind] = action
    return out


def decide(
    point: DecisionPoint,
    principal: Principal,
    purpose: str,
    records: Sequence[RecordHomes],
    grant: GrantFacts,
    *,
    justification: Justification | None = None,
    action: str = "read",
    names: Sequence[str] = (),
) -> Decision:
    """The decision point's decision, each record of two homes decided under both.

    Without a record of two homes this is exactly ``point.decide``. With one, the
    decision lists each record once, names the subject's commitments in both homes, and
    ``homes`` lists every jurisdiction whose rules decided it.
    """
    if all(r.second is None for r in records):
        return point.decide(
            principal,
            purpose,
            [r.facts for r in records],
            grant,
            justification,
            action=action,
            names=names,
        )
    views: list[RecordFacts] = []
    extra: set[str] = set()
    for r in records:
        if r.second is None:
            views.append(r.facts)
            continue
        facts = r.facts
        if principal.subject and principal.subject == r.second[1]:
            # She signed in as her second home knows her: her own data all the same.
            facts = replace(facts, subject=principal.subject)
            extra.add(r.facts.subject)
        views.extend((facts, replace(facts, jurisdiction=r.second[0])))
        extra.add(r.second[1])
    seen = grant_views(grant, records)
    decision = point.decide(
        principal,
        purpose,
        views,
        grant,
        justification,
        action=action,
        names=names,
        grants=seen if any(g is not grant for g in seen) else (),
    )
    return replace(
        decision,
        records=tuple(dict.fromkeys(decision.records)),
        subjects=tuple(sorted({*decision.subjects, *extra})),
        homes=tuple(sorted({v.jurisdiction for v in views})),
        reason=_reason(decision, principal, grant, records),
    )


def grant_views(grant: GrantFacts, records: Sequence[RecordHomes]) -> list[GrantFacts]:
    """*grant* as each view of *records* sees it: one per view, in the order
    :func:`decide` makes them (each record, then its second home's view if it has one).

    A grant is approved by one jurisdiction, and its subjects are committed in that one.
    For a record of two homes approved by one of them, both views see her named if the
    grant names her in the approving home (both views carry her first-home commitment);
    the other home's view sees the grant as approved by that home only if that home's
    co-signature is on the grant as registered. Otherwise the grant is as presented.
    """
    out: list[GrantFacts] = []
    for r in records:
        if r.second is None:
            out.append(grant)
            continue
        first, (home, commitment) = r.facts.jurisdiction, r.second
        if not grant.verified or grant.approver not in (first, home):
            out.extend((grant, grant))
            continue
        named = grant
        if grant.approver == home and commitment in grant.subjects:
            # Named in her second home: the views know her by her first-home commitment.
            named = replace(grant, subjects=(grant.subjects - {commitment}) | {r.facts.subject})
        for view in (first, home):
            if view == grant.approver or view not in grant.registered_cosigners:
                out.append(named)
            else:  # co-signed by this home and registered so: this home's grant too
                out.append(
                    replace(
                        named,
                        approver=view,
                        cosigners=(grant.cosigners - {view}) | {grant.approver},
                        registered_cosigners=(grant.registered_cosigners - {view})
                        | {grant.approver},
                    )
                )
    return out


def _reason(
    decision: Decision, principal: Principal, grant: GrantFacts, records: Sequence[RecordHomes]
) -> str:
    """The decision's reason, saying which home a grant for a record of two homes lacks
    (refused), or that both approved it (allowed), when a requester of neither home
    presented it (an authority of one home is refused by that home's rules anyway)."""
    if not (grant.present and grant.verified):
        return decision.reason
    approvals = {grant.approver} | grant.registered_cosigners
    for r in records:
        if r.second is None:
            continue
        homes = (r.facts.jurisdiction, r.second[0])
        if grant.approver not in homes or principal.jurisdiction in homes:
            continue
        other = homes[1] if grant.approver == homes[0] else homes[0]
        if decision.allow or other in approvals:
            continue
        if other in grant.withdrawn_cosigners:
            how = f"{other}'s authority has withdrawn its co-signature"
        elif other in grant.cosigners:
            how = (
                f"co-signed by {other}, but that co-signature is not on the grant as "
                "registered under its id (register the grant once both homes signed it)"
            )
        else:
            how = f"not co-signed by {other}"
        return (
            f"record {r.facts.record_id} has two homes, {homes[0]} and {homes[1]}: a "
            "legal-assistance grant for it needs both homes' authorities (approved by one, "
            f"co-signed by the other); grant {grant.grant_id} is approved by "
            f"{grant.approver} and {how}; {decision.reason}"
        )
    if decision.allow and any(
        r.second is not None and {r.facts.jurisdiction, r.second[0]} <= approvals for r in records
    ):
        cosigned = ", ".join(sorted(grant.registered_cosigners))
        return (
            f"{decision.reason}; grant {grant.grant_id} is approved by {grant.approver} and "
            f"co-signed by {cosigned}, both homes of its records of two homes"
        )
    return decision.reason
