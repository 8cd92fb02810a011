"""Subjects of two countries: a record decided under both homes' rules.

A record of a subject with two home jurisdictions is, to the policy, two records: the
same record seen as its first home's and as its second home's. Cedar evaluates the
request on both, and a request is allowed only when every record it touches is permitted
(and none forbidden), so an access needs an allow under both homes' rules: a home
service of one is foreign to the other, a home authority of one is a foreign authority to
the other, and a legal-assistance grant approved by one authority covers the record only
as that home's (``judicial-assistance-grant`` needs the approver to be the record's
home), so a grant from either authority alone is never enough. Both views carry the
subject's commitment in her first home, so that she is the same person to the rules
(``own``, ``in_grant``, the bulk guard's one subject); the logged decision names her
commitment in each home, since each home's custodian checks that its own is named, and
the homes whose rules decided.

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

__all__ = ["STRICTNESS", "RecordHomes", "decide", "stricter"]

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
        views.append(r.facts)
        if r.second is not None:
            views.append(replace(r.facts, jurisdiction=r.second[0]))
            extra.add(r.second[1])
    decision = point.decide(
        principal, purpose, views, grant, justification, action=action, names=names
    )
    return replace(
        decision,
        records=tuple(dict.fromkeys(decision.records)),
        subjects=tuple(sorted({*decision.subjects, *extra})),
        homes=tuple(sorted({v.jurisdiction for v in views})),
    )
